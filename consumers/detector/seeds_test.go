package detector

import (
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airtally/airtally/consumers/detector/accountability"
	"github.com/airtally/airtally/consumers/detector/broadcastday"
	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
)

// manyDaysFrom is the first broadcast day of the proof over many days;
// seed s plays the day s days later (all in the past: every window and
// every cancellation is over).
var manyDaysFrom = time.Date(2025, 9, 1, 0, 0, 0, 0, time.UTC)

// manyDaysSeeds are the seeds TestProofManyDays plays: 1-20, or
// PROOF_DAYS=N (1-N) or N-M.
func manyDaysSeeds(t *testing.T) []uint64 { return seedRange(t, "PROOF_DAYS", "20", true) }

// dayResult is one seed's line of the table.
type dayResult struct {
	seed                              uint64
	airings, ran, faulted, flagged    int
	overFlags, misses, minutesOff     int
	overBound, figureDiffs            int
	droppedCalls                      int64
	estimatedCalls                    float64
	untimedDropped                    int64 // calls dropped from airings silent from the start (not estimated)
	overFlagged, missed, offMinutesOf []string
}

// TestProofManyDays plays a generated broadcast day per seed (dedicated
// and shared numbers, outages at the start, middle and end of windows and
// across several airings, a silent number from an airing's start or mid
// window, gaps on a call centre and an order console, a spool, a skewed
// console clock; see package broadcastday) through the real path: JetStream,
// the detector in simulation mode, the loader, ClickHouse 18.16, and chDB.
// For every seed: every report figure of every airing equals the truth of
// the delivered events; exactly the faulted airings are flagged (at most
// one conservative over-flag a day, each logged); uncovered minutes within
// a minute (not for a number silent from the start: it cannot be timed);
// no estimate above a gap's evidence bound where the gap is the only
// cause. Over all seeds: the estimated missing calls within ±25% of the
// calls dropped. The first seed also checks a replay into a fresh database
// and a second detector; chDB runs on the first and the last seed
// (PROOF_CHDB=all: every seed).
func TestProofManyDays(t *testing.T) {
	start := time.Now()
	var results []dayResult
	seeds := manyDaysSeeds(t)
	for i, seed := range seeds {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			onCHDB := i == 0 || i == len(seeds)-1 || os.Getenv("PROOF_CHDB") == "all"
			results = append(results, proveBroadcastDay(t, seed, i == 0, onCHDB))
		})
	}
	var tot dayResult
	var lines []string
	lines = append(lines, "seed  airings  ran  faulted  flagged  over-flags  misses  minutes-off  over-bound  figure-diffs  dropped-calls  estimated-calls")
	for _, r := range results {
		lines = append(lines, fmt.Sprintf("%4d  %7d  %3d  %7d  %7d  %10d  %6d  %11d  %10d  %12d  %13d  %15.1f", r.seed, r.airings, r.ran, r.faulted, r.flagged,
			r.overFlags, r.misses, r.minutesOff, r.overBound, r.figureDiffs, r.droppedCalls, r.estimatedCalls))
		tot.airings += r.airings
		tot.ran += r.ran
		tot.faulted += r.faulted
		tot.flagged += r.flagged
		tot.overFlags += r.overFlags
		tot.misses += r.misses
		tot.minutesOff += r.minutesOff
		tot.overBound += r.overBound
		tot.figureDiffs += r.figureDiffs
		tot.droppedCalls += r.droppedCalls
		tot.estimatedCalls += r.estimatedCalls
		tot.untimedDropped += r.untimedDropped
	}
	lines = append(lines, fmt.Sprintf(" all  %7d  %3d  %7d  %7d  %10d  %6d  %11d  %10d  %12d  %13d  %15.1f", tot.airings, tot.ran, tot.faulted, tot.flagged,
		tot.overFlags, tot.misses, tot.minutesOff, tot.overBound, tot.figureDiffs, tot.droppedCalls, tot.estimatedCalls))
	t.Logf("per seed (ClickHouse 18.16), %s:\n%s", time.Since(start).Round(time.Second), strings.Join(lines, "\n"))
	ratio := math.NaN()
	if tot.droppedCalls > 0 {
		ratio = tot.estimatedCalls/float64(tot.droppedCalls) - 1
	}
	t.Logf("aggregate over %d seeds: %d airings faulted, %d flagged, %d over-flagged, %d missed; estimated missing calls %.1f for %d dropped (%+.1f%%); %d calls dropped from airings silent from the start (no estimate asked)",
		len(results), tot.faulted, tot.flagged, tot.overFlags, tot.misses, tot.estimatedCalls, tot.droppedCalls, 100*ratio, tot.untimedDropped)
	if len(results) > 0 && !(math.Abs(ratio) <= 0.25) {
		t.Errorf("estimated missing calls %.1f over all seeds, dropped %d: %+.1f%%, want within ±25%%", tot.estimatedCalls, tot.droppedCalls, 100*ratio)
	}
}

