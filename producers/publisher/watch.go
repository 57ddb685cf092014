package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrPermissionDenied is wrapped (through a *PermissionError) when the
// NATS server refused to let this connection's user publish to the
// event's subject: the source name, or the producer's credentials, do not
// match the server's permissions (deploy/nats/permissions.md). The error is
// permanent for as long as the configuration stays as it is: the event was
// not stored and not spooled, and retrying it unchanged fails the same way.
var ErrPermissionDenied = errors.New("publisher: NATS user may not publish to the subject")

// PermissionError is the error of an event that the NATS server refused to
// take from this connection's user. errors.Is(err, ErrPermissionDenied)
// and errors.Is(err, nats.ErrPermissionViolation) hold for it.
type PermissionError struct {
	// Subject is the subject the event was published to
	// (drtv.v1.<kind>.<system>.<instance>).
	Subject string
	// Reason is the server's own words.
	Reason string
	// At is when the server refused the subject (for a refusal remembered
	// from an earlier attempt, that attempt's time).
	At time.Time
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("%s: %q (%s); check the event's source and the producer's NATS credentials and permissions",
		ErrPermissionDenied.Error(), e.Subject, e.Reason)
}

// Unwrap makes ErrPermissionDenied and nats.ErrPermissionViolation
// match with errors.Is.
func (e *PermissionError) Unwrap() []error {
	return []error{ErrPermissionDenied, nats.ErrPermissionViolation}
}

// errDisconnected is the cause given to publishes still waiting for their
// ack when the connection is lost: the ack cannot arrive on a dead
// connection, so the event is spooled at once instead of after the
// publish timeout.
var errDisconnected = errors.New("publisher: NATS connection is not connected")

// deniedMemory is how long a refused subject is remembered: while it is,
// an event of that subject that would have to be spooled (the spool is in
// use or NATS is down) is refused at once with the remembered error
// instead of being spooled where it cannot drain. A subject is tried
// afresh whenever the publisher publishes directly, and an ack on it
// forgets the refusal.
const deniedMemory = time.Minute

// publishViolation matches the server's "Permissions Violation for Publish
// to "<subject>"" (nats.go lower-cases nothing in the text it passes on).
var publishViolation = regexp.MustCompile(`(?i)permissions violation for publish to "([^"]+)"`)

// watcher ties the publishes waiting for an ack to what the connection
// reports: a permissions violation for their subject (an asynchronous
// -ERR from the server; JetStream itself never answers such a publish) or
// the loss of the connection. Either ends the wait at once, with a cause.
type watcher struct {
	log *slog.Logger

	mu      sync.Mutex
	next    uint64
	waiting map[uint64]waiting
	denied  map[string]*PermissionError // subject → last refusal
	logged  map[string]bool             // subjects logged at Error since their last ack
	closed  bool

	status chan nats.Status
	done   chan struct{}
}

// waiting is one publish waiting for its ack.
type waiting struct {
	subject string
	cancel  context.CancelCauseFunc
}

// watch starts watching nc: it chains an error handler in front of the one
// nc has (which is still called) and listens to its status changes.
func watch(nc *nats.Conn, log *slog.Logger) *watcher {
	w := &watcher{
		log:     log,
		waiting: map[uint64]waiting{},
		denied:  map[string]*PermissionError{},
		logged:  map[string]bool{},
		status:  nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CLOSED),
		done:    make(chan struct{}),
	}
	prev := nc.ErrorHandler()
	nc.SetErrorHandler(func(c *nats.Conn, sub *nats.Subscription, err error) {
		w.asyncError(sub, err)
		if prev != nil {
			prev(c, sub, err)
		}
	})
	go func() {
		defer close(w.done)
		for range w.status {
			w.disconnected()
		}
	}()
	return w
}

// stop stops listening to nc's status; the error handler stays chained
// but does nothing more.
func (w *watcher) stop(nc *nats.Conn) {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	nc.RemoveStatusListener(w.status)
	<-w.done
}

// asyncError handles an asynchronous error of the connection.
func (w *watcher) asyncError(sub *nats.Subscription, err error) {
	if sub != nil || !errors.Is(err, nats.ErrPermissionViolation) {
		return
	}
	m := publishViolation.FindStringSubmatch(err.Error())
	if m == nil {
		return
	}
	w.deny(&PermissionError{Subject: m[1], Reason: "permissions violation for publish", At: time.Now()})
}

// deny records that subject was refused, ends every wait on it with perr,
// and logs the refusal at Error once per subject (again only after an ack
// on the subject showed it allowed in between).
func (w *watcher) deny(perr *PermissionError) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.denied[perr.Subject] = perr
	if !w.logged[perr.Subject] {
		w.logged[perr.Subject] = true
		w.log.Error("publisher: NATS refuses this producer's events on a subject; they are not stored until its permissions or source name are fixed",
			"subject", perr.Subject, "err", perr)
	}
	for id, wt := range w.waiting {
		if wt.subject == perr.Subject {
			wt.cancel(perr)
			delete(w.waiting, id)
		}
	}
}

// allowed forgets a refusal of subject after an ack on it.
func (w *watcher) allowed(subject string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.denied[subject]; ok || w.logged[subject] {
		delete(w.denied, subject)
		delete(w.logged, subject)
		w.log.Info("publisher: NATS takes events on a subject it refused before", "subject", subject)
	}
}

// refused returns the remembered refusal of subject, if it is recent.
func (w *watcher) refused(subject string) *PermissionError {
	w.mu.Lock()
	defer w.mu.Unlock()
	perr, ok := w.denied[subject]
	if !ok || time.Since(perr.At) > deniedMemory {
		return nil
	}
	return perr
}

// disconnected ends every wait with errDisconnected.
func (w *watcher) disconnected() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, wt := range w.waiting {
		wt.cancel(errDisconnected)
		delete(w.waiting, id)
	}
}

// await registers a publish to subject that is about to wait for its ack.
// The returned context ends, with cause *PermissionError or
// errDisconnected, when the server refuses the subject or the connection
// is lost; release must be called once the wait is over.
func (w *watcher) await(ctx context.Context, nc *nats.Conn, subject string) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	w.mu.Lock()
	id := w.next
	w.next++
	w.waiting[id] = waiting{subject: subject, cancel: cancel}
	w.mu.Unlock()
	// A loss noticed before the registration sent its status event
	// already; this catches it.
	if nc.Status() != nats.CONNECTED {
		cancel(errDisconnected)
	}
	return ctx, func() {
		w.mu.Lock()
		delete(w.waiting, id)
		w.mu.Unlock()
		cancel(nil)
	}
}

// waitCause returns the watcher's cause of ctx's end, or nil if ctx ended
// otherwise (or not at all).
func waitCause(ctx context.Context) error {
	cause := context.Cause(ctx)
	var perr *PermissionError
	if errors.As(cause, &perr) || errors.Is(cause, errDisconnected) {
		return cause
	}
	return nil
}
