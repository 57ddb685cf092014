package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

// fakePublisher answers each event with result(i, ev); it stands in for a
// publisher in states the real one reaches only by breaking its disk.
type fakePublisher struct {
	ready  atomic.Bool
	result func(i int, ev *event.Event) publisher.Result
}

func (f *fakePublisher) PublishBatch(_ context.Context, evs []*event.Event) []publisher.Result {
	out := make([]publisher.Result, len(evs))
	for i, ev := range evs {
		out[i] = f.result(i, ev)
	}
	return out
}

func (f *fakePublisher) Ready() bool { return f.ready.Load() }

func acked(_ int, ev *event.Event) publisher.Result {
	id := ev.EventID
	if id == uuid.Nil {
		id = uuid.Must(uuid.NewV7())
	}
	return publisher.Result{Receipt: publisher.Receipt{EventID: id, Seq: 1, Status: publisher.StatusAcked}}
}

// internalText is error text that must never reach a client.
const internalText = "spool: write /var/lib/airtally/spool/000001.seg: no space left on device"

func newFakeServer(t *testing.T, pub *fakePublisher) (*httptest.Server, *logBuffer, *prometheus.Registry) {
	t.Helper()
	logs := &logBuffer{}
	reg := prometheus.NewRegistry()
	gw, err := New(Config{Tokens: testTokens(), Logger: logs.Logger(), Registerer: reg}, pub)
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	return srv, logs, reg
}

// TestUnavailable: when the publisher can neither publish nor spool, the
// answer is 503 with Retry-After, an error_id and no internal text; it
// lists what was accepted and rejected and which indexes to retry, and the
// detail is logged under the same error_id.
func TestUnavailable(t *testing.T) {
	pub := &fakePublisher{result: func(i int, ev *event.Event) publisher.Result {
		if i == 0 {
			return acked(i, ev)
		}
		return publisher.Result{Err: fmt.Errorf("publish: %s: %w", internalText, publisher.ErrUnavailable)}
	}}
	srv, logs, reg := newFakeServer(t, pub)
	batch := []ev{callReceived("tampa-01"), callReceived("tampa-01"), {"kind": "bogus"}, callReceived("tampa-01")}
	r := post(t, srv.URL+"/v1/events", tokAll, "application/json", bytes.NewReader(mustJSON(t, batch)))
	if r.code != http.StatusServiceUnavailable {
		t.Fatalf("code %d, want 503: %s", r.code, r.body)
	}
	if got := r.header.Get("Retry-After"); got != "5" {
		t.Errorf("Retry-After %q, want 5", got)
	}
	resp := r.events(t)
	checkErrorID(t, resp.ErrorID)
	if resp.Message == "" {
		t.Error("no message")
	}
	if len(resp.Accepted) != 1 || resp.Accepted[0].Index != 0 {
		t.Errorf("accepted %+v, want index 0", resp.Accepted)
	}
	if len(resp.Rejected) != 1 || resp.Rejected[0].Index != 2 {
		t.Errorf("rejected %+v, want index 2", resp.Rejected)
	}
	if fmt.Sprint(resp.Retry) != "[1 3]" {
		t.Errorf("retry %v, want [1 3]", resp.Retry)
	}
	for _, leak := range []string{"spool", "no space", "publisher", "unavailable:", "goroutine"} {
		if bytes.Contains(bytes.ToLower(r.body), []byte(leak)) {
			t.Errorf("the answer holds internal text %q: %s", leak, r.body)
		}
	}
	logs1 := logs.String()
	if !strings.Contains(logs1, resp.ErrorID) || !strings.Contains(logs1, "no space left") {
		t.Errorf("the log lacks the error_id or the detail: %s", logs1)
	}
	if got := counterValue(t, reg, "airtally_gateway_events_unavailable_total", nil); got != 2 {
		t.Errorf("events_unavailable_total = %v, want 2", got)
	}
}

// TestPublisherRejects: a validation error returned by the publisher (its
// own checks) is a per-event 400, like the gateway's.
func TestPublisherRejects(t *testing.T) {
	pub := &fakePublisher{result: func(i int, ev *event.Event) publisher.Result {
		if i == 1 {
			return publisher.Result{Err: fmt.Errorf("publish: %w", &event.ValidationError{Problems: []event.Problem{{Field: "source.seq", Reason: "must increase"}}})}
		}
		return acked(i, ev)
	}}
	srv, _, _ := newFakeServer(t, pub)
	r := post(t, srv.URL+"/v1/events", tokAll, "", bytes.NewReader(ndjson(t, callReceived("a"), callReceived("b"))))
	if r.code != http.StatusBadRequest {
		t.Fatalf("code %d, want 400: %s", r.code, r.body)
	}
	resp := r.events(t)
	if len(resp.Accepted) != 1 || len(resp.Rejected) != 1 || resp.Rejected[0].Index != 1 || resp.Rejected[0].Errors[0].Field != "source.seq" {
		t.Fatalf("response %s", r.body)
	}
}

