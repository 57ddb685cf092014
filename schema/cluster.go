package schema

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/internal/chsql"
)

// Cluster mode: the same migration files, rendered for a replicated
// cluster. Every statement gets ON CLUSTER, so that it runs on every
// replica through ClickHouse's distributed DDL queue, and every MergeTree
// engine becomes its Replicated twin, whose rows are copied to the other
// replicas through ZooKeeper (or ClickHouse Keeper):
//
//	CREATE TABLE IF NOT EXISTS db.t …  → CREATE TABLE IF NOT EXISTS db.t ON CLUSTER c …
//	CREATE VIEW IF NOT EXISTS db.v AS … → CREATE VIEW IF NOT EXISTS db.v ON CLUSTER c AS …
//	ALTER TABLE db.t …                  → ALTER TABLE db.t ON CLUSTER c …
//	DROP TABLE IF EXISTS db.v           → DROP TABLE IF EXISTS db.v ON CLUSTER c
//	ENGINE = ReplacingMergeTree(v)      → ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/t', '{replica}', v)
//	ENGINE = MergeTree()                → ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db/t', '{replica}')
//
// DROP TABLE IF EXISTS is how a migration replaces a view (ClickHouse
// 18.16 has no DROP VIEW): drop it, then create it again.
//
// The {shard} and {replica} macros come from each server's configuration.
// A statement of any other form, or another engine, is refused, so that a
// new migration cannot silently create a table on one replica only. The
// files and their checksums are the same in both modes.

// ZooKeeperPath is the znode of a replicated table, with the {shard}
// macro each server expands.
func ZooKeeperPath(db, table string) string {
	return "/clickhouse/tables/{shard}/" + db + "/" + table
}

var (
	headRE   = regexp.MustCompile("^(CREATE TABLE IF NOT EXISTS|CREATE VIEW IF NOT EXISTS|CREATE DATABASE IF NOT EXISTS|ALTER TABLE|DROP TABLE IF EXISTS) (`[A-Za-z_][A-Za-z0-9_]*`(?:\\.`?([A-Za-z_][A-Za-z0-9_]*)`?)?)")
	engineRE = regexp.MustCompile(`ENGINE = (Replacing)?MergeTree\(([^)]*)\)`)
	anyEngRE = regexp.MustCompile(`ENGINE\s*=`)
)

// clusterize renders one statement, written for database db, for cluster.
func clusterize(stmt, db, cluster string) (string, error) {
	m := headRE.FindStringSubmatchIndex(stmt)
	if m == nil {
		return "", fmt.Errorf("cluster mode: statement does not start with CREATE TABLE/VIEW/DATABASE IF NOT EXISTS, ALTER TABLE or DROP TABLE IF EXISTS and a database-qualified name: %.60q", stmt)
	}
	table := ""
	if m[6] >= 0 {
		table = stmt[m[6]:m[7]]
	}
	out := stmt[:m[5]] + " ON CLUSTER " + cluster + stmt[m[5]:]
	engines := anyEngRE.FindAllStringIndex(out, -1)
	if len(engines) == 0 {
		return out, nil
	}
	if strings.HasPrefix(stmt, "CREATE VIEW") {
		return out, nil // a view's engine words are in its query
	}
	em := engineRE.FindAllStringSubmatchIndex(out, -1)
	if len(em) != 1 || len(engines) != 1 {
		return "", fmt.Errorf("cluster mode: table %s: want exactly one ENGINE = MergeTree(…) or ReplacingMergeTree(…)", table)
	}
	e := em[0]
	args := chsql.String(ZooKeeperPath(db, table)) + ", '{replica}'"
	if extra := strings.TrimSpace(out[e[4]:e[5]]); extra != "" {
		args += ", " + extra
	}
	replicated := "ENGINE = Replicated" + out[max(e[2], 0):max(e[3], 0)] + "MergeTree(" + args + ")"
	return out[:e[0]] + replicated + out[e[1]:], nil
}

// ClusterMigrations returns every embedded migration rendered for database
// db on cluster (see the cluster mode above). Checksums are the files'.
func ClusterMigrations(db, cluster string) ([]Migration, error) {
	migs, err := Migrations(db)
	if err != nil {
		return nil, err
	}
	return clusterizeAll(migs, db, cluster)
}

func clusterizeAll(migs []Migration, db, cluster string) ([]Migration, error) {
	ident, err := chsql.Ident(cluster)
	if err != nil {
		return nil, fmt.Errorf("schema: cluster: %w", err)
	}
	for i, m := range migs {
		stmts := make([]string, len(m.Statements))
		for j, s := range m.Statements {
			if stmts[j], err = clusterize(s, db, ident); err != nil {
				return nil, fmt.Errorf("schema: migration %04d_%s statement %d: %w", m.Version, m.Name, j+1, err)
			}
		}
		migs[i].Statements = stmts
	}
	return migs, nil
}

