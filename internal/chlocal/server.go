package chlocal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/internal/proc"
)

// ErrBinaryNotFound is returned by FindBinary (and Start without
// Config.Binary) when no ClickHouse server binary is installed.
var ErrBinaryNotFound = errors.New("chlocal: no ClickHouse server binary found (looked for clickhouse-server, then clickhouse, in PATH, /usr/sbin, /usr/bin and /usr/local/bin); install it with: apt-get install clickhouse-server")

// ErrNotRunning is returned by Kill when the server is not running.
var ErrNotRunning = errors.New("chlocal: server is not running")

// FindBinary returns the path of the installed ClickHouse server:
// clickhouse-server if present, else the multi-call clickhouse binary. It
// never installs anything; the error wraps ErrBinaryNotFound.
func FindBinary() (string, error) {
	for _, name := range []string{"clickhouse-server", "clickhouse"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		// Non-root PATHs often lack /usr/sbin, where Debian puts the server.
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/bin"} {
			p := filepath.Join(dir, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	return "", ErrBinaryNotFound
}

// Server is a running (or stopped) local ClickHouse server. Its methods are
// safe for concurrent use.
type Server struct {
	cfg  Config // defaults applied, ports resolved
	p    paths
	args []string
	log  *slog.Logger

	mu   sync.Mutex
	proc *proc.Process // nil when stopped
}

// Start writes the configuration under cfg.Dir, starts the server and waits
// until a native-protocol ping succeeds. On failure the error carries the
// tail of the server's error log. Ports left at 0 are picked free; if
// another process takes a picked port first, Start retries with new ones.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Binary == "" {
		bin, err := FindBinary()
		if err != nil {
			return nil, err
		}
		cfg.Binary = bin
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("chlocal: Dir: %w", err)
	}
	cfg.Dir = dir
	s := &Server{cfg: cfg, p: newPaths(dir), log: cfg.Logger}
	if err := s.p.mkdirs(); err != nil {
		return nil, err
	}
	s.args = []string{"--config-file=" + s.p.configFile()}
	if filepath.Base(cfg.Binary) == "clickhouse" {
		s.args = append([]string{"server"}, s.args...)
	}

	// Copies, so that picked ports do not write into the caller's structs.
	if r := cfg.Replica; r != nil {
		rc := *r
		rc.ZooKeeper, rc.Replicas = slices.Clone(r.ZooKeeper), slices.Clone(r.Replicas)
		s.cfg.Replica = &rc
	}
	if t := cfg.TLS; t != nil {
		tc := *t
		s.cfg.TLS = &tc
	}
	auto := autoPorts{
		tcp:         cfg.TCPPort == 0,
		http:        cfg.HTTPPort == 0,
		interserver: cfg.Replica != nil && cfg.Replica.InterserverPort == 0,
		tls:         cfg.TLS != nil && cfg.TLS.Port == 0,
	}
	for attempt := 1; ; attempt++ {
		if err := s.pickPorts(auto); err != nil {
			return nil, err
		}
		if err := writeConfig(s.p, &s.cfg); err != nil {
			return nil, err
		}
		err := s.start(ctx)
		if err == nil {
			return s, nil
		}
		if !auto.any() || attempt == 3 || !errors.Is(err, errAddrInUse) {
			return nil, err
		}
		s.log.Warn("clickhouse: picked port taken, retrying", slog.Int("attempt", attempt))
	}
}

// autoPorts says which ports were left at 0 in the Config, to be picked.
type autoPorts struct{ tcp, http, interserver, tls bool }

func (a autoPorts) any() bool { return a.tcp || a.http || a.interserver || a.tls }

