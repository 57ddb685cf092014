package report_test

import (
	"context"
	"testing"

	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/report/reporttest"
)

// TestViewsEqualTruth reads the shipped views (what analysts query) on
// both engines: the same numbers as the report and as the truth, from the
// projection (once the projector has computed the day) and on read
// (the audit views, ..._on_read).
func TestViewsEqualTruth(t *testing.T) {
	d := demoday.Generate(demoday.Config{Date: testDate, Seed: 12})
	evs := reporttest.Number(d.Events, 1)
	ctx := context.Background()
	for _, e := range []engine{on18(t, evs), onCHDB(t, evs)} {
		project(t, e)
		for _, suffix := range []string{"", report.OnReadSuffix} {
			t.Run(e.name+suffix, func(t *testing.T) {
				rows, err := e.q.Query(ctx, "SELECT * FROM "+e.db+"."+report.ViewFigures+suffix+" ORDER BY airing_id")
				if err != nil {
					t.Fatal(err)
				}
				var got []report.Figures
				for _, r := range rows {
					f, err := report.DecodeFigures(r)
					if err != nil {
						t.Fatal(err)
					}
					if f.AiringID == "" {
						checkUnattributed(t, e.name+" view", f, d.Truth.Unattributed)
						continue
					}
					f.Curve = d.Truth.Airings[f.AiringID].Curve // checked below
					got = append(got, f)
				}
				checkAirings(t, e.name+" view", got, d.Truth, allIDs(d.Truth))

				for _, dim := range report.Dimensions {
					rows, err := e.q.Query(ctx, "SELECT * FROM "+e.db+"."+dim.View()+suffix+" ORDER BY "+dim.Column())
					if err != nil {
						t.Fatal(err)
					}
					var rs []report.Rollup
					for _, r := range rows {
						ru, err := report.DecodeRollup(r, dim)
						if err != nil {
							t.Fatal(err)
						}
						rs = append(rs, ru)
					}
					checkRollups(t, e.name+" view", dim, rs, d.Truth.Rollups[dim])
				}

				rows, err = e.q.Query(ctx, "SELECT airing_id, minute, calls FROM "+e.db+"."+report.ViewCurve+suffix)
				if err != nil {
					t.Fatal(err)
				}
				curves := map[string]map[int64]int64{}
				for _, r := range rows {
					f, _ := report.DecodeFigures(r) // airing_id and calls
					var m struct{ Minute int64 }
					m.Minute = mustInt(t, r["minute"])
					if curves[f.AiringID] == nil {
						curves[f.AiringID] = map[int64]int64{}
					}
					curves[f.AiringID][m.Minute] = f.Calls
				}
				for id, f := range d.Truth.Airings {
					for minute, want := range f.Curve {
						if got := curves[id][int64(minute)]; got != want {
							t.Errorf("%s: curve of %s minute %d: %d calls, want %d", e.name, id, minute, got, want)
						}
					}
					var sum int64
					for _, n := range curves[id] {
						sum += n
					}
					if sum != f.Calls {
						t.Errorf("%s: curve of %s adds up to %d calls, want %d", e.name, id, sum, f.Calls)
					}
				}
			})
		}
	}
}
