package backup_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/internal/cli"
	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
)

// TestCommands runs `airtally backup` and `airtally restore` as an
// operator would, and gets the same report from the restored database.
func TestCommands(t *testing.T) {
	src := loadedStack(t)
	addr := testenv.ClickHouse().Addr()
	dir := filepath.Join(t.TempDir(), "backup")
	run := func(args ...string) string {
		t.Helper()
		var out, errs bytes.Buffer
		if code := cli.Run(t.Context(), args, &out, &errs); code != 0 {
			t.Fatalf("airtally %s: exit %d: %s", strings.Join(args, " "), code, errs.String())
		}
		return out.String()
	}
	out := run("backup", "--nats-url", src.nc.ConnectedUrl(), "--clickhouse-addr", addr,
		"--clickhouse-database", src.db, "--dir", dir, "--log-file", filepath.Join(t.TempDir(), "backup.log"))
	if !strings.Contains(out, "stream DRTV:") || !strings.Contains(out, "backup written to") {
		t.Errorf("backup printed:\n%s", out)
	}

	fresh := testenv.StartNATS(t, natsembed.Config{})
	conn2, db2 := testenv.NewDatabase(t, false)
	out = run("restore", "--nats-url", fresh.URL, "--clickhouse-addr", addr,
		"--clickhouse-database", db2, "--dir", dir, "--log-file", filepath.Join(t.TempDir(), "restore.log"))
	if !strings.Contains(out, "stream DRTV restored") || !strings.Contains(out, "events restored") {
		t.Errorf("restore printed:\n%s", out)
	}
	js2, err := jetstream.New(testenv.Connect(t, fresh.URL))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := streamMsgs(t, js2, streams.DefaultEventsStream), streamMsgs(t, src.js, streams.DefaultEventsStream); got != want {
		t.Errorf("restored stream holds %d messages, want %d", got, want)
	}
	if got := renderReport(t, conn2, db2, src.day); got != src.report {
		t.Errorf("report on the database restored by the command differs:\n got %s\nwant %s", got, src.report)
	}

	// A second restore finds the streams there and says so politely.
	var errs bytes.Buffer
	code := cli.Run(t.Context(), []string{"restore", "--nats-url", fresh.URL, "--clickhouse-addr", addr,
		"--clickhouse-database", db2, "--dir", dir, "--log-file", filepath.Join(t.TempDir(), "again.log")}, &bytes.Buffer{}, &errs)
	if code != 1 || !strings.Contains(errs.String(), "error id") || !strings.Contains(errs.String(), "must not exist yet") {
		t.Errorf("second restore: exit %d, %q; want 1 and a polite message with an error id", code, errs.String())
	}

	// Tables only, next to an intact stream (ClickHouse lost, NATS fine):
	// no NATS is contacted, the report is the same.
	conn3, db3 := testenv.NewDatabase(t, false)
	out = run("restore", "--skip-streams", "--nats-url", "nats://127.0.0.1:1", "--clickhouse-addr", addr,
		"--clickhouse-database", db3, "--dir", dir, "--log-file", filepath.Join(t.TempDir(), "tables.log"))
	if strings.Contains(out, "stream") || !strings.Contains(out, "events restored") {
		t.Errorf("tables-only restore printed:\n%s", out)
	}
	if got := renderReport(t, conn3, db3, src.day); got != src.report {
		t.Errorf("report on the tables-only restore differs:\n got %s\nwant %s", got, src.report)
	}
}