// TestPanicRecovered: a panic in a handler is answered 500 with a polite
// message and an error_id, without the panic text or a stack; both are
// logged under that error_id.
func TestPanicRecovered(t *testing.T) {
	pub := &fakePublisher{result: func(int, *event.Event) publisher.Result { panic("boom: " + internalText) }}
	srv, logs, reg := newFakeServer(t, pub)
	r := post(t, srv.URL+"/v1/events", tokAll, "application/json", bytes.NewReader(mustJSON(t, callReceived("a"))))
	if r.code != http.StatusInternalServerError {
		t.Fatalf("code %d, want 500: %s", r.code, r.body)
	}
	resp := r.errorResponse(t)
	checkErrorID(t, resp.ErrorID)
	for _, leak := range []string{"boom", "spool", "goroutine", ".go:"} {
		if strings.Contains(string(r.body), leak) {
			t.Errorf("the answer holds %q: %s", leak, r.body)
		}
	}
	l := logs.String()
	if !strings.Contains(l, resp.ErrorID) || !strings.Contains(l, "boom") || !strings.Contains(l, "goroutine") {
		t.Errorf("the log lacks the error_id, the panic or the stack: %s", l)
	}
	if got := counterValue(t, reg, "airtally_gateway_requests_total", map[string]string{"code": "500"}); got != 1 {
		t.Errorf("requests_total{500} = %v, want 1", got)
	}
}

// TestReadyz: /readyz follows the publisher's Ready.
func TestReadyz(t *testing.T) {
	pub := &fakePublisher{result: acked}
	srv, _, _ := newFakeServer(t, pub)
	r := get(t, srv.URL+"/readyz")
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("not ready: code %d Retry-After %q, want 503 with Retry-After", r.code, r.header.Get("Retry-After"))
	}
	checkErrorID(t, r.errorResponse(t).ErrorID)
	pub.ready.Store(true)
	if r := get(t, srv.URL+"/readyz"); r.code != http.StatusOK || !strings.Contains(string(r.body), `"ready"`) {
		t.Fatalf("ready: %d %s", r.code, r.body)
	}
	if r := get(t, srv.URL+"/healthz"); r.code != http.StatusOK {
		t.Fatalf("/healthz: %d", r.code)
	}
}

// TestRequestErrors: every whole-request error is JSON with a message and
// an error_id, and the right code and headers.
func TestRequestErrors(t *testing.T) {
	srv, logs, _ := newFakeServer(t, &fakePublisher{result: acked})
	valid := mustJSON(t, callReceived("a"))
	for _, tc := range []struct {
		name        string
		method      string
		path        string
		contentType string
		headers     []string
		body        string
		code        int
		header      string // a header the answer must have
	}{
		{"GET events", http.MethodGet, "/v1/events", "", nil, "", 405, "Allow"},
		{"PUT events", http.MethodPut, "/v1/events", "application/json", nil, string(valid), 405, "Allow"},
		{"POST healthz", http.MethodPost, "/healthz", "", nil, "", 405, "Allow"},
		{"DELETE readyz", http.MethodDelete, "/readyz", "", nil, "", 405, "Allow"},
		{"unknown path", http.MethodGet, "/v2/things", "", nil, "", 404, ""},
		{"text/plain", http.MethodPost, "/v1/events", "text/plain", nil, string(valid), 415, ""},
		{"form", http.MethodPost, "/v1/events", "application/x-www-form-urlencoded", nil, "a=b", 415, ""},
		{"bad media type", http.MethodPost, "/v1/events", "application/json; ;", nil, string(valid), 415, ""},
		{"gzip", http.MethodPost, "/v1/events", "application/json", []string{"Content-Encoding", "gzip"}, string(valid), 415, ""},
		{"empty body", http.MethodPost, "/v1/events", "application/json", nil, "", 400, ""},
		{"empty array", http.MethodPost, "/v1/events", "application/json", nil, " [ ] ", 400, ""},
		{"not json", http.MethodPost, "/v1/events", "application/json", nil, "hello", 400, ""},
		{"json string", http.MethodPost, "/v1/events", "application/json", nil, `"event"`, 400, ""},
		{"broken array", http.MethodPost, "/v1/events", "application/json", nil, `[{"kind":`, 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+tokAll)
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			for i := 0; i+1 < len(tc.headers); i += 2 {
				req.Header.Set(tc.headers[i], tc.headers[i+1])
			}
			r := do(t, req)
			if r.code != tc.code {
				t.Fatalf("code %d, want %d: %s", r.code, tc.code, r.body)
			}
			resp := r.errorResponse(t)
			checkErrorID(t, resp.ErrorID)
			if resp.Message == "" {
				t.Error("no message")
			}
			if tc.header != "" && r.header.Get(tc.header) == "" {
				t.Errorf("no %s header", tc.header)
			}
			if !strings.Contains(logs.String(), resp.ErrorID) {
				t.Errorf("error_id %s not logged", resp.ErrorID)
			}
		})
	}
}

