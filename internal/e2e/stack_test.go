package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/connect"
	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/gateway"
	"github.com/airtally/airtally/producers/publisher"
)

// wait bounds every wait for the system to reach a state.
const wait = 60 * time.Second

// Secrets of the test deployment.
var aniKey = []byte("e2e-ani-key-0123456789abcdef0123")

const gatewayToken = "e2e-token-0123456789abcdef"

// Metrics of the loader read by the tests.
const (
	metricLoaded       = "airtally_loader_events_loaded_total"
	metricInsertErrors = "airtally_loader_insert_errors_total"
	metricRedelivered  = "airtally_loader_redeliveries_total"
)

// logBuffer collects the components' raw log output.
type logBuffer = testenv.LogBuffer

// lazy formats a value when a failure message is printed, not when the
// wait starts.
type lazy func() string

func (f lazy) String() string { return f() }

// stack is one test's chain: NATS with the streams, a migrated database,
// and the raw log output that every component writes to.
type stack struct {
	t    *testing.T
	nats *testenv.NATS
	// js is the test's own JetStream connection, to inspect the streams
	// and to put raw messages on them.
	js   jetstream.JetStream
	ch   driver.Conn
	db   string
	logs *logBuffer
	log  *slog.Logger
}

func newStack(t *testing.T) *stack {
	t.Helper()
	s := newStackWithoutDatabase(t)
	s.ch, s.db = testenv.NewDatabase(t, true)
	return s
}

// newStackWithoutDatabase is newStack without its database (s.ch and s.db
// unset).
func newStackWithoutDatabase(t *testing.T) *stack {
	t.Helper()
	s := &stack{t: t, logs: &logBuffer{}}
	// The components' raw output, unfiltered (no redacting handler of our
	// own), at the most verbose level.
	s.log = s.logs.Logger()
	t.Cleanup(func() {
		if t.Failed() {
			out := s.logs.String()
			if len(out) > 16<<10 {
				out = "…" + out[len(out)-16<<10:]
			}
			t.Logf("component logs:\n%s", out)
		}
	})
	s.nats = testenv.StartNATS(t, natsembed.Config{})
	js, err := jetstream.New(testenv.Connect(t, s.nats.URL))
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	s.js = js
	if err := streams.Ensure(s.ctx(), js, streams.Config{}); err != nil {
		t.Fatalf("ensure streams: %v", err)
	}
	return s
}

// ctx is a context that ends with the test (or after wait).
func (s *stack) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	s.t.Cleanup(cancel)
	return ctx
}

// connectNATS connects a component the way production does
// (connect.ConnectNATS: unlimited reconnects, no reconnect buffer).
func (s *stack) connectNATS(name string) *nats.Conn {
	s.t.Helper()
	nc, err := connect.ConnectNATS(connect.NATS{URL: s.nats.URL, Name: name}, s.log)
	if err != nil {
		s.t.Fatalf("connect %s: %v", name, err)
	}
	s.t.Cleanup(nc.Close)
	return nc
}

// stopNATS stops the NATS server (as an outage) until restartNATS.
func (s *stack) stopNATS(conns ...*nats.Conn) {
	s.t.Helper()
	s.nats.Server.Stop()
	for _, nc := range conns {
		testenv.Eventually(s.t, wait, func() bool { return nc.Status() != nats.CONNECTED }, "connection %s still connected", nc.Opts.Name)
	}
}

// restartNATS starts the server again on the same port and store.
func (s *stack) restartNATS() {
	s.t.Helper()
	s.nats.Restart(s.t)
}

// loaderConfig is the loader configuration of the tests: quick flushes and
// back-offs, a short AckWait so that a crashed loader's messages come back
// soon (the loader keeps a batch in flight alive with InProgress).
func loaderConfig(db string, edit ...func(*loader.Config)) loader.Config {
	cfg := loader.Config{
		Database:        db,
		BatchSize:       100,
		FlushInterval:   50 * time.Millisecond,
		AckWait:         2 * time.Second,
		ShutdownTimeout: 5 * time.Second,
		BackoffMin:      20 * time.Millisecond,
		BackoffMax:      250 * time.Millisecond,
		LagInterval:     time.Second,
	}
	for _, e := range edit {
		e(&cfg)
	}
	return cfg
}

// runningLoader is a loader running in a goroutine.
type runningLoader struct {
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// startLoader runs a loader with its own NATS and ClickHouse connections
// until the test ends (or stop).
func (s *stack) startLoader(name string, edit ...func(*loader.Config)) *runningLoader {
	s.t.Helper()
	return s.startLoaderWith(name, testenv.Open(s.t, s.db), edit...)
}

// startLoaderWith is startLoader writing through the ClickHouse pool ch.
func (s *stack) startLoaderWith(name string, ch driver.Conn, edit ...func(*loader.Config)) *runningLoader {
	s.t.Helper()
	r := &runningLoader{reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	js, err := jetstream.New(s.connectNATS("e2e-loader-" + name))
	if err != nil {
		s.t.Fatalf("jetstream: %v", err)
	}
	cfg := loaderConfig(s.db, edit...)
	cfg.Logger = s.log.With("loader", name)
	cfg.Registerer = r.reg
	l, err := loader.New(js, ch, cfg)
	if err != nil {
		s.t.Fatalf("new loader: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- l.Run(ctx) }()
	s.t.Cleanup(func() {
		if err := r.stop(); err != nil {
			s.t.Errorf("loader %s: %v", name, err)
		}
	})
	return r
}

// stop cancels the loader and waits for Run to return its error.
func (r *runningLoader) stop() error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(wait):
			r.err = errors.New("Run did not return after its context was cancelled")
		}
	})
	return r.err
}

