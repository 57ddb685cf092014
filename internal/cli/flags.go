package cli

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/airtally/airtally/internal/connect"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/waitfor"
	"github.com/airtally/airtally/producers/pci"
)

// logFlags configures logging. Long-running services log JSON to stderr by
// default; interactive commands log to a file so that the terminal shows
// only results and polite messages.
type logFlags struct {
	file   string
	level  string
	format string
}

func (l *logFlags) register(fs *flag.FlagSet, defaultFile string) {
	fs.StringVar(&l.file, "log-file", defaultFile, "write logs to this file (\"-\" or empty: stderr)")
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&l.format, "log-format", "json", "log format: json or text")
}

// setup opens the log and installs it in env. Every handler masks card
// numbers as a last line of defence.
func (l *logFlags) setup(env *Env) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return &flagError{msg: "--log-level must be debug, info, warn or error"}
	}
	out := env.Stderr
	if l.file != "" && l.file != "-" {
		if err := os.MkdirAll(filepath.Dir(l.file), 0o750); err != nil {
			return userErr(err, "could not create the folder of the log file %s", l.file)
		}
		f, err := os.OpenFile(l.file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return userErr(err, "could not open the log file %s", l.file)
		}
		env.closeLog = func() { f.Close() }
		out = f
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch l.format {
	case "json":
		h = slog.NewJSONHandler(out, opts)
	case "text":
		h = slog.NewTextHandler(out, opts)
	default:
		return &flagError{msg: "--log-format must be json or text"}
	}
	env.Log = slog.New(pci.NewRedactingHandler(h))
	return nil
}

// natsFlags are the NATS connection flags.
type natsFlags struct{ cfg connect.NATS }

func (n *natsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&n.cfg.URL, "nats-url", "nats://127.0.0.1:4222", "NATS server URLs, comma-separated")
	fs.StringVar(&n.cfg.CredsFile, "nats-creds", "", "NATS credentials file")
	fs.StringVar(&n.cfg.NkeySeedFile, "nats-nkey-seed", "", "NATS nkey seed file")
	fs.StringVar(&n.cfg.User, "nats-user", "", "NATS user")
	fs.StringVar(&n.cfg.PasswordFile, "nats-password-file", "", "file holding the NATS user's password")
	fs.StringVar(&n.cfg.CAFile, "nats-ca", "", "CA certificate to verify NATS servers (enables TLS)")
	fs.StringVar(&n.cfg.CertFile, "nats-cert", "", "client certificate for NATS mutual TLS")
	fs.StringVar(&n.cfg.KeyFile, "nats-key", "", "client key for NATS mutual TLS")
	fs.StringVar(&n.cfg.InboxPrefix, "nats-inbox-prefix", "", "prefix of this client's reply subjects (default _INBOX); give each NATS user its own, see deploy/nats/permissions.md")
}

// chFlags are the ClickHouse connection flags.
type chFlags struct {
	cfg     connect.ClickHouse
	addrs   string
	cluster string
}

func (c *chFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addrs, "clickhouse-addr", "127.0.0.1:9000", "ClickHouse native-protocol addresses host:port, comma-separated")
	fs.StringVar(&c.cfg.Database, "clickhouse-database", "airtally", "ClickHouse database")
	fs.StringVar(&c.cfg.User, "clickhouse-user", "default", "ClickHouse user")
	fs.StringVar(&c.cfg.PasswordFile, "clickhouse-password-file", "", "file holding the ClickHouse user's password")
	fs.BoolVar(&c.cfg.TLS, "clickhouse-tls", false, "connect to ClickHouse with TLS")
	fs.StringVar(&c.cfg.CAFile, "clickhouse-ca", "", "CA certificate to verify ClickHouse (with --clickhouse-tls)")
	fs.StringVar(&c.cluster, "clickhouse-cluster", "", "ClickHouse cluster (remote_servers name) for the schema's cluster mode: ON CLUSTER migrations, replicated tables; empty for a single server")
}

func (c *chFlags) config() connect.ClickHouse {
	cfg := c.cfg
	cfg.Addrs = nil
	for _, a := range strings.Split(c.addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.Addrs = append(cfg.Addrs, a)
		}
	}
	return cfg
}

// streamFlags are the JetStream layout flags.
type streamFlags struct{ cfg streams.Config }

