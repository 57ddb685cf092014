package gateway

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airtally/airtally/producers/publisher"
	"github.com/google/uuid"
)

// TestPostEventsForms: N events sent as one object, an array, declared
// NDJSON and undeclared NDJSON are answered 202 once acked, each with its
// event_id, seq and status, and exactly N messages land in the stream,
// with the caller's number sealed (never stored raw).
func TestPostEventsForms(t *testing.T) {
	s := newStack(t, stackOpts{})
	one := callReceived("tampa-01")
	three := []ev{callReceived("tampa-01"), callReceived("tampa-02"), callReceived("tampa-01")}
	cases := []struct {
		name        string
		contentType string
		body        []byte
		n           int
	}{
		{"single object", "application/json", mustJSON(t, one), 1},
		{"single object without content type", "", mustJSON(t, one.with("call_id", "c-untyped")), 1},
		{"array", "application/json", mustJSON(t, three), 3},
		{"declared ndjson", "application/x-ndjson", ndjson(t, three...), 3},
		{"detected ndjson with blank lines and CRLF", "application/json",
			[]byte(strings.ReplaceAll("\n"+string(ndjson(t, three...))+"\n\n", "\n", "\r\n")), 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.streamCount()
			r := post(t, s.url+"/v1/events", tokAll, tc.contentType, bytes.NewReader(tc.body))
			if r.code != http.StatusAccepted {
				t.Fatalf("code %d, want 202: %s", r.code, r.body)
			}
			resp := r.events(t)
			if len(resp.Accepted) != tc.n || len(resp.Rejected) != 0 || len(resp.Retry) != 0 || resp.ErrorID != "" {
				t.Fatalf("response %+v, want %d accepted only", resp, tc.n)
			}
			for i, a := range resp.Accepted {
				if a.Index != i || a.EventID.Version() != 7 || a.Seq == 0 || a.Status != publisher.StatusAcked {
					t.Errorf("accepted[%d] = %+v, want index %d, a UUIDv7, a seq and acked", i, a, i)
				}
			}
			if got := s.streamCount(); got != before+tc.n {
				t.Fatalf("stream holds %d messages, want %d", got, before+tc.n)
			}
			stored := s.streamEventIDs()
			for _, a := range resp.Accepted {
				e, ok := stored[a.EventID]
				if !ok {
					t.Fatalf("event %s not in the stream", a.EventID)
				}
				if e.Source.Seq != a.Seq || e.ANI != "" || len(e.ANIHash) != 64 {
					t.Errorf("stored event %s: seq %d (receipt %d), ani sealed %v", a.EventID, e.Source.Seq, a.Seq, e.ANI == "" && e.ANIHash != "")
				}
			}
		})
	}
	for _, data := range s.streamData() {
		if bytes.Contains(data, []byte("555-0142")) || bytes.Contains(data, []byte("8135550142")) {
			t.Fatalf("a raw caller number reached the stream: %s", data)
		}
	}
	if got := counterValue(t, s.reg, "airtally_gateway_events_accepted_total", map[string]string{"status": "acked"}); got != 11 {
		t.Errorf("events_accepted_total{status=acked} = %v, want 11", got)
	}
	if got := counterValue(t, s.reg, "airtally_gateway_requests_total", map[string]string{"endpoint": "events", "code": "202"}); got != 5 {
		t.Errorf("requests_total{events,202} = %v, want 5", got)
	}
}

// TestSameEventTwice: an event posted twice with the same event_id (a
// client retry) is stored once; the second answer says duplicate.
func TestSameEventTwice(t *testing.T) {
	s := newStack(t, stackOpts{})
	id := uuid.Must(uuid.NewV7())
	e := callReceived("tampa-01").with("event_id", id.String())
	for i, want := range []publisher.Status{publisher.StatusAcked, publisher.StatusDuplicate} {
		r := post(t, s.url+"/v1/events", tokTampa, "application/json", bytes.NewReader(mustJSON(t, e)))
		if r.code != http.StatusAccepted {
			t.Fatalf("post %d: code %d: %s", i+1, r.code, r.body)
		}
		resp := r.events(t)
		if len(resp.Accepted) != 1 || resp.Accepted[0].EventID != id || resp.Accepted[0].Status != want {
			t.Fatalf("post %d: %+v, want event %s %s", i+1, resp.Accepted, id, want)
		}
	}
	if got := s.streamCount(); got != 1 {
		t.Fatalf("stream holds %d messages, want 1", got)
	}
	if _, ok := s.streamEventIDs()[id]; !ok {
		t.Fatalf("event %s not in the stream", id)
	}
}

