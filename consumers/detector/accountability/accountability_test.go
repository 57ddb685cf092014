package accountability

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/schema"
)

func TestSQL(t *testing.T) {
	from := time.Date(2025, 11, 24, 11, 0, 0, 0, time.UTC)
	sql, err := SQL("airtally", from, from.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FROM `airtally`.airing_accountability", "aired_at >= toDateTime('2025-11-24 11:00:00', 'UTC')",
		"aired_at < toDateTime('2025-11-25 11:00:00', 'UTC')", "estimated_missing_calls", "adjusted_cost_per_order_cents", "ORDER BY aired_at, airing_id"} {
		if !strings.Contains(sql, want) {
			t.Errorf("query lacks %q:\n%s", want, sql)
		}
	}
	if _, err := SQL("no-such db", from, from.Add(time.Hour)); err == nil {
		t.Error("a bad database name was accepted")
	}
	if _, err := SQL("airtally", from, from); !errors.Is(err, ErrRange) {
		t.Errorf("empty range: %v", err)
	}
}

// row is a row as each engine returns it: typed values and pointers from
// the native protocol, JSON numbers and quoted 64-bit integers from chDB.
func row(native bool) report.Row {
	r := report.Row{}
	for _, c := range columns() {
		r[c] = ""
	}
	f := func(x float64) any {
		if native {
			return &x
		}
		return json.Number(formatFloat(x))
	}
	set := func(name string, nativeV, jsonV any) {
		if native {
			r[name] = nativeV
		} else {
			r[name] = jsonV
		}
	}
	set("aired_at", time.Date(2025, 11, 24, 14, 15, 0, 0, time.UTC), "2025-11-24 14:15:00")
	set("response_start_ms", int64(1764000000000), "1764000000000")
	set("response_end_ms", int64(1764002700000), "1764002700000")
	set("window_minutes", int64(45), "45")
	set("did_not_run", uint8(0), json.Number("0"))
	set("late_events", uint64(0), "0")
	set("calls", uint64(324), "324")
	set("orders", uint64(152), "152")
	set("phone_orders", uint64(100), "100")
	set("web_orders", uint64(52), "52")
	set("net_revenue_cents", int64(600000), "600000")
	set("media_cost_cents", int64(150000), "150000")
	set("no_response", uint8(0), json.Number("0"))
	set("orphan_cancellations", uint64(2), "2")
	r["missing_calls_bound"] = f(40)
	r["missing_orders_bound"] = nil
	for _, c := range []string{"uncovered_minutes", "coverage", "max_delay_minutes", "estimated_missing_calls", "estimated_missing_orders",
		"adjusted_calls", "adjusted_orders", "adjusted_net_revenue_cents", "shared_calls", "expected_calls", "comparable_min_calls"} {
		if native {
			r[c] = 10.5
		} else {
			r[c] = json.Number("10.5")
		}
	}
	for _, c := range []string{"cost_per_order_cents", "adjusted_cost_per_order_cents", "media_ratio", "adjusted_media_ratio", "ratio_to_target", "adjusted_ratio_to_target"} {
		r[c] = f(986.8)
	}
	r["target_ratio"] = nil
	r["airing_id"], r["status"], r["reason"] = "FR-0915-HGTV", StatusPartial, "acd.tampa-01 down 10 min"
	return r
}

func formatFloat(x float64) string { b, _ := json.Marshal(x); return string(b) }

func TestDecodeBothEngines(t *testing.T) {
	a, err := Decode(row(true))
	if err != nil {
		t.Fatalf("native row: %v", err)
	}
	b, err := Decode(row(false))
	if err != nil {
		t.Fatalf("JSON row: %v", err)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("engines decode differently:\n%s\n%s", ja, jb)
	}
	if a.Calls != 324 || a.Coverage != 10.5 || a.CostPerOrderCents == nil || *a.CostPerOrderCents != 986.8 || a.TargetRatio != nil ||
		!a.AiredAt.Equal(time.Date(2025, 11, 24, 14, 15, 0, 0, time.UTC)) || a.DidNotRun ||
		a.MissingCallsBound == nil || *a.MissingCallsBound != 40 || a.MissingOrdersBound != nil || a.OrphanCancellations != 2 || a.NoResponse {
		t.Fatalf("decoded %+v", a)
	}
	bad := row(true)
	delete(bad, "reason")
	if _, err := Decode(bad); err == nil || !strings.Contains(err.Error(), "reason") {
		t.Errorf("a missing column: %v", err)
	}
	bad = row(true)
	bad["calls"] = "many"
	if _, err := Decode(bad); err == nil || !strings.Contains(err.Error(), "calls") {
		t.Errorf("a bad value: %v", err)
	}
}

