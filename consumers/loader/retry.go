package loader

import (
	"context"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"
)

// retry calls fn until it succeeds or ctx is done, pausing between attempts
// with an exponential back-off from BackoffMin to BackoffMax, jittered. It
// returns nil or ctx's error.
func (l *Loader) retry(ctx context.Context, op string, fn func(context.Context) error) error {
	return retry(ctx, l.log, l.cfg.BackoffMin, l.cfg.BackoffMax, op, fn)
}

func retry(ctx context.Context, log logger, minDelay, maxDelay time.Duration, op string, fn func(context.Context) error) error {
	delay := minDelay
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			if attempt > 1 {
				log.Info("loader: recovered", "op", op, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		pause := jitter(delay)
		log.Warn("loader: failed, retrying", "op", op, "attempt", attempt, "retry_in", pause.String(), "error", errorText(err))
		if !sleep(ctx, pause) {
			return ctx.Err()
		}
		delay = min(2*delay, maxDelay)
	}
}

// logger is the part of *slog.Logger that retry uses.
type logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
}

// jitter returns a duration between d/2 and d.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// graceContext returns a context that is cancelled grace after ctx is (or
// when cancel is called): what is in flight at shutdown gets grace to
// finish.
func graceContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return gctx, func() {
		stop()
		cancel()
	}
}

// parallel calls fn(0) … fn(n-1) on up to GOMAXPROCS goroutines, in chunks
// big enough to be worth a goroutine, and returns when all are done.
func parallel(n int, fn func(i int)) {
	const minChunk = 256
	workers := min(runtime.GOMAXPROCS(0), (n+minChunk-1)/minChunk)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				fn(i)
			}
		})
	}
	wg.Wait()
}
