package waitfor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
)

// ErrGaveUp is wrapped by the error of a wait that reached its deadline.
var ErrGaveUp = errors.New("waitfor: gave up waiting")

// Options configure one wait.
type Options struct {
	// Dependency is the dependency's name (NATS, ClickHouse): the Status
	// key and the log's "dependency" field. Required.
	Dependency string
	// Name is how messages name it, e.g. "ClickHouse"; default Dependency.
	Name string
	// Addr is where it is looked for (host:port, URLs), for messages.
	Addr string
	// Deadline, if not zero, ends the wait with an error wrapping
	// ErrGaveUp; zero waits for ever.
	Deadline time.Time
	// Backoff paces the attempts; the zero value is 250 ms doubling to
	// 30 s, with jitter.
	Backoff Backoff
	// Logger receives the wait's logs; nil means silent.
	Logger *slog.Logger
	// Status, if set, records the dependency down after a failed attempt
	// and up after a successful one.
	Status *Status
	// Notify, if set, is told when the wait begins (the first attempt
	// failed) and when it ends with success after that: one line for the
	// user each.
	Notify func(Notice)
}

// Notice is what Notify is told.
type Notice struct {
	// Back is false when the wait begins, true when the dependency was
	// reached after waiting.
	Back bool
	// Name and Addr are the Options'.
	Name, Addr string
	// ErrorID identifies the first failure in the log (error_id).
	ErrorID string
	// Err is the first failure (Back false).
	Err error
	// Waited and Attempts are how long it took and how many attempts
	// (Back true).
	Waited   time.Duration
	Attempts int
}

// Do calls attempt until it returns nil, pausing between attempts with
// o.Backoff. It returns nil, the attempt's error at once when it is
// permanent (IsPermanent), an error wrapping ErrGaveUp and the last
// failure when o.Deadline passes, or ctx's error when ctx ends. Each
// attempt gets ctx (bounding it is the attempt's business).
func Do(ctx context.Context, o Options, attempt func(context.Context) error) error {
	_, err := Value(ctx, o, func(ctx context.Context) (struct{}, error) { return struct{}{}, attempt(ctx) })
	return err
}

// Value is Do for an attempt that returns a value (a connection).
func Value[T any](ctx context.Context, o Options, attempt func(context.Context) (T, error)) (T, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := o.Name
	if name == "" {
		name = o.Dependency
	}
	log = log.With("dependency", o.Dependency, "addr", o.Addr)
	began := time.Now()
	var errorID string
	for n := 1; ; n++ {
		v, err := attempt(ctx)
		if err == nil {
			o.Status.Set(o.Dependency, true)
			if n > 1 {
				waited := time.Since(began)
				log.Info("waitfor: dependency reachable", "waited", waited.Round(time.Millisecond).String(), "attempts", n, "error_id", errorID)
				if o.Notify != nil {
					o.Notify(Notice{Back: true, Name: name, Addr: o.Addr, ErrorID: errorID, Waited: waited, Attempts: n})
				}
			}
			return v, nil
		}
		var zero T
		if ctx.Err() != nil {
			return zero, fmt.Errorf("waitfor: %s at %s: %w", name, o.Addr, ctx.Err())
		}
		o.Status.Set(o.Dependency, false)
		if IsPermanent(err) {
			return zero, err
		}
		pause := o.Backoff.Next()
		if n == 1 {
			errorID = uuid.Must(uuid.NewV7()).String()
			log.Warn("waitfor: dependency unreachable; waiting for it", "error_id", errorID, "err", err, "retry_in", pause.String())
			if o.Notify != nil {
				o.Notify(Notice{Name: name, Addr: o.Addr, ErrorID: errorID, Err: err})
			}
		} else {
			log.Debug("waitfor: still unreachable", "error_id", errorID, "attempt", n, "err", err, "retry_in", pause.String())
		}
		if !o.Deadline.IsZero() {
			left := time.Until(o.Deadline)
			if left <= 0 {
				return zero, fmt.Errorf("%w for %s at %s after %s and %d attempts: %w", ErrGaveUp, name, o.Addr, time.Since(began).Round(time.Millisecond), n, err)
			}
			pause = min(pause, left)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return zero, fmt.Errorf("waitfor: %s at %s: %w", name, o.Addr, ctx.Err())
		case <-t.C:
		}
	}
}