// TestRejectedFieldNames: field names echoed in errors are the client's
// own for unknown fields; long ones are cut and card numbers masked.
func TestRejectedFieldNames(t *testing.T) {
	srv, _, _ := newFakeServer(t, &fakePublisher{result: acked})
	long := strings.Repeat("f", 5000)
	r := post(t, srv.URL+"/v1/events", tokAll, "application/json", bytes.NewReader(mustJSON(t, callReceived("a").with(long, 1))))
	resp := r.events(t)
	if r.code != http.StatusBadRequest || len(resp.Rejected) != 1 {
		t.Fatalf("code %d: %s", r.code, r.body)
	}
	if f := resp.Rejected[0].Errors[0].Field; len(f) > maxFieldLen+4 || !strings.HasPrefix(f, "fff") {
		t.Errorf("field name of %d bytes echoed", len(f))
	}
}

// TestConfigValidate: defaults and every refused configuration.
func TestConfigValidate(t *testing.T) {
	ok := testTokens()
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Tokens: ok}, true},
		{"no tokens", Config{}, false},
		{"short token", Config{Tokens: map[string]Grant{"short": {Name: "x", System: Any, Instance: Any}}}, false},
		{"token with a space", Config{Tokens: map[string]Grant{"0123456789 abcdefgh": {Name: "x", System: Any, Instance: Any}}}, false},
		{"no name", Config{Tokens: map[string]Grant{tokAll: {System: Any, Instance: Any}}}, false},
		{"bad system", Config{Tokens: map[string]Grant{tokAll: {Name: "x", System: "ACD", Instance: Any}}}, false},
		{"empty instance", Config{Tokens: map[string]Grant{tokAll: {Name: "x", System: "acd"}}}, false},
		{"negative body", Config{Tokens: ok, MaxBodyBytes: -1}, false},
		{"negative events", Config{Tokens: ok, MaxEvents: -1}, false},
		{"retry after under 1s", Config{Tokens: ok, RetryAfter: 10}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
			if err != nil {
				for tok := range tc.cfg.Tokens {
					if strings.Contains(err.Error(), tok) {
						t.Errorf("the error names the token: %v", err)
					}
				}
				if _, err := New(tc.cfg, &fakePublisher{result: acked}); err == nil {
					t.Error("New accepted the configuration")
				}
			}
		})
	}
	d := Config{}.WithDefaults()
	if d.MaxBodyBytes != 4<<20 || d.MaxEvents != 1000 || d.RetryAfter != DefaultRetryAfter {
		t.Errorf("defaults %+v", d)
	}
	if _, err := New(Config{Tokens: ok}, nil); err == nil {
		t.Error("New accepted a nil publisher")
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Tokens: ok, Registerer: reg}, &fakePublisher{result: acked}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Tokens: ok, Registerer: reg}, &fakePublisher{result: acked}); err == nil {
		t.Error("New registered the same metrics twice without an error")
	}
}

// FuzzPostEvents: whatever the body, the handler never panics, always
// answers JSON with a known code, and an events answer accounts for each
// event exactly once.
func FuzzPostEvents(f *testing.F) {
	for _, seed := range fuzzSeeds {
		f.Add(seed, "application/json")
	}
	f.Add(`{"kind":"call.received"}`+"\n"+`{"kind":`, "application/x-ndjson")
	gw, err := New(Config{Tokens: testTokens(), MaxEvents: 50}, &fakePublisher{result: acked})
	if err != nil {
		f.Fatal(err)
	}
	h := gw.Handler()
	f.Fuzz(func(t *testing.T, body, contentType string) {
		req := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tokAll)
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 202, 400:
			var resp EventsResponse
			if json.Unmarshal(rec.Body.Bytes(), &resp) == nil && resp.Accepted != nil {
				seen := map[int]bool{}
				for _, a := range resp.Accepted {
					seen[a.Index] = true
				}
				for _, r := range resp.Rejected {
					if seen[r.Index] {
						t.Fatalf("event %d both accepted and rejected", r.Index)
					}
					seen[r.Index] = true
				}
				return
			}
			var er ErrorResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &er); err != nil || er.ErrorID == "" {
				t.Fatalf("code %d, body %q", rec.Code, rec.Body.String())
			}
		case 413, 415:
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("code %d, body %q", rec.Code, rec.Body.String())
			}
		default:
			t.Fatalf("code %d for body %q", rec.Code, body)
		}
	})
}
