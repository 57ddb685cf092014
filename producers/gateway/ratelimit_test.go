package gateway

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
)

// TestRateLimiterTake drives one bucket on a fixed clock: 2 events/s, a
// burst of 4.
func TestRateLimiterTake(t *testing.T) {
	l := newRateLimiter(2, 4)
	t0 := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	steps := []struct {
		name      string
		token     string
		n         int
		at        time.Duration
		wait      time.Duration
		overBurst bool
	}{
		{name: "a full bucket passes its burst", token: "a", n: 4},
		{name: "an empty bucket refuses", token: "a", n: 1, wait: 500 * time.Millisecond},
		{name: "a refusal takes nothing", token: "a", n: 2, wait: time.Second},
		{name: "another token has its own bucket", token: "b", n: 4},
		{name: "refilled at the rate", token: "a", n: 2, at: time.Second},
		{name: "more than the burst never passes", token: "a", n: 5, at: time.Hour, overBurst: true},
		{name: "a full bucket after a pause", token: "a", n: 4, at: time.Hour},
	}
	for _, st := range steps {
		wait, over := l.take(st.token, st.n, t0.Add(st.at))
		if wait != st.wait || over != st.overBurst {
			t.Errorf("%s: take(%s, %d) = wait %s, over burst %v; want %s, %v", st.name, st.token, st.n, wait, over, st.wait, st.overBurst)
		}
	}
	var unlimited *rateLimiter
	if wait, over := unlimited.take("a", 1e6, t0); wait != 0 || over {
		t.Errorf("unlimited: take = %s, %v; want 0, false", wait, over)
	}
}

func TestRateConfig(t *testing.T) {
	cases := []struct {
		name      string
		cfg       Config
		wantErr   string
		wantBurst int
	}{
		{name: "unlimited by default", cfg: Config{}, wantBurst: 0},
		{name: "burst defaults to max events", cfg: Config{RatePerSecond: 10}, wantBurst: DefaultMaxEvents},
		{name: "burst defaults to a configured max events", cfg: Config{RatePerSecond: 10, MaxEvents: 50}, wantBurst: 50},
		{name: "explicit burst", cfg: Config{RatePerSecond: 10, RateBurst: 20}, wantBurst: 20},
		{name: "negative rate", cfg: Config{RatePerSecond: -1}, wantErr: "rate per second"},
		{name: "negative burst", cfg: Config{RatePerSecond: 1, RateBurst: -1}, wantErr: "rate burst"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Tokens = testTokens()
			err := tc.cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate = %v, want an error about %q", err, tc.wantErr)
			}
			if got := tc.cfg.WithDefaults().RateBurst; tc.wantErr == "" && got != tc.wantBurst {
				t.Errorf("RateBurst = %d, want %d", got, tc.wantBurst)
			}
		})
	}
}

// countingPublisher acks every event and counts them.
type countingPublisher struct{ events atomic.Int64 }

func (c *countingPublisher) PublishBatch(_ context.Context, evs []*event.Event) []publisher.Result {
	c.events.Add(int64(len(evs)))
	out := make([]publisher.Result, len(evs))
	for i, ev := range evs {
		out[i] = acked(i, ev)
	}
	return out
}

func (c *countingPublisher) Ready() bool { return true }

// TestRateLimited: with a rate so slow that nothing refills during the
// test, a token may send its burst; then it is answered 429 with
// Retry-After and a polite error with an error_id, nothing of the refused
// request reaches the publisher, other tokens keep their own budget, and a
// request over the burst is answered 413. The log holds the error_id and
// the grant's name, never the token.
func TestRateLimited(t *testing.T) {
	logs := &logBuffer{}
	pub := &countingPublisher{}
	gw, err := New(Config{Tokens: testTokens(), Logger: logs.Logger(), RatePerSecond: 0.001, RateBurst: 5}, pub)
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	url := srv.URL + "/v1/events"
	send := func(token string, n int) reply {
		evs := make([]ev, n)
		for i := range evs {
			evs[i] = callReceived("tampa-01")
		}
		return post(t, url, token, "application/x-ndjson", bytes.NewReader(ndjson(t, evs...)))
	}

	for _, n := range []int{3, 2} {
		if r := send(tokTampa, n); r.code != http.StatusAccepted {
			t.Fatalf("%d events within the burst: %d, want 202: %s", n, r.code, r.body)
		}
	}
	if got := pub.events.Load(); got != 5 {
		t.Fatalf("published %d events, want 5", got)
	}

	r := send(tokTampa, 1)
	if r.code != http.StatusTooManyRequests {
		t.Fatalf("over the rate: %d, want 429: %s", r.code, r.body)
	}
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 {
		t.Errorf("Retry-After = %q, want whole seconds ≥ 1", r.header.Get("Retry-After"))
	}
	er := r.errorResponse(t)
	checkErrorID(t, er.ErrorID)
	if er.Message != msgRateLimited {
		t.Errorf("message = %q, want %q", er.Message, msgRateLimited)
	}
	if got := pub.events.Load(); got != 5 {
		t.Errorf("a refused request reached the publisher: %d events published, want 5", got)
	}

	if r := send(tokACD, 5); r.code != http.StatusAccepted {
		t.Errorf("another token's first request: %d, want 202: %s", r.code, r.body)
	}
	over := send(tokAll, 6)
	if over.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("6 events over a burst of 5: %d, want 413: %s", over.code, over.body)
	}
	checkErrorID(t, over.errorResponse(t).ErrorID)

	out := logs.String()
	if !strings.Contains(out, er.ErrorID) || !strings.Contains(out, `"tampa`) {
		t.Errorf("the log does not name the 429's error_id and grant:\n%s", out)
	}
	for _, tok := range []string{tokTampa, tokACD, tokAll} {
		if strings.Contains(out, tok) || strings.Contains(string(r.body)+string(over.body), tok) {
			t.Errorf("a token appears in the log or an answer")
		}
	}
}
