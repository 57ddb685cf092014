package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/airtally/airtally/internal/flowwatch"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/connect"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
)

// Sources of the producers.
var (
	directSources  = []event.Source{{System: "acd", Instance: "chaos-1"}, {System: "acd", Instance: "chaos-2"}}
	cuttableSource = event.Source{System: "acd", Instance: "chaos-cut"}
	gatewaySource  = event.Source{System: "web", Instance: "chaos-shop"}
)

// Loader settings shared by both loaders (AckWait is the shared
// consumer's): small batches, quick flushes and retries, a short AckWait
// so that a killed loader's messages come back soon.
const (
	loaderBatch      = 50
	loaderFlush      = 20 * time.Millisecond
	loaderAckWait    = 2 * time.Second
	loaderBackoffMax = 250 * time.Millisecond
)

// runner is one run: the processes, the in-process parts and what can be
// broken.
type runner struct {
	cfg Config
	log *slog.Logger

	nats         *natsCluster
	nc           *nats.Conn // the harness's own connection, to inspect
	in           *inspector
	loaderProc   *proc
	gatewayProc  *proc
	detectorProc *proc
	gatewayAddr  string
	chProxy      *faultProxy // in front of ClickHouse for the in-process loader
	cuttable     *faultProxy // between a publisher and the cluster
	pubs         []*publisher.Publisher
	load         *load
	watch        *flowwatch.Watch
	faults       map[Fault]int

	began   time.Time // when Run started: the clock of Exit.At
	exitsMu sync.Mutex
	exits   []Exit

	cleanups []func()
}

// exited records a process that exited by itself.
func (r *runner) exited(p *proc, err error) {
	at := time.Since(r.began)
	r.log.Error("chaos: a process exited by itself", "process", p.name, "at", at.Round(time.Millisecond).String(), "err", err)
	r.exitsMu.Lock()
	defer r.exitsMu.Unlock()
	r.exits = append(r.exits, Exit{Process: p.name, At: at, How: fmt.Sprint(err), LogTail: p.tail(2048)})
}

func (r *runner) onClose(f func()) { r.cleanups = append(r.cleanups, f) }

// close undoes everything, last first; ClickHouse is left running.
func (r *runner) close() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	if !r.cfg.ClickHouse.Running() {
		if err := r.restartClickHouse(); err != nil {
			r.log.Error("chaos: restart ClickHouse after the run", "err", err)
		}
	}
}

// ClickHouseStartTimeout bounds a restart of ClickHouse by the harness.
// ClickHouse 18.16 loads every part of every table before it answers; on
// a loaded 2-core machine, with the thousands of small parts a run's
// batches of 50 make, that took over a minute (and once about 7), which
// is the server's start-up, not the chain's recovery. Give chlocal the
// same StartTimeout.
const ClickHouseStartTimeout = 10 * time.Minute

// restartClickHouse starts ClickHouse again, waiting up to
// ClickHouseStartTimeout.
func (r *runner) restartClickHouse() error {
	ctx, cancel := context.WithTimeout(context.Background(), ClickHouseStartTimeout)
	defer cancel()
	return r.cfg.ClickHouse.Restart(ctx)
}

// Run brings the chain up, injects faults for cfg.Duration, lets
// everything settle and accounts for every acknowledged event. The error
// is for a run that could not be set up or was stopped (ctx); a run that
// found events lost or counted twice returns a Result whose OK is false.
// Every process it started is killed before it returns.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, log: cfg.Logger, faults: map[Fault]int{}, began: time.Now()}
	r.cfg.onExit = r.exited
	defer r.close()
	if err := r.setUp(ctx); err != nil {
		return nil, err
	}
	res := &Result{Seed: cfg.Seed, SyncAlways: cfg.SyncAlways, Faults: map[Fault]int{}}
	if err := r.watch.WaitGrowth(ctx, 200, cfg.FlowTimeout); err != nil {
		return nil, fmt.Errorf("chaos: no flow before the first fault: %w%s", err, r.tails())
	}

	sched := newSchedule(cfg.Seed, len(r.nats.nodes))
	cfg.Progress(fmt.Sprintf("injecting faults for %s, seed %d, sync %s", cfg.Duration, cfg.Seed, SyncName(cfg.SyncAlways)))
	began := time.Now()
	end := began.Add(cfg.Duration)
	// The first round (every kind once) is always played in full.
	for time.Now().Before(end) || sched.n < len(Faults) {
		st := sched.next()
		cfg.Progress(fmt.Sprintf("%6.1fs %s", r.watch.Elapsed().Seconds(), st))
		res.Schedule = append(res.Schedule, st)
		if st.Overlap != "" {
			res.Overlaps++
		}
		err := r.play(ctx, st)
		if err == nil {
			// Every step is repaired before the next: the flow must resume.
			if err = r.watch.WaitGrowth(ctx, 50, cfg.FlowTimeout); err != nil {
				err = fmt.Errorf("after %s: %w", st, err)
			}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("chaos: stopped at step %d: %w", st.N, ctx.Err())
		}
		if err != nil {
			res.Problems = append(res.Problems, "the flow did not resume: "+err.Error()+r.tails())
			break
		}
		_ = sleep(ctx, st.Calm)
	}
	res.Faulting = time.Since(began)
	res.Stalls, _ = r.watch.Stop()
	r.load.halt()
	cfg.Progress("faults stopped; settling and accounting")
	if err := r.account(ctx, res); err != nil {
		return nil, err
	}
	// A process that exits by itself fails the run, whenever it did.
	r.exitsMu.Lock()
	res.Exits = slices.Clone(r.exits)
	r.exitsMu.Unlock()
	return res, nil
}

