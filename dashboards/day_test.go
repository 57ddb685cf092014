package dashboards

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/producers/event"
)

// TestDashboardsOnTheKnownDay runs every panel's, variable's and
// annotation's query, rendered as Grafana and the ClickHouse plugin render
// them, on ClickHouse 18.16 and on current ClickHouse (chDB), against the
// known broadcast day with its faults (loaded through JetStream and the
// loader), and checks what they return: the columns each declares; the
// scorecard's, the airing detail's and the rollups' numbers against
// airtally report's (report.Run); the completeness panels against the
// faults injected; the variables' filters.
func TestDashboardsOnTheKnownDay(t *testing.T) {
	f := newFixture(t)
	from, to := f.day.Full.From, f.day.Full.To.Add(-time.Second)
	ctx := t.Context()
	opts := report.Options{Database: f.db, Filter: report.Filter{From: f.day.Full.From, To: f.day.Full.To}, Curves: true}
	rep, err := report.Run(ctx, report.Native(f.conn), opts)
	if err != nil {
		t.Fatalf("airtally report: %v", err)
	}
	if len(rep.Airings) < 10 {
		t.Fatalf("the report has %d airings; the day should have more", len(rep.Airings))
	}
	rollups := map[report.Dimension][]report.Rollup{}
	for _, dim := range []report.Dimension{report.ByStation, report.ByDaypart, report.ByISCI, report.ByOffer, report.ByWeek} {
		o := opts
		o.By, o.Curves = report.By(dim), false
		r, err := report.Run(ctx, report.Native(f.conn), o)
		if err != nil {
			t.Fatalf("airtally report --by %s: %v", dim, err)
		}
		rollups[dim] = r.Rollups
	}
	outage := affectedBy(t, f, "outage")

	for _, e := range []engine{server{f.conn}, current{f.ch, f.chdb}} {
		t.Run(e.name(), func(t *testing.T) {
			all := runAll(t, e, selection{"airing": {outage}}, from, to)
			t.Run("scorecard", func(t *testing.T) { checkScorecard(t, f, all[UIDScorecard], rep) })
			t.Run("airing detail", func(t *testing.T) { checkDetail(t, f, all[UIDDetail], rep, outage) })
			t.Run("media performance", func(t *testing.T) { checkMedia(t, all[UIDMedia], rollups) })
			t.Run("data completeness", func(t *testing.T) { checkCompleteness(t, f, all[UIDCompleteness], from, to) })
			t.Run("variables filter", func(t *testing.T) { checkFiltered(t, f, e, rep, from, to) })
			t.Run("loader and dead letters now", func(t *testing.T) {
				now := runAll(t, e, selection{}, f.loadedFrom.Add(-time.Hour), time.Now().Add(time.Hour), UIDCompleteness)
				checkNow(t, now[UIDCompleteness])
			})
		})
	}
}

// affectedBy is the airing the day's fault of that cause touched.
func affectedBy(t *testing.T, f *fixture, cause string) string {
	t.Helper()
	for id, a := range f.day.Airings {
		if slices.Contains(a.Causes, cause) {
			return id
		}
	}
	t.Fatalf("no airing touched by %s in the day's faults", cause)
	return ""
}

// near compares two numbers (nil: no value) within a relative 1e-9.
func near(t *testing.T, what string, got *float64, want *float64) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("%s = %v, want %v", what, deref(got), deref(want))
	case math.Abs(*got-*want) > 1e-9*math.Max(1, math.Abs(*want)):
		t.Errorf("%s = %v, want %v", what, *got, *want)
	}
}

func deref(p *float64) any {
	if p == nil {
		return "NULL"
	}
	return *p
}

func f64(v float64) *float64 { return &v }

func cents(c int64) *float64 { return f64(float64(c) / 100) }

func centsPtr(c *float64) *float64 {
	if c == nil {
		return nil
	}
	return f64(*c / 100)
}

func one(t *testing.T, res result, what string) map[string]any {
	t.Helper()
	if len(res.rows) != 1 {
		t.Fatalf("%s: %d rows, want 1", what, len(res.rows))
	}
	return res.rows[0]
}

