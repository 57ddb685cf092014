package chlocal_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/airtally/airtally/internal/chlocal"
	"github.com/airtally/airtally/internal/zklocal"
)

// startReplicas starts a ZooKeeper and n ClickHouse replicas of one shard
// of cluster "c".
func startReplicas(t *testing.T, n int) []*chlocal.Server {
	t.Helper()
	zk, err := zklocal.Start(t.Context(), zklocal.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("zookeeper: %v", err)
	}
	t.Cleanup(func() { _ = zk.Stop() })
	ports := make([]int, n)
	addrs := make([]string, n)
	for i := range ports {
		p, err := chlocal.FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		ports[i], addrs[i] = p, net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	servers := make([]*chlocal.Server, n)
	for i := range servers {
		servers[i] = start(t, chlocal.Config{
			TCPPort: ports[i],
			Replica: &chlocal.Replica{
				Cluster: "c", Shard: "01", Name: fmt.Sprintf("r%d", i+1),
				ZooKeeper: []string{zk.Addr()}, Replicas: addrs,
			},
		})
	}
	return servers
}

// A replicated table created ON CLUSTER on one replica exists on both, and
// rows inserted on either are read on the other.
func TestReplicasShareReplicatedTables(t *testing.T) {
	rs := startReplicas(t, 2)
	a, b := open(t, rs[0]), open(t, rs[1])
	ctx := t.Context()
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS x ON CLUSTER c",
		"CREATE TABLE IF NOT EXISTS x.t ON CLUSTER c (id UInt64) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/x/t', '{replica}') ORDER BY id",
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
