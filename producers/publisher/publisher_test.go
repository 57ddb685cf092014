package publisher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/spool"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestPublishAcksEveryEventInOrder(t *testing.T) {
	n := startNATS(t)
	nc, js := n.connect()
	reg := prometheus.NewRegistry()
	p := newPublisher(t, nc, t.TempDir(), func(c *Config) { c.Registerer = reg })
	ctx := context.Background()

	const perSource = 25
	var first *event.Event
	for i := 0; i < perSource; i++ {
		for _, inst := range []string{"tampa-01", "reno-02"} {
			ev := callEvent(inst, i)
			r, err := p.Publish(ctx, ev)
			if err != nil {
				t.Fatalf("publish %s %d: %v", inst, i, err)
			}
			if r.Status != StatusAcked || r.Seq != uint64(i+1) || r.EventID != ev.EventID || ev.EventID.Version() != 7 {
				t.Fatalf("receipt %+v for event %d of %s, want acked seq %d with a UUIDv7", r, i, inst, i+1)
			}
			if first == nil {
				first = ev
			}
		}
	}
	checkStream(t, streamMessages(t, js), map[string]int{"acd.tampa-01": perSource, "acd.reno-02": perSource})

	// The same event again: JetStream drops it and says so.
	r, err := p.Publish(ctx, first)
	if err != nil || r.Status != StatusDuplicate || r.EventID != first.EventID || r.Seq != 1 {
		t.Fatalf("republish = %+v, %v; want duplicate of seq 1", r, err)
	}
	if got := streamCount(t, js); got != 2*perSource {
		t.Fatalf("stream holds %d after a duplicate, want %d", got, 2*perSource)
	}
	if got := counterValue(t, p.m.events.WithLabelValues("acked")); got != 2*perSource {
		t.Fatalf("metric acked = %v, want %d", got, 2*perSource)
	}
	if got := counterValue(t, p.m.events.WithLabelValues("duplicate")); got != 1 {
		t.Fatalf("metric duplicate = %v, want 1", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, name := range []string{"airtally_publisher_events_total", "airtally_publisher_spool_events", "airtally_publisher_spool_bytes", "airtally_publisher_spool_forwarded_total", "airtally_publisher_publish_errors_total"} {
		if !names[name] {
			t.Fatalf("metric %s not registered", name)
		}
	}
	if !p.Ready() {
		t.Fatal("Ready() = false with JetStream up")
	}
}

func TestConcurrentPublishersOfOneSourceKeepOrder(t *testing.T) {
	n := startNATS(t)
	nc, js := n.connect()
	p := newPublisher(t, nc, t.TempDir())
	const goroutines, each = 4, 30
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := p.Publish(context.Background(), callEvent("tampa-01", g*each+i)); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	checkStream(t, streamMessages(t, js), map[string]int{"acd.tampa-01": goroutines * each})
}

func TestOutageSpoolsThenForwardsEverything(t *testing.T) {
	n := startNATS(t)
	nc, js := n.connect()
	reg := prometheus.NewRegistry()
	p := newPublisher(t, nc, t.TempDir(), func(c *Config) { c.Registerer = reg })
	ctx := context.Background()
	sources := []string{"tampa-01", "reno-02", "austin-03"}
	count := map[string]int{}
	publish := func(rounds int, want Status) {
		t.Helper()
		for i := 0; i < rounds; i++ {
			for _, inst := range sources {
				r, err := p.Publish(ctx, callEvent(inst, count[inst]))
				if err != nil {
					t.Fatalf("publish: %v", err)
				}
				count[inst]++
				if r.Status != want || r.Seq != uint64(count[inst]) {
					t.Fatalf("receipt %+v, want %s with seq %d", r, want, count[inst])
				}
			}
		}
	}
	publish(5, StatusAcked)

	n.stop()
	eventually(t, 10*time.Second, "the client to notice the outage", func() bool { return !p.connected() })
	publish(20, StatusSpooled)
	if events, bytes := p.SpoolDepth(); events != 60 || bytes == 0 {
		t.Fatalf("spool depth = %d events %d bytes, want 60 events", events, bytes)
	}
	if !p.Ready() {
		t.Fatal("Ready() = false although the spool has room")
	}
	if got := counterValue(t, p.m.events.WithLabelValues("spooled")); got != 60 {
		t.Fatalf("metric spooled = %v, want 60", got)
	}

	n.start()
	// Events published while the spool drains queue up behind it.
	eventually(t, 10*time.Second, "the client to reconnect", p.connected)
	for i := 0; i < 3; i++ {
		for _, inst := range sources {
			r, err := p.Publish(ctx, callEvent(inst, count[inst]))
			count[inst]++
			if err != nil || r.Seq != uint64(count[inst]) || (r.Status != StatusSpooled && r.Status != StatusAcked) {
				t.Fatalf("publish while draining = %+v, %v", r, err)
			}
		}
	}
	eventually(t, 30*time.Second, "the forwarder to drain the spool", func() bool {
		events, _ := p.SpoolDepth()
		return events == 0
	})
	if got := counterValue(t, p.m.forwarded.WithLabelValues("acked")) + counterValue(t, p.m.forwarded.WithLabelValues("duplicate")); got < 60 {
		t.Fatalf("metric forwarded = %v, want at least 60", got)
	}
	// Direct publishing resumes once the spool is empty.
	publish(2, StatusAcked)
	checkStream(t, streamMessages(t, js), map[string]int{"acd.tampa-01": 30, "acd.reno-02": 30, "acd.austin-03": 30})
}

func TestRestartForwardsSpoolAndContinuesSequences(t *testing.T) {
	n := startNATS(t)
	nc, js := n.connect()
	dir := t.TempDir()
	ctx := context.Background()

	// Acked events only: the sequence journal alone carries the numbers
	// across the restart.
	p0 := newPublisher(t, nc, dir)
	for i := 0; i < 3; i++ {
		if r, err := p0.Publish(ctx, callEvent("tampa-01", i)); err != nil || r.Status != StatusAcked {
			t.Fatalf("publish %d = %+v, %v", i, r, err)
		}
	}
	if err := p0.Close(ctx); err != nil {
		t.Fatal(err)
	}
	p1 := newPublisher(t, nc, dir)
	for i := 3; i < 5; i++ {
		if r, err := p1.Publish(ctx, callEvent("tampa-01", i)); err != nil || r.Status != StatusAcked {
			t.Fatalf("publish %d = %+v, %v", i, r, err)
		}
	}
	n.stop()
	eventually(t, 10*time.Second, "the client to notice the outage", func() bool { return !p1.connected() })
	for i := 5; i < 15; i++ {
		if r, err := p1.Publish(ctx, callEvent("tampa-01", i)); err != nil || r.Status != StatusSpooled || r.Seq != uint64(i+1) {
			t.Fatalf("publish %d = %+v, %v", i, r, err)
		}
	}
	if err := p1.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := p1.Publish(ctx, callEvent("tampa-01", 99)); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after close = %v, want ErrClosed", err)
	}

	// The process restarts while NATS is still down.
	p2 := newPublisher(t, nc, dir)
	if events, _ := p2.SpoolDepth(); events != 10 {
		t.Fatalf("restarted spool depth = %d, want 10", events)
	}
	for i := 15; i < 20; i++ {
		r, err := p2.Publish(ctx, callEvent("tampa-01", i))
		if err != nil || r.Status != StatusSpooled || r.Seq != uint64(i+1) {
			t.Fatalf("publish %d after restart = %+v, %v; want spooled with seq %d", i, r, err, i+1)
		}
	}
	n.start()
	eventually(t, 30*time.Second, "the spool to drain after restart", func() bool { return streamCount(t, js) == 20 })
	checkStream(t, streamMessages(t, js), map[string]int{"acd.tampa-01": 20})

	// Even without the sequence journal, the spool's highest number is
	// the floor: no number is reused.
	n.stop()
	eventually(t, 10*time.Second, "the client to notice the outage", func() bool { return !p2.connected() })
	if r, err := p2.Publish(ctx, callEvent("tampa-01", 20)); err != nil || r.Status != StatusSpooled || r.Seq != 21 {
		t.Fatalf("publish = %+v, %v; want spooled seq 21", r, err)
	}
	if err := p2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "sequences")); err != nil {
		t.Fatal(err)
	}
	p3 := newPublisher(t, nc, dir)
	if r, err := p3.Publish(ctx, callEvent("tampa-01", 21)); err != nil || r.Seq != 22 {
		t.Fatalf("publish without journal = %+v, %v; want seq 22", r, err)
	}
	n.start()
	eventually(t, 30*time.Second, "the spool to drain", func() bool { return streamCount(t, js) == 22 })
	checkStream(t, streamMessages(t, js), map[string]int{"acd.tampa-01": 22})
}

