package dashboards

import (
	"testing"
	"time"

	"github.com/airtally/airtally/internal/report/reporttest"
	"github.com/airtally/airtally/internal/testenv"
)

// TestQueriesOnEmptyDatabase runs every query on a freshly migrated,
// empty database: the dashboards must open (with no rows) before any
// event arrived.
func TestQueriesOnEmptyDatabase(t *testing.T) {
	from := time.Date(2025, 11, 24, 11, 0, 0, 0, time.UTC)
	to := from.Add(24*time.Hour - time.Second)
	sel := selection{"airing": {"none"}}
	t.Run("ClickHouse 18.16", func(t *testing.T) {
		conn, _ := testenv.NewDatabase(t, true)
		runAll(t, server{conn}, sel, from, to)
	})
	t.Run("current ClickHouse", func(t *testing.T) {
		ch, db := testenv.ChDB(t)
		if err := reporttest.MigrateCHDB(ch, db); err != nil {
			t.Fatal(err)
		}
		runAll(t, current{ch, db}, sel, from, to)
	})
}
