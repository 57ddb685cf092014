package schema

import (
	"context"
	"fmt"
	"regexp"
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
//	ENGINE = ReplacingMergeTree(v)      → ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/t', '{replica}', v)
//	ENGINE = MergeTree()                → ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db/t', '{replica}')
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
	headRE   = regexp.MustCompile("^(CREATE TABLE IF NOT EXISTS|CREATE VIEW IF NOT EXISTS|CREATE DATABASE IF NOT EXISTS|ALTER TABLE) (`[A-Za-z_][A-Za-z0-9_]*`(?:\\.`?([A-Za-z_][A-Za-z0-9_]*)`?)?)")
	engineRE = regexp.MustCompile(`ENGINE = (Replacing)?MergeTree\(([^)]*)\)`)
	anyEngRE = regexp.MustCompile(`ENGINE\s*=`)
)

// clusterize renders one statement, written for database db, for cluster.
func clusterize(stmt, db, cluster string) (string, error) {
	m := headRE.FindStringSubmatchIndex(stmt)
	if m == nil {
		return "", fmt.Errorf("cluster mode: statement does not start with CREATE TABLE/VIEW/DATABASE IF NOT EXISTS or ALTER TABLE and a database-qualified name: %.60q", stmt)
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
