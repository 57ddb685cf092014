package e2e

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
)

// N events through the Go library and M through HTTP (one object per
// request, arrays and NDJSON) are exactly N+M rows, every id once.
func TestLibraryAndHTTPEventsLoadedExactlyOnce(t *testing.T) {
	s := newStack(t)
	s.startLoader("a")
	lib, _ := s.newPublisher(t.TempDir())
	gwPub, _ := s.newPublisher(t.TempDir())
	gw := s.startGateway(gwPub)

	var sent [][]*event.Event
	// Library: two sources of one producer, 120 events each.
	for _, instance := range []string{"tampa-01", "tampa-02"} {
		evs := newEvents(source("acd", instance), 120)
		publishAll(t, lib, evs, "")
		sent = append(sent, evs)
	}
	n := len(ids(sent...))

	// HTTP: 20 single-event requests, 2 arrays of 40 and 2 NDJSON bodies
	// of 35, each form from its own source.
	single := newEvents(source("web", "shop-01"), 20)
	for _, ev := range single {
		gw.postEvents("single", []*event.Event{ev}, "")
	}
	sent = append(sent, single)
	arrays := newEvents(source("web", "shop-02"), 80)
	gw.postEvents("array", arrays[:40], "")
	gw.postEvents("array", arrays[40:], "")
	sent = append(sent, arrays)
	lines := newEvents(source("ivr", "east-1"), 70)
	gw.postEvents("ndjson", lines[:35], "")
	gw.postEvents("ndjson", lines[35:], "")
	sent = append(sent, lines)
	m := len(ids(sent...)) - n

	want := ids(sent...)
	if len(want) != 240+170 || n != 240 || m != 170 {
		t.Fatalf("test bug: sent %d events (N %d, M %d)", len(want), n, m)
	}
	s.waitRows(uint64(n + m))
	s.checkIDs(want)
	// The stream holds each event once too, and every source is in order.
	if got := s.streamCount(streams.DefaultEventsStream); got != n+m {
		t.Errorf("events stream holds %d messages, want %d", got, n+m)
	}
	s.checkSourceOrder(map[string]int{"acd.tampa-01": 120, "acd.tampa-02": 120, "web.shop-01": 20, "web.shop-02": 80, "ivr.east-1": 70}, nil)
}

// The same event sent twice, by any route, is one row.
func TestSameEventSentTwiceIsOneRow(t *testing.T) {
	s := newStack(t)
	s.startLoader("a")
	lib, _ := s.newPublisher(t.TempDir())
	gwPub, _ := s.newPublisher(t.TempDir())
	gw := s.startGateway(gwPub)

	// Each case sends its events twice; the copy must be recognised.
	cases := []struct {
		name, instance string
		send           func(t *testing.T, evs []*event.Event)
	}{
		{"library twice", "lib", func(t *testing.T, evs []*event.Event) {
			publishAll(t, lib, evs, publisher.StatusAcked)
			// The very same events (ids and numbers kept), as a retry.
			publishAll(t, lib, evs, publisher.StatusDuplicate)
		}},
		{"HTTP twice", "http", func(t *testing.T, evs []*event.Event) {
			gw.as(t).postEvents("array", evs, publisher.StatusAcked)
			// The client resends the same body (no sequence numbers in it).
			gw.as(t).postEvents("array", evs, publisher.StatusDuplicate)
		}},
		{"library then HTTP", "lib-http", func(t *testing.T, evs []*event.Event) {
			publishAll(t, lib, evs, publisher.StatusAcked)
			// The same events, with the ids and numbers the library gave
			// them, sent again through the gateway.
			gw.as(t).postEvents("ndjson", evs, publisher.StatusDuplicate)
		}},
		{"HTTP then library", "http-lib", func(t *testing.T, evs []*event.Event) {
			a := gw.as(t).postEvents("array", evs, publisher.StatusAcked)
			for i, acc := range a.resp.Accepted {
				evs[i].Source.Seq = acc.Seq
			}
			publishAll(t, lib, evs, publisher.StatusDuplicate)
		}},
	}
	var want []uuid.UUID
	for _, c := range cases {
		evs := newEvents(source("dup", c.instance), 15)
		if !t.Run(c.name, func(t *testing.T) { c.send(t, evs) }) {
			t.FailNow()
		}
		want = append(want, ids(evs)...)
	}

	// After the duplicate window JetStream keeps a late copy: the stream
	// then holds the event twice and only the table can collapse it. Put
	// byte-identical copies of 10 events on the stream without a message
	// id (as a retry from a spool older than the window would arrive).
	late := newEvents(source("dup", "late"), 10)
	for i, ev := range late {
		data := encoded(t, ev, uint64(i+1))
		s.putRaw(subject(ev), data)
		s.putRaw(subject(ev), data)
	}
	want = append(want, ids(late)...)
	if got, wantMsgs := s.streamCount(streams.DefaultEventsStream), 4*15+2*10; got != wantMsgs {
		t.Errorf("events stream holds %d messages, want %d (JetStream drops copies within the window)", got, wantMsgs)
	}

	s.waitRows(uint64(len(want)))
	s.checkIDs(want)
}

