package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/consumers/detector"
	"github.com/airtally/airtally/internal/chlocal"
	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/cli"
	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/publisher"
)

// Issue 13: every component starts, and keeps running, while what it
// depends on is down; it says so once, reports not ready, and begins work
// when the dependency comes back. Each component here is the airtally
// command itself (cli.Run, in this process), as an operator starts it.

// component is one airtally command running in this process.
type component struct {
	t       *testing.T
	name    string
	metrics string // host:port of its metrics server ("" if none)
	stdout  *testenv.LogBuffer
	stderr  *testenv.LogBuffer
	cancel  context.CancelFunc
	done    chan int // its exit code
}

// startComponent runs "airtally args..." until stop; its metrics server,
// if metrics, listens on a free port.
func startComponent(t *testing.T, metrics bool, args ...string) *component {
	t.Helper()
	c := &component{t: t, name: args[0], stdout: &testenv.LogBuffer{}, stderr: &testenv.LogBuffer{}, done: make(chan int, 1)}
	if metrics {
		c.metrics = freeAddr(t)
		args = append(args, "--metrics-addr", c.metrics)
	}
	// A safety net only: a component that never stops fails the test at
	// stop, not by this.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	c.cancel = cancel
	go func() { c.done <- cli.Run(ctx, args, c.stdout, c.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-c.done:
		case <-time.After(time.Minute):
			t.Errorf("%s did not stop within a minute of its context's end", c.name)
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", c.name, lastOf(c.stderr.String()))
		}
	})
	return c
}

func lastOf(s string) string {
	if len(s) > 12<<10 {
		return "…" + s[len(s)-12<<10:]
	}
	return s
}

// running fails the test if the component has exited.
func (c *component) running() {
	c.t.Helper()
	select {
	case code := <-c.done:
		c.done <- code
		c.t.Fatalf("%s exited by itself with code %d:\n%s", c.name, code, lastOf(c.stderr.String()))
	default:
	}
}

// stop cancels the component and returns its exit code.
func (c *component) stop() int {
	c.t.Helper()
	c.cancel()
	select {
	case code := <-c.done:
		c.done <- code
		return code
	case <-time.After(time.Minute):
		c.t.Fatalf("%s did not stop within a minute", c.name)
		return -1
	}
}

// exitCode waits for the component to end by itself.
func (c *component) exitCode() int {
	c.t.Helper()
	select {
	case code := <-c.done:
		c.done <- code
		return code
	case <-time.After(2 * time.Minute):
		c.t.Fatalf("%s still running after 2 minutes, want it ended:\n%s", c.name, lastOf(c.stderr.String()))
		return -1
	}
}

// readyz is the status code of its /readyz (0 if it does not answer).
func (c *component) readyz() int {
	res, err := http.Get("http://" + c.metrics + "/readyz")
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// dependencyUp is airtally_dependency_up{dependency=dep} ("" if absent).
func (c *component) dependencyUp(dep string) string {
	res, err := http.Get("http://" + c.metrics + "/metrics")
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	prefix := `airtally_dependency_up{dependency="` + dep + `"} `
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			return v
		}
	}
	return ""
}

// waitsFor waits until the component has said, once, that it waits for
// name, and reports not ready.
func (c *component) waitsFor(name, dep string) {
	c.t.Helper()
	line := name + " at "
	testenv.Eventually(c.t, wait, func() bool {
		return strings.Contains(c.stderr.String(), line) && strings.Contains(c.stderr.String(), "is not reachable yet")
	},
		"%s never said it waits for %s:\n%s", c.name, name, c.stderr.String())
	c.running()
	if c.metrics != "" {
		testenv.Eventually(c.t, wait, func() bool { return c.dependencyUp(dep) == "0" }, "%s: airtally_dependency_up{dependency=%q} never 0", c.name, dep)
	}
}

// ready waits until /readyz answers 200 and every dependency is up.
func (c *component) ready(deps ...string) {
	c.t.Helper()
	testenv.Eventually(c.t, wait, func() bool { return c.readyz() == http.StatusOK }, "%s never ready:\n%s", c.name, lastOf(c.stderr.String()))
	for _, d := range deps {
		if v := c.dependencyUp(d); v != "1" {
			c.t.Fatalf("%s ready, but airtally_dependency_up{dependency=%q} = %q", c.name, d, v)
		}
	}
}