func proveBroadcastDay(t *testing.T, seed uint64, again, onCHDB bool) dayResult {
	ctx := t.Context()
	d := broadcastday.Generate(broadcastday.Config{Date: manyDaysFrom.AddDate(0, 0, int(seed)), Seed: seed})
	for _, f := range d.Faults {
		t.Logf("fault: %s %s%s %s..%s (%.1f min)%s", f.Kind, f.Source, f.DNIS, f.Span.From.Format("15:04:05"), f.Span.To.Format("15:04:05"), f.Minutes(), faultNote(f))
	}
	b := newBroker(t)
	seqs := b.deliver(t, d.Delivered)
	first := b.runDetector(t, b.publisher(t), simDetector())
	waitApplied(t, first, seqs[len(seqs)-1])
	first.stop()
	dets := first.rec.published()
	for _, e := range dets {
		if e.Kind == event.LineSilent || e.Kind == event.LineRestored {
			t.Logf("detected: %s %s%s %s..%s, airing %s, expected calls %d", e.Kind, e.DNIS, sourceNote(e.MonitoredKey()),
				e.WindowStart.UTC().Format("15:04:05"), e.WindowEnd.UTC().Format("15:04:05"), e.AiringID, e.ExpectedCalls)
		}
	}

	conn, db := testenv.NewDatabase(t, true)
	b.load(t, conn, db, d.Delivered, seqs)
	from, to := d.Full.From.Add(-time.Hour), d.Full.To.Add(time.Hour)
	on18, err := accountability.Query(ctx, report.Native(conn), db, from, to)
	if err != nil {
		t.Fatalf("accountability on 18.16: %v", err)
	}
	opts := report.Options{Database: db, Filter: report.Filter{From: d.Full.From, To: d.Full.To}, Curves: true}
	res, err := report.Run(ctx, report.Native(conn), opts)
	if err != nil {
		t.Fatalf("report on 18.16: %v", err)
	}
	// The projection's week is what the on-read view computes.
	sameFromEverySource(t, report.Native(conn), db, from, to, on18, accountability.SourceOnRead)
	r := checkManyDay(t, "ClickHouse 18.16", d, on18, true)
	r.figureDiffs = checkFigures(t, "ClickHouse 18.16", res.Airings, d.Received)
	r.seed = seed

	if onCHDB {
		t.Run("current ClickHouse", func(t *testing.T) {
			ch, cdb := testenv.ChDB(t)
			copyToCHDB(t, conn, db, ch, cdb)
			got, err := accountability.Query(ctx, chdbQuerier{ch}, cdb, from, to)
			if err != nil {
				t.Fatalf("accountability on chDB: %v", err)
			}
			opts.Database = cdb
			res, err := report.Run(ctx, chdbQuerier{ch}, opts)
			if err != nil {
				t.Fatalf("report on chDB: %v", err)
			}
			checkFigures(t, "chDB", res.Airings, d.Received)
			checkManyDay(t, "chDB", d, got, false)
			sameAccountability(t, on18, got)
		})
	}
	if again {
		t.Run("replay", func(t *testing.T) { sameAfterReplay(t, b, d.Delivered, seqs, from, to, on18) })
		t.Run("detector again", func(t *testing.T) { sameFromDetectorAgain(t, b, dets) })
	}
	return r
}

func sourceNote(key string) string {
	if key == "" || key == "." {
		return ""
	}
	return " at " + key
}

func faultNote(f broadcastday.Fault) string {
	var s string
	if f.Where != "" {
		s += " at the " + f.Where
	}
	if f.SeqFrom != 0 {
		s += fmt.Sprintf(", seq %d-%d, bound %.0f events", f.SeqFrom, f.SeqTo, f.Bound)
	}
	if f.Skew != 0 {
		s += fmt.Sprintf(", clock %s", f.Skew)
	}
	if len(f.Target) > 0 {
		s += ", on " + strings.Join(f.Target, " ")
	}
	return s
}

