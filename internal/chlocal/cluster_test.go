package chlocal_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/airtally/airtally/internal/testenv"
)

// A replicated table created ON CLUSTER on one replica exists on both, and
// rows inserted on either are read on the other.
func TestReplicasShareReplicatedTables(t *testing.T) {
	rs := testenv.StartCluster(t, 2).Replicas
	a, b := open(t, rs[0]), open(t, rs[1])
	ctx := t.Context()
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS x ON CLUSTER airtally",
		"CREATE TABLE IF NOT EXISTS x.t ON CLUSTER airtally (id UInt64) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/x/t', '{replica}') ORDER BY id",
	} {
		if err := a.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	insert := func(conn interface {
		Exec(context.Context, string, ...any) error
	}, from, to int) {
		t.Helper()
		if err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO x.t SELECT number FROM system.numbers WHERE number >= %d LIMIT %d", from, to-from)); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	insert(a, 0, 100)
	insert(b, 100, 250)
	deadline := time.Now().Add(30 * time.Second)
	for {
		na, nb := count(t, a, "x.t FINAL"), count(t, b, "x.t FINAL")
		if na == 250 && nb == 250 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows after 30s: replica 1 has %d, replica 2 has %d; want 250 on both", na, nb)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