// saidOnce requires each "not reachable yet" line for name to be said
// once per wait: here, once.
func (c *component) saidOnce(name string) {
	c.t.Helper()
	n := 0
	for _, l := range strings.Split(c.stderr.String(), "\n") {
		if strings.Contains(l, "airtally "+c.name+": "+name+" at ") && strings.Contains(l, "is not reachable yet") {
			n++
			if !strings.Contains(l, "(error id ") {
				c.t.Errorf("%s: the waiting line has no error id: %q", c.name, l)
			}
		}
	}
	if n != 1 {
		c.t.Errorf("%s said %d times that it waits for %s, want once:\n%s", c.name, n, name, c.stderr.String())
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := chlocal.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(p)
}

// laterNATS is a NATS server not started yet, on a port of its own.
type laterNATS struct {
	port int
	url  string
	n    *testenv.NATS
}

func newLaterNATS(t *testing.T) *laterNATS {
	t.Helper()
	p, err := chlocal.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return &laterNATS{port: p, url: fmt.Sprintf("nats://127.0.0.1:%d", p)}
}

// start starts the server, or starts it again on the same store after
// stop.
func (l *laterNATS) start(t *testing.T, opts func(*server.Options)) {
	t.Helper()
	if l.n != nil {
		l.n.Restart(t)
		return
	}
	l.n = testenv.StartNATS(t, natsembed.Config{Port: l.port, Options: opts})
}

// stop stops the server, as in an outage.
func (l *laterNATS) stop() { l.n.Server.Stop() }

// onceCounts is how many acknowledged ids have one row through FINAL, and
// how many have more.
func onceCounts(t *testing.T, conn driver.Conn, db string, want []uuid.UUID) (once, twice int) {
	t.Helper()
	qdb, err := chsql.Ident(db)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(t.Context(), "SELECT event_id, count() FROM "+qdb+".events FINAL GROUP BY event_id")
	if err != nil {
		return 0, 0 // not there yet (ClickHouse starting, table not migrated)
	}
	defer rows.Close()
	got := map[uuid.UUID]uint64{}
	for rows.Next() {
		var id uuid.UUID
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatalf("scan: %v", err)
		}
		got[id] = n
	}
	for _, id := range want {
		switch got[id] {
		case 0:
		case 1:
			once++
		default:
			twice++
		}
	}
	return once, twice
}

// loadedOnce waits until every id has exactly one row through FINAL.
func loadedOnce(t *testing.T, conn driver.Conn, db string, want []uuid.UUID) {
	t.Helper()
	var once, twice int
	testenv.Eventually(t, 2*wait, func() bool {
		once, twice = onceCounts(t, conn, db, want)
		return once == len(want) || twice > 0
	}, "only %d of %d events loaded", once, len(want))
	if twice > 0 {
		t.Fatalf("%d events counted twice (FINAL)", twice)
	}
}

func newLibraryPublisher(t *testing.T, url string) *publisher.Publisher {
	t.Helper()
	nc := testenv.Connect(t, url)
	pub, err := publisher.New(t.Context(), nc, publisher.Config{SpoolDir: t.TempDir(), ANIKey: []byte("startup-test-ani-key")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = pub.Close(ctx)
	})
	return pub
}

func loaderArgs(natsURL, db string) []string {
	return []string{"loader", "--nats-url", natsURL, "--clickhouse-addr", testenv.ClickHouse().Addr(), "--clickhouse-database", db,
		"--batch-size", "50", "--flush-interval", "50ms", "--log-level", "debug"}
}

