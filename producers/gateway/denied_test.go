package gateway

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
)

// checkDenied checks a 500 answer about an event NATS refused: the events
// shape with an error_id and a message, accepted and retry as given, no
// Retry-After, and nothing of the subject, the source sent or the NATS
// error in the body; the log holds the error_id and the subject.
func checkDenied(t *testing.T, r reply, logs *logBuffer, accepted []int, retry string) {
	t.Helper()
	if r.code != http.StatusInternalServerError {
		t.Fatalf("code %d, want 500: %s", r.code, r.body)
	}
	if got := r.header.Get("Retry-After"); got != "" {
		t.Errorf("Retry-After %q on a fault only operators can fix", got)
	}
	resp := r.events(t)
	checkErrorID(t, resp.ErrorID)
	if resp.Message != msgDenied {
		t.Errorf("message %q", resp.Message)
	}
	if len(resp.Accepted) != len(accepted) {
		t.Errorf("accepted %+v, want indexes %v", resp.Accepted, accepted)
	}
	for k, a := range resp.Accepted {
		if k < len(accepted) && a.Index != accepted[k] {
			t.Errorf("accepted %+v, want indexes %v", resp.Accepted, accepted)
		}
	}
	if fmt.Sprint(resp.Retry) != retry {
		t.Errorf("retry %v, want %s", resp.Retry, retry)
	}
	for _, leak := range []string{"drtv", "miami", "permission", "nats", "subject", "publisher"} {
		if bytes.Contains(bytes.ToLower(r.body), []byte(leak)) {
			t.Errorf("the answer holds internal text %q: %s", leak, r.body)
		}
	}
	l := logs.String()
	if !strings.Contains(l, resp.ErrorID) || !strings.Contains(l, "acd.miami-01") {
		t.Errorf("the log lacks the error_id or the subject: %s", l)
	}
}

// TestPermissionDeniedFake: a publisher result wrapping
// publisher.ErrPermissionDenied is answered 500 (not 503, not 202), with
// the indexes to send again later, and counted.
func TestPermissionDeniedFake(t *testing.T) {
	pub := &fakePublisher{result: func(i int, ev *event.Event) publisher.Result {
		if ev.Source.Instance == "miami-01" {
			return publisher.Result{Err: fmt.Errorf("publisher: event %s: %w", ev.EventID,
				&publisher.PermissionError{Subject: "drtv.v1.call_received.acd.miami-01", Reason: "permissions violation for publish", At: time.Now()})}
		}
		if i == 2 {
			return publisher.Result{Err: fmt.Errorf("publish: %w", publisher.ErrUnavailable)}
		}
		return acked(i, ev)
	}}
	srv, logs, reg := newFakeServer(t, pub)
	batch := []ev{callReceived("tampa-01"), callReceived("miami-01"), callReceived("tampa-01")}
	r := post(t, srv.URL+"/v1/events", tokAll, "application/json", bytes.NewReader(mustJSON(t, batch)))
	checkDenied(t, r, logs, []int{0}, "[1 2]")
	if got := counterValue(t, reg, "airtally_gateway_events_denied_total", nil); got != 1 {
		t.Errorf("events_denied_total = %v, want 1", got)
	}
}

// TestPermissionDenied: with a real NATS server whose gateway user may
// publish only acd/tampa-01, an event of acd/miami-01 (a source the token
// allows) is answered 500 at once instead of being spooled behind a 202
// where it could never drain; the allowed event of the same request is
// acked, and a resend is refused the same way.
func TestPermissionDenied(t *testing.T) {
	s := newStack(t, stackOpts{gatewayAllow: []string{"drtv.v1.*.acd.tampa-01"}})
	for round := 0; round < 2; round++ {
		batch := []ev{callReceived("tampa-01"), callReceived("miami-01")}
		start := time.Now()
		r := post(t, s.url+"/v1/events", tokAll, "application/json", bytes.NewReader(mustJSON(t, batch)))
		t.Logf("round %d: answered %d after %s (publish timeout 1s)", round, r.code, time.Since(start))
		checkDenied(t, r, s.logs, []int{0}, "[1]")
		if a := r.events(t).Accepted; len(a) == 1 && a[0].Status != publisher.StatusAcked {
			t.Errorf("allowed event: status %s, want acked", a[0].Status)
		}
	}
	if n := s.streamCount(); n != 2 {
		t.Fatalf("stream holds %d events, want the 2 of tampa-01", n)
	}
	if got := counterValue(t, s.reg, "airtally_publisher_events_total", map[string]string{"status": "spooled"}); got != 0 {
		t.Fatalf("%v events spooled, want none", got)
	}
}
