package pci

const (
	// MinDigits is the fewest digits a card number has.
	MinDigits = 13
	// MaxDigits is the most digits a card number has.
	MaxDigits = 19
)

// span is one digit of a run: its value and its byte offset in the text.
type span struct {
	digit byte
	pos   int
}

// runs splits s into runs of digits that may be separated by single spaces
// or dashes. Each run is returned as its digits with their offsets.
func runs(s string) [][]span {
	var out [][]span
	var cur []span
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			cur = append(cur, span{digit: c - '0', pos: i})
		case (c == ' ' || c == '-') && len(cur) > 0 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' && cur[len(cur)-1].pos == i-1:
			// a single separator between two digits keeps the run going
		default:
			if len(cur) >= MinDigits {
				out = append(out, cur)
			}
			cur = nil
		}
	}
	if len(cur) >= MinDigits {
		out = append(out, cur)
	}
	return out
}

// luhn reports whether digits pass the Luhn checksum.
func luhn(digits []span) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i].digit)
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// matches calls fn with the first and last digit offsets of every window of a
// run that is a card number.
func matches(s string, fn func(start, end int) bool) {
	for _, run := range runs(s) {
		for n := MinDigits; n <= MaxDigits && n <= len(run); n++ {
			for i := 0; i+n <= len(run); i++ {
				if luhn(run[i : i+n]) {
					if !fn(run[i].pos, run[i+n-1].pos) {
						return
					}
				}
			}
		}
	}
}

// Contains reports whether s holds anything that looks like a card number.
func Contains(s string) bool {
	found := false
	matches(s, func(int, int) bool {
		found = true
		return false
	})
	return found
}

// Mask returns s with every digit of every card number in it replaced by
// 'X'. Separators and all other text are kept, so the length is unchanged.
func Mask(s string) string {
	var b []byte
	matches(s, func(start, end int) bool {
		if b == nil {
			b = []byte(s)
		}
		for i := start; i <= end; i++ {
			if b[i] >= '0' && b[i] <= '9' {
				b[i] = 'X'
			}
		}
		return true
	})
	if b == nil {
		return s
	}
	return string(b)
}
