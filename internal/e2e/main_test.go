package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/cli"
	"github.com/airtally/airtally/internal/connect"
	"github.com/airtally/airtally/internal/testenv"
)

func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) != "" {
		// A re-executed test binary that is the airtally command (the
		// chaos test's NATS nodes, gateway and loader).
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	if spec := os.Getenv(childLoaderEnv); spec != "" {
		// A re-executed test binary that runs one loader until it is killed
		// (TestLoaderKilledAfterInsertBeforeAck).
		os.Exit(runChildLoader(spec))
	}
	testenv.Main(m, testenv.WithClickHouse())
}

// cliEnv, when set, makes the test binary run the airtally command with
// its arguments instead of the tests.
const cliEnv = "AIRTALLY_E2E_CLI"

// childLoaderEnv, when set to a JSON childLoaderConfig, makes the test
// binary run a loader instead of the tests.
const childLoaderEnv = "AIRTALLY_E2E_CHILD_LOADER"

// childLoaderConfig is what a child loader process runs.
type childLoaderConfig struct {
	NATSURL    string        `json:"nats_url"`
	ClickHouse string        `json:"clickhouse"`
	Database   string        `json:"database"`
	BatchSize  int           `json:"batch_size"`
	AckWait    time.Duration `json:"ack_wait"`
}

// runChildLoader runs a loader as a production process would (its own
// connections, logs on stderr) until it is signalled or killed.
func runChildLoader(spec string) int {
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fail := func(op string, err error) int {
		log.Error("child loader: "+op, "err", err)
		return 2
	}
	var cfg childLoaderConfig
	if err := json.Unmarshal([]byte(spec), &cfg); err != nil {
		return fail("read config", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The parent holds stdin open; EOF means it is gone.
		_, _ = io.Copy(io.Discard, os.Stdin)
		log.Error("child loader: the test process is gone; exiting")
		os.Exit(3)
	}()
	nc, err := connect.ConnectNATS(connect.NATS{URL: cfg.NATSURL, Name: "e2e-child-loader"}, log)
	if err != nil {
		return fail("connect nats", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fail("jetstream", err)
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := connect.OpenClickHouse(octx, connect.ClickHouse{Addrs: []string{cfg.ClickHouse}, Database: cfg.Database})
	if err != nil {
		return fail("open clickhouse", err)
	}
	defer conn.Close()
	l, err := loader.New(js, conn, loaderConfig(cfg.Database, func(c *loader.Config) {
		c.BatchSize = cfg.BatchSize
		c.AckWait = cfg.AckWait
		c.Logger = log
	}))
	if err != nil {
		return fail("new loader", err)
	}
	if err := l.Run(ctx); err != nil {
		return fail("run", err)
	}
	fmt.Fprintln(os.Stderr, "child loader: stopped")
	return 0
}