// The loader started with NATS, ClickHouse or both down: it says so once,
// is not ready, stays up, and once they are back migrates the (empty)
// database, loads every event exactly once and is ready.
func TestLoaderStartsWithEachDependencyDown(t *testing.T) {
	cases := []struct {
		name         string
		natsDown     bool
		chDown       bool
		natsBackLast bool
	}{
		{name: "NATS down", natsDown: true},
		{name: "ClickHouse down", chDown: true},
		{name: "both down, NATS back first", natsDown: true, chDown: true},
		{name: "both down, ClickHouse back first", natsDown: true, chDown: true, natsBackLast: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, db := testenv.NewDatabase(t, false) // the loader migrates it
			ns := newLaterNATS(t)
			if !tc.natsDown {
				ns.start(t, nil)
			}
			t.Cleanup(func() { restartClickHouse(t) })
			if tc.chDown {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := testenv.ClickHouse().Stop(ctx); err != nil {
					t.Fatalf("stop ClickHouse: %v", err)
				}
			}
			l := startComponent(t, true, loaderArgs(ns.url, db)...)
			if tc.chDown {
				l.waitsFor("ClickHouse", "clickhouse")
			} else {
				l.waitsFor("NATS", "nats")
			}
			if l.readyz() != http.StatusServiceUnavailable {
				t.Fatalf("/readyz %d while waiting, want 503", l.readyz())
			}
			bringNATS := func() {
				if tc.natsDown {
					ns.start(t, nil)
				}
			}
			if !tc.natsBackLast {
				bringNATS()
			}
			if tc.chDown {
				restartClickHouse(t)
			}
			if tc.natsBackLast {
				if tc.chDown {
					// It migrates, then waits for NATS.
					l.waitsFor("NATS", "nats")
				}
				bringNATS()
			}
			evs := newEvents(source("acd", "tampa-01"), 200)
			publishAll(t, newLibraryPublisher(t, ns.url), evs, "")
			loadedOnce(t, conn, db, ids(evs))
			l.ready("nats", "clickhouse")
			if tc.chDown {
				l.saidOnce("ClickHouse")
			}
			if tc.natsDown && (tc.natsBackLast || !tc.chDown) {
				l.saidOnce("NATS") // else NATS was back before the loader looked
			}
			if code := l.stop(); code != 0 {
				t.Fatalf("loader exit code %d, want 0:\n%s", code, l.stderr.String())
			}
		})
	}
}