// TestBatchWithInvalidEvents: a batch mixing valid and invalid events is
// answered 400 listing every problem per index (field and reason), while
// the valid events are stored and listed as accepted.
func TestBatchWithInvalidEvents(t *testing.T) {
	s := newStack(t, stackOpts{})
	sentID := uuid.Must(uuid.NewV7())
	batch := []ev{
		callReceived("tampa-01"),
		callReceived("tampa-01").with("call_id", nil, "kind", "order.placed", "currency", "usd", "event_id", sentID.String()),
		callReceived("tampa-02"),
		callReceived("tampa-01").with("colour", "blue", "occurred_at", "yesterday"),
		{"kind": "heartbeat"},
	}
	r := post(t, s.url+"/v1/events", tokAll, "application/json", bytes.NewReader(mustJSON(t, batch)))
	if r.code != http.StatusBadRequest {
		t.Fatalf("code %d, want 400: %s", r.code, r.body)
	}
	resp := r.events(t)
	checkErrorID(t, resp.ErrorID)
	if resp.Message == "" {
		t.Error("no message")
	}
	if len(resp.Accepted) != 2 || resp.Accepted[0].Index != 0 || resp.Accepted[1].Index != 2 {
		t.Fatalf("accepted %+v, want indexes 0 and 2", resp.Accepted)
	}
	want := map[int][]string{
		1: {"order_id", "offer", "currency", "channel"},
		3: {"colour", "occurred_at"},
		4: {"occurred_at", "source.system", "source.instance", "interval_seconds"},
	}
	if len(resp.Rejected) != len(want) {
		t.Fatalf("rejected %+v, want indexes 1, 3, 4", resp.Rejected)
	}
	for _, rej := range resp.Rejected {
		fields := map[string]bool{}
		for _, p := range rej.Errors {
			if p.Reason == "" {
				t.Errorf("index %d field %q: empty reason", rej.Index, p.Field)
			}
			fields[p.Field] = true
		}
		for _, f := range want[rej.Index] {
			if !fields[f] {
				t.Errorf("index %d: no error on %q in %+v", rej.Index, f, rej.Errors)
			}
		}
	}
	if resp.Rejected[0].EventID != sentID.String() {
		t.Errorf("rejected[0].event_id = %q, want the one sent", resp.Rejected[0].EventID)
	}
	stored := s.streamEventIDs()
	if len(stored) != 2 {
		t.Fatalf("stream holds %d events, want 2", len(stored))
	}
	for _, a := range resp.Accepted {
		if _, ok := stored[a.EventID]; !ok {
			t.Errorf("accepted event %s not in the stream", a.EventID)
		}
	}
	if got := counterValue(t, s.reg, "airtally_gateway_events_rejected_total", map[string]string{"reason": "invalid"}); got != 3 {
		t.Errorf("events_rejected_total{invalid} = %v, want 3", got)
	}
}

