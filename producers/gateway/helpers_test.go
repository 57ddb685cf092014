package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Tokens used by the tests.
const (
	tokAll   = "tok-all-0123456789abcdef"   // any source
	tokTampa = "tok-tampa-0123456789abcdef" // acd / tampa-01 only
	tokACD   = "tok-acd-0123456789abcdef"   // acd / any instance
)

func testTokens() map[string]Grant {
	return map[string]Grant{
		tokAll:   {Name: "all", System: Any, Instance: Any},
		tokTampa: {Name: "tampa", System: "acd", Instance: "tampa-01"},
		tokACD:   {Name: "acd", System: "acd", Instance: Any},
	}
}

// logBuffer collects the components' raw log output.
type logBuffer = testenv.LogBuffer

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stack is a real embedded NATS server with the airtally streams, a real
// publisher and the gateway behind an httptest server.
type stack struct {
	t      *testing.T
	url    string
	logs   *logBuffer
	reg    *prometheus.Registry
	js     jetstream.JetStream
	natsMu sync.Mutex
	ns     *natsembed.Server
	dir    string
	port   int
	users  []*server.User // of a locked-down server; nil: no authentication
}

type stackOpts struct {
	maxBodyBytes int64
	maxEvents    int
	maxSources   int
	// gatewayAllow, if set, locks the server down: the publisher connects
	// as user "gateway", allowed to publish only these subjects, and the
	// test as an administrator.
	gatewayAllow []string
}

// Users of a locked-down stack.
const (
	stackAdmin    = "admin"
	stackGateway  = "gateway"
	stackPassword = "pw-0123456789abcdef"
)

func newStack(t *testing.T, o stackOpts) *stack {
	t.Helper()
	s := &stack{t: t, logs: &logBuffer{}, reg: prometheus.NewRegistry(), dir: t.TempDir()}
	var adminOpts, gatewayOpts []nats.Option
	if o.gatewayAllow != nil {
		s.users = []*server.User{
			{Username: stackAdmin, Password: stackPassword},
			{Username: stackGateway, Password: stackPassword, Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: o.gatewayAllow},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
			}},
		}
		adminOpts = []nats.Option{nats.UserInfo(stackAdmin, stackPassword)}
		gatewayOpts = []nats.Option{nats.UserInfo(stackGateway, stackPassword)}
	}
	s.startNATS()
	t.Cleanup(s.stopNATS)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The test's own connection, to inspect the stream.
	tc, err := nats.Connect(s.ns.ClientURL(), append(adminOpts, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(tc.Close)
	s.js, err = jetstream.New(tc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	if err := streams.Ensure(ctx, s.js, streams.Config{}); err != nil {
		t.Fatalf("ensure streams: %v", err)
	}

	// As package publisher asks: no client-side buffering while
	// disconnected, so that events are spooled in order instead.
	nc, err := nats.Connect(s.ns.ClientURL(), append(gatewayOpts, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))...)
	if err != nil {
		t.Fatalf("connect publisher: %v", err)
	}
	t.Cleanup(nc.Close)
	pub, err := publisher.New(ctx, nc, publisher.Config{
		SpoolDir:       t.TempDir(),
		ANIKey:         []byte("test-ani-key-0123456789abcdef012"),
		PublishTimeout: time.Second,
		Logger:         s.logs.Logger(),
		Registerer:     s.reg,
	})
	if err != nil {
		t.Fatalf("publisher: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pub.Close(ctx); err != nil {
			t.Errorf("close publisher: %v", err)
		}
	})

	gw, err := New(Config{
		Tokens:       testTokens(),
		MaxBodyBytes: o.maxBodyBytes,
		MaxEvents:    o.maxEvents,
		MaxSources:   o.maxSources,
		Logger:       s.logs.Logger(),
		Registerer:   s.reg,
	}, pub)
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// startNATS starts (or restarts, on the same port and store) the server.
func (s *stack) startNATS() {
	s.t.Helper()
	ns, err := natsembed.Start(natsembed.Config{Dir: s.dir, Port: s.port, Options: func(o *server.Options) {
		if s.users != nil {
			o.Users = s.users
		}
	}})
	if err != nil {
		s.t.Fatalf("start nats: %v", err)
	}
	s.natsMu.Lock()
	s.ns = ns
	s.port = ns.Addr().(*net.TCPAddr).Port
	s.natsMu.Unlock()
}

func (s *stack) stopNATS() {
	s.natsMu.Lock()
	defer s.natsMu.Unlock()
	if s.ns != nil {
		s.ns.Stop()
		s.ns = nil
	}
}

// streamData returns the payload of every message in the events stream.
func (s *stack) streamData() [][]byte {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, streams.DefaultEventsStream)
	if err != nil {
		s.t.Fatalf("stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		s.t.Fatalf("stream info: %v", err)
	}
	var out [][]byte
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		out = append(out, m.Data)
	}
	return out
}