// The gateway, the detector and the loader all started while NATS is
// down: the gateway serves at once and spools (202), the detector and
// loader wait and are not ready; when NATS comes back the gateway's
// events are loaded exactly once, the detector reads the whole stream,
// and all are ready. Then NATS is lost while they run: nothing exits,
// /readyz follows, and they resume.
func TestGatewayDetectorAndLoaderStartWithNATSDown(t *testing.T) {
	conn, db := testenv.NewDatabase(t, false)
	ns := newLaterNATS(t)
	dir := t.TempDir()
	tokens, key := filepath.Join(dir, "tokens"), filepath.Join(dir, "ani.key")
	if err := os.WriteFile(tokens, []byte(gatewayToken+" * * e2e\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte("startup-test-ani-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	gw := startComponent(t, true, "gateway", "--listen", listen, "--nats-url", ns.url, "--tokens-file", tokens, "--ani-key-file", key,
		"--spool-dir", filepath.Join(dir, "spool", "gateway"), "--log-level", "debug")
	det := startComponent(t, true, "detector", "--nats-url", ns.url, "--spool-dir", filepath.Join(dir, "spool", "detector"), "--log-level", "debug")
	l := startComponent(t, true, loaderArgs(ns.url, db)...)
	for _, c := range []*component{gw, det, l} {
		c.waitsFor("NATS", "nats")
	}
	for _, c := range []*component{det, l} {
		if code := c.readyz(); code != http.StatusServiceUnavailable {
			t.Fatalf("%s /readyz %d while NATS is down, want 503", c.name, code)
		}
	}
	// The gateway's /readyz (on its listener) says whether it accepts
	// events: it does while NATS is down, into its spool.
	gwReadyz := func() int {
		res, err := http.Get("http://" + listen + "/readyz")
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	testenv.Eventually(t, wait, func() bool { return gwReadyz() == http.StatusOK }, "the gateway does not accept events while NATS is down")
	client := &gatewayClient{t: t, url: "http://" + listen + "/v1/events"}
	web := newEvents(source("web", "shop-01"), 60)
	client.postEvents("array", web, publisher.StatusSpooled)

	ns.start(t, nil)
	loadedOnce(t, conn, db, ids(web))
	testenv.Eventually(t, wait, func() bool { return gw.dependencyUp("nats") == "1" }, "gateway: NATS never up in the gauge")
	l.ready("nats", "clickhouse")
	det.ready("nats")
	detectorCaughtUp(t, ns.url)

	// NATS lost while they run, then back on the same store.
	ns.stop()
	for _, c := range []*component{gw, det, l} {
		testenv.Eventually(t, wait, func() bool { return c.dependencyUp("nats") == "0" }, "%s: NATS lost, still up in the gauge", c.name)
	}
	for _, c := range []*component{det, l} {
		if code := c.readyz(); code != http.StatusServiceUnavailable {
			t.Fatalf("%s /readyz %d with NATS lost, want 503", c.name, code)
		}
	}
	more := newEvents(source("web", "shop-01"), 40)
	client.postEvents("ndjson", more, publisher.StatusSpooled)
	for _, c := range []*component{gw, det, l} {
		c.running()
	}
	ns.start(t, nil)
	loadedOnce(t, conn, db, ids(web, more))
	for _, c := range []*component{det, l} {
		c.ready("nats")
	}
	testenv.Eventually(t, wait, func() bool { return gw.dependencyUp("nats") == "1" }, "gateway: NATS never up again in the gauge")
	detectorCaughtUp(t, ns.url)
	for _, c := range []*component{gw, det, l} {
		c.saidOnce("NATS") // at start-up; a loss while running is logged, not said
	}
	for _, c := range []*component{gw, det, l} {
		if code := c.stop(); code != 0 {
			t.Fatalf("%s exit code %d, want 0:\n%s", c.name, code, lastOf(c.stderr.String()))
		}
	}
}

// detectorCaughtUp waits until the detector's consumer has been
// delivered the whole events stream.
func detectorCaughtUp(t *testing.T, url string) {
	t.Helper()
	js, err := jetstream.New(testenv.Connect(t, url))
	if err != nil {
		t.Fatal(err)
	}
	var desc string
	testenv.Eventually(t, wait, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, streams.DefaultEventsStream)
		if err != nil {
			desc = err.Error()
			return false
		}
		si, err := s.Info(ctx)
		if err != nil {
			desc = err.Error()
			return false
		}
		c, err := s.Consumer(ctx, detector.DefaultConsumer)
		if err != nil {
			desc = err.Error()
			return false
		}
		ci, err := c.Info(ctx)
		if err != nil {
			desc = err.Error()
			return false
		}
		desc = fmt.Sprintf("stream at %d, detector delivered %d, pending %d", si.State.LastSeq, ci.Delivered.Stream, ci.NumPending)
		return si.State.LastSeq > 0 && ci.Delivered.Stream >= si.State.LastSeq && ci.NumPending == 0
	}, "the detector did not read the stream: %s", lazy(func() string { return desc }))
}

// "airtally migrate" started while ClickHouse is down waits, says so once,
// and migrates when it is back.
func TestMigrateWaitsForClickHouse(t *testing.T) {
	_, db := testenv.NewDatabase(t, false)
	t.Cleanup(func() { restartClickHouse(t) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := testenv.ClickHouse().Stop(ctx); err != nil {
		t.Fatal(err)
	}
	m := startComponent(t, false, "migrate", "--clickhouse-addr", testenv.ClickHouse().Addr(), "--clickhouse-database", db)
	m.waitsFor("ClickHouse", "clickhouse")
	restartClickHouse(t)
	if code := m.exitCode(); code != 0 {
		t.Fatalf("migrate exit code %d:\n%s", code, m.stderr.String())
	}
	if !strings.Contains(m.stdout.String(), "applied migrations") {
		t.Fatalf("migrate printed %q, want the migrations applied", m.stdout.String())
	}
	m.saidOnce("ClickHouse")
}

// A configuration error ends the component at once, with its reason, not
// after a wait: credentials NATS refuses, a ClickHouse user that does not
// exist, a database of the other mode.
func TestConfigurationErrorsEndAtOnce(t *testing.T) {
	ns := newLaterNATS(t)
	ns.start(t, func(o *server.Options) { o.Username, o.Password = "airtally", "right-password" })
	_, db := testenv.NewDatabase(t, true)
	dir := t.TempDir()
	wrong := filepath.Join(dir, "wrong-password")
	tokens, key := filepath.Join(dir, "tokens"), filepath.Join(dir, "ani.key")
	for path, content := range map[string]string{wrong: "wrong-password\n", tokens: gatewayToken + " * * e2e\n", key: "startup-test-ani-key\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	natsAuth := []string{"--nats-url", ns.url, "--nats-user", "airtally", "--nats-password-file", wrong}
	// A user that may connect but not manage streams.
	limited := newLaterNATS(t)
	limited.start(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "loader", Password: "right-password", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Deny: []string{"$JS.API.STREAM.>"}},
		}}}
	})
	right := filepath.Join(dir, "right-password")
	if err := os.WriteFile(right, []byte("right-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"loader: NATS refuses the password", append([]string{"loader", "--clickhouse-addr", testenv.ClickHouse().Addr(), "--clickhouse-database", db}, natsAuth...),
			"NATS at nats://127.0.0.1:" + strconv.Itoa(ns.port) + " refused airtally"},
		{"detector: NATS refuses the password", append([]string{"detector", "--spool-dir", filepath.Join(dir, "det")}, natsAuth...), "NATS at nats://127.0.0.1:" + strconv.Itoa(ns.port) + " refused airtally"},
		{"gateway: NATS refuses the password", append([]string{"gateway", "--listen", freeAddr(t), "--tokens-file", tokens, "--ani-key-file", key, "--spool-dir", filepath.Join(dir, "gw")}, natsAuth...),
			"NATS at nats://127.0.0.1:" + strconv.Itoa(ns.port) + " refused airtally"},
		{"loader: NATS refuses the user the JetStream API", []string{"loader", "--clickhouse-addr", testenv.ClickHouse().Addr(), "--clickhouse-database", db,
			"--nats-url", limited.url, "--nats-user", "loader", "--nats-password-file", right}, "could not create or update the JetStream streams"},
		{"loader: no such ClickHouse user", []string{"loader", "--nats-url", ns.url, "--clickhouse-addr", testenv.ClickHouse().Addr(), "--clickhouse-database", db, "--clickhouse-user", "nobody"},
			"ClickHouse at [" + testenv.ClickHouse().Addr() + "] refused airtally"},
		{"migrate: a database of the other mode", []string{"migrate", "--clickhouse-addr", testenv.ClickHouse().Addr(), "--clickhouse-database", db, "--clickhouse-cluster", "airtally"},
			"was created in the other mode"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startComponent(t, false, tc.args...)
			if code := c.exitCode(); code != 1 {
				t.Fatalf("exit code %d, want 1:\n%s", code, c.stderr.String())
			}
			out := c.stderr.String()
			if !strings.Contains(out, tc.want) || !strings.Contains(out, "(error id ") {
				t.Fatalf("stderr lacks %q with an error id:\n%s", tc.want, out)
			}
			if strings.Contains(out, "is not reachable yet") {
				t.Fatalf("a configuration error was waited for:\n%s", out)
			}
		})
	}
}

// A service stopped while it waits (SIGTERM, Ctrl-C) stops cleanly,
// exit code 0, as one stopped while it works.
func TestStoppedWhileWaitingExitsCleanly(t *testing.T) {
	_, db := testenv.NewDatabase(t, false)
	ns := newLaterNATS(t) // never started
	dir := t.TempDir()
	for _, args := range [][]string{
		loaderArgs(ns.url, db),
		{"detector", "--nats-url", ns.url, "--spool-dir", filepath.Join(dir, "det")},
	} {
		t.Run(args[0], func(t *testing.T) {
			c := startComponent(t, true, args...)
			c.waitsFor("NATS", "nats")
			if code := c.stop(); code != 0 {
				t.Fatalf("exit code %d, want 0:\n%s", code, c.stderr.String())
			}
		})
	}
}
