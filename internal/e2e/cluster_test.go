package e2e

import (
	"context"
	"fmt"
	"github.com/airtally/airtally/internal/flowwatch"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
)

// Issue 6 §1: a three-node NATS cluster with the streams replicated three
// ways. Producers and loaders are given every node's URL, as in
// production, and ride out a node's failure by themselves.

// The stall bound is generous on purpose: this is a correctness test on a
// shared 2-core machine, and the figure is printed for the record.
const maxStall = 60 * time.Second

// Killing one node at a time (the events stream's leader, the loaders'
// consumer's leader, a follower; each restarted and caught up before the
// next) while producers publish and two loaders load loses no acknowledged or spooled event,
// counts none twice, keeps each source's sequence complete and in order,
// and pauses the flow of loaded rows for seconds only.
func TestClusterNodeKilledWhilePublishingAndLoading(t *testing.T) {
	s, cl := newClusterStack(t)
	small := func(c *loader.Config) { c.BatchSize, c.FlushInterval = 50, 20*time.Millisecond }
	s.startLoader("a", small)
	s.startLoader("b", small)
	load := s.startLoad(source("acd", "c1"), source("acd", "c2"), source("web", "c3"))
	rows := s.watchRows()

	cases := []struct {
		name string
		pick func(stream, consumer *jetstream.ClusterInfo) string
	}{
		{"stream leader", func(st, _ *jetstream.ClusterInfo) string { return st.Leader }},
		{"consumer leader", func(_, cons *jetstream.ClusterInfo) string { return cons.Leader }},
		{"follower", func(st, cons *jetstream.ClusterInfo) string {
			// Preferably a node that leads neither the stream nor the
			// loaders' consumer.
			for _, p := range st.Replicas {
				if p.Name != cons.Leader {
					return p.Name
				}
			}
			return st.Replicas[0].Name
		}},
	}
	for _, c := range cases {
		rows.waitGrowth(300, "before killing the %s", c.name)
		st, cons := s.clusterInfo()
		victim := c.pick(st, cons)
		i := cl.NodeIndex(victim)
		if i < 0 {
			t.Fatalf("%s: no node named %q (stream %+v)", c.name, victim, st)
		}
		t.Logf("killing %s %s (stream leader %s, consumer leader %s)", c.name, victim, st.Leader, cons.Leader)
		rows.mark("killed " + victim)
		cl.StopNode(i)
		// The flow goes on without it.
		rows.waitGrowth(500, "with %s (%s) down", victim, c.name)
		if err := cl.RestartNode(i); err != nil {
			t.Fatal(err)
		}
		rows.mark("restarted " + victim)
		s.waitReplicasCurrent(cl.Size())
	}
	rows.waitGrowth(200, "after the restarts")

	longest, at := rows.stop()
	counts, sent := load.stop()
	total := 0
	for _, n := range counts {
		total += n
	}
	slowest, slowSource := load.slowest()
	t.Logf("%d events acknowledged or spooled: %s; slowest Publish call %.2fs (%s)", total, load.statuses(), slowest.Seconds(), slowSource)
	t.Logf("longest pause in loaded rows while producing: %.2fs, %s; timeline: %s", longest.Seconds(), at, rows.marks())
	s.waitRows(uint64(total))
	s.checkIDs(sent)
	s.checkSourceOrder(counts, nil)
	if longest >= maxStall {
		t.Errorf("the flow of loaded rows stalled for %s (%s), want less than %s", longest, at, maxStall)
	}
	if slowest >= maxStall {
		t.Errorf("a Publish call of %s took %s, want less than %s", slowSource, slowest, maxStall)
	}
}

