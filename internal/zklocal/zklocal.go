// Package zklocal runs a local, standalone Apache ZooKeeper server (Debian's
// zookeeper package) for the replicated ClickHouse of the tests and of
// local cluster experiments. Production runs a ZooKeeper ensemble or
// ClickHouse Keeper of its own; see deploy/runbook.md.
package zklocal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/airtally/airtally/internal/proc"
)

// DefaultScript is where Debian's zookeeper package puts its start script.
const DefaultScript = "/usr/share/zookeeper/bin/zkServer.sh"

// ErrNotInstalled is returned by Start when the start script is missing.
var ErrNotInstalled = errors.New("zklocal: ZooKeeper is not installed (no " + DefaultScript + "); install it with: apt-get install zookeeper")

// Config configures a local server.
type Config struct {
	// Dir holds data, logs and the generated configuration. Required.
	Dir string
	// Host is the listen address; default 127.0.0.1.
	Host string
	// Port is the client port; 0 (default) picks a free one.
	Port int
	// Script is zkServer.sh; default DefaultScript.
	Script string
	// HeapMiB caps the JVM heap; default 256.
	HeapMiB int
	// StartTimeout bounds Start and Restart; default 60 s.
	StartTimeout time.Duration
	// Logger receives start/stop messages; nil discards them.
	Logger *slog.Logger
}

// Server is a local ZooKeeper. Its methods are safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex
	proc *proc.Process // nil when stopped
}

// Start writes zoo.cfg under cfg.Dir, starts ZooKeeper in the foreground
// of its own process group and waits until it answers "srvr" as a
// standalone server.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("zklocal: Dir is required")
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("zklocal: Port %d out of range 0-65535", cfg.Port)
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Script == "" {
		cfg.Script = DefaultScript
	}
	if cfg.HeapMiB == 0 {
		cfg.HeapMiB = 256
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat(cfg.Script); err != nil {
		return nil, ErrNotInstalled
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("zklocal: Dir: %w", err)
	}
	cfg.Dir = dir
	for _, d := range []string{cfg.dataDir(), cfg.logDir()} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("zklocal: create %s: %w", d, err)
		}
	}
	if cfg.Port == 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, "0"))
		if err != nil {
			return nil, fmt.Errorf("zklocal: pick a free port: %w", err)
		}
		cfg.Port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	// 4lw "srvr" is on ZooKeeper's default whitelist; the admin HTTP
	// server is off (it would take port 8080).
	conf := fmt.Sprintf("tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir=%s\nclientPortAddress=%s\nclientPort=%d\nadmin.enableServer=false\nmaxClientCnxns=0\n",
		cfg.dataDir(), cfg.Host, cfg.Port)
	if err := os.WriteFile(cfg.confFile(), []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("zklocal: write config: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (c Config) dataDir() string  { return filepath.Join(c.Dir, "data") }
func (c Config) logDir() string   { return filepath.Join(c.Dir, "log") }
func (c Config) confFile() string { return filepath.Join(c.Dir, "zoo.cfg") }
func (c Config) outFile() string  { return filepath.Join(c.logDir(), "stdout-stderr.log") }

// Addr is the client address, "host:port".
func (s *Server) Addr() string { return net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)) }

func (s *Server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.Exited() {
		return errors.New("zklocal: server is already running")
	}
	env := append(os.Environ(),
		"ZOO_LOG_DIR="+s.cfg.logDir(),
		"SERVER_JVMFLAGS=-Xmx"+strconv.Itoa(s.cfg.HeapMiB)+"m -Xms32m",
	)
	p, err := proc.Start(proc.Spec{
		Bin: s.cfg.Script, Args: []string{"start-foreground", s.cfg.confFile()},
		Dir: s.cfg.Dir, Env: env, Output: s.cfg.outFile(),
	})
	if err != nil {
		return fmt.Errorf("zklocal: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	began := time.Now()
	for {
		mode, err := s.mode()
		if err == nil && (mode == "standalone" || mode == "leader" || mode == "follower") {
			break
		}
		select {
		case <-p.Done():
			return fmt.Errorf("zklocal: server exited before it answered (%v); see %s", p.Err(), s.cfg.outFile())
		case <-ctx.Done():
			_ = p.KillWait()
			return fmt.Errorf("zklocal: no answer on %s (last: %v): %w", s.Addr(), err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.proc = p
	s.log.Info("zookeeper started", slog.String("addr", s.Addr()), slog.Int("pid", p.Pid()), slog.Duration("took", time.Since(began)))
	return nil
}

// mode asks the server "srvr" and returns its Mode line's value.
func (s *Server) mode() (string, error) {
	conn, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("srvr")); err != nil {
		return "", err
	}
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Mode: "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no Mode in srvr answer (%v)", sc.Err())
}

// Stop sends SIGTERM and waits up to 20 s, then kills. Stopping a stopped
// server is a no-op.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	s.proc = nil
	if p == nil || p.Exited() {
		return nil
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.Done():
		s.log.Info("zookeeper stopped", slog.String("addr", s.Addr()))
		return nil
	case <-time.After(20 * time.Second):
		return errors.Join(errors.New("zklocal: no exit 20s after SIGTERM; killed"), p.KillWait())
	}
}

// Kill sends SIGKILL, as a crash would, and waits for the exit.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	s.proc = nil
	if p == nil || p.Exited() {
		return errors.New("zklocal: server is not running")
	}
	return p.KillWait()
}

// Restart starts a stopped or killed server again on the same port and
// data.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.start(ctx)
}
