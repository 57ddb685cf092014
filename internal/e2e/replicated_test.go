package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/airtally/airtally/internal/connect"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/schema"
)

// Issue 6 §1: the schema's cluster mode on two ClickHouse 18.16 replicas
// (ReplicatedReplacingMergeTree on ZooKeeper, ON CLUSTER migrations). Two
// loaders share one durable consumer; each is given both replicas, in
// opposite orders, as production would (--clickhouse-addr r1,r2), and
// writes to the first that answers. One replica is stopped, then the other
// is killed with SIGKILL, while producers publish: the loaders fail over
// by themselves, and in the end both replicas hold every acknowledged event
// exactly once.
func TestReplicatedClickHouseLoadersFailOver(t *testing.T) {
	c := testenv.StartCluster(t, 2)
	s := newReplicatedStack(t, c)
	r1, r2 := c.Replicas[0], c.Replicas[1]
	a := s.startLoaderWith("a", s.replicaPool(r1.Addr(), r2.Addr()))
	b := s.startLoaderWith("b", s.replicaPool(r2.Addr(), r1.Addr()))
	rows := s.watchRows()
	ld := s.startLoad(event.Source{System: "acd", Instance: "rep-1"}, event.Source{System: "console", Instance: "rep-2"})
	rows.waitGrowth(300, "before any fault")

	ctx := s.ctx()
	rows.mark("replica 1 stopped")
	if err := r1.Stop(ctx); err != nil {
		t.Fatalf("stop replica 1: %v", err)
	}
	rows.waitGrowth(500, "with replica 1 stopped")
	rows.mark("replica 1 restarted")
	if err := r1.Restart(ctx); err != nil {
		t.Fatalf("restart replica 1: %v", err)
	}
	rows.waitGrowth(300, "after replica 1 came back")
	rows.mark("replica 2 killed")
	if err := r2.Kill(); err != nil {
		t.Fatalf("kill replica 2: %v", err)
	}
	rows.waitGrowth(500, "with replica 2 killed")
	rows.mark("replica 2 restarted")
	if err := r2.Restart(ctx); err != nil {
		t.Fatalf("restart replica 2: %v", err)
	}
	rows.waitGrowth(300, "after replica 2 came back")

	_, sent := ld.stop()
	longest, from := rows.stop()
	want := map[uuid.UUID]bool{}
	for _, id := range sent {
		want[id] = true
	}
	// Every event reaches a replica, then both (SYSTEM SYNC REPLICA waits
	// for a replica's replication queue).
	for i, r := range c.Replicas {
		conn := s.replicaPool(r.Addr())
		testenv.Eventually(t, wait, func() bool {
			n, err := countOn(conn, "SELECT uniqExact(event_id) FROM airtally.events")
			return err == nil && n >= uint64(len(want))
		}, "replica %d did not get every event (%s)", i+1, lazy(func() string { return replicaState(conn, len(want)) }))
		if err := conn.Exec(ctx, "SYSTEM SYNC REPLICA airtally.events"); err != nil {
			t.Fatalf("sync replica %d: %v", i+1, err)
		}
		counts := idCountsOn(t, conn)
		lost, twice := 0, 0
		for id := range want {
			switch n := counts[id]; {
			case n == 0:
				lost++
			case n > 1:
				twice++
			}
		}
		if lost != 0 || twice != 0 || len(counts) != len(want) {
			t.Errorf("replica %d: of %d acknowledged events %d lost, %d counted twice; %d ids in all (FINAL)", i+1, len(want), lost, twice, len(counts))
		}
	}
	t.Logf("%d events (%s); loaded by a: %.0f, b: %.0f; longest pause in loaded rows %.2fs %s; %s",
		len(want), ld.statuses(), a.metric("airtally_loader_events_loaded_total"), b.metric("airtally_loader_events_loaded_total"),
		longest.Seconds(), from, rows.marks())
	if longest > maxStall {
		t.Errorf("loading paused %s, want under %s", longest, maxStall)
	}
	if a.metric("airtally_loader_events_loaded_total") == 0 || b.metric("airtally_loader_events_loaded_total") == 0 {
		t.Errorf("the two loaders did not share the work: a loaded %.0f, b %.0f", a.metric("airtally_loader_events_loaded_total"), b.metric("airtally_loader_events_loaded_total"))
	}
}

// newReplicatedStack is a stack on one NATS server whose database
// "airtally" lives on the cluster c, migrated in cluster mode. Its own
// ClickHouse pool (for checks) knows both replicas.
func newReplicatedStack(t *testing.T, c *testenv.Cluster) *stack {
	t.Helper()
	s := newStackWithoutDatabase(t)
	s.db = "airtally"
	s.ch = s.replicaPool(c.Addrs()...)
	if _, err := schema.MigrateCluster(s.ctx(), s.ch, s.db, testenv.ClusterName); err != nil {
		t.Fatalf("migrate cluster: %v", err)
	}
	return s
}

// replicaPool opens a pool the way the airtally commands do
// (connect.OpenClickHouse: addresses tried in order).
func (s *stack) replicaPool(addrs ...string) driver.Conn {
	s.t.Helper()
	conn, err := connect.OpenClickHouse(s.ctx(), connect.ClickHouse{Addrs: addrs, Database: s.db, DialTimeout: time.Second, MaxOpenConns: 4})
	if err != nil {
		s.t.Fatalf("open %v: %v", addrs, err)
	}
	s.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func countOn(conn driver.Conn, q string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n uint64
	err := conn.QueryRow(ctx, q).Scan(&n)
	return n, err
}

// replicaState describes a replica's events for a failure message.
func replicaState(conn driver.Conn, want int) string {
	n, err := countOn(conn, "SELECT uniqExact(event_id) FROM airtally.events")
	q, qerr := countOn(conn, "SELECT toUInt64(queue_size) FROM system.replicas WHERE database = 'airtally' AND table = 'events'")
	return fmt.Sprintf("%d of %d ids (%v), replication queue %d (%v)", n, want, err, q, qerr)
}

// idCountsOn counts each event id's rows in events FINAL on one replica.
func idCountsOn(t *testing.T, conn driver.Conn) map[uuid.UUID]uint64 {
	t.Helper()
	rows, err := conn.Query(t.Context(), "SELECT event_id, count() FROM airtally.events FINAL GROUP BY event_id")
	if err != nil {
		t.Fatalf("count ids: %v", err)
	}
	defer rows.Close()
	out := map[uuid.UUID]uint64{}
	for rows.Next() {
		var id uuid.UUID
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatalf("scan: %v", err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("count ids: %v", err)
	}
	return out
}
