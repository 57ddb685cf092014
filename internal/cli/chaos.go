package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airtally/airtally/internal/chaos"
	"github.com/airtally/airtally/internal/chlocal"
	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/schema"
)

func init() {
	register(command{name: "chaos", summary: "run the chain under random faults (kill -9 of NATS nodes, gateway, loader; ClickHouse down) and account for every acknowledged event", run: runChaos})
}

// runChaos brings up its own stack (three NATS node processes, the
// gateway and a loader as processes of this binary, a local ClickHouse),
// injects faults for --duration per sync setting, prints the account of
// each and fails if an acknowledged event was lost or counted twice.
func runChaos(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "chaos")
	var (
		logs     logFlags
		duration time.Duration
		seed     uint64
		syncMode string
		dir      string
	)
	fs.DurationVar(&duration, "duration", time.Hour, "how long faults are injected, per sync setting")
	fs.Uint64Var(&seed, "seed", 0, "seed of the fault schedule (default: the clock; always printed, so that a run can be replayed)")
	fs.StringVar(&syncMode, "sync", "both", "JetStream sync setting of the nodes: default (every 2 min), always, or both (one run each)")
	fs.StringVar(&dir, "dir", "", "folder for the stores, spools, logs and ClickHouse (GBs: a 2-minute run took 3.8 GB); kept for its logs, remove it when done (default: a new temporary folder)")
	logs.register(fs, "")
	if err := parse(fs, args); err != nil {
		return err
	}
	var settings []bool
	switch syncMode {
	case "default":
		settings = []bool{false}
	case "always":
		settings = []bool{true}
	case "both":
		settings = []bool{false, true}
	default:
		return &flagError{msg: "--sync must be default, always or both"}
	}
	if duration <= 0 {
		return &flagError{msg: "--duration must be positive"}
	}
	seedSet := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "seed" {
			seedSet = true
		}
	})
	if _, ok := os.LookupEnv(EnvName("seed")); ok {
		seedSet = true
	}
	if !seedSet {
		seed = uint64(time.Now().UnixNano())
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "airtally-chaos-")
		if err != nil {
			return userErr(err, "could not create a temporary folder")
		}
		dir = d
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return userErr(err, "could not resolve the folder %s", dir)
	}
	if logs.file == "" {
		logs.file = filepath.Join(dir, "chaos.log")
	}
	if err := logs.setup(env); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return userErr(err, "could not find the airtally binary to start the nodes, gateway and loader with")
	}
	binary, err := chlocal.FindBinary()
	if err != nil {
		return userErr(err, "no ClickHouse server is installed. Install it with 'apt-get install clickhouse-server' (Debian)")
	}
	out := env.Stdout
	fmt.Fprintf(out, "airtally chaos: seed %d, %s of faults per sync setting; data and logs in %s\n", seed, duration, dir)

	chDir := filepath.Join(dir, "clickhouse")
	chs, err := chlocal.Start(ctx, chlocal.Config{Binary: binary, Dir: chDir, Logger: env.Log, StartTimeout: chaos.ClickHouseStartTimeout})
	if err != nil {
		return userErr(err, "could not start a local ClickHouse server in %s", chDir)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := chs.Stop(sctx); err != nil {
			env.Log.Warn("clickhouse stop", "err", err)
		}
	}()

	var failures []string
	for _, always := range settings {
		name := "sync-default"
		if always {
			name = "sync-always"
		}
		runDir := filepath.Join(dir, name)
		if _, err := os.Stat(runDir); err == nil {
			return userErr(errors.New(runDir+" exists"), "the folder %s already holds a run; give a fresh --dir", runDir)
		}
		db := "chaos_" + map[bool]string{false: "default", true: "always"}[always]
		if err := chaosDatabase(ctx, chs, db); err != nil {
			return userErr(err, "could not create the database %s on the local ClickHouse", db)
		}
		fmt.Fprintf(out, "\n== sync %s: faults for %s (logs in %s)\n", chaos.SyncName(always), duration, filepath.Join(runDir, "logs"))
		res, err := chaos.Run(ctx, chaos.Config{
			Duration: duration, Seed: seed, SyncAlways: always, Dir: runDir,
			Command: exe, ClickHouse: chs, Database: db, Logger: env.Log,
			Progress: func(line string) { fmt.Fprintln(out, line) },
		})
		if err != nil {
			return userErr(err, "the chaos run (sync %s) could not be carried out", chaos.SyncName(always))
		}
		fmt.Fprintln(out)
		if err := res.Write(out); err != nil {
			return err
		}
		if f := res.Failures(); len(f) > 0 {
			failures = append(failures, fmt.Sprintf("sync %s: %s", chaos.SyncName(always), strings.Join(f, "; ")))
		} else if err := dropDatabase(ctx, chs, db); err != nil {
			env.Log.Warn("chaos: drop the database of a run that passed", "database", db, "err", err)
		} else {
			// Its thousands of small parts would slow every later start of
			// ClickHouse 18.16; a failed run's are kept for inspection.
			fmt.Fprintf(out, "(the run passed: database %s dropped, its logs kept)\n", db)
		}
	}
	fmt.Fprintf(out, "\nlogs and data in %s (remove it when done)\n", dir)
	if len(failures) > 0 {
		return userErr(fmt.Errorf("%d of %d runs failed", len(failures), len(settings)),
			"the chaos run failed: %s (see the account above; --seed %d replays the schedule)", strings.Join(failures, " | "), seed)
	}
	return nil
}

// dropDatabase drops db.
func dropDatabase(ctx context.Context, srv *chlocal.Server, db string) error {
	return adminDatabase(ctx, srv, "DROP", db)
}

// adminDatabase runs "verb DATABASE db" (CREATE, DROP) as the server's
// admin.
func adminDatabase(ctx context.Context, srv *chlocal.Server, verb, db string) error {
	ident, err := chsql.Ident(db)
	if err != nil {
		return err
	}
	admin, err := srv.Open("")
	if err != nil {
		return err
	}
	defer admin.Close()
	if err := admin.Exec(ctx, verb+" DATABASE "+ident); err != nil {
		return fmt.Errorf("%s database %s: %w", strings.ToLower(verb), db, err)
	}
	return nil
}

// chaosDatabase creates a fresh database db, migrated to the current
// schema.
func chaosDatabase(ctx context.Context, srv *chlocal.Server, db string) error {
	if err := adminDatabase(ctx, srv, "CREATE", db); err != nil {
		return err
	}
	conn, err := srv.Open(db)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := schema.Migrate(ctx, conn, db); err != nil {
		return fmt.Errorf("migrate %s: %w", db, err)
	}
	return nil
}
