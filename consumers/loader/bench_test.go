package loader

import (
	"flag"
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

var replayBatchFlag = flag.Int("replay-batch", 0, "BenchmarkReplay's batch size (0: the default)")

// BenchmarkReplay measures events per second of Replay from a stream
// already holding b.N events into a fresh database.
func BenchmarkReplay(b *testing.B) {
	e := newEnv(b)
	e.publishAsync(b.N)
	_, fresh := testenv.NewDatabase(b, false)

	b.ResetTimer()
	start := time.Now()
	stats, err := Replay(ctx(b), e.js, e.conn, ReplayConfig{Database: fresh, BatchSize: *replayBatchFlag, Logger: e.config().Logger})
	elapsed := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(stats.Batches), "batches")
	b.ReportMetric(stats.InsertSeconds, "insert-s")
	b.ReportMetric(elapsed.Seconds(), "total-s")
	if n := e.count(fresh); n != uint64(b.N) {
		b.Fatalf("%d events in the table, want %d", n, b.N)
	}
}

// BenchmarkOrderedFetch measures messages per second read by an ordered
// consumer from a stream holding b.N events, with no insert: replay's
// upper bound.
func BenchmarkOrderedFetch(b *testing.B) {
	e := newEnv(b)
	e.publishAsync(b.N)
	stream, err := e.js.Stream(ctx(b), e.streams.EventsStream)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	cons, err := stream.OrderedConsumer(ctx(b), jetstream.OrderedConsumerConfig{FilterSubjects: []string{e.streams.EventSubjects()}})
	if err != nil {
		b.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(DefaultReplayPullMessages))
	if err != nil {
		b.Fatal(err)
	}
	defer it.Stop()
	c := ctx(b)
	for range b.N {
		if _, err := it.Next(jetstream.NextContext(c)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