// TestCardNumbersNeverEchoed: a card number anywhere (a known field, an
// unknown field, a nested value, a number, a field name, a broken NDJSON
// line, a malformed array) rejects its event, and its digits appear
// nowhere: not in the answer, not in the stream, not in the logs.
func TestCardNumbersNeverEchoed(t *testing.T) {
	s := newStack(t, stackOpts{})
	const card = "4111111111111111"
	cases := []struct {
		name        string
		contentType string
		body        string
		code        int
		field       string // the field the rejection names
		forbidden   []string
	}{
		{"in disposition", "application/json",
			string(mustJSON(t, []ev{callReceived("tampa-01"), callReceived("tampa-01").with("kind", "call.ended", "disposition", "paid with 4111 1111 1111 1111 ok")})),
			400, "disposition", []string{"4111 1111 1111 1111"}},
		{"in an unknown field", "application/json",
			string(mustJSON(t, []ev{callReceived("tampa-01"), callReceived("tampa-01").with("notes", "card "+card)})),
			400, "notes", nil},
		{"nested in an unknown field", "application/json",
			string(mustJSON(t, []ev{callReceived("tampa-01"), callReceived("tampa-01").with("extra", map[string]any{"cc": []any{"x", "4111-1111-1111-1111"}})})),
			400, "extra", []string{"4111-1111-1111-1111"}},
		{"as a number", "application/json",
			`[` + string(mustJSON(t, callReceived("tampa-01"))) + `,` + strings.TrimSuffix(string(mustJSON(t, callReceived("tampa-01"))), "}") + `,"talk_seconds":4111111111111111}]`,
			400, "talk_seconds", nil},
		{"as a field name", "application/json",
			`[` + string(mustJSON(t, callReceived("tampa-01"))) + `,` + string(mustJSON(t, callReceived("tampa-01").with(card, "x"))) + `]`,
			400, "XXXXXXXXXXXXXXXX", nil},
		{"in source.instance", "application/json",
			string(mustJSON(t, []ev{callReceived("tampa-01"), callReceived(card)})),
			400, "source", nil},
		{"escaped in a string", "application/json",
			`[` + string(mustJSON(t, callReceived("tampa-01"))) + `,` + strings.TrimSuffix(string(mustJSON(t, callReceived("tampa-01"))), "}") + `,"queue":"4111\u00201111\u00201111\u00201111"}]`,
			400, "queue", []string{`4111\u00201111`}},
		{"in a broken ndjson line", "application/x-ndjson",
			string(mustJSON(t, callReceived("tampa-01"))) + "\n" + `{"kind":"call.ended","disposition":"` + card + `"` + "\n",
			400, "", nil},
		{"in a malformed array", "application/json",
			`[` + string(mustJSON(t, callReceived("tampa-01"))) + `,{"disposition":"` + card + `"}`,
			400, "-", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := s.streamCount()
			r := post(t, s.url+"/v1/events", tokAll, tc.contentType, strings.NewReader(tc.body))
			if r.code != tc.code {
				t.Fatalf("code %d, want %d: %s", r.code, tc.code, r.body)
			}
			if tc.field == "-" { // the body as a whole is refused
				checkErrorID(t, r.errorResponse(t).ErrorID)
				if got := s.streamCount(); got != before {
					t.Errorf("stream grew by %d, want 0", got-before)
				}
			} else {
				resp := r.events(t)
				if len(resp.Accepted) != 1 || len(resp.Rejected) != 1 || resp.Rejected[0].Index != 1 {
					t.Fatalf("response %s, want index 0 accepted and 1 rejected", r.body)
				}
				found := false
				for _, p := range resp.Rejected[0].Errors {
					found = found || p.Field == tc.field
				}
				if !found {
					t.Errorf("no error on field %q: %+v", tc.field, resp.Rejected[0].Errors)
				}
				if got := s.streamCount(); got != before+1 {
					t.Errorf("stream grew by %d, want 1", got-before)
				}
			}
			for _, bad := range append([]string{card}, tc.forbidden...) {
				if bytes.Contains(r.body, []byte(bad)) {
					t.Errorf("the answer echoes %q: %s", bad, r.body)
				}
			}
		})
	}
	forbidden := []string{card, "4111 1111", "4111-1111", `4111\u0020`, "1111111111"}
	for _, data := range s.streamData() {
		for _, bad := range forbidden {
			if bytes.Contains(data, []byte(bad)) {
				t.Fatalf("the stream holds %q: %s", bad, data)
			}
		}
	}
	logs := s.logs.String()
	if !strings.Contains(logs, "events rejected") {
		t.Fatalf("the rejections were not logged: %s", logs)
	}
	for _, bad := range forbidden {
		if strings.Contains(logs, bad) {
			t.Fatalf("the logs hold %q", bad)
		}
	}
	if got := counterValue(t, s.reg, "airtally_gateway_events_rejected_total", map[string]string{"reason": "card"}); got != 7 {
		t.Errorf("events_rejected_total{card} = %v, want 7", got)
	}
}

