package loader

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/producers/event"
)

// TestSubjectOf: subjectOf agrees with comparing to ev.Subject(prefix), on
// the right subject and on many near misses.
func TestSubjectOf(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 5))
	prefixes := []string{streams.DefaultSubjectPrefix, "x", "drtv"}
	near := func(s string) string {
		if len(s) == 0 {
			return "."
		}
		b := []byte(s)
		i := r.IntN(len(b))
		switch r.IntN(4) {
		case 0:
			b[i] = "._a-"[r.IntN(4)]
		case 1:
			b = append(b[:i], b[i+1:]...)
		case 2:
			b = append(b[:i], append([]byte{"._a"[r.IntN(3)]}, b[i:]...)...)
		default:
			b = b[:i]
		}
		return string(b)
	}
	for i := 0; i < 20000; i++ {
		k := event.Kinds[r.IntN(len(event.Kinds))]
		if r.IntN(10) == 0 {
			k = event.Kind(near(string(k)))
		}
		src := event.Source{System: []string{"acd", "a.b", "", "detector"}[r.IntN(4)], Instance: []string{"tampa-01", "x_y", "", "a.b"}[r.IntN(4)]}
		ev := &event.Event{Kind: k, Source: src}
		prefix := prefixes[r.IntN(len(prefixes))]
		subject := ev.Subject(prefix)
		if r.IntN(3) > 0 {
			subject = near(subject)
		}
		if got, want := subjectOf(subject, prefix, ev), subject == ev.Subject(prefix); got != want {
			t.Fatalf("subjectOf(%q, %q, kind %q source %+v) = %v, want %v", subject, prefix, k, src, got, want)
		}
	}
}

// TestEventRowWindows: a detection's window times go into the row as they
// are, and an unset one as the Unix epoch, as before.
func TestEventRowWindows(t *testing.T) {
	m := meta{streamSeq: 3, storedAt: time.Date(2026, 11, 25, 20, 0, 1, 0, time.UTC)}
	at := time.Date(2026, 11, 25, 20, 14, 0, 0, time.UTC)
	ev := events(1, 0)[0]
	det := *ev
	det.WindowStart = at.In(time.FixedZone("EST", -5*3600))
	for _, tc := range []struct {
		ev         *event.Event
		start, end time.Time
	}{
		{ev, time.Unix(0, 0).UTC(), time.Unix(0, 0).UTC()},
		{&det, at, time.Unix(0, 0).UTC()},
	} {
		r, err := newRow(knownColumns, tc.ev, m)
		if err != nil {
			t.Fatal(err)
		}
		row := rowValues(knownColumns, r, time.Now())
		for i, c := range knownColumns {
			var want time.Time
			switch c.name {
			case "window_start":
				want = tc.start
			case "window_end":
				want = tc.end
			default:
				continue
			}
			if got, ok := row[i].(time.Time); !ok || got != want || !strings.Contains(got.Location().String(), "UTC") {
				t.Errorf("%s = %#v, want %v", c.name, row[i], want)
			}
		}
	}
}