// Two loaders share the durable consumer of the replicated stream; one,
// a separate process, is killed with SIGKILL mid-stream, and the other
// takes over its unacknowledged messages and the rest: every event is one
// row.
func TestClusterLoaderKilledPeerTakesOver(t *testing.T) {
	s, cl := newClusterStack(t)
	load := s.startLoad(source("acd", "k1"), source("web", "k2"))
	rows := s.watchRows()

	child := startChildLoader(t, childLoaderConfig{
		NATSURL:    cl.URLs(),
		ClickHouse: testenv.ClickHouse().Addr(),
		Database:   s.db,
		BatchSize:  50,
		AckWait:    2 * time.Second,
	})
	rows.waitGrowth(200, "by the child loader alone (its log:\n%v)", child.logs)
	b := s.startLoader("b", func(c *loader.Config) { c.BatchSize, c.FlushInterval = 50, 20*time.Millisecond })
	testenv.Eventually(t, wait, func() bool { return b.metric(metricLoaded) > 0 }, "loader b loaded nothing beside the child")
	rows.waitGrowth(200, "by both loaders")

	info, err := s.consumerInfo()
	if err != nil {
		t.Fatalf("consumer info: %v", err)
	}
	rows.mark("killed the child loader")
	child.kill()
	t.Logf("child loader killed; consumer then: %d delivered and unacknowledged, %d pending", info.NumAckPending, info.NumPending)
	loadedAtKill := b.metric(metricLoaded)
	rows.waitGrowth(300, "after the child loader was killed")

	longest, at := rows.stop()
	counts, sent := load.stop()
	total := 0
	for _, n := range counts {
		total += n
	}
	s.waitRows(uint64(total))
	s.checkIDs(sent)
	s.checkSourceOrder(counts, nil)
	t.Logf("%d events; loader b inserted %.0f rows (%.0f after the kill), %.0f redeliveries; longest pause %.2fs, %s",
		total, b.metric(metricLoaded), b.metric(metricLoaded)-loadedAtKill, b.metric(metricRedelivered), longest.Seconds(), at)
	if b.metric(metricLoaded) <= loadedAtKill {
		t.Errorf("loader b inserted nothing after its peer was killed")
	}
}

// newClusterStack starts a three-node cluster, creates the streams with
// three replicas and a migrated database. Components connect with every
// node's URL.
func newClusterStack(t *testing.T) (*stack, *natsembed.Cluster) {
	t.Helper()
	s := &stack{t: t, logs: &logBuffer{}}
	s.log = s.logs.Logger()
	t.Cleanup(func() {
		if t.Failed() {
			out := s.logs.String()
			if len(out) > 16<<10 {
				out = "…" + out[len(out)-16<<10:]
			}
			t.Logf("component logs:\n%s", out)
		}
	})
	cl, err := natsembed.StartCluster(natsembed.ClusterConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(cl.Stop)
	if err := cl.WaitJetStream(wait); err != nil {
		t.Fatal(err)
	}
	// stack.connectNATS and startLoader connect to s.nats.URL.
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

// clusterInfo is the events stream's and the loaders' consumer's cluster
// placement.
func (s *stack) clusterInfo() (stream, consumer *jetstream.ClusterInfo) {
	s.t.Helper()
	var err error
	testenv.Eventually(s.t, wait, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var st jetstream.Stream
		var si *jetstream.StreamInfo
		var ci *jetstream.ConsumerInfo
		if st, err = s.js.Stream(ctx, streams.DefaultEventsStream); err != nil {
			return false
		}
		if si, err = st.Info(ctx); err != nil {
			return false
		}
		if ci, err = s.consumerInfo(); err != nil {
			return false
		}
		stream, consumer = si.Cluster, ci.Cluster
		return stream != nil && stream.Leader != "" && consumer != nil && consumer.Leader != ""
	}, "no stream and consumer leaders; last error %v", lazy(func() string { return fmt.Sprint(err) }))
	return stream, consumer
}

// waitReplicasCurrent waits until the events stream and the loaders'
// consumer each have a leader and all their other nodes current.
func (s *stack) waitReplicasCurrent(nodes int) {
	s.t.Helper()
	var last string
	testenv.Eventually(s.t, wait, func() bool {
		st, cons := s.clusterInfo()
		last = describe("stream", st) + "; " + describe("consumer", cons)
		return allCurrent(st, nodes) && allCurrent(cons, nodes)
	}, "replicas not current: %v", lazy(func() string { return last }))
}

func allCurrent(c *jetstream.ClusterInfo, nodes int) bool {
	if len(c.Replicas) != nodes-1 {
		return false
	}
	for _, p := range c.Replicas {
		if !p.Current || p.Offline {
			return false
		}
	}
	return true
}

func describe(what string, c *jetstream.ClusterInfo) string {
	parts := []string{what + " leader " + c.Leader}
	for _, p := range c.Replicas {
		parts = append(parts, fmt.Sprintf("%s current=%t offline=%t lag=%d", p.Name, p.Current, p.Offline, p.Lag))
	}
	return strings.Join(parts, ", ")
}

// load is several producers, each a publisher with its own connection and
// spool, publishing one source's events one by one at a steady pace until
// stopped.
type load struct {
	t    *testing.T
	quit chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	counts map[string]int
	sent   []uuid.UUID
	status map[publisher.Status]int
	// slowCall is the longest Publish call, of source slowSrc.
	slowCall time.Duration
	slowSrc  string
}

// loadInterval paces each producer (about 200 events/s each).
const loadInterval = 5 * time.Millisecond

func (s *stack) startLoad(sources ...event.Source) *load {
	s.t.Helper()
	l := &load{t: s.t, quit: make(chan struct{}), counts: map[string]int{}, status: map[publisher.Status]int{}}
	for _, src := range sources {
		pub := s.clusterPublisher()
		l.wg.Go(func() { l.produce(pub, src) })
	}
	s.t.Cleanup(l.halt)
	return l
}

// clusterPublisher is a publisher with production's settings (the
// default PublishTimeout, 5s) on its own connection and spool folder.
func (s *stack) clusterPublisher() *publisher.Publisher {
	s.t.Helper()
	return s.openPublisher(s.connectNATS("e2e-cluster-publisher"), s.t.TempDir(), func(c *publisher.Config) { c.PublishTimeout = 0 })
}

// produce publishes src's events until quit; every event whose Publish
// returned a receipt (acked, duplicate or spooled) is recorded as sent.
func (l *load) produce(pub *publisher.Publisher, src event.Source) {
	tick := time.NewTicker(loadInterval)
	defer tick.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-tick.C:
		}
		ev := newEvent(src)
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		began := time.Now()
		r, err := pub.Publish(ctx, ev)
		took := time.Since(began)
		cancel()
		if err != nil {
			l.t.Errorf("publish %s seq %d: %v", src.Key(), ev.Source.Seq, err)
			return
		}
		l.mu.Lock()
		l.counts[src.Key()]++
		l.sent = append(l.sent, r.EventID)
		l.status[r.Status]++
		if took > l.slowCall {
			l.slowCall, l.slowSrc = took, src.Key()
		}
		l.mu.Unlock()
	}
}

