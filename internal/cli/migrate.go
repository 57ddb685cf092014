package cli

import (
	"context"
	"fmt"

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
	logs.register(fs, "-")
	ch.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := logs.setup(env); err != nil {
		return err
	}
	cfg := ch.config()
	conn, err := connect.OpenClickHouse(ctx, cfg)
	if err != nil {
		return userErr(err, "could not reach ClickHouse at %v", cfg.WithDefaults().Addrs)
	}
	defer conn.Close()
	applied, err := schema.MigrateCluster(ctx, conn, cfg.WithDefaults().Database, ch.cluster)
	if err != nil {
		return userErr(err, "the migrations could not be applied")
	}
	if len(applied) == 0 {
		fmt.Fprintf(env.Stdout, "schema of %s is up to date\n", cfg.WithDefaults().Database)
		return nil
	}
	fmt.Fprintf(env.Stdout, "applied migrations %v to %s\n", applied, cfg.WithDefaults().Database)
	return nil
}
