package detector

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/airtally/airtally/consumers/detector/accountability"
	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/consumers/projector"
	"github.com/airtally/airtally/internal/airings"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
)

// rulesDay is a small broadcast day built by hand, each airing a case of
// one accountability rule (docs/accountability.md), with the detections
// the detector would have published already in it.
type rulesDay struct {
	events []*event.Event
	from   time.Time
	// gapBound is the evidence bound of the phoenix gap.
	gapBound float64
	// overlapCalls is the number of calls in the shared window.
	overlapCalls int
}

var (
	rulesTampa   = event.Source{System: "acd", Instance: "tampa-01"}
	rulesPhoenix = event.Source{System: "acd", Instance: "phoenix-01"}
	rulesConsole = event.Source{System: "console", Instance: "orders-01"}
	rulesSched   = event.Source{System: "schedule", Instance: "rules"}
	rulesDet     = event.Source{System: event.DetectorSystem, Instance: "main"}
)

// buildRulesDay: nine airings of one offer two hours apart, each on its own
// number (most DR airings are), except two that share a number at the same
// minute:
//
//	R1 tampa down from +3 to +13 min (its only call centre)  → partial, 10 min
//	R2 no call at all (silent from the start)               → no_response
//	R3 phoenix lost events from +5 to +15 min              → partial, bounded
//	R4, R5 one number, same minute, spends 5:3            → split 5:3
//	R6 order console down +20 to +25, an orphan cancel      → partial, orphan
//	R7, R8 clean                                            → accounted
//	R9 did not run                                          → did_not_run
func buildRulesDay() rulesDay {
	start := proofDate.Add(11 * time.Hour)
	d := rulesDay{from: start}
	var seqs = map[string]uint64{}
	add := func(e *event.Event) *event.Event {
		if e.Source.System != event.DetectorSystem && e.Source.System != rulesSched.System {
			seqs[e.Source.Key()]++
			e.Source.Seq = seqs[e.Source.Key()]
		}
		d.events = append(d.events, e)
		return e
	}
	add((airings.Offer{Offer: "glow", Currency: "USD", TargetRatioPct: 150, WindowMinutes: 60}).Event(rulesSched, start.Add(-72*time.Hour)))
	type spot struct {
		id, dnis string
		at       time.Duration
		spend    int64
		src      event.Source
		calls    int
		dnr      bool
	}
	spots := []spot{
		{"R1", "8005551001", 0, 50000, rulesTampa, 60, false},
		{"R2", "8005551002", 2 * time.Hour, 50000, rulesTampa, 0, false},
		{"R3", "8005551003", 4 * time.Hour, 50000, rulesPhoenix, 60, false},
		{"R4", "8005551004", 6 * time.Hour, 50000, rulesTampa, 0, false},
		{"R5", "8005551004", 6 * time.Hour, 30000, rulesTampa, 0, false},
		{"R6", "8005551006", 8 * time.Hour, 50000, rulesTampa, 60, false},
		{"R7", "8005551007", 10 * time.Hour, 50000, rulesTampa, 60, false},
		{"R8", "8005551008", 12 * time.Hour, 50000, rulesPhoenix, 60, false},
		{"R9", "8005551009", 14 * time.Hour, 50000, rulesTampa, 0, true},
	}
	callN := 0
	call := func(src event.Source, dnis string, at time.Time) *event.Event {
		callN++
		c := event.New(event.CallReceived, src, at)
		c.CallID, c.DNIS, c.Site = fmt.Sprintf("r-%05d", callN), dnis, src.Instance
		return c
	}
	// calls of a 60-minute window, denser early: n calls at 45·(k/n)² min.
	offsets := func(n int) []time.Duration {
		out := make([]time.Duration, n)
		for k := range out {
			out[k] = time.Duration(45 * math.Pow(float64(k)/float64(n), 2) * float64(time.Minute))
		}
		return out
	}
	var calls []*event.Event
	for i, s := range spots {
		a := airings.Airing{ID: s.id, Offer: "glow", Station: "WXYZ", Market: "Tampa", MediaType: "tv", ISCI: "GLOW060",
			AiredAt: start.Add(s.at), LengthSeconds: 60, SpendCents: s.spend, Currency: "USD", DNIS: s.dnis}
		add(a.Event(event.AiringScheduled, rulesSched, start.Add(-48*time.Hour+time.Duration(i)*time.Second)))
		if s.dnr {
			a.DidNotRun = true
			add(a.Event(event.AiringCancelled, rulesSched, start.Add(30*time.Hour)))
		}
		for _, off := range offsets(s.calls) {
			calls = append(calls, call(s.src, s.dnis, a.AiredAt.Add(off+time.Second)))
		}
	}
	// R4 and R5: 80 calls on their shared number.
	for _, off := range offsets(80) {
		calls = append(calls, call(rulesTampa, "8005551004", start.Add(6*time.Hour+off+time.Second)))
	}
	d.overlapCalls = 80
	outage := [2]time.Time{start.Add(3 * time.Minute), start.Add(13 * time.Minute)}
	gap := [2]time.Time{start.Add(4*time.Hour + 5*time.Minute), start.Add(4*time.Hour + 15*time.Minute)}
	consoleOut := [2]time.Time{start.Add(8*time.Hour + 20*time.Minute), start.Add(8*time.Hour + 25*time.Minute)}
	in := func(t time.Time, s [2]time.Time) bool { return !t.Before(s[0]) && t.Before(s[1]) }

	// Every source heartbeats each minute; the events of the day in time
	// order, numbered per source as they occur.
	var timed []*event.Event
	for t := start.Add(-time.Hour); t.Before(start.Add(16 * time.Hour)); t = t.Add(time.Minute) {
		for _, src := range []event.Source{rulesTampa, rulesPhoenix, rulesConsole} {
			h := event.New(event.Heartbeat, src, t)
			h.IntervalSeconds = 60
			timed = append(timed, h)
		}
	}
	orderN := 0
	for i, c := range calls {
		timed = append(timed, c)
		if c.DNIS == "8005551006" && i%3 == 0 || c.DNIS == "8005551007" || c.DNIS == "8005551008" {
			orderN++
			o := event.New(event.OrderPlaced, rulesConsole, c.OccurredAt.Add(3*time.Minute))
			o.OrderID, o.CallID, o.DNIS, o.Offer, o.Channel = fmt.Sprintf("o-%05d", orderN), c.CallID, c.DNIS, "glow", event.ChannelPhone
			o.AmountCents, o.Currency = 4995, "USD"
			timed = append(timed, o)
		}
	}
	sortByTime(timed)
	var gapFrom, gapTo uint64
	var before, after time.Time
	for _, e := range timed {
		switch {
		case e.Source.Key() == rulesTampa.Key() && in(e.OccurredAt, outage):
			continue // down: recorded nothing
		case e.Source.Key() == rulesConsole.Key() && in(e.OccurredAt, consoleOut):
			continue
		}
		add(e)
		if e.Source.Key() == rulesPhoenix.Key() {
			switch {
			case in(e.OccurredAt, gap):
				if gapFrom == 0 {
					gapFrom = e.Source.Seq
				}
				gapTo = e.Source.Seq
			case e.OccurredAt.Before(gap[0]):
				before = e.OccurredAt
			case after.IsZero():
				after = e.OccurredAt
			}
		}
	}
	// The gap: phoenix's events in it never reached the store.
	kept := d.events[:0]
	for _, e := range d.events {
		if e.Source.Key() == rulesPhoenix.Key() && e.Source.Seq >= gapFrom && e.Source.Seq <= gapTo {
			continue
		}
		kept = append(kept, e)
	}
	d.events = kept
	span := after.Sub(before).Seconds()
	d.gapBound = float64(gapTo-gapFrom+1) - math.Max(0, math.Ceil(span/60)-1)

	// A cancellation of an order lost in the console's outage.
	cancel := event.New(event.OrderCancelled, rulesConsole, start.Add(20*time.Hour))
	cancel.OrderID, cancel.Offer = "o-lost-1", "glow"
	add(cancel)

	// What the detector published about it.
	det := func(k event.Kind, src event.Source, from, to time.Time) {
		e := event.New(k, rulesDet, to)
		e.MonitoredSystem, e.MonitoredInstance, e.WindowStart, e.WindowEnd = src.System, src.Instance, from, to
		switch k {
		case event.SourceDown:
			e.OccurredAt, e.WindowEnd, e.ToleranceSeconds = from, time.Time{}, 150
		case event.SourceUp:
			e.Outcome, e.ToleranceSeconds = event.OutcomeDown, 150
		case event.GapOpened:
			e.SeqFrom, e.SeqTo = gapFrom, gapTo
		}
		add(e)
	}
	det(event.SourceDown, rulesTampa, outage[0], outage[1])
	det(event.SourceUp, rulesTampa, outage[0], outage[1])
	det(event.SourceDown, rulesConsole, consoleOut[0], consoleOut[1])
	det(event.SourceUp, rulesConsole, consoleOut[0], consoleOut[1])
	det(event.GapOpened, rulesPhoenix, before, after)
	return d
}

