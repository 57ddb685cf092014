package publisher

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airtally/airtally/producers/event"
)

// The benchmarks run against an embedded nats-server with JetStream on a
// file store (default sync interval), the spool on the test's temp dir.
// They report events/s; no test asserts on their speed.

func BenchmarkPublish(b *testing.B) {
	n := startNATS(b)
	nc, _ := n.connect()
	p := newPublisher(b, nc, b.TempDir())
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r, err := p.Publish(ctx, callEvent("tampa-01", i)); err != nil || r.Status != StatusAcked {
			b.Fatalf("publish: %+v, %v", r, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPublishParallel publishes from several goroutines, each its own
// source: sequence reservations of different sources share fsyncs.
func BenchmarkPublishParallel(b *testing.B) {
	n := startNATS(b)
	nc, _ := n.connect()
	p := newPublisher(b, nc, b.TempDir())
	ctx := context.Background()
	var source atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		inst := fmt.Sprintf("agent-%d", source.Add(1))
		for i := 0; pb.Next(); i++ {
			if r, err := p.Publish(ctx, callEvent(inst, i)); err != nil || r.Status != StatusAcked {
				b.Errorf("publish: %+v, %v", r, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkPublishBatch(b *testing.B) {
	for _, size := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			n := startNATS(b)
			nc, _ := n.connect()
			p := newPublisher(b, nc, b.TempDir())
			ctx := context.Background()
			evs := make([]*event.Event, size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range evs {
					evs[j] = callEvent(fmt.Sprintf("site-%d", j%4), j)
				}
				for j, r := range p.PublishBatch(ctx, evs) {
					if r.Err != nil || r.Receipt.Status != StatusAcked {
						b.Fatalf("event %d: %+v", j, r)
					}
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkForwardDrain measures how fast the forwarder empties a spool of
// b.N events once NATS is back.
func BenchmarkForwardDrain(b *testing.B) {
	n := startNATS(b)
	nc, js := n.connect()
	p := newPublisher(b, nc, b.TempDir())
	n.stop()
	eventually(b, 10*time.Second, "the client to notice the outage", func() bool { return !p.connected() })
	ctx := context.Background()
	evs := make([]*event.Event, 0, 500)
	for i := 0; i < b.N; i += len(evs) {
		evs = evs[:0]
		for j := i; j < min(b.N, i+500); j++ {
			evs = append(evs, callEvent("tampa-01", j))
		}
		for _, r := range p.PublishBatch(ctx, evs) {
			if r.Err != nil || r.Receipt.Status != StatusSpooled {
				b.Fatalf("spool: %+v", r)
			}
		}
	}
	b.ResetTimer()
	n.start()
	eventually(b, 10*time.Minute, "the spool to drain", func() bool { events, _ := p.SpoolDepth(); return events == 0 })
	b.StopTimer()
	if got := streamCount(b, js); got != uint64(b.N) {
		b.Fatalf("stream holds %d, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
