package chaos

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/airtally/airtally/internal/chlocal"
)

// Defaults of Config.
const (
	DefaultDuration = 20 * time.Second
	// DefaultSettleTimeout bounds the wait, after the last fault, for every
	// spool and the consumer to drain while nothing moves (the wait goes
	// on while they drain, up to SettleTimeout plus twice Duration).
	DefaultSettleTimeout = 2 * time.Minute
	// DefaultFlowTimeout bounds the wait for loaded rows to grow after a
	// fault is repaired; past it the run fails with "the flow did not
	// resume".
	DefaultFlowTimeout = time.Minute
)

// Config configures one chaos run.
type Config struct {
	// Duration is how long faults are injected; default 20s. The first
	// round of faults (one of each kind) is always played in full, so a
	// short run takes longer than Duration.
	Duration time.Duration
	// Seed drives the fault schedule; the same seed gives the same
	// schedule. 0 is a valid seed.
	Seed uint64
	// SyncAlways sets sync_interval: always on every NATS node; false keeps
	// JetStream's default (sync every 2 minutes).
	SyncAlways bool
	// Dir holds the nodes' stores, the spools, the generated configs and
	// secrets, and a log file per process (Dir/logs). Required; it should
	// be empty.
	Dir string
	// Command is the airtally command line to run subcommands with: the
	// path of the airtally binary (os.Executable() in airtally itself), or
	// a binary that runs cli.Run when CommandEnv is set. Required.
	Command string
	// CommandEnv is added to the environment of every process started
	// with Command.
	CommandEnv []string
	// ClickHouse is the server to load into and to stop, kill and restart
	// as faults. It must be running; Run leaves it running. Required.
	ClickHouse *chlocal.Server
	// Database is the migrated database on ClickHouse to load into; it
	// should be empty. Required.
	Database string
	// Logger receives the harness's and the in-process components' logs;
	// nil means silent.
	Logger *slog.Logger
	// Progress, if set, is called with each line of progress (the fault
	// schedule as it is played), for a terminal.
	Progress func(line string)
	// SettleTimeout and FlowTimeout: see their defaults.
	SettleTimeout, FlowTimeout time.Duration

	// onExit is given to every process started (set by Run).
	onExit func(p *proc, err error)
}

func (c *Config) setDefaults() {
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.SettleTimeout == 0 {
		c.SettleTimeout = DefaultSettleTimeout
	}
	if c.FlowTimeout == 0 {
		c.FlowTimeout = DefaultFlowTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = func(string) {}
	}
}

// Validate reports the first field that is wrong.
func (c Config) Validate() error {
	switch {
	case c.Duration < 0:
		return fmt.Errorf("chaos: duration %s is negative", c.Duration)
	case c.Dir == "":
		return errors.New("chaos: Dir is required")
	case c.Command == "":
		return errors.New("chaos: Command (the airtally binary) is required")
	case c.ClickHouse == nil:
		return errors.New("chaos: ClickHouse is required")
	case c.Database == "":
		return errors.New("chaos: Database is required")
	case c.SettleTimeout < 0 || c.FlowTimeout < 0:
		return errors.New("chaos: timeouts must not be negative")
	}
	return nil
}

// SyncName names a sync setting as the documentation does.
func SyncName(always bool) string {
	if always {
		return "always"
	}
	return "default (every 2 min)"
}
