package schedule_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/airtally/airtally/internal/schedule"
)

func example(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestExampleFiles imports the documented example files: every row is
// read, the post-log revises the airings it names, and importing them
// again changes nothing.
func TestExampleFiles(t *testing.T) {
	r := newRig(t)
	checkSummary(t, r.offers(example(t, "offers.csv")), schedule.Summary{Rows: 4, New: 4})
	checkSummary(t, r.schedule(example(t, "schedule.csv")), schedule.Summary{Rows: 7, New: 7})
	r.project()
	checkSummary(t, r.schedule(example(t, "postlog.csv")), schedule.Summary{Rows: 3, Revised: 3})
	r.project()
	cur := r.current()
	if !cur["FR-1124-01"].DidNotRun || cur["BS-1124-01"].SpendCents != 120000 || cur["BS-1124-01"].AiredAt != utc(2026, 11, 25, 1, 7) {
		t.Errorf("after the post-log: FR-1124-01 %+v, BS-1124-01 %+v", cur["FR-1124-01"], cur["BS-1124-01"])
	}
	checkSummary(t, r.offers(example(t, "offers.csv")), schedule.Summary{Rows: 4, Unchanged: 4})
	checkSummary(t, r.schedule(example(t, "postlog.csv")), schedule.Summary{Rows: 3, Unchanged: 3})
	// The schedule again would move the post-logged air times back: a
	// schedule row's time is the scheduled time (docs/airings.md).
	s := r.schedule(example(t, "schedule.csv"))
	if s.Unchanged != 4 || s.Revised != 3 {
		t.Errorf("schedule after its post-log: %+v", s)
	}
}
