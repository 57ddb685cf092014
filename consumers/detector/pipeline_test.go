package detector

import (
	"context"
	"github.com/airtally/airtally/consumers/projector"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/consumers/detector/faultday"
	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/airings"
	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// broker is an embedded NATS server with the streams, and a connection.
type broker struct {
	nats *testenv.NATS
	nc   *nats.Conn
	js   jetstream.JetStream
}

func newBroker(t *testing.T) *broker {
	t.Helper()
	n := testenv.StartNATS(t, natsembed.Config{})
	nc := testenv.Connect(t, n.URL)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := streams.Ensure(ctx, js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	return &broker{nats: n, nc: nc, js: js}
}

// deliver publishes the day's deliveries in order, each with its
// simulated received time, and returns their stream sequences.
func (b *broker) deliver(t *testing.T, ds []faultday.Delivery) []uint64 {
	t.Helper()
	seqs, err := faultday.Publish(t.Context(), b.js, streams.DefaultSubjectPrefix, ds)
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

func (b *broker) lastSeq(t *testing.T) uint64 {
	t.Helper()
	s, err := b.js.Stream(t.Context(), streams.DefaultEventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// detections returns the detection events on the stream, in order.
func (b *broker) detections(t *testing.T) []*event.Event {
	t.Helper()
	s, err := b.js.Stream(t.Context(), streams.DefaultEventsStream)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := s.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{streams.DefaultSubjectPrefix + ".*." + event.DetectorSystem + ".*"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []*event.Event
	for {
		batch, err := cons.FetchNoWait(1000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			ev, err := event.Decode(m.Data())
			if err != nil {
				t.Fatalf("detection on the stream does not decode: %v", err)
			}
			out = append(out, ev)
		}
		if n == 0 {
			return out
		}
	}
}

// recorder is a Publisher that remembers what the detector published.
type recorder struct {
	pub Publisher
	mu  sync.Mutex
	evs []*event.Event
}

func (r *recorder) Publish(ctx context.Context, ev *event.Event) (publisher.Receipt, error) {
	rec, err := r.pub.Publish(ctx, ev)
	if err == nil {
		c := *ev
		r.mu.Lock()
		r.evs = append(r.evs, &c)
		r.mu.Unlock()
	}
	return rec, err
}

func (r *recorder) published() []*event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*event.Event(nil), r.evs...)
}

func (b *broker) publisher(t *testing.T) *publisher.Publisher {
	t.Helper()
	p, err := publisher.New(t.Context(), b.nc, publisher.Config{SpoolDir: t.TempDir(), ANIKey: []byte("detector-test-ani-key-0123456789"), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// running is a detector running in the background.
type running struct {
	d    *Detector
	rec  *recorder
	stop func()
}

// runDetector starts a detector; stop cancels it and waits for Run.
func (b *broker) runDetector(t *testing.T, pub Publisher, cfg Config) *running {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	rec := &recorder{pub: pub}
	d, err := New(b.js, rec, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	r := &running{d: d, rec: rec}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("detector run: %v", err)
			}
		})
	}
	t.Cleanup(r.stop)
	return r
}

// simDetector is the configuration the proof runs the detector with: the
// simulated received times, no checks by the clock.
func simDetector() Config {
	return Config{ReceivedAt: faultday.ReceivedAt, CheckInterval: -1, LoaderConsumer: "-", Logger: quiet()}
}

// waitApplied waits until the detector applied the stream up to seq.
func waitApplied(t *testing.T, r *running, seq uint64) {
	t.Helper()
	testenv.Eventually(t, 2*time.Minute, func() bool { return r.d.Applied() >= seq }, "detector applied %d of %d", r.d.Applied(), seq)
}

// load runs a loader into db until every message of the stream is in
// events, and projects the schedule's events into airings and offers (as
// the loader will once it projects them; the copies collapse).
func (b *broker) load(t *testing.T, conn driver.Conn, db string, ds []faultday.Delivery, seqs []uint64) {
	t.Helper()
	l, err := loader.New(b.js, conn, loader.Config{Database: db, Consumer: "loader-" + db, FlushInterval: 100 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("loader: %v", err)
		}
	}()
	last := b.lastSeq(t)
	testenv.Eventually(t, 3*time.Minute, func() bool {
		var n uint64
		err := conn.QueryRow(t.Context(), "SELECT max(stream_seq) FROM "+db+".events").Scan(&n)
		return err == nil && n >= last
	}, "loader to reach stream sequence %d", last)
	project(t, conn, db, ds, seqs)
}

func project(t *testing.T, conn driver.Conn, db string, ds []faultday.Delivery, seqs []uint64) {
	t.Helper()
	var ps []airings.Projected
	for i, d := range ds {
		if d.Event.Kind.IsAiring() || d.Event.Kind == event.OfferConfigured {
			ps = append(ps, airings.Projected{Event: d.Event, StreamSeq: seqs[i]})
		}
	}
	if err := airings.Insert(t.Context(), conn, db, ps); err != nil {
		t.Fatalf("project the schedule: %v", err)
	}
	catchUp(t, projector.Native(conn), db)
}

// catchUp brings db's airing projection up to date (the accountability
// views read it).
func catchUp(t *testing.T, x projector.DB, db string) {
	t.Helper()
	p, err := projector.New(x, projector.Config{Database: db, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CatchUp(t.Context()); err != nil {
		t.Fatalf("projector: %v", err)
	}
}