// metric is the value of a loader counter.
func (r *runningLoader) metric(name string) float64 {
	families, err := r.reg.Gather()
	if err != nil {
		return -1
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// newPublisher opens a publisher on its own NATS connection and spool
// folder; it is closed when the test ends.
func (s *stack) newPublisher(dir string) (*publisher.Publisher, *nats.Conn) {
	s.t.Helper()
	nc := s.connectNATS("e2e-publisher")
	return s.openPublisher(nc, dir), nc
}

// openPublisher opens a publisher on nc and dir (e.g. again, after Close),
// its configuration changed by edit.
func (s *stack) openPublisher(nc *nats.Conn, dir string, edit ...func(*publisher.Config)) *publisher.Publisher {
	s.t.Helper()
	cfg := publisher.Config{
		SpoolDir: dir,
		ANIKey:   aniKey,
		// Long enough for a loaded machine: an ack this late is an outage.
		PublishTimeout: 10 * time.Second,
		Logger:         s.log,
	}
	for _, e := range edit {
		e(&cfg)
	}
	p, err := publisher.New(s.ctx(), nc, cfg)
	if err != nil {
		s.t.Fatalf("new publisher: %v", err)
	}
	s.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			s.t.Errorf("close publisher: %v", err)
		}
	})
	return p
}

// gatewayClient posts to the real gateway behind an httptest server.
type gatewayClient struct {
	t   *testing.T
	url string
}

// startGateway serves the gateway over pub; its token may send for any
// source.
func (s *stack) startGateway(pub *publisher.Publisher) *gatewayClient {
	s.t.Helper()
	gw, err := gateway.New(gateway.Config{
		Tokens: map[string]gateway.Grant{gatewayToken: {Name: "e2e", System: gateway.Any, Instance: gateway.Any}},
		Logger: s.log,
	}, pub)
	if err != nil {
		s.t.Fatalf("new gateway: %v", err)
	}
	srv := httptest.NewServer(gw.Handler())
	s.t.Cleanup(srv.Close)
	return &gatewayClient{t: s.t, url: srv.URL + "/v1/events"}
}

// as is the client failing t (a subtest) instead.
func (g *gatewayClient) as(t *testing.T) *gatewayClient { return &gatewayClient{t: t, url: g.url} }

// answer is an HTTP answer of POST /v1/events.
type answer struct {
	code int
	body []byte
	resp gateway.EventsResponse
}

// post sends body with the given content type.
func (g *gatewayClient) post(contentType string, body []byte) answer {
	g.t.Helper()
	a, err := g.send(contentType, body)
	if err != nil {
		g.t.Fatal(err)
	}
	return a
}

// send is post for other goroutines than the test's.
func (g *gatewayClient) send(contentType string, body []byte) (answer, error) {
	req, err := http.NewRequest(http.MethodPost, g.url, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+gatewayToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("POST /v1/events: %w", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return answer{}, fmt.Errorf("read answer: %w", err)
	}
	a := answer{code: res.StatusCode, body: b}
	if err := json.Unmarshal(b, &a.resp); err != nil {
		return a, fmt.Errorf("answer %d is not JSON: %w: %s", a.code, err, b)
	}
	return a, nil
}

// postEvents sends evs in one of the body forms and requires a 202 whose
// accepted events carry the ids sent, with status want (any if "").
func (g *gatewayClient) postEvents(form string, evs []*event.Event, want publisher.Status) answer {
	g.t.Helper()
	var a answer
	switch form {
	case "single":
		if len(evs) != 1 {
			g.t.Fatalf("a single body holds one event, not %d", len(evs))
		}
		a = g.post("application/json", wire(g.t, evs[0]))
	case "array":
		a = g.post("application/json", wireArray(g.t, evs))
	case "ndjson":
		a = g.post("application/x-ndjson", wireNDJSON(g.t, evs))
	default:
		g.t.Fatalf("unknown body form %q", form)
	}
	if a.code != http.StatusAccepted {
		g.t.Fatalf("POST %s of %d events: %d, want 202: %s", form, len(evs), a.code, a.body)
	}
	if len(a.resp.Accepted) != len(evs) {
		g.t.Fatalf("POST %s: %d accepted, want %d: %s", form, len(a.resp.Accepted), len(evs), a.body)
	}
	for i, acc := range a.resp.Accepted {
		if acc.Index != i || acc.EventID != evs[i].EventID {
			g.t.Fatalf("POST %s: accepted[%d] = index %d id %s, want index %d id %s", form, i, acc.Index, acc.EventID, i, evs[i].EventID)
		}
		if want != "" && acc.Status != want {
			g.t.Fatalf("POST %s: event %d status %q, want %q", form, i, acc.Status, want)
		}
	}
	return a
}

// wire is an event as an HTTP client sends it: its id, no sequence number
// (the gateway assigns it) and the caller's raw number (the gateway seals
// it).
func wire(t testing.TB, ev *event.Event) []byte {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("marshal event: %v", err)
	}
	return b
}

func wireArray(t testing.TB, evs []*event.Event) []byte {
	t.Helper()
	parts := make([][]byte, len(evs))
	for i, ev := range evs {
		parts[i] = wire(t, ev)
	}
	return append(append([]byte{'['}, bytes.Join(parts, []byte{','})...), ']')
}

func wireNDJSON(t testing.TB, evs []*event.Event) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, ev := range evs {
		b.Write(wire(t, ev))
		b.WriteByte('\n')
	}
	return b.Bytes()
}
