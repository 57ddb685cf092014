// Command airtally runs airtally's components: the local mode (embedded
// NATS, a local ClickHouse and a demo broadcast day), the HTTP gateway, the
// ClickHouse loader, migrations, replay and the benchmark. Run
// "airtally help" for the list.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/airtally/airtally/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
