package report_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/report/reporttest"
)

var sqlBlockRE = regexp.MustCompile("(?s)```sql\n(.*?)```")

// TestDocumentedQueriesRun runs every example query of docs/airings.md on
// ClickHouse 18.16 and on chDB, over the demo day, and checks that every
// shipped view is documented.
func TestDocumentedQueriesRun(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "airings.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range report.ViewNames() {
		if !strings.Contains(string(doc), name) {
			t.Errorf("view %s is not documented in docs/airings.md", name)
		}
	}
	blocks := sqlBlockRE.FindAllStringSubmatch(string(doc), -1)
	views := 0 // the audit views share their twins' examples
	for _, name := range report.ViewNames() {
		if !strings.HasSuffix(name, report.OnReadSuffix) {
			views++
		}
	}
	if len(blocks) < views-6 {
		t.Fatalf("only %d example queries in docs/airings.md", len(blocks))
	}
	d := demoday.Generate(demoday.Config{Date: testDate, Seed: 51})
	evs := reporttest.Number(d.Events, 1)
	for _, e := range []engine{on18(t, evs), onCHDB(t, evs)} {
		for i, b := range blocks {
			q := strings.ReplaceAll(b[1], "airtally.", e.db+".")
			if _, err := e.q.Query(context.Background(), q); err != nil {
				t.Errorf("%s: example query %d of docs/airings.md fails: %v\n%s", e.name, i+1, err, b[1])
			}
		}
	}
}
