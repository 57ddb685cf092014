package report_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/airtally/airtally/internal/report"
)

var update = flag.Bool("update", false, "rewrite the newest views migration (report.ViewsMigrationFile) from the builder")

// TestViewsMigrationUpToDate keeps the shipped views equal to the report's
// query builder: the views and the report are one implementation.
func TestViewsMigrationUpToDate(t *testing.T) {
	path := filepath.Join("..", "..", "schema", "migrations", report.ViewsMigrationFile)
	want := report.ViewsMigration()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s differs from report.ViewsMigration(); if the views changed on purpose, add a migration that drops and re-creates them (an applied migration must never change)", path)
	}
}
