package natsembed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// RunConfigFile runs one NATS server, configured by a nats-server
// configuration file, in this process until ctx ends, then shuts it down
// gracefully. It is what "airtally nats-node" runs: the chaos command
// starts each node of its cluster as such a process, so that a kill -9 of
// a node is a real process death (its page cache survives, its memory does
// not). The server logs to stderr, as nats-server does.
func RunConfigFile(ctx context.Context, path string) error {
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		return fmt.Errorf("natsembed: read config %s: %w", path, err)
	}
	// The caller owns the signals (ctx); the server must not install its own.
	opts.NoSigs = true
	s, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("natsembed: new server from %s: %w", path, err)
	}
	s.ConfigureLogger()
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return errors.New("natsembed: server not ready after 30s")
	}
	<-ctx.Done()
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}