// stop stops the producers and returns the events each source sent and
// their ids; it fails the test now if a publish failed.
func (l *load) stop() (map[string]int, []uuid.UUID) {
	l.halt()
	if l.t.Failed() {
		l.t.FailNow()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts, slices.Clone(l.sent)
}

// slowest is the longest Publish call and its source.
func (l *load) slowest() (time.Duration, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.slowCall, l.slowSrc
}

// halt stops the producers and waits for them.
func (l *load) halt() {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	l.wg.Wait()
}

// statuses counts the receipts by status.
func (l *load) statuses() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.status)
}

// rowWatch samples the rows of events (copies included) while the load
// runs, and keeps the pauses between two increases (flowwatch).
type rowWatch struct {
	*flowwatch.Watch
	t *testing.T
}

func (s *stack) watchRows() *rowWatch {
	w := &rowWatch{Watch: flowwatch.Start(func(context.Context) (uint64, error) { return s.rawCount() }), t: s.t}
	s.t.Cleanup(func() { w.Stop() })
	return w
}

// mark notes an event (a kill, a restart) for the report.
func (w *rowWatch) mark(what string) { w.Mark(what) }

// marks is the timeline of marks and pauses of a second or more.
func (w *rowWatch) marks() string { return w.Timeline() }

// waitGrowth waits until the rows grew by n from now.
func (w *rowWatch) waitGrowth(n uint64, format string, args ...any) {
	w.t.Helper()
	if err := w.WaitGrowth(w.t.Context(), n, wait); err != nil {
		w.t.Fatalf("%v "+format, append([]any{err}, args...)...)
	}
}

// stop ends the sampling and returns the longest pause (a pause still
// going on counts up to now) and when it began.
func (w *rowWatch) stop() (time.Duration, string) {
	_, longest := w.Stop()
	return longest.Length, fmt.Sprintf("from %.2fs", longest.At.Seconds())
}
