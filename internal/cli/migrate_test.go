package cli

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/schema"
)

// On two replicated ClickHouse 18.16 servers: "airtally migrate
// --clickhouse-cluster" migrates both through one; a replica that lost its
// tables gets them back with --replica-of, and its rows by replication.
func TestMigrateClusterAndReplicaOf(t *testing.T) {
	c := testenv.StartCluster(t, 2)
	r1, r2 := c.Replicas[0].Addr(), c.Replicas[1].Addr()
	run := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, append([]string{"migrate", "--log-file", os.DevNull, "--clickhouse-cluster", testenv.ClusterName}, args...)...)
		if code != 0 {
			t.Fatalf("migrate %v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out
	}
	migs, err := schema.Migrations("airtally")
	if err != nil {
		t.Fatal(err)
	}
	var versions []int
	for _, m := range migs {
		versions = append(versions, m.Version)
	}
	if out := run("--clickhouse-addr", r1); !strings.Contains(out, fmt.Sprintf("applied migrations %v to airtally", versions)) {
		t.Fatalf("first migrate: %q, want every migration %v applied", out, versions)
	}
	conn2, err := c.Replicas[1].Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if err := conn2.Exec(t.Context(), "DROP DATABASE airtally"); err != nil {
		t.Fatal(err)
	}
	out := run("--clickhouse-addr", r2, "--replica-of", r1)
	if !strings.Contains(out, "tables and views of airtally as on "+r1) || !strings.Contains(out, "events") || !strings.Contains(out, "schema of airtally is up to date") {
		t.Fatalf("migrate --replica-of: %q", out)
	}
	var n uint64
	if err := conn2.QueryRow(t.Context(), "SELECT count() FROM system.tables WHERE database = 'airtally' AND engine LIKE 'Replicated%'").Scan(&n); err != nil || n != 13 {
		t.Fatalf("replicated tables on replica 2: %d, %v; want 13 (events, dead_letters, airings, offers, schema_migrations, airing_measures, projection_days, projection_marks,"+
			" accountability_airings, accountability_coverage, accountability_shapes, accountability_weeks, accountability_marks)", n, err)
	}
}