// checkManyDay checks one engine's accountability of a generated day
// against its truth; full says to log each airing's detail.
func checkManyDay(t *testing.T, engine string, d broadcastday.Day, rows []accountability.Airing, full bool) dayResult {
	t.Helper()
	byID := map[string]accountability.Airing{}
	for _, a := range rows {
		byID[a.AiringID] = a
	}
	r := dayResult{airings: len(d.Spots)}
	for _, s := range d.Spots {
		id := s.ID
		a, ok := byID[id]
		if !ok {
			t.Errorf("%s: airing %s missing", engine, id)
			continue
		}
		truth, f := d.Airings[id], d.Received.Airings[id]
		if a.Calls != f.Calls || a.Orders != f.Orders || a.PhoneOrders != f.PhoneOrders || a.WebOrders != f.WebOrders ||
			a.NetRevenueCents != f.NetRevenueCents || a.MediaCostCents != f.MediaCostCents {
			t.Errorf("%s: %s figures calls %d orders %d (phone %d, web %d) net %d cost %d; truth %d %d (%d, %d) %d %d", engine, id,
				a.Calls, a.Orders, a.PhoneOrders, a.WebOrders, a.NetRevenueCents, a.MediaCostCents,
				f.Calls, f.Orders, f.PhoneOrders, f.WebOrders, f.NetRevenueCents, f.MediaCostCents)
			r.figureDiffs++
		}
		if truth.DidNotRun {
			if a.Status != accountability.StatusDidNotRun {
				t.Errorf("%s: %s status %s, want did_not_run", engine, id, a.Status)
			}
			continue
		}
		r.ran++
		flagged := a.Status != accountability.StatusAccounted
		if flagged {
			r.flagged++
		}
		detail := fmt.Sprintf("%s %s on %s%s: %s (%s); uncovered %.2f min (truth %.2f), missing calls ~%.1f (dropped %d), orders ~%.1f (dropped %d)%s",
			id, s.AiredAt.Format("15:04:05"), s.DNIS, numberNote(d, s), a.Status, a.Reason, a.UncoveredMinutes, truth.UncoveredMinutes,
			a.EstimatedMissingCalls, truth.DroppedCalls, a.EstimatedMissingOrders, truth.DroppedOrders, newFieldsNote(a))
		switch {
		case !truth.Faulted && flagged:
			r.overFlags++
			r.overFlagged = append(r.overFlagged, id)
			t.Logf("%s: OVER-FLAG %s", engine, detail)
		case !truth.Faulted:
			if a.UncoveredMinutes != 0 || a.EstimatedMissingCalls != 0 || a.Coverage != 1 {
				t.Errorf("%s: %s accounted but %.2f min uncovered, %.1f calls missing, coverage %.3f", engine, id, a.UncoveredMinutes, a.EstimatedMissingCalls, a.Coverage)
			}
			if truth.Late && full {
				t.Logf("%s: late, not lost: %s %s (%d late events)", engine, id, a.Reason, a.LateEvents)
			}
		default:
			r.faulted++
			if !flagged || a.Status == accountability.StatusPending {
				r.misses++
				r.missed = append(r.missed, id)
				t.Errorf("%s: MISSED %s, faulted by %v", engine, detail, truth.Causes)
			} else if full {
				t.Logf("%s: flagged %s, faulted by %v", engine, detail, truth.Causes)
			}
			if !truth.Timed {
				r.untimedDropped += truth.DroppedCalls
				if e := expectedCalls(a); e != nil && full {
					t.Logf("%s: %s silent from the start: expected %.1f calls, dropped %d", engine, id, *e, truth.DroppedCalls)
				}
			} else {
				r.droppedCalls += truth.DroppedCalls
				r.estimatedCalls += a.EstimatedMissingCalls
				if flagged && math.Abs(a.UncoveredMinutes-truth.UncoveredMinutes) >= 1 {
					r.minutesOff++
					r.offMinutesOf = append(r.offMinutesOf, id)
					t.Errorf("%s: %s uncovered %.2f min, truth %.2f (%v)", engine, id, a.UncoveredMinutes, truth.UncoveredMinutes, truth.Causes)
				}
			}
			// Where the views give an evidence bound (migration 0013), it is
			// the gap's: the same count, to one heartbeat (the detector's
			// span is in corrected times). An order console's gap bounds the
			// orders only where no call gap also hit the airing: the orders
			// of calls lost in a call centre's gap are missing too.
			ordersBound := truth.OrdersBound
			if truth.CallsBound != nil {
				ordersBound = nil
			}
			for _, b := range []struct {
				name  string
				truth *float64
			}{{"MissingCallsBound", truth.CallsBound}, {"MissingOrdersBound", ordersBound}} {
				if got := newFloat(a, b.name); got != nil && b.truth != nil && truth.GapOnly() && math.Abs(*got-*b.truth) > 1 {
					t.Errorf("%s: %s %s %.1f, the gap's evidence bound is %.0f", engine, id, b.name, *got, *b.truth)
				}
			}
			if truth.GapOnly() {
				if truth.CallsBound != nil && a.EstimatedMissingCalls > *truth.CallsBound+1e-9 {
					r.overBound++
					t.Errorf("%s: %s estimates %.1f missing calls, above the gap's evidence bound %.0f", engine, id, a.EstimatedMissingCalls, *truth.CallsBound)
				}
				if ordersBound != nil && a.EstimatedMissingOrders > *ordersBound+1e-9 {
					r.overBound++
					t.Errorf("%s: %s estimates %.1f missing orders, above the gap's evidence bound %.0f", engine, id, a.EstimatedMissingOrders, *ordersBound)
				}
			}
		}
	}
	if r.overFlags > 1 {
		t.Errorf("%s: %d airings over-flagged (%v), at most one a day", engine, r.overFlags, r.overFlagged)
	}
	return r
}

