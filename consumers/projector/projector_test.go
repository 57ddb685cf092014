package projector_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/airtally/airtally/consumers/projector"
	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/report/reporttest"
	"github.com/airtally/airtally/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.WithClickHouse(), testenv.WithCHDB())
}

var testDate = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

// sameAsOnRead runs o from the projection (with fromProjection, it must
// read some day from it) and on read, and requires the same JSON.
func sameAsOnRead(t *testing.T, q report.Querier, o report.Options, fromProjection bool) {
	t.Helper()
	fast, slow, same, err := reporttest.SameAsOnRead(context.Background(), q, o)
	if err != nil {
		t.Fatal(err)
	}
	if !same {
		explain(t, fast, slow)
		t.Errorf("by %s %s–%s: the projection's report differs from the report on read (read %+v)", o.By, o.Filter.From, o.Filter.To, fast.Read)
	}
	if fromProjection && fast.Read.DaysFromProjection == 0 {
		t.Errorf("by %s: no day was read from the projection (%+v)", o.By, fast.Read)
	}
}

func TestDemoDaySameAsOnRead(t *testing.T) {
	d := demoday.Generate(demoday.Config{Date: testDate, Seed: 7})
	evs := reporttest.Number(d.Events, 1)
	conn, db := testenv.NewDatabase(t, true)
	if err := reporttest.Load(t.Context(), conn, db, evs); err != nil {
		t.Fatal(err)
	}
	p, err := projector.New(projector.Native(conn), projector.Config{Database: db})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CatchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	q := report.Native(conn)
	for _, by := range append([]report.By{report.ByAiring}, dims()...) {
		sameAsOnRead(t, q, report.Options{Database: db, Filter: report.Filter{From: d.From, To: d.To}, By: by, Curves: by == report.ByAiring}, true)
	}
}

// explain logs the airings and rows that differ between two reports.
func explain(t *testing.T, fast, slow *report.Result) {
	t.Helper()
	byID := map[string]string{}
	for _, f := range slow.Airings {
		j, _ := json.Marshal(f)
		byID[f.AiringID] = string(j)
	}
	n := 0
	for _, f := range fast.Airings {
		j, _ := json.Marshal(f)
		if byID[f.AiringID] != string(j) && n < 5 {
			t.Logf("airing %s\n  projection: %s\n  on read:    %s", f.AiringID, j, byID[f.AiringID])
			n++
		}
		delete(byID, f.AiringID)
	}
	for id := range byID {
		t.Logf("airing %s only on read", id)
	}
	if len(fast.Airings) != len(slow.Airings) {
		t.Logf("%d airings from the projection, %d on read", len(fast.Airings), len(slow.Airings))
	}
	fu, _ := json.Marshal(fast.Unattributed)
	su, _ := json.Marshal(slow.Unattributed)
	if string(fu) != string(su) {
		t.Logf("unattributed\n  projection: %s\n  on read:    %s", fu, su)
	}
}

func dims() []report.By {
	var out []report.By
	for _, d := range report.Dimensions {
		out = append(out, report.By(d))
	}
	return out
}
