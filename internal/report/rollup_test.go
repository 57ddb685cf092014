package report_test

import (
	"testing"

	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/report/reporttest"
)

// TestRollupCarriesUnattributed checks that a rollup report, which
// computes its figures once (the rollup query carries the unattributed
// bucket), gives the unattributed bucket of a report by airing, and the
// truth, for every dimension, on both engines.
func TestRollupCarriesUnattributed(t *testing.T) {
	d := demoday.Generate(demoday.Config{Date: testDate, Seed: 13})
	evs := reporttest.Number(d.Events, 1)
	for _, e := range []engine{on18(t, evs), onCHDB(t, evs)} {
		t.Run(e.name, func(t *testing.T) {
			want := d.Truth.UnattributedBetween(d.From, d.To)
			byAiring := run(t, e, dayOptions(d))
			checkUnattributed(t, e.name+" by airing", byAiring.Unattributed, want)
			for _, dim := range report.Dimensions {
				o := dayOptions(d)
				o.By, o.Curves = report.By(dim), false
				r := run(t, e, o)
				checkUnattributed(t, e.name+" by "+string(dim), r.Unattributed, want)
				checkUnattributed(t, e.name+" by "+string(dim)+" against by airing", r.Unattributed, byAiring.Unattributed)
				checkRollups(t, e.name+" by "+string(dim), dim, r.Rollups, d.Truth.Rollups[dim])
				if len(r.Airings) != 0 {
					t.Errorf("%s: a rollup by %s lists %d airings", e.name, dim, len(r.Airings))
				}
			}
		})
	}
}
