package detector

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/airtally/airtally/consumers/detector/accountability"
	"github.com/airtally/airtally/consumers/detector/faultday"
	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/schema"
)

// proofDate is the proof's broadcast day: in the past, so that every
// response window (and every cancellation) is over.
var proofDate = time.Date(2025, 11, 24, 0, 0, 0, 0, time.UTC)

// proofSeeds are the seeds the proof runs; PROOF_SEEDS=1-20 runs more
// (the estimates are judged against what each seed's faults really
// dropped, a random draw).
func proofSeeds(t *testing.T) []uint64 { return seedRange(t, "PROOF_SEEDS", "1", false) }

// seedRange reads the seeds in environment variable env (default def):
// "N-M", or "N" (the seed N alone, or 1 to N when upTo is set).
func seedRange(t *testing.T, env, def string, upTo bool) []uint64 {
	t.Helper()
	spec := cmp.Or(os.Getenv(env), def)
	lo, hi, ranged := strings.Cut(spec, "-")
	a, err1 := strconv.ParseUint(lo, 10, 64)
	b, err2 := strconv.ParseUint(hi, 10, 64)
	switch {
	case !ranged && upTo:
		a, b, err2 = 1, a, nil
	case !ranged:
		b, err2 = a, nil
	}
	if err1 != nil || err2 != nil || b < a || a == 0 {
		t.Fatalf("%s=%q: want N or N-M", env, spec)
	}
	var seeds []uint64
	for s := a; s <= b; s++ {
		seeds = append(seeds, s)
	}
	return seeds
}

// TestProofFaultDay plays a broadcast day with injected faults through the
// real path (JetStream, the detector and its publisher, the loader,
// ClickHouse 18.16, and the same tables on current ClickHouse through
// chDB) and checks the accountability against the known truth: exactly the
// affected airings flagged partial, with their uncovered minutes right to
// the minute and their missing calls estimated within 25% of the calls
// really dropped; the spooled delay flagged as delayed, not lost;
// everything else accounted; the same statuses after a replay of the
// stream into a fresh database, and the same detections from a second
// detector that re-derives them.
func TestProofFaultDay(t *testing.T) {
	for _, seed := range proofSeeds(t) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { proveDay(t, seed) })
	}
}

func proveDay(t *testing.T, seed uint64) {
	ctx := t.Context()
	d := faultday.Generate(faultday.Config{Date: proofDate, Seed: seed})
	b := newBroker(t)
	seqs := b.deliver(t, d.Delivered)
	last := seqs[len(seqs)-1]

	first := b.runDetector(t, b.publisher(t), simDetector())
	waitApplied(t, first, last)
	first.stop()
	dets := first.rec.published()
	checkDetections(t, d, dets)

	conn, db := testenv.NewDatabase(t, true)
	b.load(t, conn, db, d.Delivered, seqs)
	from, to := d.Full.From.Add(-time.Hour), d.Full.To.Add(time.Hour)
	on18, err := accountability.Query(ctx, report.Native(conn), db, from, to)
	if err != nil {
		t.Fatalf("accountability on 18.16: %v", err)
	}
	checkAccountability(t, "ClickHouse 18.16", d, on18)
	// One row per airing whatever columns a query reads (18.16 once dropped
	// an unused aggregate from the view's one-row subquery and returned a
	// row per event).
	var perAiring, airingsN uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".airing_accountability").Scan(&perAiring); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT uniqExact(airing_id) FROM "+db+".airings").Scan(&airingsN); err != nil {
		t.Fatal(err)
	}
	if perAiring != airingsN || perAiring == 0 {
		t.Fatalf("airing_accountability has %d rows for %d airings", perAiring, airingsN)
	}

	t.Run("current ClickHouse", func(t *testing.T) {
		ch, cdb := testenv.ChDB(t)
		copyToCHDB(t, conn, db, ch, cdb)
		got, err := accountability.Query(ctx, chdbQuerier{ch}, cdb, from, to)
		if err != nil {
			t.Fatalf("accountability on chDB: %v", err)
		}
		checkAccountability(t, "chDB", d, got)
		sameAccountability(t, on18, got)
	})

	t.Run("replay", func(t *testing.T) { sameAfterReplay(t, b, d.Delivered, seqs, from, to, on18) })
	t.Run("detector again", func(t *testing.T) { sameFromDetectorAgain(t, b, dets) })
}

// sameAfterReplay: a fresh database rebuilt from the stream (detections
// included) gives the same accountability as want.
func sameAfterReplay(t *testing.T, b *broker, ds []faultday.Delivery, seqs []uint64, from, to time.Time, want []accountability.Airing) {
	t.Helper()
	ctx := t.Context()
	rconn, rdb := testenv.NewDatabase(t, false)
	if _, err := loader.Replay(ctx, b.js, rconn, loader.ReplayConfig{Database: rdb, Logger: quiet()}); err != nil {
		t.Fatalf("replay: %v", err)
	}
	project(t, rconn, rdb, ds, seqs)
	got, err := accountability.Query(ctx, report.Native(rconn), rdb, from, to)
	if err != nil {
		t.Fatal(err)
	}
	sameAccountability(t, want, got)
}

