package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airtally/airtally/producers/event"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Users of the permission tests: an administrator that creates the
// streams, and the producer of source acd/tampa-01, allowed to publish
// that source's events only (deploy/nats/permissions.md).
const (
	permAdmin    = "admin"
	permProducer = "acd-tampa-01"
	permPassword = "pw-0123456789abcdef"
)

// permUsers returns the server's users; the producer may publish to the
// subjects of the given instances of system acd.
func permUsers(instances ...string) func(*server.Options) {
	allow := make([]string, len(instances))
	for i, inst := range instances {
		allow[i] = "drtv.v1.*.acd." + inst
	}
	return func(o *server.Options) {
		o.Users = []*server.User{
			{Username: permAdmin, Password: permPassword},
			{Username: permProducer, Password: permPassword, Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: allow},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
			}},
		}
	}
}

// connectAs connects to n as user with the recommended options.
func (n *natsServer) connectAs(user string) *nats.Conn {
	n.t.Helper()
	nc, err := nats.Connect(n.url(), nats.UserInfo(user, permPassword), nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1), nats.ReconnectJitter(0, 0))
	if err != nil {
		n.t.Fatalf("connect as %s: %v", user, err)
	}
	n.t.Cleanup(nc.Close)
	return nc
}

// logRecords is a slog handler that keeps every record.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecords) WithGroup(string) slog.Handler            { return l }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}

// errors returns the Error records whose message contains msg, with the
// value of their "subject" attribute.
func (l *logRecords) errors(msg string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.recs {
		if r.Level != slog.LevelError || !strings.Contains(r.Message, msg) {
			continue
		}
		subject := ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "subject" {
				subject = a.Value.String()
			}
			return true
		})
		out = append(out, subject)
	}
	return out
}

// TestPermissionDeniedIsPermanentAndPrompt: a producer whose NATS user may
// not publish an event's subject gets a typed, permanent error naming the
// subject long before the publish timeout; the event is not spooled, the
// refusal is logged once at Error, and the producer's allowed events are
// acked as usual, alone or in a batch.
func TestPermissionDeniedIsPermanentAndPrompt(t *testing.T) {
	n := startNATS(t, permUsers("tampa-01"))
	_, js := n.connectAsAdmin()
	logs := &logRecords{}
	reg := prometheus.NewRegistry()
	timeout := 10 * time.Second
	p := newPublisher(t, n.connectAs(permProducer), t.TempDir(), func(c *Config) {
		c.Logger, c.Registerer, c.PublishTimeout = slog.New(logs), reg, timeout
	})
	ctx := context.Background()

	if r, err := p.Publish(ctx, callEvent("tampa-01", 0)); err != nil || r.Status != StatusAcked {
		t.Fatalf("own source: %+v, %v", r, err)
	}
	for i := 0; i < 3; i++ {
		start := time.Now()
		r, err := p.Publish(ctx, callEvent("miami-01", i))
		took := time.Since(start)
		t.Logf("refused publish %d returned after %s (publish timeout %s)", i, took, timeout)
		var perr *PermissionError
		if !errors.Is(err, ErrPermissionDenied) || !errors.Is(err, nats.ErrPermissionViolation) || !errors.As(err, &perr) {
			t.Fatalf("publish to another source: %+v, %v; want ErrPermissionDenied", r, err)
		}
		if !strings.HasSuffix(perr.Subject, ".acd.miami-01") || !strings.Contains(err.Error(), perr.Subject) {
			t.Fatalf("error %q names subject %q", err, perr.Subject)
		}
		if took > timeout/2 {
			t.Fatalf("refused publish took %s, publish timeout %s", took, timeout)
		}
		if r.Status != "" || r.EventID == [16]byte{} {
			t.Fatalf("receipt of a refused event = %+v, want its id and no status", r)
		}
	}
	if events, _ := p.SpoolDepth(); events != 0 {
		t.Fatalf("%d events spooled, want none", events)
	}

	// A batch: the refused event gets its error, the others are acked.
	evs := []*event.Event{callEvent("tampa-01", 1), callEvent("miami-01", 9), callEvent("tampa-01", 2)}
	res := p.PublishBatch(ctx, evs)
	if res[0].Err != nil || res[0].Receipt.Status != StatusAcked || res[2].Err != nil || res[2].Receipt.Status != StatusAcked {
		t.Fatalf("batch: allowed events %+v, %+v", res[0], res[2])
	}
	if !errors.Is(res[1].Err, ErrPermissionDenied) {
		t.Fatalf("batch: refused event %+v", res[1])
	}
	if events, _ := p.SpoolDepth(); events != 0 {
		t.Fatalf("%d events spooled after the batch, want none", events)
	}
	if got := counterValue(t, p.m.events.WithLabelValues(statusDenied)); got != 4 {
		t.Fatalf("metric denied = %v, want 4", got)
	}
	if logged := logs.errors("refuses"); len(logged) != 1 || !strings.HasSuffix(logged[0], ".acd.miami-01") {
		t.Fatalf("Error logs about the refused subject: %q, want one", logged)
	}
	checkStream(t, streamMessages(t, js), map[string]int{"acd.tampa-01": 3})
}