func TestTornSpoolFrameIsReportedAndIntactEventsDelivered(t *testing.T) {
	for _, tc := range []struct {
		name      string
		damage    func(t *testing.T, seg string)
		delivered int
	}{
		{"garbage appended", func(t *testing.T, seg string) {
			f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			f.Write([]byte("\xf5\x10\x00\x00\x00torn-half-written-frame"))
		}, 6},
		{"last frame truncated", func(t *testing.T, seg string) {
			fi, err := os.Stat(seg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(seg, fi.Size()-7); err != nil {
				t.Fatal(err)
			}
		}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := startNATS(t)
			nc, js := n.connect()
			dir := t.TempDir()
			ctx := context.Background()
			n.stop()
			p := newPublisher(t, nc, dir)
			eventually(t, 10*time.Second, "the client to notice the outage", func() bool { return !p.connected() })
			for i := 0; i < 6; i++ {
				if r, err := p.Publish(ctx, callEvent("tampa-01", i)); err != nil || r.Status != StatusSpooled {
					t.Fatalf("publish %d = %+v, %v", i, r, err)
				}
			}
			if err := p.Close(ctx); err != nil {
				t.Fatal(err)
			}
			segs, _ := filepath.Glob(filepath.Join(dir, "events", "*.seg"))
			if len(segs) != 1 {
				t.Fatalf("want one spool segment, got %v", segs)
			}
			tc.damage(t, segs[0])

			p2 := newPublisher(t, nc, dir)
			rec := p2.Recovery()
			if len(rec.Damages) != 1 || rec.Damages[0].File != segs[0] || rec.Damages[0].Bytes <= 0 || rec.Damages[0].Offset <= 0 {
				t.Fatalf("recovery = %+v, want one damage in %s", rec, segs[0])
			}
			if events, _ := p2.SpoolDepth(); events != int64(tc.delivered) {
				t.Fatalf("spool holds %d events after recovery, want %d", events, tc.delivered)
			}
			n.start()
			eventually(t, 30*time.Second, "the intact events to be forwarded", func() bool {
				events, _ := p2.SpoolDepth()
				return events == 0
			})
			checkStream(t, streamMessages(t, js), map[string]int{"acd.tampa-01": tc.delivered})
		})
	}
}