// sameFromDetectorAgain: a second detector (its own consumer and state)
// derives the very same detection events as dets: same ids, same content;
// JetStream keeps one copy of each.
func sameFromDetectorAgain(t *testing.T, b *broker, dets []*event.Event) {
	t.Helper()
	before := len(b.detections(t))
	cfg := simDetector()
	cfg.Consumer, cfg.StateBucket = "detector-again", "AIRTALLY_DETECTOR_AGAIN"
	again := b.runDetector(t, b.publisher(t), cfg)
	waitApplied(t, again, b.lastSeq(t))
	again.stop()
	sameDetections(t, dets, again.rec.published())
	if after := len(b.detections(t)); after != before {
		t.Errorf("the stream holds %d detections after the second detector, %d before: some were doubled", after, before)
	}
}

// checkDetections: the spool was a delay, not downtime; the skewed clock
// made nothing; no id twice.
func checkDetections(t *testing.T, d faultday.Day, dets []*event.Event) {
	t.Helper()
	f := d.Faults
	ids := map[uuid.UUID]bool{}
	var delayed *event.Event
	for _, e := range dets {
		if ids[e.EventID] {
			t.Errorf("detection id %s published twice", e.EventID)
		}
		ids[e.EventID] = true
		if e.WindowStart.After(d.Full.To) {
			continue // the day's sources stop at its end: not part of the proof
		}
		switch {
		case e.MonitoredKey() == f.SkewSource:
			t.Errorf("the source whose clock is %s off was flagged: %s %s", f.Skew, e.Kind, e.WindowStart)
		case e.Kind == event.DataDelayed && e.MonitoredKey() == f.SpoolSource:
			delayed = e
		case e.Kind == event.SourceUp && e.MonitoredKey() == f.SpoolSource && !e.WindowStart.Before(f.Spool.From) && e.WindowStart.Before(f.Spool.To):
			if e.Outcome != event.OutcomeDelayed {
				t.Errorf("the spooled source's silence ended as %q, want delayed", e.Outcome)
			}
		}
	}
	if delayed == nil {
		t.Fatal("no data.delayed for the spooled source")
	}
	if d := time.Duration(delayed.DelayMS) * time.Millisecond; d < 4*time.Minute+30*time.Second || d > 5*time.Minute+5*time.Second {
		t.Errorf("spool delay %s, want about five minutes", d)
	}
	if d := delayed.WindowStart.Sub(f.Spool.From); d < 0 || d > time.Second || delayed.Outcome != event.OutcomeProducer {
		t.Errorf("data.delayed %s from %s, want from %s at the producer", delayed.Outcome, delayed.WindowStart, f.Spool.From)
	}
}

func checkAccountability(t *testing.T, engine string, d faultday.Day, rows []accountability.Airing) {
	t.Helper()
	byID := map[string]accountability.Airing{}
	for _, a := range rows {
		byID[a.AiringID] = a
	}
	var totalTruth, totalEstimate float64
	for id, f := range d.Full.Truth.Airings {
		a, ok := byID[id]
		if !ok {
			t.Errorf("%s: airing %s missing", engine, id)
			continue
		}
		truth, affected := d.Airings[id]
		switch {
		case f.DidNotRun:
			if a.Status != accountability.StatusDidNotRun {
				t.Errorf("%s: %s status %s, want did_not_run", engine, id, a.Status)
			}
		case !affected:
			if a.Status != accountability.StatusAccounted || a.UncoveredMinutes != 0 || a.EstimatedMissingCalls != 0 || a.Coverage != 1 {
				t.Errorf("%s: %s should be accounted: %s (%s), %.2f min uncovered, %.1f calls missing",
					engine, id, a.Status, a.Reason, a.UncoveredMinutes, a.EstimatedMissingCalls)
			}
		default:
			if a.Status != accountability.StatusPartial {
				t.Errorf("%s: %s status %s (%s), want partial (%v)", engine, id, a.Status, a.Reason, truth.Causes)
			}
			// Right to the minute: outages and gaps are exact; a silent
			// line's ends are estimated from when calls were expected.
			if math.Abs(a.UncoveredMinutes-truth.UncoveredMinutes) >= 1 {
				t.Errorf("%s: %s uncovered %.2f min, truth %.2f", engine, id, a.UncoveredMinutes, truth.UncoveredMinutes)
			}
			within(t, engine+": "+id+" missing calls", a.EstimatedMissingCalls, float64(truth.DroppedCalls), 0.25)
			// Orders are fewer (a third of the calls), so noisier: a sanity
			// bound only (over twenty seeds they fell within -28%..+36%).
			within(t, engine+": "+id+" missing orders", a.EstimatedMissingOrders, float64(truth.DroppedOrders), 0.5)
			totalTruth += float64(truth.DroppedCalls)
			totalEstimate += a.EstimatedMissingCalls
			t.Logf("%s: %s %s: uncovered %.2f min (truth %.2f), missing calls ~%.1f (dropped %d), orders ~%.1f (dropped %d); CPO %s → %s",
				engine, id, a.Reason, a.UncoveredMinutes, truth.UncoveredMinutes, a.EstimatedMissingCalls, truth.DroppedCalls,
				a.EstimatedMissingOrders, truth.DroppedOrders, cents(a.CostPerOrderCents), cents(a.AdjustedCostPerOrderCents))
			if a.AdjustedCostPerOrderCents == nil || a.CostPerOrderCents == nil || *a.AdjustedCostPerOrderCents >= *a.CostPerOrderCents {
				t.Errorf("%s: %s adjusted cost per order %s not below measured %s", engine, id, cents(a.AdjustedCostPerOrderCents), cents(a.CostPerOrderCents))
			}
		}
	}
	if len(d.Airings) != 3 {
		t.Fatalf("the fault day touched %d airings, want 3", len(d.Airings))
	}
	within(t, engine+": missing calls in all", totalEstimate, totalTruth, 0.25)
	for _, id := range []string{"BS-2000-WFLA", "BS-2000-KTVK"} {
		if a := byID[id]; !strings.Contains(a.Reason, "late, none lost") || a.LateEvents == 0 {
			t.Errorf("%s: %s does not say the spooled events were late: %q", engine, id, a.Reason)
		}
	}
}