// pickPorts picks a free port, distinct from the others, for each port
// that auto says to pick.
func (s *Server) pickPorts(auto autoPorts) error {
	taken := map[int]bool{}
	pick := func(dst *int, want bool) error {
		if !want {
			taken[*dst] = true
			return nil
		}
		for {
			p, err := freePort(s.cfg.Host)
			if err != nil {
				return err
			}
			if !taken[p] {
				*dst, taken[p] = p, true
				return nil
			}
		}
	}
	if err := pick(&s.cfg.TCPPort, auto.tcp); err != nil {
		return err
	}
	if err := pick(&s.cfg.HTTPPort, auto.http); err != nil {
		return err
	}
	if s.cfg.Replica != nil {
		if err := pick(&s.cfg.Replica.InterserverPort, auto.interserver); err != nil {
			return err
		}
	}
	if s.cfg.TLS != nil {
		if err := pick(&s.cfg.TLS.Port, auto.tls); err != nil {
			return err
		}
	}
	return nil
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("chlocal: pick a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreePort returns a TCP port that is free on host now, for a caller that
// must know a server's port before it starts (the replicas of a cluster
// name each other). Another process may take it before it is used.
func FreePort(host string) (int, error) { return freePort(host) }

var errAddrInUse = errors.New("address already in use")

// start launches the binary and waits for a ping. s.mu must not be held.
func (s *Server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.Exited() {
		return errors.New("chlocal: server is already running")
	}
	s.proc = nil
	errOff, stdOff := fileSize(s.p.errorLog()), fileSize(s.p.stdLog())
	began := time.Now()
	p, err := launch(s.cfg.Binary, s.args, s.p)
	if err != nil {
		return err
	}
	if err := s.waitReady(ctx, p); err != nil {
		_ = p.Signal(syscall.SIGKILL)
		<-p.Done()
		tail := tailSince(s.p.errorLog(), errOff) + tailSince(s.p.stdLog(), stdOff)
		if strings.Contains(tail, "already in use") {
			err = fmt.Errorf("%w: %w", err, errAddrInUse)
		}
		return fmt.Errorf("chlocal: start %s on %s: %w\n--- server log tail ---\n%s", s.cfg.Binary, s.Addr(), err, tail)
	}
	s.proc = p
	s.log.Info("clickhouse started", slog.String("addr", s.Addr()), slog.String("dir", s.cfg.Dir),
		slog.Int("pid", p.Pid()), slog.Duration("took", time.Since(began)))
	return nil
}

// launch starts the binary in its own process group.
func launch(bin string, args []string, p paths) (*proc.Process, error) {
	return proc.Start(proc.Spec{Bin: bin, Args: args, Dir: p.dir, Output: p.stdLog()})
}

// waitReady polls a native-protocol ping until it succeeds, the process
// exits, ctx ends or StartTimeout passes.
func (s *Server) waitReady(ctx context.Context, p *proc.Process) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:         []string{s.Addr()},
		DialTimeout:  time.Second,
		ReadTimeout:  5 * time.Second,
		MaxOpenConns: 1,
		MaxIdleConns: 1,
	})
	if err != nil {
		return fmt.Errorf("open client: %w", err)
	}
	defer conn.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		lastErr = conn.Ping(pctx)
		pcancel()
		if lastErr == nil {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("server exited before it answered (%v)", p.Err())
		case <-ctx.Done():
			return fmt.Errorf("no ping answer (last error: %v): %w", lastErr, ctx.Err())
		case <-tick.C:
		}
	}
}

// Addr is the native-protocol address, "host:port". A wildcard listen host
// is reported as 127.0.0.1 so that the address can be dialled.
func (s *Server) Addr() string { return s.hostPort(s.cfg.TCPPort) }

// TLSAddr is the native protocol's TLS address, "host:port", or "" when
// Config.TLS is nil.
func (s *Server) TLSAddr() string {
	if s.cfg.TLS == nil {
		return ""
	}
	return s.hostPort(s.cfg.TLS.Port)
}

// HTTPAddr is the HTTP interface's address, "host:port".
func (s *Server) HTTPAddr() string { return s.hostPort(s.cfg.HTTPPort) }

func (s *Server) hostPort(port int) string {
	host := s.cfg.Host
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// PID is the server's process id, or 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.Exited() {
		return 0
	}
	return s.proc.Pid()
}

// Dir is the server's folder (absolute).
func (s *Server) Dir() string { return s.cfg.Dir }

// ErrorLog is the path of the server's error log.
func (s *Server) ErrorLog() string { return s.p.errorLog() }

// Running reports whether the server process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.Exited()
}

// Options returns clickhouse-go options for the user "default" on this
// server, with LZ4 compression and the given default database ("" for the
// server's default).
func (s *Server) Options(database string) *clickhouse.Options {
	return &clickhouse.Options{
		Addr:        []string{s.Addr()},
		Auth:        clickhouse.Auth{Database: database, Username: "default"},
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		DialTimeout: 5 * time.Second,
	}
}

// Open returns a native connection pool to this server as Options(database)
// describes. It does not dial until first used.
func (s *Server) Open(database string) (driver.Conn, error) {
	conn, err := clickhouse.Open(s.Options(database))
	if err != nil {
		return nil, fmt.Errorf("chlocal: open %s: %w", s.Addr(), err)
	}
	return conn, nil
}

// Stop sends SIGTERM and waits for the server to exit. If it has not
// exited after Config.StopTimeout, or when ctx ends first, it is killed
// and Stop returns an error saying so. Stopping a stopped server is a
// no-op.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	if p.Exited() {
		return nil
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	timer := time.NewTimer(s.cfg.StopTimeout)
	defer timer.Stop()
	select {
	case <-p.Done():
		s.log.Info("clickhouse stopped", slog.String("addr", s.Addr()))
		return nil
	case <-timer.C:
		err := fmt.Errorf("chlocal: server did not stop within %s after SIGTERM; killed", s.cfg.StopTimeout)
		return errors.Join(err, p.KillWait())
	case <-ctx.Done():
		err := fmt.Errorf("chlocal: stop: %w; killed", ctx.Err())
		return errors.Join(err, p.KillWait())
	}
}

// Kill sends SIGKILL to the server, as a crash would, and waits until it
// has exited. Restart brings it back on the same data.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil || p.Exited() {
		s.proc = nil
		return ErrNotRunning
	}
	s.proc = nil
	if err := p.KillWait(); err != nil {
		return err
	}
	s.log.Info("clickhouse killed", slog.String("addr", s.Addr()))
	return nil
}

// Restart stops the server if it is running, then starts it again on the
// same ports and data and waits for a ping.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(ctx); err != nil {
		return fmt.Errorf("chlocal: restart: %w", err)
	}
	return s.start(ctx)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// tailSince returns at most the last 4 KiB written to path after offset.
func tailSince(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 4 << 10
	if size := fileSize(path); size-offset > max {
		offset = size - max
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, max))
	return string(b)
}