// MigrateCluster is Migrate for a replicated cluster: the database, the
// migration records and every migration are created ON CLUSTER with
// replicated engines, so that one call, on any replica, migrates them all.
// A replica that is down when it runs applies the statements from the
// distributed DDL queue when it comes back, but the call fails once
// ClickHouse's distributed_ddl_task_timeout (180 s by default) passes
// without that replica's answer; run it again when every replica is up.
// An empty cluster is Migrate.
func MigrateCluster(ctx context.Context, conn driver.Conn, db, cluster string) ([]int, error) {
	if cluster == "" {
		return Migrate(ctx, conn, db)
	}
	migs, err := ClusterMigrations(db, cluster)
	if err != nil {
		return nil, err
	}
	return apply(ctx, conn, db, cluster, migs)
}

// ErrMode is returned when a database was created in the other mode: a
// single-server database migrated as a cluster, or a replicated one
// migrated as a single server. Converting one is a replay into a fresh
// database (airtally replay --into … --clickhouse-cluster …).
var ErrMode = errors.New("schema: the database was created in the other mode")

// checkMode refuses a database on the connected server whose MergeTree
// tables are replicated when cluster is empty, or not replicated when it
// is set.
func checkMode(ctx context.Context, conn driver.Conn, db, cluster string) error {
	rows, err := conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = "+chsql.String(db)+" AND engine LIKE '%MergeTree'")
	if err != nil {
		return fmt.Errorf("schema: read the engines of %s: %w", db, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, engine string
		if err := rows.Scan(&name, &engine); err != nil {
			return fmt.Errorf("schema: read the engines of %s: %w", db, err)
		}
		switch replicated := strings.HasPrefix(engine, "Replicated"); {
		case cluster == "" && replicated:
			return fmt.Errorf("%w: %s.%s is %s (cluster mode); migrate with the cluster's name (--clickhouse-cluster)", ErrMode, db, name, engine)
		case cluster != "" && !replicated:
			return fmt.Errorf("%w: %s.%s is %s (single-server mode), not replicated; replay into a fresh database in cluster mode instead", ErrMode, db, name, engine)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("schema: read the engines of %s: %w", db, err)
	}
	return nil
}

// CopyReplica creates on a new (or rebuilt) replica, to, every table and
// view of database db exactly as they are on a healthy replica, from: the
// way to add a replica to a cluster whose migrations are all applied
// already (MigrateCluster would find nothing to do). A replicated table
// created this way registers itself in ZooKeeper and fetches every part
// from its peers. Objects that exist on to already are left alone. It
// returns the names it created, in migration order (tables before the
// views that read them).
func CopyReplica(ctx context.Context, from, to driver.Conn, db string) ([]string, error) {
	ident, err := chsql.Ident(db)
	if err != nil {
		return nil, fmt.Errorf("schema: database: %w", err)
	}
	migs, err := Migrations(db)
	if err != nil {
		return nil, err
	}
	// The tables and views the migrations leave, in the order they were
	// created: a name a later migration drops for good is not copied.
	names := []string{"schema_migrations"}
	for _, m := range migs {
		for _, s := range m.Statements {
			mm := headRE.FindStringSubmatch(s)
			switch {
			case mm == nil || mm[3] == "":
			case strings.HasPrefix(mm[1], "CREATE") && !slices.Contains(names, mm[3]):
				names = append(names, mm[3])
			case strings.HasPrefix(mm[1], "DROP"):
				names = slices.DeleteFunc(names, func(n string) bool { return n == mm[3] })
			}
		}
	}
	if err := to.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+ident); err != nil {
		return nil, fmt.Errorf("schema: copy replica: create database %s: %w", db, err)
	}
	// A view may read views created after it (a later migration replaced
	// one it reads), so create in passes until every one exists.
	var created []string
	pending := names
	for len(pending) > 0 {
		var failed []string
		var lastErr error
		for _, name := range pending {
			exists, err := tableExists(ctx, to, db, name)
			if err != nil {
				return created, err
			}
			if exists {
				continue
			}
			var stmt string
			if err := from.QueryRow(ctx, "SHOW CREATE TABLE "+ident+"."+name).Scan(&stmt); err != nil {
				return created, fmt.Errorf("schema: copy replica: SHOW CREATE TABLE %s.%s on the healthy replica: %w", db, name, err)
			}
			if err := to.Exec(ctx, stmt); err != nil {
				failed, lastErr = append(failed, name), fmt.Errorf("schema: copy replica: create %s.%s: %w", db, name, err)
				continue
			}
			created = append(created, name)
		}
		if len(failed) == len(pending) {
			return created, lastErr
		}
		pending = failed
	}
	return created, nil
}

func tableExists(ctx context.Context, conn driver.Conn, db, name string) (bool, error) {
	var n uint64
	q := "SELECT count() FROM system.tables WHERE database = " + chsql.String(db) + " AND name = " + chsql.String(name)
	if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return false, fmt.Errorf("schema: look for %s.%s: %w", db, name, err)
	}
	return n > 0, nil
}
