package chsql_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/airtally/airtally/internal/chsql"
)

func TestString(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", `''`},
		{"plain", "abc", `'abc'`},
		{"quote", "O'Brien", `'O\'Brien'`},
		{"backslash", `a\b`, `'a\\b'`},
		{"backslash then quote", `\'`, `'\\\''`},
		{"injection", "x'; DROP TABLE events; --", `'x\'; DROP TABLE events; --'`},
		{"newline and tab", "a\nb\tc", `'a\x0Ab\x09c'`},
		{"nul", "a\x00b", `'a\x00b'`},
		{"del", "\x7f", `'\x7F'`},
		{"utf8 kept", "Zoë ☎ 😀", `'Zoë ☎ 😀'`},
		{"invalid utf8", "a\xffb\xc3", `'a\xFFb\xC3'`},
		{"backquote and double quote", "`\"", "'`\"'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := chsql.String(tc.in); got != tc.want {
				t.Errorf("String(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestIdent(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"simple", "events", "`events`"},
		{"underscore start", "_x1", "`_x1`"},
		{"mixed case", "Db_2", "`Db_2`"},
		{"empty", "", ""},
		{"digit start", "1db", ""},
		{"dash", "a-b", ""},
		{"dot", "db.events", ""},
		{"backquote", "a`b", ""},
		{"space", "a b", ""},
		{"unicode", "é", ""},
		{"too long", strings.Repeat("a", chsql.MaxIdentLen+1), ""},
		{"longest", strings.Repeat("a", chsql.MaxIdentLen), "`" + strings.Repeat("a", chsql.MaxIdentLen) + "`"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := chsql.Ident(tc.in)
			if tc.want == "" {
				if !errors.Is(err, chsql.ErrIdent) {
					t.Errorf("Ident(%q) = %q, %v; want ErrIdent", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Ident(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestTime(t *testing.T) {
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"utc", time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC), "toDateTime('2026-03-04 05:06:07', 'UTC')"},
		{"converted to utc", time.Date(2026, 3, 4, 0, 6, 7, 0, time.FixedZone("EST", -5*3600)), "toDateTime('2026-03-04 05:06:07', 'UTC')"},
		{"fraction truncated", time.Date(2026, 12, 31, 23, 59, 59, 999_999_999, time.UTC), "toDateTime('2026-12-31 23:59:59', 'UTC')"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := chsql.Time(tc.in); got != tc.want {
				t.Errorf("Time = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestNumbers(t *testing.T) {
	tests := []struct{ name, got, want string }{
		{"zero", chsql.Int(0), "0"},
		{"positive", chsql.Int(42), "42"},
		{"negative in parens", chsql.Int(-5), "(-5)"},
		{"min int64", chsql.Int(-9223372036854775808), "(-9223372036854775808)"},
		{"max uint64", chsql.Uint(18446744073709551615), "18446744073709551615"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %s, want %s", tc.got, tc.want)
			}
		})
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{"nil", nil, "[]"},
		{"one", []string{"a"}, "['a']"},
		{"escaped", []string{"a'b", `c\`, ""}, `['a\'b', 'c\\', '']`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := chsql.Strings(tc.in); got != tc.want {
				t.Errorf("Strings(%q) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestUUID(t *testing.T) {
	u := uuid.MustParse("01890a5d-ac96-774b-bcce-b302099a8057")
	if got, want := chsql.UUID(u), "toUUID('01890a5d-ac96-774b-bcce-b302099a8057')"; got != want {
		t.Errorf("UUID = %s, want %s", got, want)
	}
}

// unquote decodes a literal the way ClickHouse's lexer reads one: it must
// start with a quote, end at the first unescaped quote, and that quote must
// be the last byte. It returns ok=false for text that would end early or
// run past its end.
func unquote(lit string) (string, bool) {
	if len(lit) < 2 || lit[0] != '\'' {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(lit); i++ {
		c := lit[i]
		switch c {
		case '\'':
			return b.String(), i == len(lit)-1
		case '\\':
			if i+1 >= len(lit) {
				return "", false
			}
			i++
			switch e := lit[i]; e {
			case '\\', '\'':
				b.WriteByte(e)
			case 'x':
				if i+2 >= len(lit) {
					return "", false
				}
				var v byte
				for _, h := range []byte(lit[i+1 : i+3]) {
					switch {
					case h >= '0' && h <= '9':
						v = v<<4 | (h - '0')
					case h >= 'A' && h <= 'F':
						v = v<<4 | (h - 'A' + 10)
					default:
						return "", false
					}
				}
				b.WriteByte(v)
				i += 2
			default:
				return "", false // String emits no other escape
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", false // no closing quote
}

// FuzzString checks that a literal always decodes back to exactly its
// input, ends at its last byte (nothing can break out of it), and is
// printable valid UTF-8 without NUL or control bytes.
func FuzzString(f *testing.F) {
	for _, s := range nasty {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lit := chsql.String(s)
		got, ok := unquote(lit)
		if !ok {
			t.Fatalf("String(%q) = %s: not one closed literal", s, lit)
		}
		if got != s {
			t.Fatalf("String(%q) = %s decodes to %q", s, lit, got)
		}
		if !utf8.ValidString(lit) {
			t.Fatalf("String(%q) = %q is not valid UTF-8", s, lit)
		}
		for _, r := range lit {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("String(%q) = %q holds control character %U", s, lit, r)
			}
		}
	})
}

// FuzzStrings checks that an array literal of two strings never lets one
// element spill into the other.
func FuzzStrings(f *testing.F) {
	f.Add("a", "b")
	f.Add(`\`, "'")
	f.Add("', '", "]")
	f.Fuzz(func(t *testing.T, a, b string) {
		lit := chsql.Strings([]string{a, b})
		if want := "[" + chsql.String(a) + ", " + chsql.String(b) + "]"; lit != want {
			t.Fatalf("Strings = %s, want %s", lit, want)
		}
	})
}

// nasty are inputs that break naive quoting; the fuzz seeds and the
// server round-trip use them.
var nasty = []string{
	"",
	"'",
	`\`,
	`\'`,
	`'\`,
	`\\'`,
	"' OR 1=1 --",
	"x'); DROP DATABASE default; --",
	"\x00",
	"a\x00'b",
	"\n\r\t\b\f\v",
	"\x1b[31m",
	"\x7f",
	"\xff\xfe",
	"\xc3",
	"\\x41",
	`\x`,
	"Zoë ☎ 😀",
	"\u2028\u2029",
	"`backquoted`",
	`"double"`,
	"/* comment */",
	"{{db}}",
	"?",
	"$1",
	strings.Repeat(`\'`, 100),
}
