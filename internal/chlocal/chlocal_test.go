package chlocal_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/internal/chlocal"
	"github.com/airtally/airtally/internal/testenv"
)

func start(t *testing.T, cfg chlocal.Config) *chlocal.Server {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	s, err := chlocal.Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return s
}

func open(t *testing.T, s *chlocal.Server) driver.Conn {
	t.Helper()
	conn, err := s.Open("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func count(t *testing.T, conn driver.Conn, table string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(t.Context(), "SELECT count() FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// processGone reports whether pid has exited (a zombie counts as gone).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// "pid (comm) S ...": the state follows the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func TestStartStopRestartKill(t *testing.T) {
	s := start(t, chlocal.Config{})
	conn := open(t, s)
	ctx := t.Context()

	var version string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		t.Fatalf("version: %v", err)
	}
	if version == "" {
		t.Fatal("empty version")
	}
	t.Logf("server %s at %s", version, s.Addr())
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Errorf("Addr = %q, want 127.0.0.1:<port>", s.Addr())
	}
	var tz string
	if err := conn.QueryRow(ctx, "SELECT timezone()").Scan(&tz); err != nil || (tz != "UTC" && tz != "Etc/UTC") {
		t.Errorf("server timezone = %q, %v; want UTC", tz, err)
	}

	if err := conn.Exec(ctx, "CREATE TABLE default.survivor (n UInt64) ENGINE = MergeTree() ORDER BY n"); err != nil {
		t.Fatalf("create: %v", err)
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO default.survivor (n)")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := batch.Append(uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}

	pid := s.PID()
	addr := s.Addr()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if s.Running() || s.PID() != 0 {
		t.Error("Running after Stop")
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return processGone(pid) }, "server pid %d still alive after Stop", pid)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Stop", addr)
	}
	if err := s.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}

	if err := s.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if s.Addr() != addr {
		t.Errorf("Addr after Restart = %s, want %s", s.Addr(), addr)
	}
	if n := count(t, conn, "default.survivor"); n != 10 {
		t.Errorf("after Restart: %d rows, want 10", n)
	}

	pid = s.PID()
	if err := s.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if !processGone(pid) {
		t.Errorf("pid %d alive after Kill", pid)
	}
	if err := s.Kill(); !errors.Is(err, chlocal.ErrNotRunning) {
		t.Errorf("second Kill = %v, want ErrNotRunning", err)
	}
	if err := conn.Ping(ctx); err == nil {
		t.Error("Ping succeeded on a killed server")
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatalf("Restart after Kill: %v", err)
	}
	if n := count(t, conn, "default.survivor"); n != 10 {
		t.Errorf("after Kill and Restart: %d rows, want 10", n)
	}
}

func TestUsers(t *testing.T) {
	s := start(t, chlocal.Config{Users: []chlocal.User{
		{Name: "writer", Password: "s3cret <&>"},
		{Name: "reader", Password: "r", ReadOnly: true},
	}})
	ctx := t.Context()
	connect := func(user, password string) driver.Conn {
		opts := s.Options("")
		opts.Auth.Username, opts.Auth.Password = user, password
		conn, err := clickhouse.Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}

	writer := connect("writer", "s3cret <&>")
	if err := writer.Exec(ctx, "CREATE TABLE default.w (n UInt8) ENGINE = MergeTree() ORDER BY n"); err != nil {
		t.Fatalf("writer CREATE: %v", err)
	}
	reader := connect("reader", "r")
	var n uint64
	if err := reader.QueryRow(ctx, "SELECT count() FROM default.w").Scan(&n); err != nil {
		t.Errorf("reader SELECT: %v", err)
	}
	if err := reader.Exec(ctx, "CREATE TABLE default.r (n UInt8) ENGINE = MergeTree() ORDER BY n"); err == nil {
		t.Error("read-only user could CREATE TABLE")
	}
	if err := connect("writer", "wrong").Ping(ctx); err == nil {
		t.Error("wrong password accepted")
	}
}

func TestStartFailsWithLogTail(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = chlocal.Start(t.Context(), chlocal.Config{Dir: t.TempDir(), TCPPort: port, StartTimeout: 30 * time.Second})
	if err == nil {
		t.Fatal("Start succeeded on a taken port")
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "already in use") {
		t.Errorf("error lacks the log tail naming the cause: %v", err)
	}
}

func TestStartMissingBinary(t *testing.T) {
	_, err := chlocal.Start(t.Context(), chlocal.Config{Dir: t.TempDir(), Binary: "/nonexistent/clickhouse-server"})
	if err == nil {
		t.Fatal("Start succeeded without a binary")
	}
}

