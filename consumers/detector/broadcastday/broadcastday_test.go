package broadcastday

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/producers/event"
)

var testDate = time.Date(2025, 10, 6, 0, 0, 0, 0, time.UTC)

// TestDays: every seed gives a valid day of the promised shape, the same
// seed the same day, and faults where the truth says they are.
func TestDays(t *testing.T) {
	d := Generate(Config{Date: testDate, Seed: 3})
	again := Generate(Config{Date: testDate, Seed: 3})
	if len(d.Delivered) != len(again.Delivered) || d.Delivered[500].Event.EventID != again.Delivered[500].Event.EventID ||
		!slices.EqualFunc(d.Faults, again.Faults, func(a, b Fault) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
		t.Fatal("the same seed gave another day")
	}
	for seed := uint64(1); seed <= 20; seed++ {
		d := Generate(Config{Date: testDate.AddDate(0, 0, int(seed)), Seed: seed})
		checkDay(t, seed, d)
	}
}

func checkDay(t *testing.T, seed uint64, d Day) {
	t.Helper()
	kinds := map[string]int{}
	for _, f := range d.Faults {
		kinds[f.Kind]++
	}
	if kinds[Silent]+kinds[SilentFromStart] != 1 || kinds[Outage] < 1 || kinds[Outage] > 3 || kinds[CallGap] != 1 || kinds[OrderGap] != 1 || kinds[Delay] != 1 {
		t.Fatalf("seed %d: faults %v", seed, kinds)
	}
	ran, faulted, dnr, shared := 0, 0, 0, 0
	for _, s := range d.Spots {
		a := d.Airings[s.ID]
		if s.DidNotRun {
			dnr++
			continue
		}
		ran++
		if a.Faulted {
			faulted++
		}
		if d.Numbers[s.DNIS].Shared {
			shared++
		}
		if s.Calls < 20 || s.Calls > 300 {
			t.Errorf("seed %d: %s brings %d calls", seed, s.ID, s.Calls)
		}
		if !a.Faulted && (a.DroppedCalls != 0 || a.DroppedOrders != 0) {
			t.Errorf("seed %d: %s untouched but lost %d calls, %d orders", seed, s.ID, a.DroppedCalls, a.DroppedOrders)
		}
		if a.Faulted && a.UncoveredMinutes <= 0 {
			t.Errorf("seed %d: %s faulted without uncovered minutes: %+v", seed, s.ID, a)
		}
	}
	if len(d.Spots) < 16 || len(d.Spots) > 30 || dnr < 2 || dnr > 3 || shared < 3 {
		t.Errorf("seed %d: %d airings, %d did not run, %d on shared numbers", seed, len(d.Spots), dnr, shared)
	}
	if 3*(ran-faulted) < ran {
		t.Errorf("seed %d: %d of %d airings faulted", seed, faulted, ran)
	}
	for _, f := range d.Faults {
		for _, id := range f.Target {
			if f.Kind != Delay && f.Kind != Skew && !d.Airings[id].Faulted {
				t.Errorf("seed %d: %s placed on %s, which the truth does not say faulted", seed, f.Kind, id)
			}
		}
		if (f.Kind == CallGap || f.Kind == OrderGap) && (f.SeqFrom == 0 || f.SeqTo < f.SeqFrom || f.Bound < 0) {
			t.Errorf("seed %d: %+v", seed, f)
		}
	}
	// The delivered events: valid, each source's numbers in order but for
	// its gap, nothing of a down source or a silent number.
	last := map[string]uint64{}
	var prev time.Time
	for i, dl := range d.Delivered {
		e, key := dl.Event, dl.Event.Source.Key()
		if err := e.Validate(); err != nil {
			t.Fatalf("seed %d: delivery %d: %v", seed, i, err)
		}
		if dl.Received.Before(prev) {
			t.Fatalf("seed %d: delivery %d received before the one before it", seed, i)
		}
		prev = dl.Received
		want := last[key] + 1
		ok := e.Source.Seq == want
		for _, f := range d.Faults {
			switch f.Kind {
			case CallGap, OrderGap:
				ok = ok || (key == f.Source && want == f.SeqFrom && e.Source.Seq == f.SeqTo+1)
			case Outage:
				if key == f.Source && f.Span.Contains(e.OccurredAt) {
					t.Errorf("seed %d: an event of %s while it was down", seed, key)
				}
			case Silent, SilentFromStart:
				if e.Kind == event.CallReceived && report.DNISKey(e.DNIS) == f.DNIS && f.Span.Contains(e.OccurredAt) {
					t.Errorf("seed %d: a call reached silent %s", seed, f.DNIS)
				}
			}
		}
		if !ok {
			t.Fatalf("seed %d: %s seq %d after %d", seed, key, e.Source.Seq, last[key])
		}
		last[key] = e.Source.Seq
	}
	var fs []string
	for _, f := range d.Faults {
		s := fmt.Sprintf("%s %s%s %s+%.1fm", f.Kind, f.Source, f.DNIS, f.Span.From.Format("15:04:05"), f.Minutes())
		if f.Where != "" {
			s += " (" + f.Where + ")"
		}
		fs = append(fs, s)
	}
	t.Logf("seed %2d: %2d airings (%d did not run, %d shared), %2d faulted, %d events; %s", seed, len(d.Spots), dnr, shared, faulted, len(d.Delivered), strings.Join(fs, "; "))
}