// setUp starts the cluster, the streams, the loaders, the gateway and the
// producers.
func (r *runner) setUp(ctx context.Context) error {
	cfg := r.cfg
	for _, d := range []string{"logs", "secrets", "spool"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o750); err != nil {
			return fmt.Errorf("chaos: create %s: %w", d, err)
		}
	}
	cl, err := startNATSCluster(ctx, &r.cfg, 3)
	if err != nil {
		return err
	}
	r.nats = cl
	r.onClose(cl.stop)

	r.nc, err = connect.ConnectNATS(connect.NATS{URL: cl.URLs(), Name: "airtally-chaos"}, r.log)
	if err != nil {
		return fmt.Errorf("chaos: connect to the cluster: %w", err)
	}
	r.onClose(r.nc.Close)
	js, err := jetstream.New(r.nc)
	if err != nil {
		return fmt.Errorf("chaos: jetstream: %w", err)
	}
	if err := ensureStreams(ctx, js); err != nil {
		return err
	}
	admin, err := cfg.ClickHouse.Open(cfg.Database)
	if err != nil {
		return fmt.Errorf("chaos: open ClickHouse: %w", err)
	}
	r.onClose(func() { _ = admin.Close() })
	if r.in, err = newInspector(admin, js, cfg.Database); err != nil {
		return err
	}

	// Loaders: one process (killed with SIGKILL), one in this process whose
	// ClickHouse connection goes through a proxy that can slow it down.
	r.loaderProc = newProc(&r.cfg, "loader", "loader",
		"--nats-url", cl.URLs(), "--stream-replicas", "3",
		"--clickhouse-addr", cfg.ClickHouse.Addr(), "--clickhouse-database", cfg.Database, "--migrate=false",
		"--batch-size", fmt.Sprint(loaderBatch), "--flush-interval", loaderFlush.String(),
		"--ack-wait", loaderAckWait.String(), "--backoff-max", loaderBackoffMax.String(),
		"--metrics-addr", "", "--log-level", "debug")
	if err := r.loaderProc.start(); err != nil {
		return err
	}
	r.onClose(r.loaderProc.kill)
	if r.chProxy, err = startFaultProxy(cfg.ClickHouse.Addr()); err != nil {
		return err
	}
	r.onClose(r.chProxy.close)
	if err := r.startInProcessLoader(); err != nil {
		return err
	}

	if err := r.startGateway(ctx); err != nil {
		return err
	}
	// The detector, a process too: it has nothing to check in the
	// account, but must start in any order and stay up like the others.
	r.detectorProc = newProc(&r.cfg, "detector", "detector",
		"--nats-url", cl.URLs(), "--stream-replicas", "3", "--ensure-streams=false",
		"--spool-dir", filepath.Join(cfg.Dir, "spool", "detector"), "--metrics-addr", "", "--log-level", "debug")
	if err := r.detectorProc.start(); err != nil {
		return err
	}
	r.onClose(r.detectorProc.kill)

	// Producers: two publishers straight on the cluster, one through a
	// cuttable proxy, and an HTTP client of the gateway. The publishers
	// are opened first, so that the producers stop (registered last, run
	// first) before the publishers close.
	var pubs []*publisher.Publisher
	for i := range directSources {
		nc, err := connect.ConnectNATS(connect.NATS{URL: cl.URLs(), Name: fmt.Sprintf("airtally-chaos-publisher-%d", i+1)}, r.log)
		if err != nil {
			return fmt.Errorf("chaos: connect publisher: %w", err)
		}
		r.onClose(nc.Close)
		pub, err := r.openPublisher(ctx, nc, fmt.Sprintf("publisher-%d", i+1))
		if err != nil {
			return err
		}
		pubs = append(pubs, pub)
	}
	if r.cuttable, err = startFaultProxy(cl.hostPorts()...); err != nil {
		return err
	}
	r.onClose(r.cuttable.close)
	// It ignores the servers the cluster advertises, so a cut is a cut;
	// otherwise as production connects.
	cnc, err := nats.Connect("nats://"+r.cuttable.addr(),
		nats.Name("airtally-chaos-cuttable"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(-1),
		nats.IgnoreDiscoveredServers(),
	)
	if err != nil {
		return fmt.Errorf("chaos: connect through the proxy: %w", err)
	}
	r.onClose(cnc.Close)
	cpub, err := r.openPublisher(ctx, cnc, "publisher-cut")
	if err != nil {
		return err
	}
	token, err := r.secret("gateway.token")
	if err != nil {
		return err
	}
	h := httpProducer{url: "http://" + r.gatewayAddr + "/v1/events", token: token, client: &http.Client{Timeout: 30 * time.Second}}

	r.load = newLoad()
	r.onClose(r.load.halt)
	for i, src := range directSources {
		r.load.wg.Go(func() { r.load.produce(pubs[i], src) })
	}
	r.load.wg.Go(func() { r.load.produce(cpub, cuttableSource) })
	r.load.wg.Go(func() { r.load.produceHTTP(h, gatewaySource) })

	r.watch = flowwatch.Start(r.in.rawCount)
	r.onClose(func() { r.watch.Stop() })
	return nil
}

