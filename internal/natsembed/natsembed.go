// Package natsembed runs a real NATS server with JetStream inside the
// process, for airtally's local mode and its tests. Production points at a
// NATS cluster by URL instead.
package natsembed

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config configures an embedded server.
type Config struct {
	// Dir is where JetStream keeps its file store. Required.
	Dir string
	// Host to listen on; default "127.0.0.1".
	Host string
	// Port to listen on; 0 picks a free port (default).
	Port int
	// SyncAlways makes JetStream fsync every write before it acks
	// (sync_interval: always). The default syncs every 2 minutes, which can
	// lose acknowledged events to an OS crash or power cut.
	SyncAlways bool
	// SyncInterval overrides the periodic sync interval when SyncAlways is
	// false; 0 keeps the server default (2 minutes).
	SyncInterval time.Duration
	// ServerName names the server; default "airtally-local".
	ServerName string
	// Options, if set, is applied last to the server options (clusters,
	// accounts and TLS in tests).
	Options func(*server.Options)
}

// Server is a running embedded NATS server.
type Server struct {
	*server.Server
}

// Start starts a server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("natsembed: Dir is required")
	}
	opts := &server.Options{
		ServerName:   cfg.ServerName,
		Host:         cfg.Host,
		Port:         cfg.Port,
		JetStream:    true,
		StoreDir:     cfg.Dir,
		NoSigs:       true,
		NoLog:        true,
		SyncAlways:   cfg.SyncAlways,
		SyncInterval: cfg.SyncInterval,
	}
	if opts.ServerName == "" {
		opts.ServerName = "airtally-local"
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	if cfg.Options != nil {
		cfg.Options(opts)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: new server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, errors.New("natsembed: server not ready after 10s")
	}
	return &Server{Server: s}, nil
}

// Stop shuts the server down and waits until it has stopped.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}
