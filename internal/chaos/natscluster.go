package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clusterName names the NATS cluster; nodes are clusterName-1, -2, -3.
const clusterName = "airtally-chaos"

// natsCluster is three NATS nodes, each an "airtally nats-node" process
// with a generated configuration file, routed to each other. A node keeps
// its ports and store across kills.
type natsCluster struct {
	nodes       []*proc
	clientPorts []int
}

// startNATSCluster writes the nodes' configurations under dir/nats and
// starts them.
func startNATSCluster(ctx context.Context, cfg *Config, n int) (*natsCluster, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	c := &natsCluster{clientPorts: ports[:n]}
	routePorts := ports[n:]
	for i := range n {
		name := clusterName + "-" + strconv.Itoa(i+1)
		dir := filepath.Join(cfg.Dir, "nats", name)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("chaos: node folder: %w", err)
		}
		var routes []string
		for j, p := range routePorts {
			if j != i {
				routes = append(routes, strconv.Quote("nats-route://"+loopback(p)))
			}
		}
		sync := ""
		if cfg.SyncAlways {
			sync = "  sync_interval: always\n"
		}
		conf := fmt.Sprintf("server_name: %q\nlisten: %q\n\njetstream {\n  store_dir: %q\n%s}\n\ncluster {\n  name: %q\n  listen: %q\n  routes: [%s]\n}\n",
			name, loopback(c.clientPorts[i]), filepath.Join(dir, "store"), sync, clusterName, loopback(routePorts[i]), strings.Join(routes, ", "))
		path := filepath.Join(dir, "nats.conf")
		if err := os.WriteFile(path, []byte(conf), 0o640); err != nil {
			return nil, fmt.Errorf("chaos: write %s: %w", path, err)
		}
		c.nodes = append(c.nodes, newProc(cfg, name, "nats-node", "--config", path))
	}
	for _, p := range c.nodes {
		if err := p.start(); err != nil {
			c.stop()
			return nil, err
		}
	}
	for i := range c.nodes {
		if err := c.waitNode(ctx, i); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

// URLs is the comma-separated client URL of every node.
func (c *natsCluster) URLs() string {
	urls := make([]string, len(c.clientPorts))
	for i, p := range c.clientPorts {
		urls[i] = "nats://" + loopback(p)
	}
	return strings.Join(urls, ",")
}

// hostPorts is every node's client address.
func (c *natsCluster) hostPorts() []string {
	out := make([]string, len(c.clientPorts))
	for i, p := range c.clientPorts {
		out[i] = loopback(p)
	}
	return out
}

// kill kills node i with SIGKILL.
func (c *natsCluster) kill(i int) { c.nodes[i].kill() }

// restart starts node i again and waits until it accepts clients.
func (c *natsCluster) restart(ctx context.Context, i int) error {
	if err := c.nodes[i].start(); err != nil {
		return err
	}
	return c.waitNode(ctx, i)
}

func (c *natsCluster) waitNode(ctx context.Context, i int) error {
	if err := waitTCP(ctx, loopback(c.clientPorts[i]), 30*time.Second); err != nil {
		return fmt.Errorf("chaos: NATS node %s: %w; its log:\n%s", c.nodes[i].name, err, c.nodes[i].tail(2048))
	}
	return nil
}

// stop kills every node.
func (c *natsCluster) stop() {
	for _, p := range c.nodes {
		p.kill()
	}
}
