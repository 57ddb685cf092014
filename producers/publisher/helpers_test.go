package publisher

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/producers/event"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var testKey = []byte("test-ani-key-0123456789abcdef")

const rawANI = "+1 (813) 555-0100"

// natsServer is an embedded NATS server that a test can stop and start
// again on the same port and store, to simulate an outage.
type natsServer struct {
	t    testing.TB
	dir  string
	port int
	srv  *natsembed.Server
	// options, if set, edits the server options at every start (users and
	// their permissions).
	options func(*server.Options)
}

// startNATS starts a server; options, if any, edit its options at every
// start.
func startNATS(t testing.TB, options ...func(*server.Options)) *natsServer {
	t.Helper()
	n := &natsServer{t: t, dir: t.TempDir()}
	if len(options) > 0 {
		n.options = func(o *server.Options) {
			for _, edit := range options {
				edit(o)
			}
		}
	}
	n.start()
	n.port = n.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(n.stop)
	return n
}

func (n *natsServer) start() {
	n.t.Helper()
	srv, err := natsembed.Start(natsembed.Config{Dir: n.dir, Port: n.port, Options: n.options})
	if err != nil {
		n.t.Fatalf("start nats: %v", err)
	}
	n.srv = srv
}

func (n *natsServer) stop() {
	if n.srv != nil {
		n.srv.Stop()
		n.srv = nil
	}
}

func (n *natsServer) url() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

// connect dials with unlimited reconnects and no reconnect buffer, as the
// package documentation recommends, and creates the streams.
func (n *natsServer) connect() (*nats.Conn, jetstream.JetStream) {
	n.t.Helper()
	nc, err := nats.Connect(n.url(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1), nats.ReconnectJitter(0, 0))
	if err != nil {
		n.t.Fatalf("connect: %v", err)
	}
	n.t.Cleanup(nc.Close)
	return nc, ensureStreams(n.t, nc)
}

// ensureStreams creates the streams through nc.
func ensureStreams(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := streams.Ensure(ctx, js, streams.Config{}); err != nil {
		t.Fatalf("ensure streams: %v", err)
	}
	return js
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newPublisher(t testing.TB, nc *nats.Conn, dir string, edit ...func(*Config)) *Publisher {
	t.Helper()
	cfg := Config{SpoolDir: dir, ANIKey: testKey, PublishTimeout: 10 * time.Second, Logger: quietLogger()}
	for _, e := range edit {
		e(&cfg)
	}
	p, err := New(context.Background(), nc, cfg)
	if err != nil {
		t.Fatalf("new publisher: %v", err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// callEvent is a valid call.received event of source acd/<instance> with a
// raw caller number, no id and no sequence.
func callEvent(instance string, i int) *event.Event {
	ev := event.New(event.CallReceived, event.Source{System: "acd", Instance: instance}, time.Now())
	ev.EventID = [16]byte{}
	ev.CallID = fmt.Sprintf("call-%d", i)
	ev.DNIS = "8005550199"
	ev.ANI = rawANI
	ev.Queue = "sales"
	return ev
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stored is one message of the events stream.
type stored struct {
	seq   uint64
	msgID string
	data  []byte
	ev    *event.Event
}

// streamMessages returns every message of the events stream, in stream
// order, decoded and checked against the strict consumer decoder.
func streamMessages(t *testing.T, js jetstream.JetStream) []stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streams.DefaultEventsStream)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	var out []stored
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get msg %d: %v", seq, err)
		}
		ev, err := event.Decode(m.Data)
		if err != nil {
			t.Fatalf("stream message %d does not decode: %v", seq, err)
		}
		out = append(out, stored{seq: seq, msgID: m.Header.Get(jetstream.MsgIDHeader), data: m.Data, ev: ev})
	}
	return out
}

func streamCount(t testing.TB, js jetstream.JetStream) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streams.DefaultEventsStream)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

// checkStream asserts that the stream holds exactly want events per
// source, each source's numbers 1..want in stream order, every message
// carrying its event id as Nats-Msg-Id and no raw caller number.
func checkStream(t *testing.T, msgs []stored, want map[string]int) {
	t.Helper()
	next := map[string]uint64{}
	for _, m := range msgs {
		key := m.ev.Source.Key()
		if m.msgID != m.ev.EventID.String() {
			t.Fatalf("stream seq %d: Nats-Msg-Id %q, event id %s", m.seq, m.msgID, m.ev.EventID)
		}
		if m.ev.Source.Seq != next[key]+1 {
			t.Fatalf("stream seq %d: source %s has seq %d, want %d (out of order, gap or duplicate)", m.seq, key, m.ev.Source.Seq, next[key]+1)
		}
		next[key] = m.ev.Source.Seq
		var fields map[string]any
		if err := json.Unmarshal(m.data, &fields); err != nil {
			t.Fatal(err)
		}
		if _, ok := fields["ani"]; ok || containsDigits(m.data, rawANI) {
			t.Fatalf("stream seq %d carries the raw caller number", m.seq)
		}
		if m.ev.ANIHash != event.HashANI(testKey, rawANI) {
			t.Fatalf("stream seq %d: ani_hash is not the keyed hash of the caller number", m.seq)
		}
	}
	for key, n := range want {
		if next[key] != uint64(n) {
			t.Fatalf("source %s: stream holds numbers up to %d, want %d", key, next[key], n)
		}
	}
	total := 0
	for _, n := range want {
		total += n
	}
	if len(msgs) != total {
		t.Fatalf("stream holds %d messages, want %d", len(msgs), total)
	}
}

// containsDigits reports whether b holds the digits of s in a row (with or
// without the separators s has).
func containsDigits(b []byte, s string) bool {
	var digits []byte
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			digits = append(digits, s[i])
		}
	}
	return bytes.Contains(b, digits) || bytes.Contains(b, []byte(s))
}
