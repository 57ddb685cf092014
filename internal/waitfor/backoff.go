package waitfor

import (
	"math/rand/v2"
	"time"
)

// Defaults of Backoff.
const (
	DefaultMin = 250 * time.Millisecond
	DefaultMax = 30 * time.Second
)

// Backoff is a capped exponential back-off with jitter: the n-th pause is
// drawn from [d/2, d] where d = Min·2ⁿ, at most Max. The zero value uses
// DefaultMin and DefaultMax. It is not safe for concurrent use.
type Backoff struct {
	// Min is the first pause; default 250 ms.
	Min time.Duration
	// Max caps the pause; default 30 s.
	Max  time.Duration
	next time.Duration
}

// Next returns the pause before the next attempt and doubles the one
// after it, up to Max.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = DefaultMin
	}
	if hi <= 0 {
		hi = DefaultMax
	}
	hi = max(hi, lo)
	if b.next < lo {
		b.next = lo
	}
	d := min(b.next, hi)
	b.next = min(2*d, hi)
	return jitter(d)
}

// Reset makes the next pause Min again.
func (b *Backoff) Reset() { b.next = 0 }

// jitter returns a duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}
