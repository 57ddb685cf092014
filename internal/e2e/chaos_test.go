package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
)

// Issue 6 §2: chaos with an exact account. Producers publish a steady
// flow into a three-node cluster with three-way replicated streams, two
// loaders load it, and a fault injector driven by a seeded RNG breaks
// things one after another at random. Then the faults stop, everything
// settles, and every acknowledged event is accounted for.
//
// Environment:
//   - AIRTALLY_CHAOS_DURATION: how long faults are injected per sync
//     setting (a Go duration; default chaosDefaultDuration). For a long run,
//     e.g. AIRTALLY_CHAOS_DURATION=1h go test -timeout 3h -run Chaos ./internal/e2e/
//   - AIRTALLY_CHAOS_SEED: the RNG seed (default: the clock; always
//     printed, so that a failing run's sequence of faults can be replayed).
const (
	chaosDurationEnv     = "AIRTALLY_CHAOS_DURATION"
	chaosSeedEnv         = "AIRTALLY_CHAOS_SEED"
	chaosDefaultDuration = 20 * time.Second
)

// Fault kinds.
const (
	faultLoaderKill      = "loader kill -9"
	faultNATSNode        = "NATS node stopped"
	faultClickHouseStop  = "ClickHouse stopped"
	faultClickHouseKill  = "ClickHouse kill -9"
	faultProducerCut     = "producer cut from NATS"
	faultSlowClickHouse  = "slow ClickHouse"
	chaosSlowInsertDelay = 2500 * time.Millisecond // > the loaders' AckWait of 2s
)

var chaosFaults = []string{faultLoaderKill, faultNATSNode, faultClickHouseStop, faultClickHouseKill, faultProducerCut, faultSlowClickHouse}

// Under every fault, at random and repeatedly, with JetStream's default
// sync policy and with sync always: every event whose Publish returned a
// receipt (acked, duplicate or spooled) or that the gateway answered 202
// is in ClickHouse, and counted once (FINAL); each source's sequence is
// complete, and in stream order for the sources published with Publish.
func TestChaosExactAccount(t *testing.T) {
	dur := chaosDefaultDuration
	if v := os.Getenv(chaosDurationEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a positive Go duration (e.g. 40s, 1h): %v", chaosDurationEnv, v, err)
		}
		dur = d
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(chaosSeedEnv); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want an unsigned integer: %v", chaosSeedEnv, v, err)
		}
		seed = n
	}
	for _, c := range []struct {
		name       string
		syncAlways bool
	}{
		{"sync default", false},
		{"sync always", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			runChaos(t, c.syncAlways, dur, seed)
		})
	}
}

// chaos is one run: the cluster, the loaders, the producers and what can
// be broken.
type chaos struct {
	t  *testing.T
	s  *stack
	cl *natsembed.Cluster

	child    *childLoader // the loader process, replaced after each kill
	childCfg childLoaderConfig
	chProxy  *faultProxy // in front of ClickHouse for the in-process loader
	cuttable []*faultProxy
	pubs     []*publisher.Publisher
	load     *load
	faults   map[string]int
}

