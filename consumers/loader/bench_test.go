package loader

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/internal/testenv"
)

// BenchmarkLoaderThroughput measures events per second from a stream
// already holding b.N events into ClickHouse (default batch settings), up
// to the moment the last one is acknowledged.
func BenchmarkLoaderThroughput(b *testing.B) {
	e := newEnv(b)
	e.publishAsync(b.N)

	b.ResetTimer()
	start := time.Now()
	r := e.start(Config{Database: e.db}, nil) // the defaults
	testenv.Eventually(b, 10*time.Minute, func() bool {
		return r.metric("airtally_loader_events_loaded_total") >= float64(b.N)
	}, "not every event was loaded")
	e.waitSettled()
	elapsed := time.Since(start)
	b.StopTimer()

	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	if n := e.count(e.db); n != uint64(b.N) {
		b.Fatalf("%d events in the table, want %d", n, b.N)
	}
}

// publishAsync publishes n events without waiting for each PubAck.
func (e *env) publishAsync(n int) {
	e.t.Helper()
	const chunk = 10000
	for first := 0; first < n; first += chunk {
		evs := events(min(chunk, n-first), uint64(first))
		for _, ev := range evs {
			data, err := ev.Encode()
			if err != nil {
				e.t.Fatal(err)
			}
			msg := &nats.Msg{Subject: ev.Subject(e.streams.SubjectPrefix), Data: data, Header: nats.Header{}}
			msg.Header.Set(jetstream.MsgIDHeader, ev.EventID.String())
			if _, err := e.js.PublishMsgAsync(msg); err != nil {
				e.t.Fatal(err)
			}
		}
		select {
		case <-e.js.PublishAsyncComplete():
		case <-time.After(waitLong):
			e.t.Fatal("publishing timed out")
		}
	}
}