func TestFullSpoolPushesBack(t *testing.T) {
	n := startNATS(t)
	nc, js := n.connect()
	p := newPublisher(t, nc, t.TempDir(), func(c *Config) { c.SpoolMaxBytes = MinSpoolMaxBytes })
	n.stop()
	eventually(t, 10*time.Second, "the client to notice the outage", func() bool { return !p.connected() })

	var accepted []uuid.UUID
	var refused *event.Event
	for i := 0; refused == nil; i++ {
		if i > 10000 {
			t.Fatal("a 64 KiB spool never filled up")
		}
		ev := callEvent("tampa-01", i)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		r, err := p.Publish(ctx, ev)
		cancel()
		switch {
		case err == nil && r.Status == StatusSpooled:
			accepted = append(accepted, r.EventID)
		case errors.Is(err, ErrUnavailable) && errors.Is(err, spool.ErrFull):
			refused = ev
		default:
			t.Fatalf("publish %d = %+v, %v; want spooled, or ErrUnavailable wrapping spool.ErrFull", i, r, err)
		}
	}
	if len(accepted) < 10 {
		t.Fatalf("only %d events fit in 64 KiB", len(accepted))
	}
	if p.Ready() {
		t.Fatal("Ready() = true with NATS down and the spool full")
	}
	if events, _ := p.SpoolDepth(); events != int64(len(accepted)) {
		t.Fatalf("spool depth %d, accepted %d", events, len(accepted))
	}
	// The refused event kept its id and number; publishing it again blocks
	// until NATS is back and the forwarder makes room.
	if refused.Source.Seq != uint64(len(accepted)+1) {
		t.Fatalf("refused event has seq %d, want %d", refused.Source.Seq, len(accepted)+1)
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.Publish(context.Background(), refused)
		done <- err
	}()
	n.start()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("blocked publish: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("blocked publish never completed after NATS came back")
	}
	eventually(t, 30*time.Second, "everything accepted to reach the stream", func() bool { return streamCount(t, js) == uint64(len(accepted)+1) })
	msgs := streamMessages(t, js)
	checkStream(t, msgs, map[string]int{"acd.tampa-01": len(accepted) + 1})
	for i, id := range accepted {
		if msgs[i].ev.EventID != id {
			t.Fatalf("stream message %d is %s, want accepted event %s", i, msgs[i].ev.EventID, id)
		}
	}
}

const cardNumber = "4111 1111 1111 1111"

