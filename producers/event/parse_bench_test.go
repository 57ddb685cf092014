package event

import (
	"testing"
	"time"
)

// benchEvents are encoded events of every kind, as a loader or a replay
// reads them from the stream.
func benchEvents(b *testing.B) [][]byte {
	b.Helper()
	var evs []*Event
	evs = append(evs, validOrder())
	call := New(CallEnded, Source{System: "acd", Instance: "tampa-01", Seq: 9}, time.Date(2026, 11, 25, 20, 1, 2, 0, time.UTC))
	call.CallID, call.DNIS, call.AgentID, call.Disposition, call.TalkSeconds, call.WaitSeconds = "c-1", "8005550100", "agent-7", "sale", 61, 12
	call.ANIHash = HashANI([]byte("k"), "8135550100")
	evs = append(evs, call)
	hb := New(Heartbeat, Source{System: "acd", Instance: "tampa-01", Seq: 10}, time.Date(2026, 11, 25, 20, 1, 3, 0, time.UTC))
	hb.IntervalSeconds = 60
	evs = append(evs, hb)
	air := New(AiringScheduled, Source{System: "schedule", Instance: "import", Seq: 1}, time.Date(2026, 11, 25, 20, 1, 3, 0, time.UTC))
	air.AiringID, air.Offer, air.Station, air.DNIS, air.Currency, air.SpendCents = "a-1", "widget", "WXYZ", "8005550100", "USD", 150000
	air.AiredAt = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	evs = append(evs, air)
	evs = append(evs, validDetection(SourceUp))
	out := make([][]byte, len(evs))
	for i, e := range evs {
		data, err := e.Encode()
		if err != nil {
			b.Fatal(err)
		}
		out[i] = data
	}
	return out
}

// BenchmarkParse measures Parse of valid events of mixed kinds (the fast
// path); one op is one event.
func BenchmarkParse(b *testing.B) {
	data := benchEvents(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(data[i%len(data)]); err != nil {
			b.Fatal(err)
		}
	}
}
