package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// rowWatch samples the rows of events (copies included) while the load
// runs, and keeps every pause between two increases of a second or more.
type rowWatch struct {
	in   *inspector
	quit chan struct{}
	done chan struct{}

	mu      sync.Mutex
	rows    uint64
	start   time.Time
	changed time.Time
	pauses  []Stall
	marked  []mark
}

// mark is something that happened (a fault began or ended).
type mark struct {
	at   time.Time
	what string
}

// Stall is a pause in the flow of loaded rows.
type Stall struct {
	// At is when the pause began, from the start of the load.
	At time.Duration
	// Length is how long no row was loaded.
	Length time.Duration
	// During names the faults in progress or last injected when it began.
	During string
}

func (s Stall) String() string {
	return fmt.Sprintf("%.2fs from %.1fs (%s)", s.Length.Seconds(), s.At.Seconds(), s.During)
}

func watchRows(in *inspector) *rowWatch {
	now := time.Now()
	w := &rowWatch{in: in, quit: make(chan struct{}), done: make(chan struct{}), start: now, changed: now}
	go w.run()
	return w
}

func (w *rowWatch) run() {
	defer close(w.done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-tick.C:
		}
		n, err := w.in.rawCount(context.Background())
		if err != nil {
			continue
		}
		now := time.Now()
		w.mu.Lock()
		if n > w.rows {
			w.rows = n
			w.pause(now)
			w.changed = now
		}
		w.mu.Unlock()
	}
}

// pause accounts for the pause from the last increase to now. Called with
// mu held.
func (w *rowWatch) pause(now time.Time) {
	if d := now.Sub(w.changed); d >= time.Second {
		w.pauses = append(w.pauses, Stall{At: w.changed.Sub(w.start), Length: d, During: w.during(w.changed, now)})
	}
}

// during names the faults that began within a pause from..to (a fault
// begins a little after the last row before it was sampled), else the
// last mark before it. Called with mu held.
func (w *rowWatch) during(from, to time.Time) string {
	var in []string
	last := "no fault"
	for _, m := range w.marked {
		switch {
		case m.at.Before(from.Add(-200 * time.Millisecond)):
			last = m.what
		case m.at.Before(to) && !strings.HasPrefix(m.what, repairedPrefix):
			in = append(in, m.what)
		}
	}
	if len(in) > 0 {
		return strings.Join(in, " + ")
	}
	return "after " + last
}

// mark notes what happens now (a fault starts or ends), to name stalls.
func (w *rowWatch) mark(what string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.marked = append(w.marked, mark{time.Now(), what})
}

// elapsed is the time since the watch started.
func (w *rowWatch) elapsed() time.Duration { return time.Since(w.start) }

// current is the last row count sampled.
func (w *rowWatch) current() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rows
}

// waitGrowth waits until the rows grew by n from now, ctx ends or timeout.
func (w *rowWatch) waitGrowth(ctx context.Context, n uint64, timeout time.Duration) error {
	from := w.current()
	deadline := time.Now().Add(timeout)
	for w.current() < from+n {
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: loaded rows did not grow by %d from %d in %s (now %d)", n, from, timeout, w.current())
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// stop ends the sampling and returns every stall, longest first (a pause
// still going on counts up to now).
func (w *rowWatch) stop() []Stall {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pause(time.Now())
	out := slices.Clone(w.pauses)
	slices.SortStableFunc(out, func(a, b Stall) int { return int(b.Length - a.Length) })
	return out
}