// connectAsAdmin connects as the administrator and creates the streams.
func (n *natsServer) connectAsAdmin() (*nats.Conn, jetstream.JetStream) {
	n.t.Helper()
	nc := n.connectAs(permAdmin)
	return nc, ensureStreams(n.t, nc)
}

// TestSpooledEventRefusedLaterIsSetAsideNotRetried: an event spooled
// during an outage whose subject the server refuses once it is back is
// set aside (kept, fsync'd) without blocking the events behind it and
// without being retried in a loop; after the permissions are fixed,
// RetryDenied delivers it.
func TestSpooledEventRefusedLaterIsSetAsideNotRetried(t *testing.T) {
	var fixed atomic.Bool
	n := startNATS(t, func(o *server.Options) {
		if fixed.Load() {
			permUsers("tampa-01", "miami-01")(o)
		} else {
			permUsers("tampa-01")(o)
		}
	})
	_, js := n.connectAsAdmin()
	logs := &logRecords{}
	reg := prometheus.NewRegistry()
	p := newPublisher(t, n.connectAs(permProducer), t.TempDir(), func(c *Config) {
		c.Logger, c.Registerer = slog.New(logs), reg
	})
	ctx := context.Background()

	n.stop()
	eventually(t, 10*time.Second, "the client to notice the outage", func() bool { return !p.connected() })
	for i, inst := range []string{"tampa-01", "miami-01", "tampa-01", "miami-01", "tampa-01"} {
		if r, err := p.Publish(ctx, callEvent(inst, i)); err != nil || r.Status != StatusSpooled {
			t.Fatalf("publish during the outage: %+v, %v", r, err)
		}
	}
	n.start()
	eventually(t, 30*time.Second, "the spool to drain", func() bool { events, _ := p.SpoolDepth(); return events == 0 })
	if events, _ := p.DeniedDepth(); events != 2 {
		t.Fatalf("%d events set aside, want 2", events)
	}
	checkStream(t, streamMessages(t, js), map[string]int{"acd.tampa-01": 3})
	if got := counterValue(t, p.m.forwarded.WithLabelValues(forwardDenied)); got != 2 {
		t.Fatalf("metric set_aside = %v, want 2", got)
	}
	eventually(t, 5*time.Second, "an Error log about the events set aside", func() bool { return len(logs.errors("set aside")) > 0 })
	// Not retried: no further publish attempt while nothing changes.
	errs := counterValue(t, p.m.errors.WithLabelValues(stageForward))
	time.Sleep(500 * time.Millisecond)
	if got := counterValue(t, p.m.errors.WithLabelValues(stageForward)); got != errs {
		t.Fatalf("forward errors went from %v to %v: the refused events are retried", errs, got)
	}
	// While the refusal is fresh and the spool is in use, a new event of
	// the refused subject is refused at once rather than spooled.
	n.stop()
	eventually(t, 10*time.Second, "the client to notice the outage", func() bool { return !p.connected() })
	if _, err := p.Publish(ctx, callEvent("miami-01", 7)); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("publish of a refused subject while spooling: %v, want ErrPermissionDenied", err)
	}

	// Fixed permissions: RetryDenied delivers the events set aside.
	fixed.Store(true)
	n.start()
	eventually(t, 10*time.Second, "the client to reconnect", p.connected)
	p.RetryDenied()
	eventually(t, 30*time.Second, "the events set aside to be delivered", func() bool { events, _ := p.DeniedDepth(); return events == 0 })
	eventually(t, 10*time.Second, "two events of miami-01 in the stream", func() bool { return streamCount(t, js) == 5 })
	msgs := streamMessages(t, js)
	var miami []uint64
	for _, m := range msgs {
		if m.ev.Source.Instance == "miami-01" {
			miami = append(miami, m.ev.Source.Seq)
		}
	}
	if fmt.Sprint(miami) != "[1 2]" {
		t.Fatalf("miami-01 numbers in the stream: %v, want [1 2]", miami)
	}
}
