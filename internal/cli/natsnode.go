package cli

import (
	"context"

	"github.com/airtally/airtally/internal/natsembed"
)

func init() {
	register(command{name: "nats-node", hidden: true, summary: "run one NATS server from a nats-server config file (started by 'airtally chaos')", run: runNATSNode})
}

// runNATSNode runs the NATS server embedded in airtally as a process of
// its own, configured by a nats-server configuration file (--config). It
// is the real server code at the version airtally is built with, so the
// chaos command needs neither a Go toolchain nor an installed nats-server
// to kill -9 real nodes.
func runNATSNode(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "nats-node")
	var config string
	fs.StringVar(&config, "config", "", "nats-server configuration file (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if config == "" {
		return &flagError{msg: "--config is required"}
	}
	if err := natsembed.RunConfigFile(ctx, config); err != nil {
		return userErr(err, "the NATS server could not run from %s", config)
	}
	return nil
}