func runChaos(t *testing.T, syncAlways bool, dur time.Duration, seed uint64) {
	s, cl := newChaosStack(t, syncAlways)
	c := &chaos{t: t, s: s, cl: cl, faults: map[string]int{}}
	// The shared ClickHouse must be running when this test ends, whatever
	// happened (this runs before the database is dropped).
	t.Cleanup(func() { restartClickHouse(t) })

	// Loaders: one process (to be killed with SIGKILL), one in this
	// process whose ClickHouse connection goes through a proxy that can
	// slow it down.
	c.childCfg = childLoaderConfig{
		NATSURL:    cl.URLs(),
		ClickHouse: testenv.ClickHouse().Addr(),
		Database:   s.db,
		BatchSize:  50,
		AckWait:    2 * time.Second,
	}
	c.child = startChildLoader(t, c.childCfg)
	c.chProxy = startFaultProxy(t, testenv.ClickHouse().Addr())
	c.startProxiedLoader("b")

	// Producers: two publishers straight on the cluster, one through a
	// cuttable proxy, and the HTTP gateway whose publisher also goes
	// through a cuttable proxy.
	c.load = &load{t: t, quit: make(chan struct{}), counts: map[string]int{}, status: map[publisher.Status]int{}}
	for _, src := range []event.Source{source("acd", "chaos-1"), source("acd", "chaos-2")} {
		pub := s.clusterPublisher()
		c.pubs = append(c.pubs, pub)
		c.load.wg.Go(func() { c.load.produce(pub, src) })
	}
	libPub := c.proxiedPublisher()
	c.load.wg.Go(func() { c.load.produce(libPub, source("acd", "chaos-cut")) })
	gw := s.startGateway(c.proxiedPublisher())
	c.load.wg.Go(func() { c.produceHTTP(gw, chaosGatewaySource) })
	// Registered last, so run first: the producers stop before their
	// publishers are closed.
	t.Cleanup(c.load.halt)

	rows := s.watchRows()
	rows.waitGrowth(200, "before the first fault (child loader log:\n%v)", c.child.logs)

	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	t.Logf("injecting faults for %s, seed %d (%s=%d replays it)", dur, seed, chaosSeedEnv, seed)
	// Faults are drawn from a shuffled deck of every kind, reshuffled
	// when empty: random order, yet every kind comes up at least once per
	// round. The first round is always played in full.
	var deck []string
	for end, rounds := time.Now().Add(dur), 0; time.Now().Before(end) || len(deck) > 0 && rounds == 1; {
		if len(deck) == 0 {
			deck = slices.Clone(chaosFaults)
			rng.Shuffle(len(deck), func(i, j int) { deck[i], deck[j] = deck[j], deck[i] })
			rounds++
		}
		kind := deck[0]
		deck = deck[1:]
		rows.mark(kind)
		c.inject(kind, rng)
		c.faults[kind]++
		// Every fault is repaired before the next: the flow must resume.
		rows.waitGrowth(50, "after %s (child loader log:\n%v)", kind, lazy(func() string { return chaosTail(c.child.logs.String()) }))
		hold(between(rng, 200*time.Millisecond, 1500*time.Millisecond))
	}
	longest, at := rows.stop()

	c.load.halt()
	slowest, slowSrc := c.load.slowest()
	c.load.mu.Lock()
	counts, status := copyCounts(c.load.counts), fmt.Sprint(c.load.status)
	spooled := c.load.status[publisher.StatusSpooled]
	acked := slices.Clone(c.load.sent)
	c.load.mu.Unlock()
	settled := c.settle(len(acked))

	a := c.account(acked)
	t.Logf("chaos account (%s; seed %d):\n"+
		"  faults injected:          %s\n"+
		"  events acknowledged:      %d (%s), by source %v\n"+
		"  present once (FINAL):     %d\n"+
		"  lost:                     %d %v\n"+
		"  counted twice (FINAL):    %d %v\n"+
		"  physically duplicated:    %d events with more than one stored row before merge (%d extra rows)\n"+
		"  stored, not acknowledged: %d\n"+
		"  slowest Publish call:     %.2fs (%s)\n"+
		"  longest pause in loading: %.2fs (%s); timeline: %s",
		t.Name(), seed, c.faultSummary(), len(acked), status, counts,
		a.once, a.lost, head(a.lostIDs), a.twice, head(a.twiceIDs),
		a.physDup, a.extraRows, a.unacked, slowest.Seconds(), slowSrc, longest.Seconds(), at, rows.marks())
	if settled != "" {
		t.Errorf("did not settle: %s", settled)
	}
	if a.lost > 0 {
		t.Errorf("%d acknowledged events lost", a.lost)
	}
	if a.twice > 0 {
		t.Errorf("%d events counted more than once through FINAL", a.twice)
	}
	if c.faults[faultProducerCut] > 0 && spooled == 0 {
		t.Errorf("producers were cut from NATS %d times yet nothing was spooled: the fault did not bite", c.faults[faultProducerCut])
	}
	// Each source's sequence is complete. Publish keeps each source's
	// events in stream order, spool or not; the gateway publishes with
	// PublishBatch, whose documented limit is that an event whose ack
	// failed while a later one of its source was acked lands after it
	// (consumers order by source.seq), so its inversions are only counted.
	inversions := c.checkSequences(counts)
	t.Logf("stream-order inversions by source: %v", inversions)
	for src, n := range inversions {
		if n > 0 && src != chaosGatewaySource.Key() {
			t.Errorf("source %s (published with Publish): %d events in the stream before their predecessor", src, n)
		}
	}
}

// chaosGatewaySource is the source the HTTP producer sends for.
var chaosGatewaySource = source("web", "chaos-shop")

