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
