package pci

import (
	"bytes"
	"github.com/google/uuid"
	"log/slog"
	"strings"
	"testing"
)

func TestContainsAndMask(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		found  bool
		masked string
	}{
		{"visa contiguous", "4111111111111111", true, "XXXXXXXXXXXXXXXX"},
		{"visa with spaces", "card 4111 1111 1111 1111 ok", true, "card XXXX XXXX XXXX XXXX ok"},
		{"amex with dashes", "3782-822463-10005", true, "XXXX-XXXXXX-XXXXX"},
		{"19 digits", "6011000990139424009", true, "XXXXXXXXXXXXXXXXXXX"},
		{"13 digit visa", "4222222222222", true, "XXXXXXXXXXXXX"},
		{"embedded in a word", "ref4111111111111111x", true, "refXXXXXXXXXXXXXXXXx"},
		{"invalid luhn passes", "4111111111111112", false, "4111111111111112"},
		{"too short", "411111111111", false, "411111111111"},
		{"phone number", "+1 (813) 555-0100", false, "+1 (813) 555-0100"},
		{"double space breaks the run", "4111  1111 1111 1111", false, "4111  1111 1111 1111"},
		{"date", "2026-11-25 20:01:02", false, "2026-11-25 20:01:02"},
		{"empty", "", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Contains(tc.in); got != tc.found {
				t.Fatalf("Contains = %v, want %v", got, tc.found)
			}
			got := Mask(tc.in)
			if len(got) != len(tc.in) {
				t.Fatalf("Mask changed the length: %d → %d", len(tc.in), len(got))
			}
			if tc.masked != "" && got != tc.masked {
				t.Fatalf("Mask = %q, want %q", got, tc.masked)
			}
			if Contains(got) {
				t.Fatalf("Mask left a card number in %q", got)
			}
		})
	}
}

func TestRedactingHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewRedactingHandler(slog.NewTextHandler(&buf, nil)))
	log.With("ctx", "4111111111111111").Info("paid with 4111 1111 1111 1111",
		"note", "5500-0000-0000-0004", slog.Group("g", "x", "378282246310005"),
		"err", errString("card 4012888888881881 declined"), "any", []string{"6011111111111117"})
	out := buf.String()
	for _, pan := range []string{"4111111111111111", "4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "4012888888881881", "6011111111111117"} {
		if strings.Contains(out, pan) {
			t.Fatalf("log output holds %s: %s", pan, out)
		}
	}
	if !strings.Contains(out, "XXXX XXXX XXXX XXXX") {
		t.Fatalf("message not masked as expected: %s", out)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func FuzzMask(f *testing.F) {
	for _, s := range []string{"4111111111111111", "a 4111-1111-1111-1111 b", "123", "378282246310005 and 6011111111111117"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := Mask(s)
		if len(m) != len(s) {
			t.Fatalf("length changed")
		}
		if Contains(m) {
			t.Fatalf("mask left a card number")
		}
	})
}

func TestGroupEdges(t *testing.T) {
	for _, tc := range []struct {
		in    string
		found bool
	}{
		{"qty 1 4111 1111 1111 1111", true},
		{"1 4111111111111111", true},
		{"4111111111111111 2026", true},
		{"x41111111111111110000000y", true}, // one group longer than 19 digits
		{"12345678901234567", false},
	} {
		if got := Contains(tc.in); got != tc.found {
			t.Errorf("Contains(%q) = %v, want %v", tc.in, got, tc.found)
		}
	}
}

func TestUUIDsAreNotCards(t *testing.T) {
	// Each of these UUIDs has digit groups that, joined across the dashes,
	// pass Luhn; none is a card number.
	for _, id := range []string{
		"01931234-5678-7123-8123-456789012345",
		"call 01931234-5678-7123-8123-456789012345 done",
	} {
		if Contains(id) {
			t.Errorf("Contains(%q) = true", id)
		}
	}
	// A card next to a UUID is still found.
	if !Contains("01931234-5678-7123-8123-456789012345 4111111111111111") {
		t.Error("card beside a UUID not found")
	}
	// Random UUIDs never match.
	for i := 0; i < 20000; i++ {
		id := uuid.NewString()
		if Contains(id) {
			t.Fatalf("random UUID %s looks like a card", id)
		}
	}
}

func BenchmarkContains(b *testing.B) {
	text := `{"event_id":"01a21512-cbda-7389-874e-a378ad3c7eb1","kind":"order.placed","schema_version":1,` +
		`"source":{"system":"shop","instance":"web-1","seq":1234},"order_id":"o-88812","offer":"bright-smile",` +
		`"amount_cents":1999,"currency":"USD","channel":"web","dnis":"8005550101","occurred_at":"2026-11-25T23:38:03.098Z"}`
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		Contains(text)
	}
}
