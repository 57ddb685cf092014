package schema_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/schema"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // nil: error
	}{
		{"one", "CREATE TABLE a (x UInt8) ENGINE = Memory;\n", []string{"CREATE TABLE a (x UInt8) ENGINE = Memory"}},
		{"two with comments and blanks", "-- head\n\nSELECT 1;\n  -- between\nSELECT\n  2 ;  \n", []string{"SELECT 1", "SELECT\n  2"}},
		{"semicolon inside a line does not split", "SELECT ';' ;\n", []string{"SELECT ';'"}},
		{"crlf", "SELECT 1;\r\nSELECT 2;\r\n", []string{"SELECT 1", "SELECT 2"}},
		{"unterminated", "SELECT 1;\nSELECT 2\n", nil},
		{"empty", "-- nothing\n", nil},
		{"only semicolon", ";\n", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := schema.Split(tc.body)
			if tc.want == nil {
				if err == nil {
					t.Errorf("Split = %q, want an error", got)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("Split = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	const ok = "CREATE TABLE IF NOT EXISTS {{db}}.t (x UInt8) ENGINE = Memory;\n"
	tests := []struct {
		name    string
		files   map[string]string
		db      string
		wantErr string
	}{
		{"ok", map[string]string{"0002_b.sql": ok, "0001_a.sql": ok}, "db1", ""},
		{"bad name", map[string]string{"1_a.sql": ok}, "db1", "want NNNN_name.sql"},
		{"upper case name", map[string]string{"0001_A.sql": ok}, "db1", "want NNNN_name.sql"},
		{"version zero", map[string]string{"0000_a.sql": ok}, "db1", "start at 0001"},
		{"duplicate version", map[string]string{"0001_a.sql": ok, "0001_b.sql": ok}, "db1", "two migrations"},
		{"unknown placeholder", map[string]string{"0001_a.sql": "SELECT {{database}};\n"}, "db1", "unknown placeholder"},
		{"bad database", map[string]string{"0001_a.sql": ok}, "db-1", "invalid identifier"},
		{"unterminated", map[string]string{"0001_a.sql": "SELECT 1\n"}, "db1", "does not end"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for name, body := range tc.files {
				fsys["m/"+name] = &fstest.MapFile{Data: []byte(body)}
			}
			migs, err := schema.Load(fsys, "m", tc.db)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Load = %v; want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(migs) != 2 || migs[0].Version != 1 || migs[0].Name != "a" || migs[1].Version != 2 {
				t.Fatalf("Load = %+v, want versions 1 (a), 2 (b)", migs)
			}
			if want := "CREATE TABLE IF NOT EXISTS `db1`.t (x UInt8) ENGINE = Memory"; migs[0].Statements[0] != want {
				t.Errorf("rendered %q, want %q", migs[0].Statements[0], want)
			}
			if len(migs[0].Checksum) != 64 {
				t.Errorf("checksum %q is not a hex SHA-256", migs[0].Checksum)
			}
		})
	}
}

func TestEmbeddedMigrations(t *testing.T) {
	migs, err := schema.Migrations("airtally")
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) == 0 || migs[0].Version != 1 || migs[0].Name != "events" {
		t.Fatalf("Migrations = %+v, want 0001_events first", migs)
	}
	for _, m := range migs {
		for _, s := range m.Statements {
			if strings.Contains(s, "{{") || strings.HasSuffix(s, ";") {
				t.Errorf("%04d statement not rendered cleanly: %s", m.Version, s)
			}
		}
	}
	if !strings.Contains(migs[0].Statements[0], "CREATE TABLE IF NOT EXISTS `airtally`.events") {
		t.Errorf("first statement: %s", migs[0].Statements[0])
	}
	if _, err := schema.Migrations("bad name"); !errors.Is(err, chsql.ErrIdent) {
		t.Errorf("Migrations(bad name) = %v, want ErrIdent", err)
	}
}
