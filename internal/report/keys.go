package report

import "regexp"

// Go twins of the keys the queries compare (dnisKeySQL, promoKeySQL,
// vanityKeySQL); a test checks that both give the same keys.
var (
	nonDigitRE   = regexp.MustCompile(`[^0-9]`)
	usNumberRE   = regexp.MustCompile(`^1([0-9]{10})$`)
	spaceRE      = regexp.MustCompile(`[[:space:]]`)
	vanityHeadRE = regexp.MustCompile(`^[[:space:]]*(https?://)?(www[.])?`)
	vanityTailRE = regexp.MustCompile(`/*[[:space:]]*$`)
)

// DNISKey is the key a DNIS is matched by: its digits, a leading US
// country code 1 of an 11-digit number dropped ("1-800-555-0101" and
// "8005550101" match).
func DNISKey(dnis string) string {
	return usNumberRE.ReplaceAllString(nonDigitRE.ReplaceAllString(dnis, ""), "$1")
}

// PromoKey is the key a promo code is matched by: upper-cased, without
// white space (ASCII letters only change case, as in the queries).
func PromoKey(code string) string {
	return asciiCase(spaceRE.ReplaceAllString(code, ""), 'a', 'z', 'A'-'a')
}

// VanityKey is the key a vanity URL is matched by: lower-cased, without
// scheme, leading "www." and trailing slashes ("https://www.Foo.example/tv/"
// and "foo.example/tv" match).
func VanityKey(url string) string {
	s := vanityHeadRE.ReplaceAllString(asciiCase(url, 'A', 'Z', 'a'-'A'), "")
	return vanityTailRE.ReplaceAllString(s, "")
}

// asciiCase shifts the ASCII letters from..to by delta, as ClickHouse's
// upper and lower do (they leave other characters alone).
func asciiCase(s string, from, to byte, delta int) string {
	b := []byte(s)
	for i, c := range b {
		if c >= from && c <= to {
			b[i] = byte(int(c) + delta)
		}
	}
	return string(b)
}
