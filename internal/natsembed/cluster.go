package natsembed

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Defaults of ClusterConfig.
const (
	DefaultClusterNodes = 3
	DefaultClusterName  = "airtally"
)

// ClusterConfig configures an embedded JetStream cluster: several servers
// in this process, on loopback ports, routed to each other, each with its
// own store folder. It is meant for tests of failover.
type ClusterConfig struct {
	// Dir holds one store folder per node (Dir/<node name>). Required.
	Dir string
	// Nodes is the number of servers; default 3.
	Nodes int
	// Name is the cluster's name; default "airtally". Nodes are named
	// "<Name>-1", "<Name>-2", ...
	Name string
	// SyncAlways and SyncInterval are as in Config, for every node.
	SyncAlways   bool
	SyncInterval time.Duration
	// Options, if set, is applied last to node i's server options (i from 0).
	Options func(i int, opts *server.Options)
}

// WithDefaults returns c with every unset field at its default.
func (c ClusterConfig) WithDefaults() ClusterConfig {
	if c.Nodes == 0 {
		c.Nodes = DefaultClusterNodes
	}
	if c.Name == "" {
		c.Name = DefaultClusterName
	}
	return c
}

// Validate reports the first field that is wrong.
func (c ClusterConfig) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Dir == "":
		return errors.New("natsembed: cluster dir is required")
	case c.Nodes < 1 || c.Nodes > 9:
		return fmt.Errorf("natsembed: cluster nodes must be 1 to 9, got %d", c.Nodes)
	case c.SyncInterval < 0:
		return errors.New("natsembed: sync interval must not be negative")
	}
	return nil
}

// Cluster is a running embedded cluster. Each node keeps its client and
// route ports across StopNode and RestartNode, so clients given URLs()
// find it again.
type Cluster struct {
	cfg         ClusterConfig
	clientPorts []int
	routePorts  []int

	mu    sync.Mutex
	nodes []*Server // nil while stopped
}

// StartCluster starts every node and waits until each accepts clients.
// JetStream elects its meta leader a little later: see WaitJetStream.
func StartCluster(cfg ClusterConfig) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	ports, err := freePorts(2 * cfg.Nodes)
	if err != nil {
		return nil, fmt.Errorf("natsembed: cluster ports: %w", err)
	}
	c := &Cluster{
		cfg:         cfg,
		clientPorts: ports[:cfg.Nodes],
		routePorts:  ports[cfg.Nodes:],
		nodes:       make([]*Server, cfg.Nodes),
	}
	// Started together: a node with JetStream waits for its routes.
	errs := make([]error, cfg.Nodes)
	var wg sync.WaitGroup
	for i := range cfg.Nodes {
		wg.Go(func() { c.nodes[i], errs[i] = Start(c.nodeConfig(i)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Stop()
		return nil, fmt.Errorf("natsembed: start cluster: %w", err)
	}
	return c, nil
}

// NodeName is the server name of node i.
func (c *Cluster) NodeName(i int) string { return c.cfg.Name + "-" + strconv.Itoa(i+1) }

// NodeIndex is the index of the node named name, or -1.
func (c *Cluster) NodeIndex(name string) int {
	for i := range c.cfg.Nodes {
		if c.NodeName(i) == name {
			return i
		}
	}
	return -1
}

// Size is the number of nodes.
func (c *Cluster) Size() int { return c.cfg.Nodes }

// URLs is the comma-separated client URL of every node, as clients take it.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.clientPorts))
	for i, p := range c.clientPorts {
		urls[i] = "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	return strings.Join(urls, ",")
}

// Node is node i's server, nil while it is stopped.
func (c *Cluster) Node(i int) *Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// StopNode shuts node i down (as a crash of that machine would, short of
// losing its disk) and waits until it has stopped. Stopping a stopped node
// does nothing.
func (c *Cluster) StopNode(i int) {
	c.mu.Lock()
	s := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Stop()
	}
}

// RestartNode starts node i again on its ports and store folder; it
// rejoins the cluster and catches up. Restarting a running node does
// nothing.
func (c *Cluster) RestartNode(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nodes[i] != nil {
		return nil
	}
	s, err := Start(c.nodeConfig(i))
	if err != nil {
		return fmt.Errorf("natsembed: restart %s: %w", c.NodeName(i), err)
	}
	c.nodes[i] = s
	return nil
}

// WaitJetStream waits until JetStream has a meta leader and every running
// node is current with it.
func (c *Cluster) WaitJetStream(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		leader, current, running := false, 0, 0
		c.mu.Lock()
		for _, s := range c.nodes {
			if s == nil {
				continue
			}
			running++
			if s.JetStreamIsLeader() {
				leader = true
			}
			if s.JetStreamIsCurrent() {
				current++
			}
		}
		c.mu.Unlock()
		if leader && current == running {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("natsembed: cluster JetStream not ready after %s (leader %t, %d of %d nodes current)", timeout, leader, current, running)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Stop stops every running node.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for i := range c.cfg.Nodes {
		wg.Go(func() { c.StopNode(i) })
	}
	wg.Wait()
}

// nodeConfig is node i's server configuration.
func (c *Cluster) nodeConfig(i int) Config {
	var routes []string
	for j, p := range c.routePorts {
		if j != i {
			routes = append(routes, "nats://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		}
	}
	return Config{
		Dir:          filepath.Join(c.cfg.Dir, c.NodeName(i)),
		Host:         "127.0.0.1",
		Port:         c.clientPorts[i],
		SyncAlways:   c.cfg.SyncAlways,
		SyncInterval: c.cfg.SyncInterval,
		ServerName:   c.NodeName(i),
		Options: func(o *server.Options) {
			o.Cluster = server.ClusterOpts{
				Name: c.cfg.Name,
				Host: "127.0.0.1",
				Port: c.routePorts[i],
			}
			o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
			if c.cfg.Options != nil {
				c.cfg.Options(i, o)
			}
		},
	}
}

// freePorts reserves n distinct free loopback ports and releases them for
// the servers to take (another process could take one in between; unlikely
// on a test machine).
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
