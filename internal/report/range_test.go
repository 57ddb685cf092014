package report_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/report/reporttest"
)

// TestRangesAndFilters checks that a report over part of the day, or
// narrowed to an offer, station or market, shows exactly the airings it
// should with exactly the figures the whole day gives them (attribution
// always weighs every airing), and the unattributed calls and orders of
// its range.
func TestRangesAndFilters(t *testing.T) {
	d := demoday.Generate(demoday.Config{Date: testDate, Seed: 31})
	e := on18(t, reporttest.Number(d.Events, 1))
	cases := []struct {
		name     string
		from, to time.Time
		filter   report.Filter
		keep     func(report.Figures) bool
	}{
		{"13:00 to 17:00", d.From.Add(7 * time.Hour), d.From.Add(11 * time.Hour), report.Filter{}, nil},
		{"the first minute of an airing", time.UnixMilli(d.Truth.Airings["BS-1400-CNBC"].AiredAtMS), time.UnixMilli(d.Truth.Airings["BS-1400-CNBC"].AiredAtMS + 1), report.Filter{}, nil},
		{"offer bright-smile", d.From, d.To, report.Filter{Offer: "bright-smile"}, func(f report.Figures) bool { return f.Offer == "bright-smile" }},
		{"station CNBC", d.From, d.To, report.Filter{Station: "CNBC"}, func(f report.Figures) bool { return f.Station == "CNBC" }},
		{"market Tampa", d.From, d.To, report.Filter{Market: "Tampa"}, func(f report.Figures) bool { return f.Market == "Tampa" }},
		{"nothing aired", d.To.Add(time.Hour), d.To.Add(2 * time.Hour), report.Filter{}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := c.filter
			f.From, f.To = c.from, c.to
			res := run(t, e, report.Options{Filter: f})
			var want []string
			for id, a := range d.Truth.Airings {
				in := a.AiredAtMS >= c.from.UnixMilli() && a.AiredAtMS < c.to.UnixMilli()
				if in && (c.keep == nil || c.keep(a)) {
					want = append(want, id)
				}
			}
			if c.name != "nothing aired" && len(want) == 0 {
				t.Fatal("the case selects no airing")
			}
			for i := range res.Airings {
				res.Airings[i].Curve = d.Truth.Airings[res.Airings[i].AiringID].Curve
			}
			checkAirings(t, c.name, res.Airings, d.Truth, want)
			checkUnattributed(t, c.name, res.Unattributed, d.Truth.UnattributedBetween(c.from, c.to))
		})
	}
}

// TestKeysAgreeWithSQL checks that the Go twins of the matching keys give
// the keys the queries compute, on both engines.
func TestKeysAgreeWithSQL(t *testing.T) {
	inputs := []string{
		"8005550101", "18005550101", "1-800-555-0101", "+1 (800) 555-0101", "800.555.0101", "28005550101", "", "abc",
		"SMILE", " smile ", "Smile 10", "\tflex\n", "ÄBC", "https://www.Foo.example/tv/", "HTTP://foo.example", "www.foo.example//",
		"foo.example/TV", "  https://foo.example  ", "ftp://foo.example/", "wwwx.foo.example",
	}
	var sel []string
	for i, in := range inputs {
		lit := chsql.String(in)
		sel = append(sel, "SELECT "+chsql.Int(int64(i))+" AS i, "+report.ExportDNISKeySQL(lit)+" AS dnis, "+report.ExportPromoKeySQL(lit)+" AS promo, "+report.ExportVanityKeySQL(lit)+" AS vanity")
	}
	q := "SELECT * FROM (" + strings.Join(sel, " UNION ALL ") + ") ORDER BY i"
	conn := testenv18(t)
	ch := chdbQuerier(t)
	for _, eng := range []struct {
		name string
		q    report.Querier
	}{{"ClickHouse 18.16", report.Native(conn)}, {"chDB", ch}} {
		rows, err := eng.q.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("%s: %v", eng.name, err)
		}
		if len(rows) != len(inputs) {
			t.Fatalf("%s: %d rows", eng.name, len(rows))
		}
		for i, r := range rows {
			in := inputs[i]
			for _, k := range []struct {
				col, want string
			}{{"dnis", report.DNISKey(in)}, {"promo", report.PromoKey(in)}, {"vanity", report.VanityKey(in)}} {
				if got := r[k.col]; got != k.want {
					t.Errorf("%s: %s key of %q = %q, Go says %q", eng.name, k.col, in, got, k.want)
				}
			}
		}
	}
}