func (s *streamFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.cfg.EventsStream, "stream", streams.DefaultEventsStream, "JetStream stream of events")
	fs.StringVar(&s.cfg.DLQStream, "dlq-stream", streams.DefaultDLQStream, "JetStream dead-letter stream")
	fs.StringVar(&s.cfg.SubjectPrefix, "subject-prefix", streams.DefaultSubjectPrefix, "subject prefix of events")
	fs.IntVar(&s.cfg.Replicas, "stream-replicas", 1, "replicas of each stream (3 in a production cluster)")
	fs.DurationVar(&s.cfg.MaxAge, "stream-max-age", streams.DefaultMaxAge, "how long the stream keeps events")
	fs.Int64Var(&s.cfg.MaxBytes, "stream-max-bytes", 0, "size limit of each stream in bytes (0: none); when full, new events are refused, never old ones dropped")
	fs.DurationVar(&s.cfg.DuplicateWindow, "duplicate-window", streams.DefaultDuplicateWindow, "how long JetStream drops a re-published event id")
}

// metricsFlags serve Prometheus metrics.
type metricsFlags struct{ addr string }

func (m *metricsFlags) register(fs *flag.FlagSet, def string) {
	fs.StringVar(&m.addr, "metrics-addr", def, "serve Prometheus metrics at http://ADDR/metrics (empty: off)")
}

// serve starts the metrics server with a fresh registry (Go and process
// collectors included) and returns the registry and a stop function.
func (m *metricsFlags) serve(env *Env) (*prometheus.Registry, func(), error) {
	reg, _, stop, err := m.serveWith(env, false)
	return reg, stop, err
}

// serveWith is serve that also keeps the status of deps (the gauge
// airtally_dependency_up, all down until reached) and, if ready is set,
// serves it at /readyz: 200 once every dependency is up, else 503.
func (m *metricsFlags) serveWith(env *Env, ready bool, deps ...string) (*prometheus.Registry, *waitfor.Status, func(), error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	status, err := waitfor.NewStatus(reg, deps...)
	if err != nil {
		return nil, nil, nil, err
	}
	if m.addr == "" {
		return reg, status, func() {}, nil
	}
	ln, err := net.Listen("tcp", m.addr)
	if err != nil {
		return nil, nil, nil, userErr(err, "could not serve metrics on %s (is the port in use? set --metrics-addr)", m.addr)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if ready {
		mux.Handle("/readyz", status.Handler())
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			env.Log.Error("metrics server stopped", "err", err)
		}
	}()
	env.Log.Info("serving metrics", "addr", ln.Addr().String(), "readyz", ready)
	return reg, status, func() { srv.Close() }, nil
}

// readKeyFile reads a secret key (e.g. the ANI hashing key) from a file.
func readKeyFile(path, what string) ([]byte, error) {
	if path == "" {
		return nil, &flagError{msg: fmt.Sprintf("%s is required (a file holding the key)", what)}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, userErr(err, "could not read the key file given by %s", what)
	}
	key := []byte(strings.TrimSpace(string(b)))
	if len(key) < 16 {
		return nil, &flagError{msg: fmt.Sprintf("the key in %s must be at least 16 characters", what)}
	}
	return key, nil
}

// serviceFlags are the flags every long-running component shares: logs to
// stderr, NATS, the stream layout, a metrics server and the start-up wait.
type serviceFlags struct {
	logs    logFlags
	nats    natsFlags
	streams streamFlags
	metrics metricsFlags
	wait    waitFlags
}

func (s *serviceFlags) register(fs *flag.FlagSet, metricsAddr string) {
	s.logs.register(fs, "-")
	s.nats.register(fs)
	s.streams.register(fs)
	s.metrics.register(fs, metricsAddr)
	s.wait.register(fs)
}

// start parses args, sets the log up and starts the metrics server (with
// /readyz if ready is set) keeping the status of deps; check, if set,
// vets the component's own flags before anything is started. It returns
// the metrics registry, the start-up waiter and the function that stops
// the server.
func (s *serviceFlags) start(env *Env, fs *flag.FlagSet, args []string, check func() error, ready bool, deps ...string) (*prometheus.Registry, *starter, func(), error) {
	if err := parse(fs, args); err != nil {
		return nil, nil, nil, err
	}
	if err := s.logs.setup(env); err != nil {
		return nil, nil, nil, err
	}
	if check != nil {
		if err := check(); err != nil {
			return nil, nil, nil, err
		}
	}
	reg, status, stop, err := s.metrics.serveWith(env, ready, deps...)
	if err != nil {
		return nil, nil, nil, err
	}
	return reg, newStarter(env, s.wait, status), stop, nil
}