func within(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if want == 0 || math.Abs(got-want) > tol*want {
		t.Errorf("%s: %.1f, want %.0f ± %.0f%%", what, got, want, tol*100)
	}
}

func cents(c *float64) string {
	if c == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *c/100)
}

// sameAccountability: two engines (or two databases) agree on every
// airing.
func sameAccountability(t *testing.T, want, got []accountability.Airing) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d airings, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.AiringID != w.AiringID || g.Status != w.Status || g.Reason != w.Reason || !near(g.UncoveredMinutes, w.UncoveredMinutes) ||
			!near(g.EstimatedMissingCalls, w.EstimatedMissingCalls) || !near(g.EstimatedMissingOrders, w.EstimatedMissingOrders) ||
			!near(g.Coverage, w.Coverage) || g.Calls != w.Calls || g.LateEvents != w.LateEvents {
			t.Errorf("airing %s differs:\n got %+v\nwant %+v", w.AiringID, g, w)
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) }

// sameDetections: two runs published the same detection events.
func sameDetections(t *testing.T, want, got []*event.Event) {
	t.Helper()
	norm := func(evs []*event.Event) []string {
		var out []string
		for _, e := range evs {
			c := *e
			c.Source.Seq = 0 // numbered by each run's publisher
			b, _ := json.Marshal(&c)
			out = append(out, string(b))
		}
		sort.Strings(out)
		return out
	}
	w, g := norm(want), norm(got)
	if strings.Join(w, "\n") != strings.Join(g, "\n") {
		t.Fatalf("the second detector derived other detections: %d vs %d", len(g), len(w))
	}
}

// copyToCHDB copies the events table and the airing projections of db on
// 18.16 into database cdb of the chDB session, migrated the same way.
func copyToCHDB(t *testing.T, conn driver.Conn, db string, ch *testenv.CHDB, cdb string) {
	t.Helper()
	ident, err := chsql.Ident(cdb)
	if err != nil {
		t.Fatal(err)
	}
	migs, err := schema.Migrations(cdb)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migs {
		for _, s := range m.Statements {
			if err := ch.Exec(s); err != nil {
				t.Fatalf("chDB migration %04d: %v", m.Version, err)
			}
		}
	}
	for _, table := range []string{"events", "airings", "offers"} {
		rows, err := report.Native(conn).Query(context.Background(), "SELECT * FROM "+db+"."+table)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, r := range rows {
			m := map[string]any{}
			for k, v := range r {
				switch x := v.(type) {
				case time.Time:
					if x.Year() < 1971 {
						m[k] = "1970-01-01 00:00:00"
					} else {
						m[k] = x.UTC().Format(time.DateTime)
					}
				case uuid.UUID:
					m[k] = x.String()
				default:
					m[k] = x
				}
			}
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, string(b))
		}
		for i := 0; i < len(lines); i += 5000 {
			chunk := lines[i:min(i+5000, len(lines))]
			if err := ch.Exec("INSERT INTO " + ident + "." + table + " FORMAT JSONEachRow\n" + strings.Join(chunk, "\n")); err != nil {
				t.Fatalf("chDB insert into %s: %v", table, err)
			}
		}
	}
	catchUp(t, chdbQuerier{ch}, cdb)
}

// chdbQuerier runs queries and statements on the chDB session.
type chdbQuerier struct{ ch *testenv.CHDB }

func (q chdbQuerier) Exec(_ context.Context, sql string) error { return q.ch.Exec(sql) }

func (q chdbQuerier) Query(_ context.Context, sql string) ([]report.Row, error) {
	rows, err := q.ch.QueryJSON(sql)
	if err != nil {
		return nil, err
	}
	out := make([]report.Row, len(rows))
	for i, r := range rows {
		out[i] = report.Row(r)
	}
	return out, nil
}