func checkScorecard(t *testing.T, f *fixture, got map[string]result, rep *report.Result) {
	rows := got["panel 2 (Airings)"].rows
	if len(rows) != len(rep.Airings) {
		t.Fatalf("%d airings, the report has %d", len(rows), len(rep.Airings))
	}
	var calls, orders int64
	for i, want := range rep.Airings {
		r := rows[i]
		id := str(r, "airing_id")
		if id != want.AiringID {
			t.Fatalf("row %d is airing %s, the report's is %s (same order: air time, then id)", i, id, want.AiringID)
		}
		for _, c := range []struct {
			col  string
			want *float64
		}{
			{"cost", cents(want.MediaCostCents)},
			{"calls", f64(float64(want.Calls))},
			{"orders", f64(float64(want.Orders))},
			{"revenue", cents(want.NetRevenueCents)},
			{"cost_per_call", centsPtr(want.CostPerCallCents)},
			{"cost_per_order", centsPtr(want.CostPerOrderCents)},
			{"media_ratio", want.MediaRatio},
			{"target_ratio", want.TargetRatio},
			{"ratio_to_target", want.RatioToTarget},
		} {
			near(t, id+" "+c.col, num(t, r, c.col), c.want)
		}
		for col, want := range map[string]string{"station": want.Station, "market": want.Market, "offer": want.Offer, "creative": want.ISCI, "currency": want.Currency} {
			if g := str(r, col); g != want {
				t.Errorf("%s %s = %q, want %q", id, col, g, want)
			}
		}
		wantStatus := "accounted"
		if _, hit := f.day.Airings[id]; hit {
			wantStatus = "partial"
		} else if want.DidNotRun {
			wantStatus = "did_not_run"
		}
		if s := str(r, "status"); s != wantStatus {
			t.Errorf("%s status %q (%s), want %q", id, s, str(r, "reason"), wantStatus)
		}
		if wantStatus == "partial" && str(r, "reason") == "" {
			t.Errorf("%s is partial without a reason", id)
		}
		if lo, hi := num(t, r, "detail_from"), num(t, r, "detail_to"); *lo >= float64(want.ResponseStart) || *hi <= float64(want.ResponseEnd) {
			t.Errorf("%s: the detail link's range [%v, %v] does not cover its window [%d, %d]", id, *lo, *hi, want.ResponseStart, want.ResponseEnd)
		}
		calls += want.Calls
		orders += want.Orders
	}
	tot := one(t, got["panel 1 (Totals)"], "totals")
	near(t, "total airings", num(t, tot, "airings"), f64(float64(len(rep.Airings))))
	near(t, "total calls", num(t, tot, "calls"), f64(float64(calls)))
	near(t, "total orders", num(t, tot, "orders"), f64(float64(orders)))
	near(t, "partly recorded airings", num(t, tot, "partial_airings"), f64(float64(len(f.day.Airings))))
	for _, v := range []string{"offer", "station", "market"} {
		opts := got["variable "+v].rows
		seen := map[string]bool{}
		for _, a := range rep.Airings {
			field := map[string]string{"offer": a.Offer, "station": a.Station, "market": a.Market}[v]
			seen[field] = true
		}
		if len(opts) != len(seen) {
			t.Errorf("variable %s has %d options, the day's airings %d", v, len(opts), len(seen))
		}
	}
}

