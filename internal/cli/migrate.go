package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/airtally/airtally/internal/connect"
	"github.com/airtally/airtally/schema"
)

func init() {
	register(command{name: "migrate", summary: "apply the ClickHouse schema migrations (idempotent)", run: runMigrate})
}

func runMigrate(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "migrate")
	var logs logFlags
	var ch chFlags
	var replicaOf string
	var wf waitFlags
	logs.register(fs, "-")
	ch.register(fs)
	wf.register(fs)
	fs.StringVar(&replicaOf, "replica-of", "", "a healthy replica's host:port: first create its tables and views, as they are, on the new or rebuilt replica at --clickhouse-addr (cluster mode)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if replicaOf != "" && ch.cluster == "" {
		return &flagError{msg: "--replica-of needs --clickhouse-cluster: it adds a replica to a cluster"}
	}
	if err := logs.setup(env); err != nil {
		return err
	}
	cfg := ch.config().WithDefaults()
	st := newStarter(env, wf, nil)
	conn, err := st.clickHouse(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	if replicaOf != "" {
		fromCfg := cfg
		fromCfg.Addrs = []string{replicaOf}
		from, err := connect.OpenClickHouse(ctx, fromCfg)
		if err != nil {
			return userErr(err, "could not reach the healthy replica at %s", replicaOf)
		}
		defer from.Close()
		created, err := schema.CopyReplica(ctx, from, conn, cfg.Database)
		if err != nil {
			return userErr(err, "the tables of %s could not be copied from %s", cfg.Database, replicaOf)
		}
		if len(created) == 0 {
			fmt.Fprintf(env.Stdout, "replica at %s already has every table and view of %s\n", strings.Join(cfg.Addrs, ","), cfg.Database)
		} else {
			fmt.Fprintf(env.Stdout, "created %d tables and views of %s as on %s: %s\n", len(created), cfg.Database, replicaOf, strings.Join(created, ", "))
		}
	}
	applied, err := st.migrate(ctx, conn, cfg.Addrs, cfg.Database, ch.cluster)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(env.Stdout, "schema of %s is up to date\n", cfg.Database)
		return nil
	}
	fmt.Fprintf(env.Stdout, "applied migrations %v to %s\n", applied, cfg.Database)
	return nil
}
