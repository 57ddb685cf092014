package report_test

import (
	"testing"

	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/report/reporttest"
)

// TestGroundTruthDay loads the generated day into ClickHouse 18.16 and
// into current ClickHouse (chDB), and checks every figure of every airing,
// the unattributed bucket, every rollup and every response curve against
// the truth computed in Go, through the report (ranged queries) and
// through the shipped views.
func TestGroundTruthDay(t *testing.T) {
	d := demoday.Generate(demoday.Config{Date: testDate, Seed: 11})
	evs := reporttest.Number(d.Events, 1)
	for _, e := range []engine{on18(t, evs), onCHDB(t, evs)} {
		t.Run(e.name, func(t *testing.T) {
			res := run(t, e, dayOptions(d))
			checkAirings(t, e.name+" report", res.Airings, d.Truth, allIDs(d.Truth))
			checkUnattributed(t, e.name+" report", res.Unattributed, d.Truth.UnattributedBetween(d.From, d.To))
			for _, dim := range report.Dimensions {
				o := dayOptions(d)
				o.By, o.Curves = report.By(dim), false
				r := run(t, e, o)
				checkRollups(t, e.name+" report", dim, r.Rollups, d.Truth.Rollups[dim])
			}
		})
	}
}