func sortByTime(evs []*event.Event) {
	for i := 1; i < len(evs); i++ {
		for j := i; j > 0 && evs[j].OccurredAt.Before(evs[j-1].OccurredAt); j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
}

// TestAccountabilityRules checks each rule of docs/accountability.md on a
// day built for it, on ClickHouse 18.16 and on current ClickHouse.
func TestAccountabilityRules(t *testing.T) {
	d := buildRulesDay()
	conn, db := testenv.NewDatabase(t, true)
	ins, err := loader.NewDirectInserter(t.Context(), conn, db)
	if err != nil {
		t.Fatal(err)
	}
	storeRulesEvents(t, ins, d, d.events)
	var ps []airings.Projected
	for i, e := range d.events {
		if e.Kind.IsAiring() || e.Kind == event.OfferConfigured {
			ps = append(ps, airings.Projected{Event: e, StreamSeq: uint64(i + 1)})
		}
	}
	if err := airings.Insert(t.Context(), conn, db, ps); err != nil {
		t.Fatal(err)
	}
	catchUp(t, projector.Native(conn), db)
	from, to := d.from.Add(-time.Hour), d.from.Add(24*time.Hour)
	on18, err := accountability.Query(t.Context(), report.Native(conn), db, from, to)
	if err != nil {
		t.Fatal(err)
	}
	checkRules(t, "ClickHouse 18.16", d, on18)
	sameFromEverySource(t, report.Native(conn), db, from, to, on18, accountability.SourceSlices, accountability.SourceOnRead)
	t.Run("current ClickHouse", func(t *testing.T) {
		ch, cdb := testenv.ChDB(t)
		copyToCHDB(t, conn, db, ch, cdb)
		got, err := accountability.Query(t.Context(), chdbQuerier{ch}, cdb, from, to)
		if err != nil {
			t.Fatal(err)
		}
		checkRules(t, "chDB", d, got)
		sameAccountability(t, on18, got)
		// got was computed on read over its slice (the projection's
		// tables are not copied): the on-read view is left.
		sameFromEverySource(t, chdbQuerier{ch}, cdb, from, to, got, accountability.SourceOnRead)
	})
}

func checkRules(t *testing.T, engine string, d rulesDay, rows []accountability.Airing) {
	t.Helper()
	by := map[string]accountability.Airing{}
	for _, a := range rows {
		by[a.AiringID] = a
		t.Logf("%s: %s %s calls %d shared %.1f expected %.1f uncovered %.1f missing %.1f/%.1f bound %v: %s", engine, a.AiringID, a.Status,
			a.Calls, a.SharedCalls, a.ExpectedCalls, a.UncoveredMinutes, a.EstimatedMissingCalls, a.EstimatedMissingOrders, fmtBound(a.MissingCallsBound), a.Reason)
	}
	status := func(id, want string) accountability.Airing {
		t.Helper()
		a := by[id]
		if a.Status != want {
			t.Errorf("%s: %s status %q (%s), want %s", engine, id, a.Status, a.Reason, want)
		}
		return a
	}
	// The seed case: an airing with its own number whose only call centre
	// went down 3 minutes into its window.
	r1 := status("R1", accountability.StatusPartial)
	if math.Abs(r1.UncoveredMinutes-10) > 0.01 || !strings.Contains(r1.Reason, "acd.tampa-01 down 10 min") || r1.EstimatedMissingCalls <= 0 {
		t.Errorf("%s: R1 uncovered %.2f min, missing %.1f: %s", engine, r1.UncoveredMinutes, r1.EstimatedMissingCalls, r1.Reason)
	}
	// A paid airing with no call while its call centre was up.
	r2 := status("R2", accountability.StatusNoResponse)
	if r2.ExpectedCalls < 40 || r2.ExpectedCalls > 80 || r2.EstimatedMissingCalls < 40 || !r2.NoResponse || !strings.Contains(r2.Reason, "suspected silent line") {
		t.Errorf("%s: R2 expected %.1f calls, missing %.1f: %s", engine, r2.ExpectedCalls, r2.EstimatedMissingCalls, r2.Reason)
	}
	// A gap: bounded by its numbers less the heartbeats due in it.
	r3 := status("R3", accountability.StatusPartial)
	if r3.MissingCallsBound == nil || *r3.MissingCallsBound != d.gapBound || r3.EstimatedMissingCalls > d.gapBound || r3.EstimatedMissingCalls <= 0 {
		t.Errorf("%s: R3 bound %s (want %.0f), missing %.1f", engine, fmtBound(r3.MissingCallsBound), d.gapBound, r3.EstimatedMissingCalls)
	}
	// Two airings at the same minute on one number: split by spend, the
	// whole kept; neither dead with full confidence.
	r4, r5 := status("R4", accountability.StatusAccounted), status("R5", accountability.StatusAccounted)
	if r4.Calls+r5.Calls != int64(d.overlapCalls) || math.Abs(r4.SharedCalls+r5.SharedCalls-float64(d.overlapCalls)) > 1e-6 ||
		math.Abs(r5.SharedCalls-float64(d.overlapCalls)*3/8) > 1e-6 || r5.SharedWith != "R4" || !strings.Contains(r5.Reason, "shares 8005551004 with R4") {
		t.Errorf("%s: R4/R5 calls %d/%d shared %.2f/%.2f with %q/%q: %s", engine, r4.Calls, r5.Calls, r4.SharedCalls, r5.SharedCalls, r4.SharedWith, r5.SharedWith, r5.Reason)
	}
	// The order console out: partial, and the orphan cancellation found.
	r6 := status("R6", accountability.StatusPartial)
	if r6.OrphanCancellations != 1 || r6.EstimatedMissingOrders < 1 || !strings.Contains(r6.Reason, "1 cancellations name orders never received") {
		t.Errorf("%s: R6 orphans %d, missing orders %.1f: %s", engine, r6.OrphanCancellations, r6.EstimatedMissingOrders, r6.Reason)
	}
	for _, id := range []string{"R7", "R8"} {
		if a := status(id, accountability.StatusAccounted); a.Reason != "full coverage" || a.SharedCalls != float64(a.Calls) {
			t.Errorf("%s: %s: %s, shared %.2f of %d", engine, id, a.Reason, a.SharedCalls, a.Calls)
		}
	}
	status("R9", accountability.StatusDidNotRun)
}

func fmtBound(b *float64) string {
	if b == nil {
		return "none"
	}
	return fmt.Sprintf("%.0f", *b)
}

// sameFromEverySource checks that the accountability of [from, to) read
// from each of srcs (computed week by week over each week's slice, read
// from the on-read view over all history) is want.
func sameFromEverySource(t *testing.T, q report.Querier, db string, from, to time.Time, want []accountability.Airing, srcs ...accountability.Source) {
	t.Helper()
	if len(want) == 0 {
		t.Fatal("no airing to compare")
	}
	for _, src := range srcs {
		got, err := accountability.QueryFrom(t.Context(), q, db, from, to, src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if len(got) != len(want) {
			t.Errorf("accountability from %s: %d airings, want %d", src, len(got), len(want))
			continue
		}
		for i := range got {
			g, _ := json.Marshal(got[i])
			w, _ := json.Marshal(want[i])
			if string(g) != string(w) {
				t.Errorf("accountability from %s differs (first difference):\n got %s\nwant %s", src, g, w)
				break
			}
		}
	}
}

// TestAccountabilityFollowsLateEvents stores the rules day without its
// detections, cancellations and heartbeats, lets the projector compute
// its week (settled: the day is long past), then stores them, marks them
// as the loader does and lets the projector catch up: the projection must
// then hold what the on-read view computes, and every rule's outcome.
// Without the week marks of detections and orphan cancellations the week
// would stay as first computed (no partial airing, no orphan).
func TestAccountabilityFollowsLateEvents(t *testing.T) {
	d := buildRulesDay()
	conn, db := testenv.NewDatabase(t, true)
	ins, err := loader.NewDirectInserter(t.Context(), conn, db)
	if err != nil {
		t.Fatal(err)
	}
	var early, late []*event.Event
	var ps []airings.Projected
	for i, e := range d.events {
		switch {
		case e.Kind.IsAiring() || e.Kind == event.OfferConfigured:
			ps = append(ps, airings.Projected{Event: e, StreamSeq: uint64(i + 1)})
		case e.Kind.IsDetection() || e.Kind == event.OrderCancelled || e.Kind == event.Heartbeat:
			late = append(late, e)
		default:
			early = append(early, e)
		}
	}
	if len(late) == 0 {
		t.Fatal("the rules day has no detection")
	}
	if err := airings.Insert(t.Context(), conn, db, ps); err != nil {
		t.Fatal(err)
	}
	storeRulesEvents(t, ins, d, early)
	catchUp(t, projector.Native(conn), db)
	from, to := d.from.Add(-time.Hour), d.from.Add(24*time.Hour)
	before, err := accountability.Query(t.Context(), report.Native(conn), db, from, to)
	if err != nil {
		t.Fatal(err)
	}
	partial := 0
	for _, a := range before {
		if a.Status == accountability.StatusPartial {
			partial++
		}
	}
	if partial != 0 {
		t.Fatalf("before the detections: %d partial airings", partial)
	}
	storeRulesEvents(t, ins, d, late)
	touches := make([]projector.Touch, len(late))
	for i, e := range late {
		touches[i] = projector.TouchOf(e)
	}
	if err := projector.Mark(t.Context(), projector.Native(conn), db, touches); err != nil {
		t.Fatal(err)
	}
	catchUp(t, projector.Native(conn), db)
	states, err := accountability.Weeks(t.Context(), report.Native(conn), db)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range states {
		if w.CurrentDaysVersion > 0 && !w.Clean() { // a week with no airing day is never computed
			t.Errorf("week of %s not clean after catching up: %+v", time.UnixMilli(w.Week).UTC().Format(time.DateOnly), w)
		}
	}
	got, err := accountability.Query(t.Context(), report.Native(conn), db, from, to)
	if err != nil {
		t.Fatal(err)
	}
	checkRules(t, "ClickHouse 18.16, late events", d, got)
	sameFromEverySource(t, report.Native(conn), db, from, to, got, accountability.SourceOnRead)
}

// storeRulesEvents stores evs of the rules day, as loaded two days after it.
func storeRulesEvents(t *testing.T, ins *loader.DirectInserter, d rulesDay, evs []*event.Event) {
	t.Helper()
	rows, err := ins.Rows(evs, 1, d.from.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := ins.Insert(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
}