// checkSequences requires each source's rows (FINAL) to carry exactly the
// sequence numbers 1..counts[source], and returns per source how many
// rows are in the stream before the row of the previous number.
func (c *chaos) checkSequences(counts map[string]int) map[string]int {
	c.t.Helper()
	bySource := map[string][]sourceRow{}
	for _, r := range c.s.sourceRows() {
		bySource[r.source] = append(bySource[r.source], r)
	}
	inversions := map[string]int{}
	for src := range bySource {
		if _, ok := counts[src]; !ok {
			c.t.Errorf("rows of source %s, which sent nothing", src)
		}
	}
	for src, n := range counts {
		rows := bySource[src]
		if len(rows) != n {
			c.t.Errorf("source %s: %d rows, want %d", src, len(rows), n)
		}
		inversions[src] = 0
		for i, r := range rows {
			if r.sourceSeq != uint64(i+1) {
				c.t.Errorf("source %s: row %d has source_seq %d, want %d (a gap or a repeat)", src, i, r.sourceSeq, i+1)
				break
			}
			if i > 0 && r.streamSq < rows[i-1].streamSq {
				inversions[src]++
			}
		}
	}
	return inversions
}

// newChaosStack is newClusterStack with a choice of JetStream's sync
// policy on every node.
func newChaosStack(t *testing.T, syncAlways bool) (*stack, *natsembed.Cluster) {
	t.Helper()
	s := &stack{t: t, logs: &logBuffer{}}
	s.log = slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("component logs:\n%s", chaosTail(s.logs.String()))
		}
	})
	cl, err := natsembed.StartCluster(natsembed.ClusterConfig{Dir: t.TempDir(), SyncAlways: syncAlways})
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(cl.Stop)
	if err := cl.WaitJetStream(wait); err != nil {
		t.Fatal(err)
	}
	s.nats = &testenv.NATS{URL: cl.URLs()}
	js, err := jetstream.New(testenv.Connect(t, cl.URLs()))
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	s.js = js
	var ensureErr error
	testenv.Eventually(t, wait, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ensureErr = streams.Ensure(ctx, js, streams.Config{Replicas: 3})
		return ensureErr == nil
	}, "ensure replicated streams: %v", lazy(func() string { return fmt.Sprint(ensureErr) }))
	s.ch, s.db = testenv.NewDatabase(t, true)
	return s, cl
}

// chaosTail is the last 16 KiB of a log.
func chaosTail(out string) string {
	if len(out) > 16<<10 {
		return "…" + out[len(out)-16<<10:]
	}
	return out
}

// startProxiedLoader runs a loader in this process whose ClickHouse
// connection goes through c.chProxy; it stops when the test ends.
func (c *chaos) startProxiedLoader(name string) {
	c.t.Helper()
	js, err := jetstream.New(c.s.connectNATS("e2e-chaos-loader-" + name))
	if err != nil {
		c.t.Fatalf("jetstream: %v", err)
	}
	opts := testenv.ClickHouse().Options(c.s.db)
	opts.Addr = []string{c.chProxy.addr()}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		c.t.Fatalf("open clickhouse through the proxy: %v", err)
	}
	c.t.Cleanup(func() { _ = conn.Close() })
	r := &runningLoader{reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	cfg := loaderConfig(c.s.db, func(cfg *loader.Config) { cfg.BatchSize, cfg.FlushInterval = 50, 20*time.Millisecond })
	cfg.Logger, cfg.Registerer = c.s.log.With("loader", name), r.reg
	l, err := loader.New(js, conn, cfg)
	if err != nil {
		c.t.Fatalf("new loader: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- l.Run(ctx) }()
	c.t.Cleanup(func() {
		if err := r.stop(); err != nil {
			c.t.Errorf("loader %s: %v", name, err)
		}
	})
}

// proxiedPublisher is a publisher whose connection reaches the cluster
// only through a cuttable proxy (it ignores the servers the cluster
// advertises, so a cut is a cut); otherwise as production connects
// (connect.ConnectNATS: unlimited reconnects, no reconnect buffer).
func (c *chaos) proxiedPublisher() *publisher.Publisher {
	c.t.Helper()
	p := startFaultProxy(c.t, strings.Split(hostPorts(c.cl.URLs()), ",")...)
	c.cuttable = append(c.cuttable, p)
	nc, err := nats.Connect("nats://"+p.addr(),
		nats.Name("e2e-chaos-cuttable"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(-1),
		nats.IgnoreDiscoveredServers(),
	)
	if err != nil {
		c.t.Fatalf("connect through the proxy: %v", err)
	}
	c.t.Cleanup(nc.Close)
	pub, err := publisher.New(c.s.ctx(), nc, publisher.Config{SpoolDir: c.t.TempDir(), ANIKey: aniKey, Logger: c.s.log})
	if err != nil {
		c.t.Fatalf("new publisher: %v", err)
	}
	c.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pub.Close(ctx); err != nil {
			c.t.Errorf("close publisher: %v", err)
		}
	})
	c.pubs = append(c.pubs, pub)
	return pub
}

// hostPorts turns comma-separated nats:// URLs into host:port pairs.
func hostPorts(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		parts[i] = hostPort(u)
	}
	return strings.Join(parts, ",")
}

