package schema_test

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/schema"
)

func TestClusterize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"CREATE DATABASE IF NOT EXISTS `d`", "CREATE DATABASE IF NOT EXISTS `d` ON CLUSTER `c`"},
		{"CREATE TABLE IF NOT EXISTS `d`.t (n UInt8) ENGINE = MergeTree() ORDER BY n",
			"CREATE TABLE IF NOT EXISTS `d`.t ON CLUSTER `c` (n UInt8) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/d/t', '{replica}') ORDER BY n"},
		{"CREATE TABLE IF NOT EXISTS `d`.`t`\n(v UInt8)\nENGINE = ReplacingMergeTree(v)\nORDER BY v",
			"CREATE TABLE IF NOT EXISTS `d`.`t` ON CLUSTER `c`\n(v UInt8)\nENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/d/t', '{replica}', v)\nORDER BY v"},
		{"CREATE VIEW IF NOT EXISTS `d`.v AS SELECT 1", "CREATE VIEW IF NOT EXISTS `d`.v ON CLUSTER `c` AS SELECT 1"},
		{"ALTER TABLE `d`.events\n    ADD COLUMN x String", "ALTER TABLE `d`.events ON CLUSTER `c`\n    ADD COLUMN x String"},
		{"DROP TABLE IF EXISTS `d`.airing_figures", "DROP TABLE IF EXISTS `d`.airing_figures ON CLUSTER `c`"},
		{"DROP TABLE IF EXISTS `d`.`v`", "DROP TABLE IF EXISTS `d`.`v` ON CLUSTER `c`"},
	}
	for _, tc := range tests {
		got, err := schema.Clusterize(tc.in, "d", "`c`")
		if err != nil || got != tc.want {
			t.Errorf("Clusterize(%q)\n got %q, %v\nwant %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{
		"DROP TABLE `d`.t",          // no IF EXISTS
		"DROP TABLE IF EXISTS t",    // no database
		"DROP VIEW IF EXISTS `d`.v", // not on ClickHouse 18.16
		"DROP DATABASE IF EXISTS `d`",
		"CREATE TABLE `d`.t (n UInt8) ENGINE = MergeTree() ORDER BY n", // no IF NOT EXISTS
		"CREATE TABLE IF NOT EXISTS t (n UInt8) ENGINE = MergeTree() ORDER BY n",
		"CREATE TABLE IF NOT EXISTS `d`.t (n UInt8) ENGINE = Log",
		"CREATE TABLE IF NOT EXISTS `d`.t (n UInt8) ENGINE = SummingMergeTree() ORDER BY n",
	} {
		if got, err := schema.Clusterize(bad, "d", "`c`"); err == nil {
			t.Errorf("Clusterize(%q) = %q, want an error", bad, got)
		}
	}
}

// Every statement of the cluster mode parses on current ClickHouse (chDB
// has no ZooKeeper and no cluster, so it cannot run them; the 18.16
// replicas below do).
func TestClusterMigrationsParseOnCurrentClickHouse(t *testing.T) {
	ch, db := testenv.ChDB(t)
	migs, err := schema.ClusterMigrations(db, testenv.ClusterName)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migs {
		for _, s := range m.Statements {
			if err := ch.Exec("EXPLAIN AST " + s); err != nil {
				t.Errorf("chDB does not parse migration %04d statement:\n%s\n%v", m.Version, s, err)
			}
		}
	}
}

// MigrateCluster on one replica of two creates the whole schema on both,
// with replicated tables; the records are shared; running it on both at
// once, and again, is harmless; a row inserted on one replica is read on
// the other through the views.
func TestMigrateClusterOnTwoReplicas(t *testing.T) {
	c := testenv.StartCluster(t, 2)
	conns := make([]driver.Conn, 2)
	for i, r := range c.Replicas {
		conn, err := r.Open("")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		conns[i] = conn
	}
	ctx := t.Context()
	const db = "airtally"
	all := []int{}
	migs, err := schema.Migrations(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migs {
		all = append(all, m.Version)
	}
	applied, err := schema.MigrateCluster(ctx, conns[0], db, testenv.ClusterName)
	if err != nil || !slices.Equal(applied, all) {
		t.Fatalf("MigrateCluster on replica 1 = %v, %v; want %v", applied, err, all)
	}
	tables := func(conn driver.Conn) map[string]string {
		rows, err := conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = "+chsql.String(db))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var name, engine string
			if err := rows.Scan(&name, &engine); err != nil {
				t.Fatal(err)
			}
			out[name] = engine
		}
		return out
	}
	t1, t2 := tables(conns[0]), tables(conns[1])
	if len(t1) < 10 || !mapsEqual(t1, t2) {
		t.Fatalf("replica 1 has %v\nreplica 2 has %v", t1, t2)
	}
	for name, engine := range t1 {
		if strings.Contains(engine, "MergeTree") && !strings.HasPrefix(engine, "Replicated") {
			t.Errorf("table %s has engine %s, want a Replicated one", name, engine)
		}
	}
	for _, want := range []string{"events", "dead_letters", "airings", "offers", "schema_migrations"} {
		if !strings.HasPrefix(t1[want], "Replicated") {
			t.Errorf("table %s: engine %q", want, t1[want])
		}
	}
	// The records are replicated too (asynchronously, like every row).
	testenv.Eventually(t, 30*time.Second, func() bool {
		v, err := schema.Applied(ctx, conns[1], db)
		return err == nil && slices.Equal(v, all)
	}, "replica 2 does not see every migration recorded")

	// Both at once, then again: nothing to apply, no error.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range conns {
		wg.Go(func() {
			var got []int
			got, errs[i] = schema.MigrateCluster(ctx, conns[i], db, testenv.ClusterName)
			if errs[i] == nil && len(got) != 0 {
				t.Errorf("second MigrateCluster on replica %d applied %v", i+1, got)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent MigrateCluster: %v", err)
	}

	// A row on replica 1 is read on replica 2 (views included).
	b, err := conns[0].PrepareBatch(ctx, "INSERT INTO airtally.events (event_id, kind, occurred_at, occurred_at_ms, source_system, source_instance, source_seq, call_id, dnis)")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	if err := b.Append(uuid.Must(uuid.NewV7()), "call.received", now, now.UnixMilli(), "acd", "a", uint64(1), "c-1", "8005550100"); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() bool {
		var n uint64
		return conns[1].QueryRow(ctx, "SELECT count() FROM airtally.calls_dedup").Scan(&n) == nil && n == 1
	}, "replica 2 did not see the call inserted on replica 1 through calls_dedup")

	// The single-server migrator refuses the replicated database.
	if _, err := schema.Migrate(ctx, conns[1], db); !errors.Is(err, schema.ErrMode) {
		t.Errorf("Migrate (single server) on a replica = %v, want ErrMode", err)
	}

	// Replica 2 loses everything (its tables dropped on it alone, as a
	// rebuilt machine would have none): CopyReplica recreates them from
	// replica 1, and the rows come back by replication.
	if err := conns[1].Exec(ctx, "DROP DATABASE airtally"); err != nil {
		t.Fatal(err)
	}
	created, err := schema.CopyReplica(ctx, conns[0], conns[1], db)
	if err != nil {
		t.Fatalf("CopyReplica: %v", err)
	}
	if again := tables(conns[1]); !mapsEqual(again, t1) || len(created) != len(t1) {
		t.Fatalf("after CopyReplica (created %v) replica 2 has %v\nwant %v", created, again, t1)
	}
	testenv.Eventually(t, 30*time.Second, func() bool {
		var n uint64
		return conns[1].QueryRow(ctx, "SELECT count() FROM airtally.calls_dedup").Scan(&n) == nil && n == 1
	}, "the rebuilt replica 2 did not fetch the call from replica 1")
	if got, err := schema.MigrateCluster(ctx, conns[1], db, testenv.ClusterName); err != nil || len(got) != 0 {
		t.Errorf("MigrateCluster on the rebuilt replica = %v, %v; want nothing to apply", got, err)
	}
}

// A database created by the single-server migrator is refused by the
// cluster migrator (its tables are not replicated), before any change.
func TestMigrateClusterRefusesSingleServerDatabase(t *testing.T) {
	conn, db := testenv.NewDatabase(t, true)
	_, err := schema.MigrateCluster(t.Context(), conn, db, testenv.ClusterName)
	if !errors.Is(err, schema.ErrMode) || !strings.Contains(err.Error(), "not replicated") {
		t.Fatalf("MigrateCluster on a single-server database = %v, want ErrMode saying why", err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