// TestAuth: no token, a wrong token or another scheme is answered 401; a
// token bound to a source gets a per-event "source" error for events of
// another source while its own are stored; tokens never appear in answers
// or logs.
func TestAuth(t *testing.T) {
	s := newStack(t, stackOpts{})
	body := mustJSON(t, callReceived("tampa-01"))
	for _, tc := range []struct {
		name, header string
	}{
		{"missing", ""},
		{"wrong token", "Bearer tok-wrong-0123456789abcdef"},
		{"prefix of a token", "Bearer " + tokAll[:len(tokAll)-1]},
		{"basic scheme", "Basic " + tokAll},
		{"bare token", tokAll},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, s.url+"/v1/events", "", "application/json", bytes.NewReader(body), "Authorization", tc.header)
			if r.code != http.StatusUnauthorized {
				t.Fatalf("code %d, want 401: %s", r.code, r.body)
			}
			checkErrorID(t, r.errorResponse(t).ErrorID)
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	if got := s.streamCount(); got != 0 {
		t.Fatalf("stream holds %d messages after 401s, want 0", got)
	}

	for _, tc := range []struct {
		name     string
		token    string
		batch    []ev
		accepted []int
		rejected []int
	}{
		{"bound token, other instance", tokTampa,
			[]ev{callReceived("tampa-01"), callReceived("tampa-02"), callReceived("tampa-01")}, []int{0, 2}, []int{1}},
		{"bound token, other system", tokTampa,
			[]ev{callReceived("tampa-01").with("source", map[string]any{"system": "crm", "instance": "tampa-01"})}, nil, []int{0}},
		{"system token, any instance", tokACD,
			[]ev{callReceived("tampa-01"), callReceived("miami-02"),
				callReceived("x").with("source", map[string]any{"system": "crm", "instance": "x"})}, []int{0, 1}, []int{2}},
		{"lower-case scheme", "", []ev{callReceived("tampa-01")}, []int{0}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.streamCount()
			var r reply
			if tc.token == "" {
				r = post(t, s.url+"/v1/events", "", "application/json", bytes.NewReader(mustJSON(t, tc.batch)), "Authorization", "bearer "+tokAll)
			} else {
				r = post(t, s.url+"/v1/events", tc.token, "application/json", bytes.NewReader(mustJSON(t, tc.batch)))
			}
			wantCode := http.StatusAccepted
			if len(tc.rejected) > 0 {
				wantCode = http.StatusBadRequest
			}
			if r.code != wantCode {
				t.Fatalf("code %d, want %d: %s", r.code, wantCode, r.body)
			}
			resp := r.events(t)
			if len(resp.Accepted) != len(tc.accepted) || len(resp.Rejected) != len(tc.rejected) {
				t.Fatalf("code %d %s, want accepted %v rejected %v", r.code, r.body, tc.accepted, tc.rejected)
			}
			for i, a := range resp.Accepted {
				if a.Index != tc.accepted[i] {
					t.Errorf("accepted %d has index %d, want %d", i, a.Index, tc.accepted[i])
				}
			}
			for i, rej := range resp.Rejected {
				if rej.Index != tc.rejected[i] || len(rej.Errors) != 1 || rej.Errors[0].Field != "source" {
					t.Errorf("rejected %d = %+v, want index %d with one error on source", i, rej, tc.rejected[i])
				}
			}
			if got := s.streamCount(); got != before+len(tc.accepted) {
				t.Errorf("stream grew by %d, want %d", got-before, len(tc.accepted))
			}
		})
	}
	logs := s.logs.String()
	for _, tok := range []string{tokAll, tokTampa, tokACD, "tok-wrong-0123456789abcdef"} {
		if strings.Contains(logs, tok[:12]) {
			t.Fatalf("a token reached the logs")
		}
	}
	if got := counterValue(t, s.reg, "airtally_gateway_events_rejected_total", map[string]string{"reason": "source"}); got != 3 {
		t.Errorf("events_rejected_total{source} = %v, want 3", got)
	}
	if got := counterValue(t, s.reg, "airtally_gateway_requests_total", map[string]string{"code": "401"}); got != 5 {
		t.Errorf("requests_total{401} = %v, want 5", got)
	}
}

// TestTooLarge: a body over MaxBodyBytes (with or without Content-Length)
// and a request with more than MaxEvents events are answered 413 and store
// nothing.
func TestTooLarge(t *testing.T) {
	s := newStack(t, stackOpts{maxBodyBytes: 4096, maxEvents: 3})
	four := []ev{callReceived("a"), callReceived("b"), callReceived("c"), callReceived("d")}
	big := []ev{callReceived("a").with("disposition", strings.Repeat("x", 5000))}
	for _, tc := range []struct {
		name        string
		contentType string
		body        io.Reader
	}{
		{"body too large", "application/json", bytes.NewReader(mustJSON(t, big))},
		{"body too large, no content length", "application/json", io.MultiReader(bytes.NewReader(mustJSON(t, big)))},
		{"too many events in an array", "application/json", bytes.NewReader(mustJSON(t, four))},
		{"too many events in ndjson", "application/x-ndjson", bytes.NewReader(ndjson(t, four...))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, s.url+"/v1/events", tokAll, tc.contentType, tc.body)
			if r.code != http.StatusRequestEntityTooLarge {
				t.Fatalf("code %d, want 413: %s", r.code, r.body)
			}
			checkErrorID(t, r.errorResponse(t).ErrorID)
		})
	}
	if got := s.streamCount(); got != 0 {
		t.Fatalf("stream holds %d messages, want 0", got)
	}
	r := post(t, s.url+"/v1/events", tokAll, "application/json", bytes.NewReader(mustJSON(t, four[:3])))
	if r.code != http.StatusAccepted {
		t.Fatalf("exactly MaxEvents events: code %d, want 202: %s", r.code, r.body)
	}
}