func TestWrite(t *testing.T) {
	a, err := Decode(row(true))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := Write(&b, []Airing{a}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"AIRING", "CPO ADJ.", "FR-0915-HGTV", "2025-11-24 14:15", "partial", "~10", "9.87", "acd.tampa-01 down 10 min"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// TestEveryFieldIsAViewColumn: Query selects every field of Airing from
// the newest airing_accountability view, so each must be one of its
// columns.
func TestEveryFieldIsAViewColumn(t *testing.T) {
	migs, err := schema.Migrations("db")
	if err != nil {
		t.Fatal(err)
	}
	var view string
	for _, m := range migs {
		for _, st := range m.Statements {
			if regexp.MustCompile(`(?i)^\s*CREATE\s+VIEW\b[^(]*\.` + View + `\s+AS\b`).MatchString(st) {
				view = st // the newest replaces the earlier ones
			}
		}
	}
	if !strings.Contains(view, "late_events") {
		t.Fatalf("the migrations' %s view was not found", View)
	}
	head, _, _ := strings.Cut(view, "\nFROM\n")
	for _, name := range columns() {
		if !regexp.MustCompile(`\b` + name + `\b`).MatchString(head) {
			t.Errorf("the %s view has no column %s", View, name)
		}
	}
}

func TestWeekOf(t *testing.T) {
	for _, c := range []struct{ at, monday string }{
		{"2025-11-24T00:00:00Z", "2025-11-24"}, // a Monday
		{"2025-11-30T23:59:59Z", "2025-11-24"}, // its Sunday
		{"2025-12-01T00:00:00Z", "2025-12-01"},
		{"1970-01-01T00:00:00Z", "1969-12-29"},
		{"1969-12-28T12:00:00Z", "1969-12-22"},
	} {
		at, _ := time.Parse(time.RFC3339, c.at)
		if got := time.UnixMilli(WeekOf(at.UnixMilli())).UTC().Format(time.DateOnly); got != c.monday {
			t.Errorf("WeekOf(%s) = %s, want %s", c.at, got, c.monday)
		}
	}
}

func TestRestrict(t *testing.T) {
	in := "SELECT a FROM (SELECT x FROM db.events" + sliceMarker + "\n    WHERE kind = 'a' OR kind = ')'\n    GROUP BY x) AS t\n" +
		"ALL LEFT JOIN (SELECT y FROM db.events FINAL" + sliceMarker + " WHERE (k = 1 OR k = 2) AND z IN (SELECT 1)) AS u USING (y)\n" +
		"WHERE a IN (SELECT a FROM db.events" + sliceMarker + " WHERE b = 'it''s' OR c)"
	want := "SELECT a FROM (SELECT x FROM db.events\n    WHERE (P) AND (kind = 'a' OR kind = ')')\n    GROUP BY x) AS t\n" +
		"ALL LEFT JOIN (SELECT y FROM db.events FINAL WHERE (P) AND ((k = 1 OR k = 2) AND z IN (SELECT 1))) AS u USING (y)\n" +
		"WHERE a IN (SELECT a FROM db.events WHERE (P) AND (b = 'it''s' OR c))"
	got, err := restrict(in, sliceMarker, "P")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("restrictEvents:\n got %s\nwant %s", got, want)
	}
	if _, err := restrict("SELECT 1 FROM db.events"+sliceMarker+" GROUP BY x", sliceMarker, "P"); err == nil {
		t.Error("a read of events without WHERE: no error")
	}
}