// ensureStreams creates the streams with three replicas, retrying while
// the cluster elects its leaders.
func ensureStreams(ctx context.Context, js jetstream.JetStream) error {
	deadline := time.Now().Add(time.Minute)
	for {
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := streams.Ensure(ectx, js, streams.Config{Replicas: 3})
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: ensure replicated streams: %w", err)
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
}

// openPublisher opens a publisher with production's settings on nc, with
// its spool in Dir/spool/name; it is closed when the run ends.
func (r *runner) openPublisher(ctx context.Context, nc *nats.Conn, name string) (*publisher.Publisher, error) {
	key, err := r.secret("ani.key")
	if err != nil {
		return nil, err
	}
	pub, err := publisher.New(ctx, nc, publisher.Config{SpoolDir: filepath.Join(r.cfg.Dir, "spool", name), ANIKey: []byte(key), Logger: r.log.With("publisher", name)})
	if err != nil {
		return nil, fmt.Errorf("chaos: new publisher %s: %w", name, err)
	}
	r.pubs = append(r.pubs, pub)
	r.onClose(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pub.Close(cctx); err != nil {
			r.log.Warn("chaos: close publisher", "publisher", name, "err", err)
		}
	})
	return pub, nil
}

// secret is the content of Dir/secrets/name, created (random, 0600) if
// missing. Secrets reach the processes as files, never on a command line.
func (r *runner) secret(name string) (string, error) {
	path := filepath.Join(r.cfg.Dir, "secrets", name)
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("chaos: random secret: %w", err)
	}
	s := hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("chaos: write secret %s: %w", name, err)
	}
	return s, nil
}

// startGateway writes the gateway's token and key files and starts it as
// a process on a fixed port, connected to every node.
func (r *runner) startGateway(ctx context.Context) error {
	token, err := r.secret("gateway.token")
	if err != nil {
		return err
	}
	if _, err := r.secret("ani.key"); err != nil {
		return err
	}
	tokens := filepath.Join(r.cfg.Dir, "secrets", "tokens")
	if err := os.WriteFile(tokens, []byte(token+" * * chaos\n"), 0o600); err != nil {
		return fmt.Errorf("chaos: write the tokens file: %w", err)
	}
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	r.gatewayAddr = loopback(ports[0])
	r.gatewayProc = newProc(&r.cfg, "gateway", "gateway",
		"--listen", r.gatewayAddr, "--nats-url", r.nats.URLs(), "--stream-replicas", "3", "--ensure-streams=false",
		"--tokens-file", tokens, "--ani-key-file", filepath.Join(r.cfg.Dir, "secrets", "ani.key"),
		"--spool-dir", filepath.Join(r.cfg.Dir, "spool", "gateway"), "--metrics-addr", "")
	if err := r.gatewayProc.start(); err != nil {
		return err
	}
	r.onClose(r.gatewayProc.kill)
	if err := waitTCP(ctx, r.gatewayAddr, 30*time.Second); err != nil {
		return fmt.Errorf("chaos: gateway: %w; its log:\n%s", err, r.gatewayProc.tail(2048))
	}
	return nil
}

