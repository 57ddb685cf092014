package testenv

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

// ClusterName is the name of the cluster StartCluster defines.
const ClusterName = "airtally"

// Cluster is a replicated ClickHouse of one shard on loopback: a
// ZooKeeper and ClickHouse 18.16 replicas, for the cluster mode's tests.
type Cluster struct {
	ZooKeeper *zklocal.Server
	Replicas  []*chlocal.Server
}

// Addrs are the replicas' native addresses, in order.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Replicas))
	for i, r := range c.Replicas {
		out[i] = r.Addr()
	}
	return out
}

// StartCluster starts a ZooKeeper and n ClickHouse replicas (macros shard
// "01", replica "r1"…"rn") of cluster ClusterName, each with the given
// extra users, and stops them when the test ends. It fails the test when
// ZooKeeper or ClickHouse is not installed (scripts/deps.sh installs both).
func StartCluster(t testing.TB, n int, users ...chlocal.User) *Cluster {
	t.Helper()
	zk, err := zklocal.Start(t.Context(), zklocal.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("testenv: zookeeper: %v", err)
	}
	t.Cleanup(func() { _ = zk.Stop() })
	ports := make([]int, n)
	addrs := make([]string, n)
	for i := range ports {
		p, err := chlocal.FreePort("127.0.0.1")
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		ports[i], addrs[i] = p, net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	c := &Cluster{ZooKeeper: zk}
	for i := range n {
		s, err := chlocal.Start(t.Context(), chlocal.Config{
			Dir: t.TempDir(), TCPPort: ports[i], Users: users,
			// Small: several servers share a 2-core machine.
			MaxQueryMemory: 1 << 30,
			Replica: &chlocal.Replica{
				Cluster: ClusterName, Shard: "01", Name: fmt.Sprintf("r%d", i+1),
				ZooKeeper: []string{zk.Addr()}, Replicas: addrs,
			},
		})
		if err != nil {
			t.Fatalf("testenv: replica %d: %v", i+1, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = s.Stop(ctx)
		})
		c.Replicas = append(c.Replicas, s)
	}
	return c
}
