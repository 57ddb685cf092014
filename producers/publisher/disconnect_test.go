package publisher

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/airtally/airtally/producers/event"
	"github.com/nats-io/nats.go"
)

// proxy is a TCP proxy in front of a NATS server. While held, what the
// server sends is kept back (so a publish waits for its ack); cut closes
// every connection, as a network failure or a server crash would.
type proxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu    sync.Mutex
	held  bool
	cond  *sync.Cond
	conns []net.Conn
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target}
	p.cond = sync.NewCond(&p.mu)
	go p.accept()
	t.Cleanup(func() { _ = ln.Close(); p.hold(false); p.cut() })
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(s, c); _ = s.Close(); _ = c.Close() }()
		go p.downstream(c, s)
	}
}

// downstream copies the server's bytes to the client, waiting while held.
func (p *proxy) downstream(c, s net.Conn) {
	defer func() { _ = s.Close(); _ = c.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.held {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) hold(on bool) {
	p.mu.Lock()
	p.held = on
	p.mu.Unlock()
	p.cond.Broadcast()
}

// cut closes every proxied connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// TestDisconnectWhileAwaitingAckSpoolsAtOnce: a publish whose ack is still
// on its way when the connection is lost does not wait out its publish
// timeout: it returns a spooled receipt as soon as the loss is noticed.
// The event was in fact stored before the server went down; the spooled
// copy is forwarded after the server is back and deduplicated by its
// Nats-Msg-Id, so the stream holds it exactly once, in order with the
// source's later events. Same for a batch.
func TestDisconnectWhileAwaitingAckSpoolsAtOnce(t *testing.T) {
	for _, batch := range []bool{false, true} {
		name := "publish"
		if batch {
			name = "batch"
		}
		t.Run(name, func(t *testing.T) {
			n := startNATS(t)
			_, js := n.connect()
			px := startProxy(t, n.srv.Addr().String())
			nc, err := nats.Connect(px.url(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
				nats.ReconnectBufSize(-1), nats.ReconnectJitter(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			timeout := 10 * time.Second
			p := newPublisher(t, nc, t.TempDir(), func(c *Config) { c.PublishTimeout = timeout })
			ctx := context.Background()
			if r, err := p.Publish(ctx, callEvent("tampa-01", 0)); err != nil || r.Status != StatusAcked {
				t.Fatalf("first publish: %+v, %v", r, err)
			}

			px.hold(true)
			type outcome struct {
				statuses []Status
				err      error
				at       time.Time
			}
			done := make(chan outcome, 1)
			go func() {
				evs := []*event.Event{callEvent("tampa-01", 1), callEvent("tampa-01", 2)}
				var o outcome
				if batch {
					for _, r := range p.PublishBatch(ctx, evs) {
						o.statuses = append(o.statuses, r.Receipt.Status)
						o.err = errors.Join(o.err, r.Err)
					}
				} else {
					r, err := p.Publish(ctx, evs[0])
					o.statuses, o.err = []Status{r.Status}, err
				}
				o.at = time.Now()
				done <- o
			}()
			want := uint64(2)
			if batch {
				want = 3
			}
			eventually(t, 10*time.Second, "the server to store the event", func() bool { return streamCount(t, js) == want })
			select {
			case o := <-done:
				t.Fatalf("publish returned %+v while its ack was held back", o)
			default:
			}

			// The server goes down with the ack undelivered.
			n.stop()
			cut := time.Now()
			px.cut()
			px.hold(false)
			var o outcome
			select {
			case o = <-done:
			case <-time.After(timeout):
				t.Fatalf("publish still waiting %s after the connection was cut", timeout)
			}
			took := o.at.Sub(cut)
			t.Logf("publish returned %s after the connection was cut (publish timeout %s)", took, timeout)
			if o.err != nil {
				t.Fatalf("publish: %v", o.err)
			}
			for _, s := range o.statuses {
				if s != StatusSpooled {
					t.Fatalf("statuses %v, want spooled", o.statuses)
				}
			}
			if took > timeout/2 {
				t.Fatalf("publish returned %s after the cut; the publish timeout is %s", took, timeout)
			}

			n.start()
			eventually(t, 30*time.Second, "the spool to drain", func() bool { events, _ := p.SpoolDepth(); return events == 0 })
			if r, err := p.Publish(ctx, callEvent("tampa-01", 3)); err != nil || r.Status != StatusAcked {
				t.Fatalf("publish after the outage: %+v, %v", r, err)
			}
			// Exactly once by msg id, numbers in order, none missing.
			checkStream(t, streamMessages(t, js), map[string]int{"acd.tampa-01": int(want) + 1})
			if got := counterValue(t, p.m.forwarded.WithLabelValues(string(StatusDuplicate))); got != float64(want-1) {
				t.Fatalf("forwarded as duplicate: %v, want %d", got, want-1)
			}
		})
	}
}