// startInProcessLoader runs a loader in this process whose ClickHouse
// connection goes through r.chProxy, until the run ends.
func (r *runner) startInProcessLoader() error {
	nc, err := connect.ConnectNATS(connect.NATS{URL: r.nats.URLs(), Name: "airtally-chaos-loader-b"}, r.log)
	if err != nil {
		return fmt.Errorf("chaos: connect loader: %w", err)
	}
	r.onClose(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("chaos: jetstream: %w", err)
	}
	opts := r.cfg.ClickHouse.Options(r.cfg.Database)
	opts.Addr = []string{r.chProxy.addr()}
	var conn driver.Conn
	if conn, err = clickhouse.Open(opts); err != nil {
		return fmt.Errorf("chaos: open ClickHouse through the proxy: %w", err)
	}
	r.onClose(func() { _ = conn.Close() })
	l, err := loader.New(js, conn, loader.Config{
		Database: r.cfg.Database, BatchSize: loaderBatch, FlushInterval: loaderFlush, AckWait: loaderAckWait,
		BackoffMin: 20 * time.Millisecond, BackoffMax: loaderBackoffMax, ShutdownTimeout: 5 * time.Second, LagInterval: time.Second,
		Logger: r.log.With("loader", "in-process"), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		return fmt.Errorf("chaos: new loader: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(lctx) }()
	r.onClose(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				r.log.Warn("chaos: in-process loader", "err", err)
			}
		case <-time.After(time.Minute):
			r.log.Error("chaos: the in-process loader did not stop")
		}
	})
	return nil
}

// procs is every process of the run.
func (r *runner) procs() []*proc {
	all := []*proc{r.loaderProc, r.gatewayProc, r.detectorProc}
	if r.nats != nil {
		all = append(all, r.nats.nodes...)
	}
	var out []*proc
	for _, p := range all {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// tails is the end of every process's log, for a failure.
func (r *runner) tails() string {
	var b strings.Builder
	for _, p := range r.procs() {
		if t := p.tail(1024); t != "" {
			fmt.Fprintf(&b, "\n--- %s log (end):\n%s", p.name, t)
		}
	}
	return b.String()
}

// settle waits until every spool of this process is drained, every
// acknowledged event is in events (FINAL) and the loaders' consumer has
// nothing left to deliver or to be acknowledged. It keeps waiting as long
// as that moves (a long run leaves a backlog, drained at the chain's
// pace): it gives up after SettleTimeout without progress, or after
// SettleTimeout plus twice Duration in all. It returns "" when settled,
// else what was still wrong when it gave up.
func (r *runner) settle(ctx context.Context, acked []uuid.UUID) string {
	hardDeadline := time.Now().Add(r.cfg.SettleTimeout + 2*r.cfg.Duration)
	deadline := time.Now().Add(r.cfg.SettleTimeout)
	var last string
	for time.Now().Before(deadline) && time.Now().Before(hardDeadline) {
		now := r.unsettled(ctx, acked)
		if now == "" {
			return ""
		}
		if now != last {
			// Progress (or a first look): the clock starts again.
			deadline = time.Now().Add(r.cfg.SettleTimeout)
			last = now
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err.Error()
		}
	}
	return last
}

func (r *runner) unsettled(ctx context.Context, acked []uuid.UUID) string {
	for i, p := range r.pubs {
		if n, _ := p.SpoolDepth(); n > 0 {
			return fmt.Sprintf("publisher %d still spools %d events", i, n)
		}
	}
	info, err := r.in.consumerInfo(ctx)
	if err != nil {
		return err.Error()
	}
	if info.NumPending > 0 || info.NumAckPending > 0 {
		return fmt.Sprintf("consumer has %d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
	}
	n, err := r.in.count(ctx)
	if err != nil {
		return err.Error()
	}
	if n < uint64(len(acked)) {
		return fmt.Sprintf("events holds %d rows (FINAL), want at least %d", n, len(acked))
	}
	counted, err := r.in.idCounts(ctx, " FINAL")
	if err != nil {
		return err.Error()
	}
	missing := 0
	for _, id := range acked {
		if counted[id] == 0 {
			missing++
		}
	}
	if missing > 0 {
		return fmt.Sprintf("%d acknowledged events not in events yet", missing)
	}
	return ""
}

// sortedKeys is m's keys, sorted.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