// streamCount is the number of messages in the events stream, or -1 when
// the stream cannot be read.
func (s *stack) streamCount() int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, streams.DefaultEventsStream)
	if err != nil {
		return -1
	}
	info, err := st.Info(ctx)
	if err != nil {
		return -1
	}
	return int(info.State.Msgs)
}

// streamEventIDs decodes every stored event and returns their ids.
func (s *stack) streamEventIDs() map[uuid.UUID]*event.Event {
	s.t.Helper()
	ids := map[uuid.UUID]*event.Event{}
	for _, data := range s.streamData() {
		ev, err := event.Decode(data)
		if err != nil {
			s.t.Fatalf("a stored event does not decode: %v", err)
		}
		ids[ev.EventID] = ev
	}
	return ids
}

// reply is an HTTP answer read whole.
type reply struct {
	code   int
	header http.Header
	body   []byte
}

func (r reply) events(t *testing.T) EventsResponse {
	t.Helper()
	var resp EventsResponse
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil {
		t.Fatalf("body is not an events response: %v: %s", err, r.body)
	}
	return resp
}

func (r reply) errorResponse(t *testing.T) ErrorResponse {
	t.Helper()
	var resp ErrorResponse
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil {
		t.Fatalf("body is not an error response: %v: %s", err, r.body)
	}
	return resp
}

var httpClient = &http.Client{Timeout: 60 * time.Second}

// post sends body to url with the given token ("" for none) and headers.
func post(t *testing.T, url, token, contentType string, body io.Reader, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return do(t, req)
}

func get(t *testing.T, url string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if !json.Valid(b) {
		t.Errorf("body is not JSON: %q", b)
	}
	return reply{code: res.StatusCode, header: res.Header, body: b}
}

// ev is an event as a client writes it.
type ev map[string]any

// callIDs numbers the test calls. (Random UUIDs would not do: about one
// in 300 holds a Luhn-valid run of digits across its dashes, and is
// rejected as a card number.)
var callIDs atomic.Int64

// callReceived is a valid call.received event of source acd/<instance>.
func callReceived(instance string) ev {
	return ev{
		"kind":        "call.received",
		"occurred_at": "2026-11-25T20:01:02.123Z",
		"source":      map[string]any{"system": "acd", "instance": instance},
		"call_id":     fmt.Sprintf("c-%d", callIDs.Add(1)),
		"dnis":        "8005550100",
		"ani":         "+1 (813) 555-0142",
	}
}

func (e ev) with(kv ...any) ev {
	out := ev{}
	for k, v := range e {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ndjson(t *testing.T, evs ...ev) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, e := range evs {
		b.Write(mustJSON(t, e))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// checkErrorID asserts that id is a UUIDv7.
func checkErrorID(t *testing.T, id string) {
	t.Helper()
	u, err := uuid.Parse(id)
	if err != nil || u.Version() != 7 {
		t.Errorf("error_id %q is not a UUIDv7", id)
	}
}

// counterValue reads a counter of the registry (0 if absent).
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
