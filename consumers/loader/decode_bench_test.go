package loader

import (
	"testing"
	"time"

	"github.com/airtally/airtally/internal/streams"
)

// BenchmarkDecodeMessage measures decodeMessage (bytes to a row checked
// against every known column) for valid events of mixed kinds; one op is
// one message.
func BenchmarkDecodeMessage(b *testing.B) {
	prefix := streams.DefaultSubjectPrefix
	evs := events(64, 0)
	subjects := make([]string, len(evs))
	data := make([][]byte, len(evs))
	for i, ev := range evs {
		d, err := ev.Encode()
		if err != nil {
			b.Fatal(err)
		}
		subjects[i], data[i] = ev.Subject(prefix), d
	}
	m := meta{streamSeq: 1, storedAt: time.Date(2026, 11, 25, 20, 0, 1, 0, time.UTC)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(evs)
		row, _, dead := decodeMessage(knownColumns, prefix, subjects[j], data[j], m)
		if dead != nil || row == nil {
			b.Fatalf("dead letter: %+v", dead)
		}
	}
}

// BenchmarkBlock measures block, the columns an insert appends, for 20,000
// rows of mixed kinds and every known column; one op is one row.
func BenchmarkBlock(b *testing.B) {
	evs := events(20000, 0)
	rows := make([]*Row, len(evs))
	for i, ev := range evs {
		r, err := newRow(knownColumns, ev, meta{streamSeq: uint64(i + 1), storedAt: ev.OccurredAt})
		if err != nil {
			b.Fatal(err)
		}
		rows[i] = r
	}
	now := time.Now().UTC()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(rows) {
		block(knownColumns, rows[:min(len(rows), b.N-i)], now)
	}
}