func TestInvalidEventsAreRefusedWithoutConsumingSequence(t *testing.T) {
	n := startNATS(t)
	nc, js := n.connect()
	dir := t.TempDir()
	p := newPublisher(t, nc, dir)
	ctx := context.Background()

	cases := []struct {
		name   string
		edit   func(*event.Event)
		fields []string
		card   bool
	}{
		{"missing call id and dnis", func(e *event.Event) { e.CallID, e.DNIS = "", "" }, []string{"call_id", "dnis"}, false},
		{"bad source instance", func(e *event.Event) { e.Source.Instance = "Tampa 01" }, []string{"source.instance"}, false},
		{"unknown kind", func(e *event.Event) { e.Kind = "call.teleported" }, []string{"kind"}, false},
		{"card in call id", func(e *event.Event) { e.CallID = cardNumber }, []string{"call_id"}, true},
		{"card in agent id", func(e *event.Event) { e.AgentID = "agent " + strings.ReplaceAll(cardNumber, " ", "-") }, []string{"agent_id"}, true},
		{"card in disposition", func(e *event.Event) { e.Disposition = strings.ReplaceAll(cardNumber, " ", "") }, []string{"disposition"}, true},
	}
	var all []*event.Event
	want := 0
	publishValid := func(status Status) {
		t.Helper()
		want++
		ev := callEvent("tampa-01", 1000+want)
		r, err := p.Publish(ctx, ev)
		if err != nil || r.Seq != uint64(want) || r.Status != status {
			t.Fatalf("valid event = %+v, %v; want %s with seq %d", r, err, status, want)
		}
		all = append(all, ev)
	}
	run := func(status Status) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ev := callEvent("tampa-01", 0)
				tc.edit(ev)
				r, err := p.Publish(ctx, ev)
				var ve *event.ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("publish = %+v, %v; want a *event.ValidationError", r, err)
				}
				for _, f := range tc.fields {
					found := false
					for _, pr := range ve.Problems {
						found = found || pr.Field == f
					}
					if !found {
						t.Fatalf("error %q does not name field %s", err, f)
					}
				}
				if tc.card && !errors.Is(err, event.ErrCardNumber) {
					t.Fatalf("card number not reported as such: %v", err)
				}
				if strings.Contains(err.Error(), "1111") || strings.Contains(err.Error(), "4111") {
					t.Fatalf("error text echoes card digits: %q", err)
				}
				if ev.Source.Seq != 0 {
					t.Fatalf("refused event was given seq %d", ev.Source.Seq)
				}
			})
			publishValid(status) // the next valid event gets the next number
		}
	}
	run(StatusAcked)

	// The same with NATS down, so that valid events go to the spool files.
	n.stop()
	eventually(t, 10*time.Second, "the client to notice the outage", func() bool { return !p.connected() })
	run(StatusSpooled)
	// Invalid events in a batch get their error and do not stop the others.
	batch := []*event.Event{callEvent("tampa-01", 1), callEvent("tampa-01", 2), callEvent("tampa-01", 3)}
	batch[1].PromoCode = cardNumber
	res := p.PublishBatch(ctx, batch)
	if res[0].Err != nil || res[2].Err != nil || !errors.Is(res[1].Err, event.ErrCardNumber) {
		t.Fatalf("batch results = %+v", res)
	}
	if res[0].Receipt.Seq != uint64(want+1) || res[2].Receipt.Seq != uint64(want+2) {
		t.Fatalf("batch seqs %d, %d; want %d, %d", res[0].Receipt.Seq, res[2].Receipt.Seq, want+1, want+2)
	}
	want += 2
	all = append(all, batch[0], batch[2])

	assertNoCard := func(what string, b []byte) {
		t.Helper()
		for _, form := range []string{cardNumber, strings.ReplaceAll(cardNumber, " ", ""), strings.ReplaceAll(cardNumber, " ", "-")} {
			if bytes.Contains(b, []byte(form)) {
				t.Fatalf("%s contains the card number", what)
			}
		}
		if containsDigits(b, rawANI) {
			t.Fatalf("%s contains the raw caller number", what)
		}
	}
	spooled := 0
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		assertNoCard("spool file "+path, b)
		if bytes.Contains(b, []byte(`"ani_hash"`)) {
			spooled++
		}
		return nil
	})
	if spooled == 0 {
		t.Fatal("found no spooled event in the spool dir: the check above proved nothing")
	}

	n.start()
	eventually(t, 30*time.Second, "the spool to drain", func() bool { return streamCount(t, js) == uint64(want) })
	msgs := streamMessages(t, js)
	checkStream(t, msgs, map[string]int{"acd.tampa-01": want})
	for i, m := range msgs {
		assertNoCard(fmt.Sprintf("stream message %d", m.seq), m.data)
		if m.ev.EventID != all[i].EventID {
			t.Fatalf("stream message %d is %s, want %s", i, m.ev.EventID, all[i].EventID)
		}
	}
}