// TestNATSDown: with NATS down, events are spooled (fsync'd) and answered
// 202 "spooled"; once NATS is back they reach the stream.
func TestNATSDown(t *testing.T) {
	s := newStack(t, stackOpts{})
	s.stopNATS()
	batch := []ev{callReceived("tampa-01"), callReceived("tampa-01"), callReceived("tampa-02")}
	r := post(t, s.url+"/v1/events", tokAll, "application/json", bytes.NewReader(mustJSON(t, batch)))
	if r.code != http.StatusAccepted {
		t.Fatalf("code %d, want 202: %s", r.code, r.body)
	}
	resp := r.events(t)
	if len(resp.Accepted) != 3 {
		t.Fatalf("accepted %+v, want 3", resp.Accepted)
	}
	for _, a := range resp.Accepted {
		if a.Status != publisher.StatusSpooled {
			t.Errorf("event %d: status %s, want spooled", a.Index, a.Status)
		}
	}
	s.startNATS()
	eventually(t, 30*time.Second, "the spooled events reach the stream", func() bool { return s.streamCount() == 3 })
	stored := s.streamEventIDs()
	for _, a := range resp.Accepted {
		if e, ok := stored[a.EventID]; !ok || e.Source.Seq != a.Seq {
			t.Errorf("spooled event %s (seq %d) not in the stream as receipted", a.EventID, a.Seq)
		}
	}
}

// TestHealthAndReady: /healthz answers 200 while alive; /readyz answers 200
// with a ready publisher.
func TestHealthAndReady(t *testing.T) {
	s := newStack(t, stackOpts{})
	if r := get(t, s.url+"/healthz"); r.code != http.StatusOK || !strings.Contains(string(r.body), `"ok"`) {
		t.Fatalf("/healthz: %d %s", r.code, r.body)
	}
	eventually(t, 10*time.Second, "/readyz answers 200", func() bool { return get(t, s.url+"/readyz").code == http.StatusOK })
}

// TestSourceLimit: with MaxSources 2, a wildcard token creates two
// sources; an event of a third is rejected (field source) while events of
// the known sources, in the same batch, are stored.
func TestSourceLimit(t *testing.T) {
	s := newStack(t, stackOpts{maxSources: 2})
	for _, inst := range []string{"site-1", "site-2"} {
		r := post(t, s.url+"/v1/events", tokACD, "application/json", bytes.NewReader(mustJSON(t, callReceived(inst))))
		if r.code != http.StatusAccepted {
			t.Fatalf("%s: code %d: %s", inst, r.code, r.body)
		}
	}
	batch := []ev{callReceived("site-1"), callReceived("site-3"), callReceived("site-2")}
	r := post(t, s.url+"/v1/events", tokACD, "application/json", bytes.NewReader(mustJSON(t, batch)))
	if r.code != http.StatusBadRequest {
		t.Fatalf("code %d, want 400: %s", r.code, r.body)
	}
	resp := r.events(t)
	if len(resp.Accepted) != 2 || resp.Accepted[0].Index != 0 || resp.Accepted[1].Index != 2 {
		t.Fatalf("accepted %+v, want indexes 0 and 2", resp.Accepted)
	}
	if len(resp.Rejected) != 1 || resp.Rejected[0].Index != 1 || len(resp.Rejected[0].Errors) != 1 ||
		resp.Rejected[0].Errors[0].Field != "source" || !strings.Contains(resp.Rejected[0].Errors[0].Reason, "limit of 2 sources") {
		t.Fatalf("rejected %+v, want index 1 on field source naming the limit", resp.Rejected)
	}
	if got := counterValue(t, s.reg, "airtally_gateway_events_rejected_total", map[string]string{"reason": "source_limit"}); got != 1 {
		t.Errorf("events_rejected_total{source_limit} = %v, want 1", got)
	}
	if got := s.streamCount(); got != 4 {
		t.Errorf("stream holds %d messages, want 4", got)
	}
}