func checkDetail(t *testing.T, f *fixture, got map[string]result, rep *report.Result, id string) {
	var want report.Figures
	for _, a := range rep.Airings {
		if a.AiringID == id {
			want = a
		}
	}
	fig := one(t, got["panel 1 (Figures)"], "figures")
	near(t, "calls", num(t, fig, "calls"), f64(float64(want.Calls)))
	near(t, "orders", num(t, fig, "orders"), f64(float64(want.Orders)))
	near(t, "revenue", num(t, fig, "revenue"), cents(want.NetRevenueCents))
	near(t, "media ratio", num(t, fig, "media_ratio"), want.MediaRatio)
	acc := one(t, got["panel 2 (Airing and accountability)"], "accountability")
	if s := str(acc, "status"); s != "partial" || !strings.Contains(str(acc, "reason"), f.day.Faults.OutageSource) {
		t.Errorf("accountability %q, %q: want partial naming %s", s, str(acc, "reason"), f.day.Faults.OutageSource)
	}

	curve := got["panel 3 (Response curve against expected)"].rows
	if len(curve) != len(want.Curve) {
		t.Fatalf("response curve has %d minutes, the report's %d", len(curve), len(want.Curve))
	}
	for m, r := range curve {
		near(t, fmt.Sprintf("calls in minute %d", m), num(t, r, "calls"), f64(float64(want.Curve[m])))
		near(t, fmt.Sprintf("baseline in minute %d", m), num(t, r, "baseline_calls"), f64(want.BaselineRate))
	}
	if first := timeOf(t, curve[0]["time"]); !first.Equal(time.UnixMilli(want.ResponseStart).Truncate(time.Second)) {
		t.Errorf("the curve starts at %s, the airing at %s", first, time.UnixMilli(want.ResponseStart).UTC())
	}

	var attributed float64
	for _, r := range got["panel 4 (Calls and orders around it)"].rows {
		if str(r, "series") == "calls attributed to this airing" {
			attributed += *num(t, r, "value")
		}
	}
	near(t, "calls attributed over time", &attributed, f64(float64(want.Calls)))

	var airTimes []string
	for _, r := range got["annotation Air times"].rows {
		airTimes = append(airTimes, str(r, "text"))
	}
	if !slices.ContainsFunc(airTimes, func(s string) bool { return strings.Contains(s, id) }) {
		t.Errorf("air time annotations %v lack the airing %s", airTimes, id)
	}
	found := false
	for _, r := range got["annotation Not recorded: downtime, lost events, silent lines"].rows {
		if str(r, "text") == f.day.Faults.OutageSource+" down" {
			found = true
			if a, b := timeOf(t, r["time"]), timeOf(t, r["timeEnd"]); !a.Equal(f.day.Faults.Outage.From) || !b.Equal(f.day.Faults.Outage.To) {
				t.Errorf("downtime annotation %s–%s, want %s–%s", a, b, f.day.Faults.Outage.From, f.day.Faults.Outage.To)
			}
		}
	}
	if !found {
		t.Errorf("no downtime annotation for %s", f.day.Faults.OutageSource)
	}
	found = false
	for _, r := range got["panel 5 (Coverage per source)"].rows {
		if str(r, "source") == f.day.Faults.OutageSource && *num(t, r, "coverage") < 1 {
			found = true
		}
	}
	if !found {
		t.Errorf("coverage per source does not show %s short of full coverage: %v", f.day.Faults.OutageSource, got["panel 5 (Coverage per source)"].rows)
	}
	if n := len(got["variable airing"].rows); n != len(rep.Airings) {
		t.Errorf("the airing variable offers %d airings, the day has %d", n, len(rep.Airings))
	}
}

// timeOf reads a DateTime column of either engine.
func timeOf(t *testing.T, v any) time.Time {
	t.Helper()
	switch x := v.(type) {
	case time.Time:
		return x.UTC()
	case string:
		tm, err := time.Parse(time.DateTime, x)
		if err != nil {
			t.Fatalf("time %q: %v", x, err)
		}
		return tm
	}
	t.Fatalf("not a time: %T %v", v, v)
	return time.Time{}
}

// key reads a rollup key as the report writes it (dates as YYYY-MM-DD).
func key(v any) string {
	if tm, ok := v.(time.Time); ok {
		return tm.Format(time.DateOnly)
	}
	return fmt.Sprint(v)
}