// produceHTTP posts src's events four at a time to the gateway until the
// load stops; every event in an answer's accepted list is recorded as
// sent. Any answer but 202 fails the test.
func (c *chaos) produceHTTP(gw *gatewayClient, src event.Source) {
	l := c.load
	tick := time.NewTicker(4 * loadInterval)
	defer tick.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-tick.C:
		}
		evs := newEvents(src, 4)
		body, err := json.Marshal(evs)
		if err != nil {
			l.t.Errorf("marshal events: %v", err)
			return
		}
		a, err := gw.send("application/json", body)
		if err != nil {
			l.t.Errorf("gateway: %v", err)
			return
		}
		l.mu.Lock()
		for _, acc := range a.resp.Accepted {
			l.counts[src.Key()]++
			l.sent = append(l.sent, acc.EventID)
			l.status[acc.Status]++
		}
		l.mu.Unlock()
		if a.code != 202 {
			l.t.Errorf("gateway answered %d, want 202: %s", a.code, a.body)
			return
		}
	}
}

// inject breaks one thing, holds the fault a random while, and repairs it.
func (c *chaos) inject(kind string, rng *rand.Rand) {
	c.t.Helper()
	switch kind {
	case faultLoaderKill:
		c.child.kill()
		hold(between(rng, 200*time.Millisecond, 1500*time.Millisecond))
		c.child = startChildLoader(c.t, c.childCfg)
	case faultNATSNode:
		i := rng.IntN(c.cl.Size())
		c.cl.StopNode(i)
		hold(between(rng, time.Second, 4*time.Second))
		if err := c.cl.RestartNode(i); err != nil {
			c.t.Fatal(err)
		}
		// Only one node is ever down: the next may go once this one has
		// caught up.
		c.s.waitReplicasCurrent(c.cl.Size())
	case faultClickHouseStop, faultClickHouseKill:
		srv := testenv.ClickHouse()
		var err error
		if kind == faultClickHouseKill {
			err = srv.Kill()
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err = srv.Stop(ctx)
			cancel()
		}
		if err != nil {
			c.t.Fatalf("%s: %v", kind, err)
		}
		hold(between(rng, time.Second, 3*time.Second))
		restartClickHouse(c.t)
	case faultProducerCut:
		p := c.cuttable[rng.IntN(len(c.cuttable))]
		p.cut(true)
		hold(between(rng, time.Second, 4*time.Second))
		p.cut(false)
	case faultSlowClickHouse:
		c.chProxy.delay.Store(int64(chaosSlowInsertDelay))
		hold(between(rng, 3*time.Second, 6*time.Second))
		c.chProxy.delay.Store(0)
	default:
		c.t.Fatalf("unknown fault %q", kind)
	}
}

// hold keeps a fault (or the calm between two) for d. It paces the
// faults; it synchronises nothing.
func hold(d time.Duration) { time.Sleep(d) }

