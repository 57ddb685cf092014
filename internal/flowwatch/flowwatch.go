// Package flowwatch samples a count that should keep growing (the rows
// loaded into ClickHouse while producers publish) and records every pause
// in its growth, naming what happened meanwhile: how long a fault stalled
// the flow. The chaos command and the failover tests use it.
package flowwatch

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Interval is how often the count is sampled.
const Interval = 50 * time.Millisecond

// MinStall is the shortest pause kept as a Stall.
const MinStall = time.Second

// repairedPrefix starts the mark of a repair.
const repairedPrefix = "repaired "

// Stall is a pause in the growth of the count.
type Stall struct {
	// At is when the pause began, from the start of the watch.
	At time.Duration
	// Length is how long the count did not grow.
	Length time.Duration
	// During names the marks (faults) that began within the pause, else
	// "after" the last one before it.
	During string
}

func (s Stall) String() string {
	return fmt.Sprintf("%.2fs from %.1fs (%s)", s.Length.Seconds(), s.At.Seconds(), s.During)
}

// Watch samples a count until Stop. Its methods are safe for concurrent
// use.
type Watch struct {
	count func(context.Context) (uint64, error)
	quit  chan struct{}
	done  chan struct{}
	once  sync.Once // stops

	mu      sync.Mutex
	value   uint64
	start   time.Time
	changed time.Time
	stalls  []Stall // pauses of MinStall or more
	longest Stall   // the longest pause, however short
	marks   []mark
}

type mark struct {
	at   time.Time
	what string
}

// Start samples count every Interval (an error skips the sample) until
// Stop.
func Start(count func(context.Context) (uint64, error)) *Watch {
	now := time.Now()
	w := &Watch{count: count, quit: make(chan struct{}), done: make(chan struct{}), start: now, changed: now}
	go w.run()
	return w
}

func (w *Watch) run() {
	defer close(w.done)
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n, err := w.count(ctx)
		cancel()
		if err != nil {
			continue
		}
		now := time.Now()
		w.mu.Lock()
		if n > w.value {
			w.value = n
			w.pause(now)
			w.changed = now
		}
		w.mu.Unlock()
	}
}

// pause accounts for the pause from the last increase to now. Called with
// mu held.
func (w *Watch) pause(now time.Time) {
	d := now.Sub(w.changed)
	if d < w.longest.Length && d < MinStall {
		return
	}
	s := Stall{At: w.changed.Sub(w.start), Length: d, During: w.during(w.changed, now)}
	if d > w.longest.Length {
		w.longest = s
	}
	if d >= MinStall {
		w.stalls = append(w.stalls, s)
	}
}

// during names the marks that began within a pause from..to (a fault
// begins a little after the last increase before it was sampled), else
// the last mark before it. Repairs never explain a pause. Called with mu
// held.
func (w *Watch) during(from, to time.Time) string {
	var in []string
	last := "no fault"
	for _, m := range w.marks {
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

// Mark notes that what happens now (a fault begins), to name stalls.
func (w *Watch) Mark(what string) { w.note(what) }

// Repaired notes that the fault what was repaired now.
func (w *Watch) Repaired(what string) { w.note(repairedPrefix + what) }

func (w *Watch) note(what string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.marks = append(w.marks, mark{time.Now(), what})
}

// Elapsed is the time since Start.
func (w *Watch) Elapsed() time.Duration { return time.Since(w.start) }

// Current is the last count sampled.
func (w *Watch) Current() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.value
}

// WaitGrowth waits until the count grew by n from now; it fails when
// timeout passes first or ctx ends.
func (w *Watch) WaitGrowth(ctx context.Context, n uint64, timeout time.Duration) error {
	from := w.Current()
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(Interval)
	defer t.Stop()
	for w.Current() < from+n {
		if time.Now().After(deadline) {
			return fmt.Errorf("flowwatch: the count did not grow by %d from %d in %s (now %d)", n, from, timeout, w.Current())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Stop ends the sampling and returns every stall of MinStall or more,
// longest first, and the longest pause however short (a pause still going
// on counts up to now). Stopping again returns the same.
func (w *Watch) Stop() (stalls []Stall, longest Stall) {
	w.once.Do(func() {
		close(w.quit)
		<-w.done
		w.mu.Lock()
		w.pause(time.Now())
		w.mu.Unlock()
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	out := slices.Clone(w.stalls)
	slices.SortStableFunc(out, func(a, b Stall) int { return int(b.Length - a.Length) })
	return out, w.longest
}

// Timeline lists the marks and the stalls in time order, for a log line.
func (w *Watch) Timeline() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	type item struct {
		at   time.Duration
		text string
	}
	var items []item
	for _, m := range w.marks {
		at := m.at.Sub(w.start)
		items = append(items, item{at, fmt.Sprintf("%s at %.2fs", m.what, at.Seconds())})
	}
	for _, s := range w.stalls {
		items = append(items, item{s.At, fmt.Sprintf("pause of %.2fs at %.2fs", s.Length.Seconds(), s.At.Seconds())})
	}
	slices.SortStableFunc(items, func(a, b item) int { return int(a.at - b.at) })
	texts := make([]string, len(items))
	for i, it := range items {
		texts[i] = it.text
	}
	return strings.Join(texts, ", ")
}