func checkMedia(t *testing.T, got map[string]result, rollups map[report.Dimension][]report.Rollup) {
	panels := map[report.Dimension]struct{ panel, col string }{
		report.ByStation: {"panel 3 (By station / network)", "station"},
		report.ByDaypart: {"panel 4 (By daypart)", "daypart"},
		report.ByISCI:    {"panel 5 (By creative)", "creative"},
		report.ByOffer:   {"panel 6 (By offer)", "offer"},
		report.ByWeek:    {"panel 7 (By broadcast week)", "broadcast_week"},
	}
	for dim, p := range panels {
		rows := got[p.panel].rows
		want := map[string]report.Rollup{}
		for _, r := range rollups[dim] {
			want[r.Key] = r
		}
		if len(rows) != len(want) {
			t.Errorf("%s: %d rows, the report's rollup %d", p.panel, len(rows), len(want))
		}
		for _, r := range rows {
			k := key(r[p.col])
			w, ok := want[k]
			if !ok {
				t.Errorf("%s: key %q is not in the report's rollup", p.panel, k)
				continue
			}
			what := p.panel + " " + k + " "
			near(t, what+"airings", num(t, r, "airings"), f64(float64(w.Airings)))
			near(t, what+"cost", num(t, r, "cost"), cents(w.MediaCostCents))
			near(t, what+"calls", num(t, r, "calls"), f64(float64(w.Calls)))
			near(t, what+"orders", num(t, r, "orders"), f64(float64(w.Orders)))
			near(t, what+"revenue", num(t, r, "revenue"), cents(w.NetRevenueCents))
			near(t, what+"cost per call", num(t, r, "cost_per_call"), centsPtr(w.CostPerCallCents))
			near(t, what+"cost per order", num(t, r, "cost_per_order"), centsPtr(w.CostPerOrderCents))
			near(t, what+"media ratio", num(t, r, "media_ratio"), w.MediaRatio)
			near(t, what+"target ratio", num(t, r, "target_ratio"), w.TargetRatio)
			near(t, what+"ratio to target", num(t, r, "ratio_to_target"), w.RatioToTarget)
			near(t, what+"calls per 1000", num(t, r, "calls_per_1000"), w.CallsPer1000)
		}
	}
	if n := len(got["panel 1 (Media ratio by broadcast week, per offer)"].rows); n != len(rollups[report.ByOffer]) {
		t.Errorf("weekly trend has %d points, want one per offer (%d) for one week", n, len(rollups[report.ByOffer]))
	}
	if n := len(got["panel 2 (Media ratio and target by broadcast day)"].rows); n != 1 {
		t.Errorf("daily trend has %d points, want 1", n)
	}
}

func checkCompleteness(t *testing.T, f *fixture, got map[string]result, from, to time.Time) {
	fl := f.day.Faults
	glance := one(t, got["panel 1 (At a glance)"], "at a glance")
	for col, want := range map[string]float64{
		"sources_down": 0, "open_gaps": 1, "lost_events": float64(fl.GapTo - fl.GapFrom + 1), "silent_lines": 1,
		"airings_partly_recorded": float64(len(f.day.Airings)), "dead_letters": 0,
		"projection_lag_s": 0, // the fixture's projection is caught up
	} {
		near(t, col, num(t, glance, col), &want)
	}

	sources := map[string]bool{}
	for _, d := range f.day.Delivered {
		sources[d.Event.Source.System+"."+d.Event.Source.Instance] = true
	}
	for _, r := range got["panel 2 (Sources and heartbeats)"].rows {
		s := str(r, "source")
		if !sources[s] {
			t.Errorf("source %s listed; the day has no such source", s)
		}
		delete(sources, s)
		if st := str(r, "state"); st == "down" {
			t.Errorf("source %s is %s at the end of the day; every outage was over", s, st)
		}
	}
	if len(sources) > 0 {
		t.Errorf("sources missing from the heartbeat table: %v", sources)
	}

	period := to.Sub(from).Minutes()
	outageMin := fl.Outage.Minutes()
	for _, r := range got["panel 3 (Availability against the uptime target)"].rows {
		s := str(r, "source")
		near(t, s+" period", num(t, r, "period_minutes"), &period)
		near(t, s+" target", num(t, r, "target"), f64(0.999))
		if s == fl.OutageSource {
			near(t, s+" down minutes", num(t, r, "down_minutes"), &outageMin)
			near(t, s+" availability", num(t, r, "availability"), f64(1-outageMin/period))
			near(t, s+" meets target", num(t, r, "meets_target"), f64(0))
			if a := num(t, r, "airings_affected"); a == nil || *a < 1 {
				t.Errorf("%s: airings affected %v, want at least 1", s, deref(a))
			}
			continue
		}
		near(t, s+" down minutes", num(t, r, "down_minutes"), f64(0))
		near(t, s+" meets target", num(t, r, "meets_target"), f64(1))
	}

	wantAlerts := map[string]string{
		fl.OutageSource + " down": "down",
		fmt.Sprintf("%s lost events %d-%d", fl.GapSource, fl.GapFrom, fl.GapTo): "gap",
		fl.SilentDNIS + " silent": "silent",
	}
	for _, r := range got["panel 4 (Alerts: incidents that touched airings)"].rows {
		what := str(r, "what")
		cause, ok := wantAlerts[what]
		if !ok {
			t.Errorf("unexpected incident %q", what)
			continue
		}
		delete(wantAlerts, what)
		if c := str(r, "cause"); c != cause {
			t.Errorf("%s: kind %q, want %q", what, c, cause)
		}
		if a := num(t, r, "airings_touched"); a == nil || *a < 1 {
			t.Errorf("%s touched %v airings; the day's fault touched one", what, deref(a))
		}
	}
	if len(wantAlerts) > 0 {
		t.Errorf("incidents missing: %v", wantAlerts)
	}

	silence := one(t, got["panel 5 (Silences and downtime windows)"], "silences")
	if str(silence, "source") != fl.OutageSource || str(silence, "outcome") != "down" {
		t.Errorf("silence %v, want %s down", silence, fl.OutageSource)
	}
	near(t, "silence minutes", num(t, silence, "minutes"), &outageMin)

	gap := one(t, got["panel 6 (Sequence gaps)"], "gaps")
	near(t, "gap from", num(t, gap, "seq_from"), f64(float64(fl.GapFrom)))
	near(t, "gap to", num(t, gap, "seq_to"), f64(float64(fl.GapTo)))
	if str(gap, "source") != fl.GapSource || str(gap, "status") != "open" {
		t.Errorf("gap %v, want %s open", gap, fl.GapSource)
	}

	line := one(t, got["panel 7 (Suspected outages: silent lines)"], "silent lines")
	if str(line, "dnis") != fl.SilentDNIS || str(line, "source") != "" {
		t.Errorf("silent line %v, want %s everywhere", line, fl.SilentDNIS)
	}
	near(t, "silent minutes", num(t, line, "minutes"), f64(fl.Silent.Minutes()))

	late := map[string]string{}
	for _, r := range got["panel 8 (Late data)"].rows {
		late[str(r, "source")] = str(r, "waited_at")
	}
	if want := map[string]string{fl.SpoolSource: event.OutcomeProducer, "loader." + loaderInstance: event.OutcomeLoader}; fmt.Sprint(late) != fmt.Sprint(want) {
		t.Errorf("late data %v, want %v", late, want)
	}
}