func numberNote(d broadcastday.Day, s broadcastday.Spot) string {
	n := d.Numbers[s.DNIS]
	kind := "dedicated"
	if n.Shared {
		kind = "shared"
	}
	return fmt.Sprintf(" (%s, %s)", kind, strings.Join(n.Sites, "+"))
}

// The fields migration 0013 adds to accountability.Airing (evidence bounds,
// the expected calls of an airing with no response, shared calls), read by
// name so that this test builds before and after it.
func newField(a accountability.Airing, name string) (any, bool) {
	v := reflect.ValueOf(a).FieldByName(name)
	if !v.IsValid() {
		return nil, false
	}
	return v.Interface(), true
}

func newFloat(a accountability.Airing, name string) *float64 {
	x, _ := newField(a, name)
	switch v := x.(type) {
	case *float64:
		return v
	case float64:
		return &v
	}
	return nil
}

func expectedCalls(a accountability.Airing) *float64 { return newFloat(a, "ExpectedCalls") }

func newFieldsNote(a accountability.Airing) string {
	var parts []string
	for _, name := range []string{"MissingCallsBound", "MissingOrdersBound", "ExpectedCalls", "SharedCalls"} {
		if v := newFloat(a, name); v != nil && *v != 0 {
			parts = append(parts, fmt.Sprintf("%s %.1f", name, *v))
		}
	}
	if x, ok := newField(a, "SharedWith"); ok && x != "" {
		parts = append(parts, fmt.Sprintf("SharedWith %v", x))
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, ", ")
}

// checkFigures compares every figure of every airing with the truth of
// the delivered events, and returns how many airings differ.
func checkFigures(t *testing.T, engine string, got []report.Figures, truth demoday.Truth) int {
	t.Helper()
	n := 0
	var ids []string
	for _, f := range got {
		ids = append(ids, f.AiringID)
		want, ok := truth.Airings[f.AiringID]
		if !ok {
			t.Errorf("%s: report airing %s is not in the truth", engine, f.AiringID)
			n++
			continue
		}
		if d := fieldDiffs("", reflect.ValueOf(f), reflect.ValueOf(want)); len(d) > 0 {
			t.Errorf("%s: report airing %s differs from the truth:\n  %s", engine, f.AiringID, strings.Join(d, "\n  "))
			n++
		}
	}
	for id := range truth.Airings {
		if !slices.Contains(ids, id) {
			t.Errorf("%s: airing %s missing from the report", engine, id)
			n++
		}
	}
	return n
}

// fieldDiffs lists the fields of g and w (of one type) that differ.
func fieldDiffs(prefix string, g, w reflect.Value) []string {
	switch g.Kind() {
	case reflect.Struct:
		if gt, ok := g.Interface().(time.Time); ok {
			if !gt.Equal(w.Interface().(time.Time)) {
				return []string{fmt.Sprintf("%s: got %v, want %v", prefix, gt, w.Interface())}
			}
			return nil
		}
		var out []string
		for i := 0; i < g.NumField(); i++ {
			name := g.Type().Field(i).Name
			if g.Type().Field(i).Anonymous {
				name = ""
			}
			out = append(out, fieldDiffs(strings.TrimPrefix(prefix+"."+name, "."), g.Field(i), w.Field(i))...)
		}
		return out
	case reflect.Pointer:
		if g.IsNil() != w.IsNil() {
			return []string{fmt.Sprintf("%s: got nil %v, want nil %v", prefix, g.IsNil(), w.IsNil())}
		}
		if !g.IsNil() {
			return fieldDiffs(prefix, g.Elem(), w.Elem())
		}
		return nil
	}
	if !reflect.DeepEqual(g.Interface(), w.Interface()) {
		return []string{fmt.Sprintf("%s: got %v, want %v", prefix, g.Interface(), w.Interface())}
	}
	return nil
}
