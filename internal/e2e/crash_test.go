package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airtally/airtally/internal/testenv"
)

// A loader process killed with SIGKILL after its insert returned and
// before its acks reached NATS: the next loader gets the batch again and
// inserts it again, and the table still counts every event once.
func TestLoaderKilledAfterInsertBeforeAck(t *testing.T) {
	s := newStack(t)
	const n, batch = 600, 200
	lib, _ := s.newPublisher(t.TempDir())
	evs := newEvents(source("acd", "tampa-01"), n)
	publishAll(t, lib, evs, "")

	c := s.crashLoader(batch)
	t.Logf("at the crash: %d rows inserted, %d of them of unacknowledged messages; ack floor at stream seq %d, %d messages delivered and unacknowledged",
		c.inserted, c.unacked, c.ackFloor, c.ackPending)

	// Another loader takes over; the crashed one's batch comes back after
	// AckWait and is inserted a second time.
	l := s.startLoader("after-crash")
	s.waitRows(n)
	s.checkIDs(ids(evs))
	if got := l.metric(metricRedelivered); got < float64(c.ackPending) {
		t.Errorf("the new loader saw %.0f redelivered messages, want at least the %d left unacknowledged by the crash", got, c.ackPending)
	}
	if got, want := l.metric(metricLoaded), float64(uint64(n)-c.ackFloor); got < want {
		t.Errorf("the new loader inserted %.0f rows, want at least %.0f (the unacknowledged batch again, then the rest)", got, want)
	}
}

// crash is what a crashed loader left behind.
type crash struct {
	inserted   uint64 // rows in events (copies included) at the crash
	unacked    uint64 // of which rows of messages not acknowledged
	ackFloor   uint64 // stream seq up to which JetStream had the acks
	ackPending int    // messages delivered and not acknowledged
}

// crashLoader runs a loader in a child process (the re-executed test
// binary) on the backlog already in the stream, with batches of batch
// messages, and kills it with SIGKILL between the insert of its second
// batch and the acks of that batch: its NATS and ClickHouse connections go
// through proxies, and when the ClickHouse proxy sees the second INSERT
// go by it starts dropping everything the loader sends to NATS, so that
// batch's acks never arrive. The kill comes once the batch is in
// ClickHouse. The stream must hold more than two batches of valid events
// after its last acknowledged message, and no loader may be running.
func (s *stack) crashLoader(batch int) crash {
	s.t.Helper()
	natsProxy := startProxy(s.t, hostPort(s.nats.URL))
	chProxy := startProxy(s.t, testenv.ClickHouse().Addr())
	// The loader's insert into events (not dead_letters); the query text
	// travels uncompressed.
	chProxy.watch([]byte("INSERT INTO "+s.db+".events ("), func(seen int64) {
		if seen == 2 {
			natsProxy.dropUpstream.Store(true)
		}
	})
	before, err := s.rawCount()
	if err != nil {
		s.t.Fatalf("count rows: %v", err)
	}
	child := startChildLoader(s.t, childLoaderConfig{
		NATSURL:    "nats://" + natsProxy.addr(),
		ClickHouse: chProxy.addr(),
		Database:   s.db,
		BatchSize:  batch,
		// Long, so that a stall of a loaded machine cannot get a batch
		// redelivered to the child before the crash; the next loader sets
		// the consumer's AckWait back to the tests' 2s, and the crashed
		// batch comes back after that.
		AckWait: 10 * time.Second,
	})
	var inserted uint64
	testenv.Eventually(s.t, wait, func() bool {
		inserted, err = s.rawCount()
		return err == nil && natsProxy.dropUpstream.Load() && inserted >= before+uint64(2*batch)
	}, "the child loader did not insert its second batch (rows %v); its log:\n%v",
		lazy(func() string { return fmt.Sprint(inserted) }), child.logs)
	child.kill()
	natsProxy.close()
	chProxy.close()

	info, err := s.consumerInfo()
	if err != nil {
		s.t.Fatalf("consumer info: %v", err)
	}
	// The crash came between insert and ack: ClickHouse has rows of
	// messages that JetStream has not had acknowledged (above its ack
	// floor, delivered and pending).
	unacked, err := s.countQuery(fmt.Sprintf("SELECT count() FROM %s WHERE stream_seq > %d", s.table("events"), info.AckFloor.Stream))
	if err != nil {
		s.t.Fatalf("count unacknowledged rows: %v", err)
	}
	c := crash{inserted: inserted, unacked: unacked, ackFloor: info.AckFloor.Stream, ackPending: info.NumAckPending}
	if c.ackPending == 0 || c.unacked == 0 {
		s.t.Fatalf("the crash did not land between insert and ack: %+v; the child loader's log:\n%s", c, child.logs)
	}
	return c
}

// childLoader is a loader process.
type childLoader struct {
	t    testing.TB
	cmd  *exec.Cmd
	logs *logBuffer
	once sync.Once
}

func startChildLoader(t testing.TB, cfg childLoaderConfig) *childLoader {
	t.Helper()
	spec, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &childLoader{t: t, logs: &logBuffer{}}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), childLoaderEnv+"="+string(spec))
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	// The child exits when this pipe closes: when the test binary dies
	// without its cleanups, no loader is left behind.
	if _, err := c.cmd.StdinPipe(); err != nil {
		t.Fatalf("child loader stdin: %v", err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start child loader: %v", err)
	}
	t.Cleanup(c.kill)
	return c
}

// kill sends SIGKILL, as a crash would, and reaps the process.
func (c *childLoader) kill() {
	c.once.Do(func() {
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
	})
}

// proxy is a TCP proxy between a client and a server. It can watch what
// the client sends for a marker, and drop everything the client sends.
type proxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	marker  []byte
	onMatch func(seen int64)
	seen    atomic.Int64
	// dropUpstream: what the client sends is read and thrown away.
	dropUpstream atomic.Bool

	mu     sync.Mutex
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p := &proxy{t: t, ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// watch calls onMatch with the running count each time the client sends
// marker, before those bytes are passed on. Set it before clients connect.
func (p *proxy) watch(marker []byte, onMatch func(seen int64)) {
	p.marker, p.onMatch = marker, onMatch
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			client.Close()
			server.Close()
			return
		}
		p.conns = append(p.conns, client, server)
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(server, client, true)
		go p.pipe(client, server, false)
	}
}

// pipe copies src to dst; upstream is the client-to-server direction.
func (p *proxy) pipe(dst, src net.Conn, upstream bool) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	var tail []byte // the end of the previous read, for a marker split across reads
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if upstream && p.marker != nil {
				data := append(tail, chunk...)
				for range bytes.Count(data, p.marker) {
					p.onMatch(p.seen.Add(1))
				}
				tail = bytes.Clone(data[max(0, len(data)-len(p.marker)+1):])
			}
			if !(upstream && p.dropUpstream.Load()) {
				if _, werr := dst.Write(chunk); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// close stops accepting, cuts every connection and waits for the copies.
func (p *proxy) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