// checkNow checks the panels about the loader, over the hour in which the
// fixture loaded the day.
func checkNow(t *testing.T, got map[string]result) {
	lag := got["panel 9 (Loader lag)"].rows
	if len(lag) == 0 {
		t.Fatal("no loader lag points while the day was being loaded")
	}
	for _, r := range lag {
		if v := num(t, r, "max_lag_seconds"); v == nil || *v < -1 || *v > 600 {
			t.Errorf("loader lag %v s", deref(v))
		}
	}
	dead := one(t, got["panel 10 (Dead letters)"], "dead letters")
	if str(dead, "reason") == "" {
		t.Errorf("dead letter without a reason: %v", dead)
	}
	near(t, "dead letters at a glance", num(t, one(t, got["panel 1 (At a glance)"], "at a glance"), "dead_letters"), f64(1))
}

// checkFiltered selects an offer, two stations (one with a quote in its
// name, which must not break the SQL) and the partial status, and checks
// that the scorecard and the rollups show exactly the matching airings.
func checkFiltered(t *testing.T, f *fixture, e engine, rep *report.Result, from, to time.Time) {
	partial := rep.Airings[0]
	for _, a := range rep.Airings {
		if _, hit := f.day.Airings[a.AiringID]; hit {
			partial = a
			break
		}
	}
	sel := selection{
		"offer": {partial.Offer}, "station": {partial.Station, "O'Brien TV"}, "status": {"partial"},
	}
	got := runAll(t, e, sel, from, to, UIDScorecard, UIDMedia)
	var want []string
	for _, a := range rep.Airings {
		if _, hit := f.day.Airings[a.AiringID]; hit && a.Offer == partial.Offer && a.Station == partial.Station {
			want = append(want, a.AiringID)
		}
	}
	var ids []string
	for _, r := range got[UIDScorecard]["panel 2 (Airings)"].rows {
		ids = append(ids, str(r, "airing_id"))
	}
	if !slices.Equal(ids, want) {
		t.Errorf("filtered scorecard shows %v, want %v", ids, want)
	}
	offers := got[UIDMedia]["panel 6 (By offer)"].rows
	if len(offers) != 1 || str(offers[0], "offer") != partial.Offer {
		t.Errorf("filtered rollup by offer %v, want only %s", offers, partial.Offer)
	}
}