func TestGivenSequenceIsKeptAndMovesTheCounter(t *testing.T) {
	n := startNATS(t)
	nc, js := n.connect()
	p := newPublisher(t, nc, t.TempDir())
	ctx := context.Background()
	ev := callEvent("tampa-01", 0)
	ev.Source.Seq = 41
	id := uuid.Must(uuid.NewV7())
	ev.EventID = id
	if r, err := p.Publish(ctx, ev); err != nil || r.Seq != 41 || r.EventID != id {
		t.Fatalf("publish with seq 41 = %+v, %v", r, err)
	}
	if r, err := p.Publish(ctx, callEvent("tampa-01", 1)); err != nil || r.Seq != 42 {
		t.Fatalf("next publish = %+v, %v; want seq 42", r, err)
	}
	if got := streamCount(t, js); got != 2 {
		t.Fatalf("stream holds %d, want 2", got)
	}
}

func TestPublishBatch(t *testing.T) {
	n := startNATS(t)
	nc, js := n.connect()
	p := newPublisher(t, nc, t.TempDir())
	ctx := context.Background()
	sources := []string{"tampa-01", "reno-02", "austin-03"}
	count := map[string]int{}
	batch := func(size int) ([]*event.Event, []Result) {
		evs := make([]*event.Event, size)
		for i := range evs {
			evs[i] = callEvent(sources[i%len(sources)], i)
		}
		evs[7].CallID = ""    // invalid
		evs[8].Source.Seq = 0 // fine
		evs[20].DNIS = ""     // invalid
		res := p.PublishBatch(ctx, evs)
		if len(res) != size {
			t.Fatalf("%d results for %d events", len(res), size)
		}
		return evs, res
	}

	evs, res := batch(90)
	for i, r := range res {
		key := "acd." + evs[i].Source.Instance
		if i == 7 || i == 20 {
			if !errors.As(r.Err, new(*event.ValidationError)) {
				t.Fatalf("event %d: err %v, want a validation error", i, r.Err)
			}
			continue
		}
		count[key]++
		if r.Err != nil || r.Receipt.Status != StatusAcked || r.Receipt.Seq != uint64(count[key]) || r.Receipt.EventID != evs[i].EventID {
			t.Fatalf("event %d: %+v; want acked seq %d", i, r, count[key])
		}
	}
	checkStream(t, streamMessages(t, js), map[string]int{"acd.tampa-01": count["acd.tampa-01"], "acd.reno-02": count["acd.reno-02"], "acd.austin-03": count["acd.austin-03"]})

	// With NATS down the whole batch is spooled, and forwarded later.
	n.stop()
	eventually(t, 10*time.Second, "the client to notice the outage", func() bool { return !p.connected() })
	evs, res = batch(60)
	for i, r := range res {
		if i == 7 || i == 20 {
			continue
		}
		key := "acd." + evs[i].Source.Instance
		count[key]++
		if r.Err != nil || r.Receipt.Status != StatusSpooled || r.Receipt.Seq != uint64(count[key]) {
			t.Fatalf("event %d: %+v; want spooled seq %d", i, r, count[key])
		}
	}
	n.start()
	eventually(t, 30*time.Second, "the spool to drain", func() bool { events, _ := p.SpoolDepth(); return events == 0 })
	checkStream(t, streamMessages(t, js), map[string]int{"acd.tampa-01": count["acd.tampa-01"], "acd.reno-02": count["acd.reno-02"], "acd.austin-03": count["acd.austin-03"]})
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"complete", func(*Config) {}, true},
		{"no spool dir", func(c *Config) { c.SpoolDir = "" }, false},
		{"no ANI key", func(c *Config) { c.ANIKey = nil }, false},
		{"short ANI key", func(c *Config) { c.ANIKey = []byte("short") }, false},
		{"tiny spool", func(c *Config) { c.SpoolMaxBytes = 1000 }, false},
		{"negative timeout", func(c *Config) { c.PublishTimeout = -time.Second }, false},
		{"bad streams", func(c *Config) { c.Streams.Replicas = 9 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{SpoolDir: "/tmp/x", ANIKey: testKey}
			tc.edit(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := New(context.Background(), nil, Config{SpoolDir: t.TempDir(), ANIKey: testKey}); err == nil {
		t.Fatal("New without a connection succeeded")
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
