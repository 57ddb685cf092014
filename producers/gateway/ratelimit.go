package gateway

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Messages of rate-limited requests.
const (
	msgRateLimited = "This token is sending events faster than its rate limit allows. Nothing of this request was stored; please send it again after the Retry-After delay."
	msgOverBurst   = "The request holds more events than this token may send at once; please split it into smaller requests."
)

// rateLimiter keeps one token bucket per bearer token, counting events
// (not requests): each bucket holds up to burst events and refills at
// perSecond events per second. Buckets are keyed by the token's SHA-256
// digest, so the token itself is not kept, and are created on a token's
// first request (only authenticated tokens reach it, so their number is
// bounded by the configuration). A nil *rateLimiter allows everything.
type rateLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[[sha256.Size]byte]*rate.Limiter
}

// newRateLimiter returns the limiter for Config.RatePerSecond and
// Config.RateBurst, or nil when perSecond is 0 (unlimited).
func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, buckets: map[[sha256.Size]byte]*rate.Limiter{}}
}

// bucket returns the token's bucket, creating a full one on first use.
func (l *rateLimiter) bucket(token string) *rate.Limiter {
	key := sha256.Sum256([]byte(token))
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[key] = b
	}
	return b
}

// take takes n events from the token's bucket at now. If the bucket holds
// fewer, nothing is taken and wait is how long until it holds n; if n is
// more than the bucket can ever hold, overBurst is true.
func (l *rateLimiter) take(token string, n int, now time.Time) (wait time.Duration, overBurst bool) {
	if l == nil {
		return 0, false
	}
	if n > l.burst {
		return 0, true
	}
	r := l.bucket(token).ReserveN(now, n)
	if !r.OK() {
		return 0, true
	}
	if d := r.DelayFrom(now); d > 0 {
		// Refused: give the events back so the caller's retry can pass.
		r.CancelAt(now)
		return d, false
	}
	return 0, false
}

// bearerToken is the token of an "Authorization: Bearer <token>" value, as
// the authenticator reads it.
func bearerToken(header string) string {
	_, tok, _ := strings.Cut(strings.TrimSpace(header), " ")
	return strings.TrimSpace(tok)
}

// admitRate applies the token's rate limit to a request of n events. When
// the request may not pass it answers 429 (with Retry-After, in whole
// seconds rounded up) or 413 (more events than the burst) and returns
// false; nothing of the request is published then.
func (g *Gateway) admitRate(w http.ResponseWriter, r *http.Request, grant Grant, n int) bool {
	wait, overBurst := g.limits.take(bearerToken(r.Header.Get("Authorization")), n, time.Now())
	switch {
	case overBurst:
		g.fail(w, r, http.StatusRequestEntityTooLarge, msgOverBurst,
			fmt.Errorf("gateway: token of %q: %d events over its burst of %d", grant.Name, n, g.limits.burst))
		return false
	case wait > 0:
		secs := int64((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		g.fail(w, r, http.StatusTooManyRequests, msgRateLimited,
			fmt.Errorf("gateway: token of %q: rate limit: %d events need %s more", grant.Name, n, wait.Round(time.Millisecond)))
		return false
	}
	return true
}
