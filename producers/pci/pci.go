package pci

import (
	"regexp"
	"strings"
)

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

// uuidRe matches a UUID in its canonical text form. Its 32 hex digits can
// never be one card number, but its digit groups, joined across the
// dashes, pass Luhn about once in a hundred UUIDs, so UUIDs are not
// scanned.
var uuidRe = regexp.MustCompile(`[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}`)

// runs splits s into runs of digits that may be separated by single spaces
// or dashes. Each run is returned as its digits with their offsets. UUIDs
// break runs and are skipped.
func runs(s string) [][]span {
	var out [][]span
	var cur []span
	var skip [][]int
	if len(s) >= 36 && strings.Count(s, "-") >= 4 {
		skip = uuidRe.FindAllStringIndex(s, -1)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if len(skip) > 0 && i >= skip[0][0] {
			// Inside a UUID: end the current run and jump past it.
			if len(cur) >= MinDigits {
				out = append(out, cur)
			}
			cur = nil
			i = skip[0][1] - 1
			skip = skip[1:]
			continue
		}
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

// matches calls fn with the first and last digit offsets of every card
// number in s. Candidates are the stretches of a run that begin and end at
// group edges (a group is digits written without a separator), so
// "x 4111 1111 1111 1111" and "1 4111111111111111" are found while a 16-digit
// number failing Luhn is not mistaken for a card by one of its substrings.
// A group longer than MaxDigits cannot be split at edges, so every window of
// it is checked.
func matches(s string, fn func(start, end int) bool) {
	for _, run := range runs(s) {
		// starts[i] and ends[i] mark where group i begins and ends in run.
		var starts, ends []int
		for i := range run {
			if i == 0 || run[i].pos != run[i-1].pos+1 {
				starts = append(starts, i)
				if i > 0 {
					ends = append(ends, i-1)
				}
			}
		}
		ends = append(ends, len(run)-1)
		for g, start := range starts {
			for _, end := range ends[g:] {
				if n := end - start + 1; n >= MinDigits && n <= MaxDigits && luhn(run[start:end+1]) {
					if !fn(run[start].pos, run[end].pos) {
						return
					}
				}
			}
			if long := ends[g] - start + 1; long > MaxDigits {
				group := run[start : ends[g]+1]
				for n := MinDigits; n <= MaxDigits; n++ {
					for i := 0; i+n <= len(group); i++ {
						if luhn(group[i:i+n]) && !fn(group[i].pos, group[i+n-1].pos) {
							return
						}
					}
				}
			}
		}
	}
}

// hasLongRun reports, without allocating, whether s has a run of at least
// MinDigits digits (single spaces or dashes allowed between them). Text
// without one cannot hold a card number, and most text has none.
func hasLongRun(s string) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			n++
			if n >= MinDigits {
				return true
			}
		case (c == ' ' || c == '-') && n > 0 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' && s[i-1] >= '0' && s[i-1] <= '9':
		default:
			n = 0
		}
	}
	return false
}

// Contains reports whether s holds anything that looks like a card number.
func Contains(s string) bool {
	if !hasLongRun(s) {
		return false
	}
	found := false
	matches(s, func(int, int) bool {
		found = true
		return false
	})
	return found
}

// Mask returns s with every digit of every card number in it replaced by
// 'X'. Separators and all other text are kept, so the length is unchanged.
// Masking can leave digits that form a new card-number candidate with
// their neighbours, so it repeats until none is left (each pass masks at
// least one digit, so it ends).
func Mask(s string) string {
	if !hasLongRun(s) {
		return s
	}
	b := []byte(s)
	for {
		masked := false
		matches(string(b), func(start, end int) bool {
			for i := start; i <= end; i++ {
				if b[i] >= '0' && b[i] <= '9' {
					b[i] = 'X'
					masked = true
				}
			}
			return true
		})
		if !masked {
			return string(b)
		}
	}
}