// docs/events.md lets an HTTP client leave source.seq out ("the gateway
// assigns it") and tells it, after a lost answer, to send the whole request
// again with the same event ids. The copies are duplicates and are not
// stored; they must not use up sequence numbers either, or the source
// shows a gap, which reads as lost events, where nothing was lost.
func TestHTTPResendWithoutSeqLeavesNoGap(t *testing.T) {
	s := newStack(t)
	s.startLoader("a")
	gwPub, _ := s.newPublisher(t.TempDir())
	gw := s.startGateway(gwPub)
	src := source("web", "shop-01")

	first := newEvents(src, 5)
	gw.postEvents("array", first, publisher.StatusAcked)
	// The answer was lost: the client sends the same request again.
	again := gw.postEvents("array", first, publisher.StatusDuplicate)
	then := newEvents(src, 5)
	next := gw.postEvents("array", then, "")

	s.waitRows(10)
	s.checkIDs(ids(first, then))
	var seqs []uint64
	for _, acc := range append(again.resp.Accepted, next.resp.Accepted...) {
		seqs = append(seqs, acc.Seq)
	}
	t.Logf("numbers given to the resent copies and then to the next events: %v", seqs)
	s.checkSourceOrder(map[string]int{src.Key(): 10}, nil)
}

// Two loaders share the durable consumer while producers publish
// concurrently through the library and HTTP: every event is one row.
func TestTwoLoadersOneConsumer(t *testing.T) {
	s := newStack(t)
	small := func(c *loader.Config) { c.BatchSize, c.FlushInterval = 20, 20*time.Millisecond }
	a := s.startLoader("a", small)
	b := s.startLoader("b", small)

	const perProducer = 120
	var (
		mu   sync.Mutex
		sent []uuid.UUID
		wg   sync.WaitGroup
	)
	record := func(evs []*event.Event) {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, ids(evs)...)
	}
	// Three library producers, each its own process in production (own
	// spool, own connection), publishing in small batches.
	for _, instance := range []string{"p1", "p2", "p3"} {
		p, _ := s.newPublisher(t.TempDir())
		evs := newEvents(source("acd", instance), perProducer)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < len(evs); i += 10 {
				if err := tryPublishAll(p, evs[i:i+10], ""); err != nil {
					t.Error(err)
					return
				}
				record(evs[i : i+10])
			}
		}()
	}
	// And one system posting arrays to the gateway.
	gwPub, _ := s.newPublisher(t.TempDir())
	gw := s.startGateway(gwPub)
	web := newEvents(source("web", "shop-01"), perProducer)
	var bodies [][]byte
	for i := 0; i < len(web); i += 8 {
		bodies = append(bodies, wireArray(t, web[i:i+8]))
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < len(web); i += 8 {
			a, err := gw.send("application/json", bodies[i/8])
			if err != nil || a.code != http.StatusAccepted {
				t.Errorf("POST: %v: %d: %s", err, a.code, a.body)
				return
			}
			record(web[i : i+8])
		}
	}()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	s.waitRows(4 * perProducer)
	s.checkIDs(sent)
	la, lb := a.metric(metricLoaded), b.metric(metricLoaded)
	t.Logf("loader a inserted %.0f rows, loader b %.0f", la, lb)
	if la+lb < 4*perProducer {
		t.Errorf("the loaders inserted %.0f rows in all, want at least %d", la+lb, 4*perProducer)
	}
	if la == 0 || lb == 0 {
		t.Errorf("one loader did all the work (a %.0f, b %.0f): the consumer was not shared", la, lb)
	}
}