// between is a random duration in [lo, hi).
func between(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

func (c *chaos) faultSummary() string {
	var parts []string
	total := 0
	for _, k := range chaosFaults {
		parts = append(parts, fmt.Sprintf("%s %d", k, c.faults[k]))
		total += c.faults[k]
	}
	return fmt.Sprintf("%d: %s", total, strings.Join(parts, ", "))
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// settle waits until every spool is drained, events holds at least want
// rows through FINAL and the loaders' consumer has nothing left to
// deliver or to be acknowledged. It returns "" when settled, else what
// was still wrong at the deadline (the account is printed either way).
func (c *chaos) settle(want int) string {
	deadline := time.Now().Add(2 * wait)
	var last string
	for time.Now().Before(deadline) {
		last = c.unsettled(want)
		if last == "" {
			return ""
		}
		time.Sleep(50 * time.Millisecond)
	}
	return last
}

func (c *chaos) unsettled(want int) string {
	for i, p := range c.pubs {
		if n, _ := p.SpoolDepth(); n > 0 {
			return fmt.Sprintf("publisher %d still spools %d events", i, n)
		}
	}
	n, err := c.s.count()
	if err != nil {
		return fmt.Sprintf("count rows: %v", err)
	}
	if n < uint64(want) {
		return fmt.Sprintf("events holds %d rows (FINAL), want at least %d", n, want)
	}
	info, err := c.s.consumerInfo()
	if err != nil {
		return fmt.Sprintf("consumer info: %v", err)
	}
	if info.NumPending > 0 || info.NumAckPending > 0 {
		return fmt.Sprintf("consumer has %d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
	}
	return ""
}

// chaosAccount classifies every acknowledged event.
type chaosAccount struct {
	once, lost, twice  int
	lostIDs, twiceIDs  []string
	physDup, extraRows int // events stored more than once, rows beyond the first
	unacked            int // distinct ids stored that no producer had acknowledged
}

// account reads the event ids with their row counts as stored (no FINAL,
// copies not yet merged away) and as counted (FINAL), and classifies every
// acknowledged event.
func (c *chaos) account(acked []uuid.UUID) chaosAccount {
	c.t.Helper()
	raw := c.idCounts("")
	counted := c.idCounts(" FINAL")
	var a chaosAccount
	ackSet := make(map[uuid.UUID]bool, len(acked))
	for _, id := range acked {
		if ackSet[id] {
			c.t.Errorf("test bug: event id %s acknowledged twice", id)
		}
		ackSet[id] = true
		switch n := counted[id]; {
		case n == 0:
			a.lost++
			a.lostIDs = append(a.lostIDs, id.String())
		case n == 1:
			a.once++
		default:
			a.twice++
			a.twiceIDs = append(a.twiceIDs, id.String())
		}
	}
	for id, n := range raw {
		if n > 1 {
			a.physDup++
			a.extraRows += int(n - 1)
		}
		if !ackSet[id] {
			a.unacked++
		}
	}
	return a
}

// idCounts is SELECT event_id, count() FROM events<final> GROUP BY event_id.
func (c *chaos) idCounts(final string) map[uuid.UUID]uint64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := c.s.ch.Query(ctx, "SELECT event_id, count() FROM "+c.s.table("events")+final+" GROUP BY event_id")
	if err != nil {
		c.t.Fatalf("read event ids%s: %v", final, err)
	}
	defer rows.Close()
	out := map[uuid.UUID]uint64{}
	for rows.Next() {
		var (
			id uuid.UUID
			n  uint64
		)
		if err := rows.Scan(&id, &n); err != nil {
			c.t.Fatalf("scan event id count: %v", err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		c.t.Fatalf("read event ids%s: %v", final, err)
	}
	return out
}

// faultProxy is a TCP proxy to the first of its targets that answers. It
// can cut its clients off (every connection closed, new ones refused
// until healed) and delay what the clients send.
type faultProxy struct {
	ln      net.Listener
	targets []string
	next    atomic.Int64
	// delay (nanoseconds) holds back every chunk a client sends.
	delay atomic.Int64

	mu     sync.Mutex
	cutOff bool
	closed bool
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func startFaultProxy(t testing.TB, targets ...string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &faultProxy{ln: ln, targets: targets, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

// cut cuts every client off and refuses new ones (on), or lets them
// connect again (off).
func (p *faultProxy) cut(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutOff = on
	if on {
		for conn := range p.conns {
			conn.Close()
		}
	}
}

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server := p.dial()
		p.mu.Lock()
		if p.closed || p.cutOff || server == nil {
			p.mu.Unlock()
			client.Close()
			if server != nil {
				server.Close()
			}
			continue
		}
		p.conns[client], p.conns[server] = true, true
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(server, client, true)
		go p.pipe(client, server, false)
	}
}

// dial connects to the targets in turn, starting after the last used.
func (p *faultProxy) dial() net.Conn {
	start := p.next.Add(1)
	for i := range len(p.targets) {
		target := p.targets[(int(start)+i)%len(p.targets)]
		conn, err := net.DialTimeout("tcp", target, time.Second)
		if err == nil {
			return conn
		}
	}
	return nil
}

func (p *faultProxy) pipe(dst, src net.Conn, upstream bool) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := time.Duration(p.delay.Load()); upstream && d > 0 {
				time.Sleep(d) // the fault itself: a slow network or server
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// close stops accepting, cuts every connection and waits for the copies.
func (p *faultProxy) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.ln.Close()
	for conn := range p.conns {
		conn.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
