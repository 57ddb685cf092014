package publisher

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/airtally/airtally/producers/event"
)

// heartbeatsOf returns the heartbeats of src on the stream, in stream order.
func heartbeatsOf(t *testing.T, msgs []stored, src string) []*event.Event {
	t.Helper()
	var out []*event.Event
	for _, m := range msgs {
		if m.ev.Kind == event.Heartbeat && m.ev.Source.Key() == src {
			out = append(out, m.ev)
		}
	}
	return out
}

// TestStartHeartbeats: heartbeats reach the stream at the interval, numbered
// like every event of the source, with interval_seconds; stop ends them.
func TestStartHeartbeats(t *testing.T) {
	n := startNATS(t)
	nc, js := n.connect()
	p := newPublisher(t, nc, t.TempDir())
	src := event.Source{System: "acd", Instance: "tampa-01"}
	stop, err := p.StartHeartbeats(t.Context(), src, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "five heartbeats", func() bool { return len(heartbeatsOf(t, streamMessages(t, js), "acd.tampa-01")) >= 5 })
	stop()
	stop() // idempotent
	hbs := heartbeatsOf(t, streamMessages(t, js), "acd.tampa-01")
	for i, hb := range hbs {
		if hb.Source.Seq != uint64(i+1) || hb.IntervalSeconds != 1 {
			t.Fatalf("heartbeat %d: seq %d interval %d", i, hb.Source.Seq, hb.IntervalSeconds)
		}
		if i > 0 && hb.OccurredAt.Before(hbs[i-1].OccurredAt) {
			t.Fatalf("heartbeat %d occurred before the one before it", i)
		}
	}
	// Nothing more after stop: the next call's number follows the last beat.
	ev := callEvent("tampa-01", 1)
	r, err := p.Publish(t.Context(), ev)
	if err != nil || r.Seq != uint64(len(hbs)+1) {
		t.Fatalf("event after stop: %+v, %v; want seq %d", r, err, len(hbs)+1)
	}
}

// TestHeartbeatsSpooledWhileDown: heartbeats sent while NATS is down are
// spooled and delivered in order afterwards, with their own times: the
// detector sees the source as delayed, not down.
func TestHeartbeatsSpooledWhileDown(t *testing.T) {
	n := startNATS(t)
	nc, js := n.connect()
	p := newPublisher(t, nc, t.TempDir(), func(c *Config) { c.PublishTimeout = 200 * time.Millisecond })
	n.stop()
	stop, err := p.StartHeartbeats(t.Context(), event.Source{System: "shop", Instance: "web-1"}, 30*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "three spooled heartbeats", func() bool { k, _ := p.SpoolDepth(); return k >= 3 })
	stop()
	spooled, _ := p.SpoolDepth()
	n.start()
	eventually(t, 20*time.Second, "the spool delivered", func() bool {
		return nc.Status() == nats.CONNECTED && len(heartbeatsOf(t, streamMessages(t, js), "shop.web-1")) >= int(spooled)
	})
	for i, hb := range heartbeatsOf(t, streamMessages(t, js), "shop.web-1") {
		if hb.Source.Seq != uint64(i+1) {
			t.Fatalf("heartbeat %d has seq %d: not in order", i, hb.Source.Seq)
		}
	}
}

func TestStartHeartbeatsRefusesBadArguments(t *testing.T) {
	n := startNATS(t)
	nc, _ := n.connect()
	p := newPublisher(t, nc, t.TempDir())
	if _, err := p.StartHeartbeats(t.Context(), event.Source{System: "acd", Instance: "x"}, time.Millisecond); !errors.Is(err, ErrHeartbeatInterval) {
		t.Errorf("1ms interval: %v", err)
	}
	if _, err := p.StartHeartbeats(t.Context(), event.Source{System: "Bad System", Instance: "x"}, time.Second); err == nil {
		t.Error("a bad source name was accepted")
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestRelay: the relay heartbeats for the sources that posted recently
// and that the publisher numbers, and forgets them once inactive.
func TestRelay(t *testing.T) {
	n := startNATS(t)
	nc, js := n.connect()
	p := newPublisher(t, nc, t.TempDir())
	clock := &fakeClock{t: time.Now()}
	r, err := NewRelay(p, RelayConfig{Interval: 40 * time.Millisecond, Active: time.Minute, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	numbered := callEvent("tampa-01", 1)
	own := callEvent("phoenix-01", 2)
	own.Source.Seq = 7 // this client numbers its own events
	for _, res := range r.PublishBatch(t.Context(), []*event.Event{numbered, own}) {
		if res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	if got := r.Active(); len(got) != 1 || got[0].Key() != "acd.tampa-01" {
		t.Fatalf("active = %v, want acd.tampa-01 only", got)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	eventually(t, 10*time.Second, "relayed heartbeats", func() bool { return len(heartbeatsOf(t, streamMessages(t, js), "acd.tampa-01")) >= 3 })
	clock.add(2 * time.Minute) // the client went quiet
	if got := r.Active(); len(got) != 0 {
		t.Fatalf("active after two quiet minutes = %v", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if hbs := heartbeatsOf(t, streamMessages(t, js), "acd.phoenix-01"); len(hbs) != 0 {
		t.Fatalf("the self-numbering source got %d relayed heartbeats", len(hbs))
	}
	if !r.Ready() {
		t.Error("relay not ready")
	}
	if _, err := NewRelay(p, RelayConfig{Interval: time.Minute, Active: time.Second}); err == nil {
		t.Error("an active period shorter than the interval was accepted")
	}
}