func TestFindBinary(t *testing.T) {
	bin, err := chlocal.FindBinary()
	if err != nil {
		t.Fatalf("FindBinary: %v", err) // fails, never skips: the server is a test requirement
	}
	if _, err := os.Stat(bin); err != nil {
		t.Errorf("FindBinary = %q: %v", bin, err)
	}
	if !strings.Contains(chlocal.ErrBinaryNotFound.Error(), "apt-get install clickhouse-server") {
		t.Error("ErrBinaryNotFound does not say how to install the server")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  chlocal.Config
		ok   bool
	}{
		{"minimal", chlocal.Config{Dir: "/x"}, true},
		{"no dir", chlocal.Config{}, false},
		{"negative port", chlocal.Config{Dir: "/x", TCPPort: -1}, false},
		{"port too big", chlocal.Config{Dir: "/x", HTTPPort: 70000}, false},
		{"same ports", chlocal.Config{Dir: "/x", TCPPort: 9000, HTTPPort: 9000}, false},
		{"user ok", chlocal.Config{Dir: "/x", Users: []chlocal.User{{Name: "grafana.ro"}}}, true},
		{"user default", chlocal.Config{Dir: "/x", Users: []chlocal.User{{Name: "default"}}}, false},
		{"user xml injection", chlocal.Config{Dir: "/x", Users: []chlocal.User{{Name: "a><b"}}}, false},
		{"user duplicate", chlocal.Config{Dir: "/x", Users: []chlocal.User{{Name: "a"}, {Name: "a"}}}, false},
		{"negative memory", chlocal.Config{Dir: "/x", MaxQueryMemory: -1}, false},
		{"profile ok", chlocal.Config{Dir: "/x", Users: []chlocal.User{{Name: "a", Databases: []string{"airtally"},
			Profile: &chlocal.Profile{ReadOnly: 2, NoDDL: true, MaxExecutionTime: time.Minute, MaxResultRows: 10}}}}, true},
		{"profile readonly 3", chlocal.Config{Dir: "/x", Users: []chlocal.User{{Name: "a", Profile: &chlocal.Profile{ReadOnly: 3}}}}, false},
		{"profile fractional seconds", chlocal.Config{Dir: "/x", Users: []chlocal.User{{Name: "a", Profile: &chlocal.Profile{MaxExecutionTime: 1500 * time.Millisecond}}}}, false},
		{"profile negative memory", chlocal.Config{Dir: "/x", Users: []chlocal.User{{Name: "a", Profile: &chlocal.Profile{MaxMemoryUsage: -1}}}}, false},
		{"replica ok", replicaCfg(func(*chlocal.Replica) {}), true},
		{"replica cluster injection", replicaCfg(func(r *chlocal.Replica) { r.Cluster = "c><x" }), false},
		{"replica no shard", replicaCfg(func(r *chlocal.Replica) { r.Shard = "" }), false},
		{"replica no zookeeper", replicaCfg(func(r *chlocal.Replica) { r.ZooKeeper = nil }), false},
		{"replica zookeeper no port", replicaCfg(func(r *chlocal.Replica) { r.ZooKeeper = []string{"zk"} }), false},
		{"replica root trailing slash", replicaCfg(func(r *chlocal.Replica) { r.ZooKeeperRoot = "/a/" }), false},
		{"replica not in replicas", replicaCfg(func(r *chlocal.Replica) { r.Replicas = []string{"127.0.0.1:9001"} }), false},
		{"replica picked tcp port", chlocal.Config{Dir: "/x", Host: "127.0.0.1", Replica: &chlocal.Replica{Cluster: "c", Shard: "1", Name: "r1",
			ZooKeeper: []string{"127.0.0.1:2181"}, Replicas: []string{"127.0.0.1:0"}}}, false},
		{"tls no key", chlocal.Config{Dir: "/x", TLS: &chlocal.TLS{CertFile: "c.pem"}}, false},
		{"tls port clash", chlocal.Config{Dir: "/x", TCPPort: 9000, TLS: &chlocal.TLS{CertFile: "c.pem", KeyFile: "k.pem", Port: 9000}}, false},
		{"database xml injection", chlocal.Config{Dir: "/x", Users: []chlocal.User{{Name: "a", Databases: []string{"a</database>"}}}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// replicaCfg is a valid replica's Config, changed by edit.
func replicaCfg(edit func(*chlocal.Replica)) chlocal.Config {
	r := &chlocal.Replica{Cluster: "airtally", Shard: "01", Name: "r1",
		ZooKeeper: []string{"127.0.0.1:2181"}, Replicas: []string{"127.0.0.1:9000", "127.0.0.1:9001"}}
	edit(r)
	return chlocal.Config{Dir: "/x", Host: "127.0.0.1", TCPPort: 9000, Replica: r}
}

// TestNoOrphanWhenParentDies starts a server from a child process, kills
// that child with SIGKILL (no cleanup runs) and checks that the kernel
// takes the server down with it.
func TestNoOrphanWhenParentDies(t *testing.T) {
	if os.Getenv("CHLOCAL_HELPER_DIR") != "" {
		return // this process is the helper; see TestHelperStartAndBlock
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStartAndBlock$")
	cmd.Env = append(os.Environ(), "CHLOCAL_HELPER_DIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Fscanf(out, "server-pid %d\n", &pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper did not report its server: %v", err)
	}
	if processGone(pid) {
		t.Fatalf("server %d not running while its parent lives", pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	testenv.Eventually(t, 10*time.Second, func() bool { return processGone(pid) }, "server pid %d outlived its killed parent", pid)
}

func TestHelperStartAndBlock(t *testing.T) {
	dir := os.Getenv("CHLOCAL_HELPER_DIR")
	if dir == "" {
		return // only runs as TestNoOrphanWhenParentDies's child
	}
	s, err := chlocal.Start(context.Background(), chlocal.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("server-pid %d\n", s.PID())
	select {} // killed by the parent
}