// TestTruthByHand checks the truth without demoday.ComputeTruth: an airing
// on a number of its own lost the calls its window held in the day as it
// happened and not in the delivered one; a gap's lost numbers held at most
// its bound's non-heartbeat events, and at least one fewer (heartbeats
// every minute: the bound is tight to one).
func TestTruthByHand(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		d := Generate(Config{Date: testDate.AddDate(0, 0, int(seed)), Seed: seed})
		var delivered []*event.Event
		for _, dl := range d.Delivered {
			delivered = append(delivered, dl.Event)
		}
		// The first call.received of every call, by number.
		firsts := func(evs []*event.Event) map[string]map[string]time.Time {
			out := map[string]map[string]time.Time{}
			for _, e := range evs {
				if e.Kind != event.CallReceived {
					continue
				}
				k := report.DNISKey(e.DNIS)
				if out[k] == nil {
					out[k] = map[string]time.Time{}
				}
				if f, ok := out[k][e.CallID]; !ok || e.OccurredAt.Before(f) {
					out[k][e.CallID] = e.OccurredAt
				}
			}
			return out
		}
		fullFirst, gotFirst := firsts(d.Full.Events), firsts(delivered)
		windowCalls := func(first map[string]map[string]time.Time, s Spot) int {
			n := 0
			for _, at := range first[s.DNIS] {
				if !at.Before(s.Start()) && at.Before(s.End()) {
					n++
				}
			}
			return n
		}
		for _, s := range d.Spots {
			a := d.Airings[s.ID]
			if s.DidNotRun || d.Numbers[s.DNIS].Shared {
				continue
			}
			full, got := windowCalls(fullFirst, s), windowCalls(gotFirst, s)
			if int64(full-got) != a.DroppedCalls || int64(full) != d.Full.Truth.Airings[s.ID].Calls {
				t.Errorf("seed %d: %s: %d calls in its window, %d delivered; the truth says %d, %d dropped", seed, s.ID, full, got, d.Full.Truth.Airings[s.ID].Calls, a.DroppedCalls)
			}
		}
		for _, f := range d.Faults {
			if f.Kind != CallGap && f.Kind != OrderGap {
				continue
			}
			seen := map[uint64]bool{}
			for _, e := range delivered {
				if e.Source.Key() == f.Source {
					seen[e.Source.Seq] = true
				}
			}
			for q := f.SeqFrom; q <= f.SeqTo; q++ {
				if seen[q] {
					t.Errorf("seed %d: %s %s: number %d of the lost range was delivered", seed, f.Kind, f.Source, q)
				}
			}
			if !seen[f.SeqFrom-1] || !seen[f.SeqTo+1] {
				t.Errorf("seed %d: %s %s: the numbers around the lost range are missing", seed, f.Kind, f.Source)
			}
			// The lost numbers less the heartbeats due strictly inside the
			// span (other faults never touch a gap's source near it).
			hb := 0
			for _, e := range d.Full.Events {
				if e.Source.Key() == f.Source && f.Span.From.Before(e.OccurredAt) && e.OccurredAt.Before(f.Span.To) && e.Kind == event.Heartbeat {
					hb++
				}
			}
			other := float64(f.SeqTo-f.SeqFrom+1) - float64(hb)
			if other < 0 || other > f.Bound || other < f.Bound-1 {
				t.Errorf("seed %d: %s %s lost %.0f events that were not heartbeats, bound %.0f", seed, f.Kind, f.Source, other, f.Bound)
			}
		}
	}
}
