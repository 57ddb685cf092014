package chsql

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// ErrIdent is returned by Ident for a name that is not a plain identifier.
var ErrIdent = errors.New("chsql: invalid identifier")

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// MaxIdentLen is the longest identifier Ident accepts.
const MaxIdentLen = 128

// String returns s as a single-quoted string literal. Backslashes and quotes
// are escaped; control characters and bytes that are not valid UTF-8 are
// written as \xHH escapes, so the literal is printable, valid UTF-8, holds
// no NUL byte (chDB passes queries as C strings) and decodes back to exactly
// the bytes of s.
func String(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' || c == '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
			i++
		case c < 0x20 || c == 0x7f:
			writeHex(&b, c)
			i++
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				writeHex(&b, c)
			} else {
				b.WriteString(s[i : i+size])
			}
			i += size
		}
	}
	b.WriteByte('\'')
	return b.String()
}

func writeHex(b *strings.Builder, c byte) {
	const digits = "0123456789ABCDEF"
	b.WriteString(`\x`)
	b.WriteByte(digits[c>>4])
	b.WriteByte(digits[c&0x0f])
}

// Strings returns ss as an array literal of string literals, e.g.
// ['a', 'b']. An empty or nil slice renders as [] (an empty array whose
// element type ClickHouse infers from its use).
func Strings(ss []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(String(s))
	}
	b.WriteByte(']')
	return b.String()
}

// Ident validates name as a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at
// most MaxIdentLen characters) and returns it back-quoted, e.g. `events`.
// The error wraps ErrIdent.
func Ident(name string) (string, error) {
	if len(name) > MaxIdentLen || !identRE.MatchString(name) {
		return "", fmt.Errorf("%w: %q (want [A-Za-z_][A-Za-z0-9_]*, at most %d characters)", ErrIdent, name, MaxIdentLen)
	}
	return "`" + name + "`", nil
}

// Time returns t, converted to UTC and truncated to the second, as
// toDateTime('YYYY-MM-DD hh:mm:ss', 'UTC'). DateTime holds 1970-01-01
// 00:00:00 to 2105; times outside that range are the caller's concern.
func Time(t time.Time) string {
	return "toDateTime('" + t.UTC().Format(time.DateTime) + "', 'UTC')"
}

// Int returns n as an integer literal. A negative number is wrapped in
// parentheses, (-5), so that it can follow any operator: "x -" followed by
// "-5" would otherwise start a "--" comment.
func Int(n int64) string {
	if n < 0 {
		return "(" + strconv.FormatInt(n, 10) + ")"
	}
	return strconv.FormatInt(n, 10)
}

// Uint returns n as an unsigned integer literal.
func Uint(n uint64) string {
	return strconv.FormatUint(n, 10)
}

// UUID returns u as toUUID('xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx').
func UUID(u uuid.UUID) string {
	return "toUUID('" + u.String() + "')"
}
