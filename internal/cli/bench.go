package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/airtally/airtally/internal/bench"
	"github.com/airtally/airtally/internal/chlocal"
)

func init() {
	register(command{name: "bench", summary: "benchmark: end-to-end events/s, latency and memory for both JetStream sync settings, next to the raw limits", run: runBench})
}

func runBench(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "bench")
	var logs logFlags
	var cfg bench.Config
	var syncs, format, profile string
	fs.IntVar(&cfg.Events, "events", bench.DefaultEvents, "events of each throughput phase (raw publish, raw insert, end to end)")
	fs.IntVar(&cfg.Rate, "rate", bench.DefaultRate, "paced rate of the latency phase, events per second")
	fs.DurationVar(&cfg.Duration, "duration", bench.DefaultDuration, "how long the latency phase publishes at --rate")
	fs.StringVar(&syncs, "sync", "both", "JetStream sync settings to measure: interval (the 2m default), always, or both")
	fs.StringVar(&cfg.Dir, "data-dir", "", "folder for the NATS stores, ClickHouse and the spools; it decides which disk is measured (default: a temporary folder, removed after)")
	fs.DurationVar(&cfg.FlushInterval, "flush-interval", bench.DefaultFlushInterval, "the loader's flush interval in the end-to-end and latency phases")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", bench.DefaultPollInterval, "how often the latency phase polls ClickHouse (bounds the latency resolution)")
	fs.StringVar(&format, "format", "text", "output format: text or json")
	fs.StringVar(&profile, "cpu-profile", "", "write a CPU profile of this process (NATS, publishers, loader, replay) over the run to this file, for go tool pprof; samples carry a phase label (-tagfocus phase=replay)")
	logs.register(fs, filepath.Join(os.TempDir(), "airtally-bench.log"))
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := logs.setup(env); err != nil {
		return err
	}
	if format != "text" && format != "json" {
		return &flagError{msg: "--format must be text or json"}
	}
	var err error
	if cfg.Syncs, err = bench.ParseSyncs(syncs); err != nil {
		return &flagError{msg: "--sync must be interval, always or both"}
	}
	// Zero would mean the default in bench.Config; on the command line it
	// is a mistake.
	if cfg.Events <= 0 || cfg.Rate <= 0 || cfg.Duration <= 0 || cfg.FlushInterval <= 0 || cfg.PollInterval <= 0 {
		return &flagError{msg: "--events, --rate, --duration, --flush-interval and --poll-interval must be positive"}
	}
	if err := cfg.Validate(); err != nil {
		return &flagError{msg: strings.TrimPrefix(err.Error(), "bench: ")}
	}
	if cfg.ClickHouseBinary, err = chlocal.FindBinary(); err != nil {
		return userErr(err, "no ClickHouse server is installed. Install it with 'apt-get install clickhouse-server' (Debian)")
	}
	cfg.Logger = env.Log
	start := time.Now()
	cfg.Progress = func(s string) { fmt.Fprintf(env.Stderr, "[%5.1fs] %s\n", time.Since(start).Seconds(), s) }

	if profile != "" {
		stop, err := startCPUProfile(profile)
		if err != nil {
			return userErr(err, "the CPU profile file cannot be written")
		}
		defer stop()
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return userErr(err, "the benchmark did not complete")
	}
	if format == "json" {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.WriteText(env.Stdout)
}

// startCPUProfile profiles this process into path until stop.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cli: cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cli: cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}
