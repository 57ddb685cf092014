package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
	"github.com/airtally/airtally/producers/spool"
)

// ClickHouse stopped (or killed) while the loader has events to insert,
// then restarted: the loader retries, and every event is one row.
func TestClickHouseStoppedMidLoad(t *testing.T) {
	cases := []struct {
		name string
		down func() error
	}{
		{"stopped", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			return testenv.ClickHouse().Stop(ctx)
		}},
		{"killed", func() error { return testenv.ClickHouse().Kill() }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStack(t)
			l := s.startLoader("a", func(c *loader.Config) { c.BatchSize = 50 })
			lib, _ := s.newPublisher(t.TempDir())
			gwPub, _ := s.newPublisher(t.TempDir())
			gw := s.startGateway(gwPub)

			before := newEvents(source("acd", "tampa-01"), 150)
			publishAll(t, lib, before, "")
			s.waitRows(150)

			// The shared server must be running again whatever happens here.
			t.Cleanup(func() { restartClickHouse(t) })
			if err := c.down(); err != nil {
				t.Fatalf("ClickHouse %s: %v", c.name, err)
			}
			during := newEvents(source("acd", "tampa-01"), 200)
			publishAll(t, lib, during, "")
			web := newEvents(source("web", "shop-01"), 50)
			gw.postEvents("array", web, "")
			testenv.Eventually(t, wait, func() bool { return l.metric(metricInsertErrors) >= 2 },
				"the loader never failed an insert while ClickHouse was down")
			restartClickHouse(t)

			s.waitRows(400)
			s.checkIDs(ids(before, during, web))
			s.checkSourceOrder(map[string]int{"acd.tampa-01": 350, "web.shop-01": 50}, nil)
		})
	}
}

// restartClickHouse starts the shared server again if it is not running.
func restartClickHouse(t testing.TB) {
	t.Helper()
	srv := testenv.ClickHouse()
	if srv.Running() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := srv.Restart(ctx); err != nil {
		t.Fatalf("restart ClickHouse: %v", err)
	}
}

// Events produced while NATS is down are spooled (receipts and HTTP
// answers say so), forwarded when NATS is back, and loaded in each
// source's order.
func TestNATSDownWhileProducing(t *testing.T) {
	s := newStack(t)
	s.startLoader("a")
	lib, libConn := s.newPublisher(t.TempDir())
	gwPub, gwConn := s.newPublisher(t.TempDir())
	gw := s.startGateway(gwPub)

	libSources := []event.Source{source("acd", "tampa-01"), source("acd", "tampa-02")}
	webSources := []event.Source{source("web", "shop-01"), source("web", "shop-02")}
	counts := map[string]int{}
	var sent []uuid.UUID
	produce := func(libN, webN int, status publisher.Status) {
		t.Helper()
		for _, src := range libSources {
			evs := newEvents(src, libN)
			publishAll(t, lib, evs, status)
			counts[src.Key()] += libN
			sent = append(sent, ids(evs)...)
		}
		for _, src := range webSources {
			evs := newEvents(src, webN)
			gw.postEvents("array", evs[:webN/2], status)
			gw.postEvents("ndjson", evs[webN/2:], status)
			counts[src.Key()] += webN
			sent = append(sent, ids(evs)...)
		}
	}

	produce(40, 20, "")
	s.stopNATS(libConn, gwConn)
	produce(60, 30, publisher.StatusSpooled)
	if n, _ := lib.SpoolDepth(); n != 2*60 {
		t.Errorf("library spool holds %d events, want %d", n, 2*60)
	}
	if n, _ := gwPub.SpoolDepth(); n != 2*30 {
		t.Errorf("gateway spool holds %d events, want %d", n, 2*30)
	}
	// While NATS is down the gateway still accepts; readiness says the
	// spool has room.
	if a := gw.post("application/json", wire(t, newEvent(source("web", "shop-03")))); a.code != http.StatusAccepted {
		t.Fatalf("POST while NATS is down: %d: %s", a.code, a.body)
	} else {
		counts["web.shop-03"]++
		sent = append(sent, a.resp.Accepted[0].EventID)
	}

	s.restartNATS()
	// Right after the restart new events queue behind the spool.
	produce(20, 10, "")

	total := 0
	for _, n := range counts {
		total += n
	}
	s.waitRows(uint64(total))
	s.checkIDs(sent)
	s.checkSourceOrder(counts, nil)
	testenv.Eventually(t, wait, func() bool {
		a, _ := lib.SpoolDepth()
		b, _ := gwPub.SpoolDepth()
		return a == 0 && b == 0
	}, "spools not drained")
}

// A spool segment whose last frame is torn, or that ends in garbage, is
// repaired when the publisher opens it again: the damage is reported with
// the file and the bytes cut out, and the intact frames are delivered.
func TestTornSpoolFrame(t *testing.T) {
	cases := []struct {
		name string
		// damage changes the segment file of size size whose last frame
		// starts at last, and returns the damage expected and whether
		// the last event is lost.
		damage func(t *testing.T, path string, size, last int64) (spool.Damage, bool)
	}{
		{"torn last frame", func(t *testing.T, path string, size, last int64) (spool.Damage, bool) {
			cut := last + (size-last)/2 // half the last frame is gone
			if err := os.Truncate(path, cut); err != nil {
				t.Fatal(err)
			}
			return spool.Damage{File: path, Offset: last, Bytes: cut - last}, true
		}},
		{"garbage after the last frame", func(t *testing.T, path string, size, _ int64) (spool.Damage, bool) {
			garbage := []byte("\x00\x13 half-written \xff\xfe record")
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(garbage); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			return spool.Damage{File: path, Offset: size, Bytes: int64(len(garbage))}, false
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStack(t)
			s.startLoader("a")
			dir := t.TempDir()
			nc := s.connectNATS("e2e-publisher")
			p := s.openPublisher(nc, dir)
			src := source("acd", "tampa-01")
			acked := newEvents(src, 20)
			publishAll(t, p, acked, "")

			s.stopNATS(nc)
			spooled := newEvents(src, 40)
			publishAll(t, p, spooled, publisher.StatusSpooled)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := p.Close(ctx); err != nil {
				t.Fatalf("close publisher: %v", err)
			}

			path, size, last := lastFrame(t, filepath.Join(dir, "events"))
			want, lost := c.damage(t, path, size, last)

			p = s.openPublisher(nc, dir)
			rec := p.Recovery()
			if len(rec.Damages) != 1 {
				t.Fatalf("recovery reports %d damages, want 1: %+v", len(rec.Damages), rec.Damages)
			}
			got := rec.Damages[0]
			if got.File != want.File || got.Offset != want.Offset || got.Bytes != want.Bytes || got.Reason == "" {
				t.Errorf("damage reported: %s; want %s at offset %d, %d bytes, with a reason", got, want.File, want.Offset, want.Bytes)
			}
			if rec.DiscardedBytes() != want.Bytes {
				t.Errorf("discarded bytes %d, want %d", rec.DiscardedBytes(), want.Bytes)
			}
			intact := spooled
			if lost {
				intact = spooled[:len(spooled)-1]
			}
			if rec.Frames != int64(len(intact)) {
				t.Errorf("recovery keeps %d frames, want %d", rec.Frames, len(intact))
			}
			if logs := s.logs.String(); !strings.Contains(logs, "damaged data cut out") || !strings.Contains(logs, filepath.Base(path)) {
				t.Errorf("the damage is not in the logs with the file's name")
			}

			s.restartNATS()
			after := newEvents(src, 10)
			publishAll(t, p, after, "")

			wantIDs := ids(acked, intact, after)
			s.waitRows(uint64(len(wantIDs)))
			s.checkIDs(wantIDs)
			// The lost event's number stays unused: the gap shows the loss.
			var seqs []uint64
			for _, list := range [][]*event.Event{acked, intact, after} {
				for _, ev := range list {
					seqs = append(seqs, ev.Source.Seq)
				}
			}
			if lost && slices.Contains(seqs, spooled[len(spooled)-1].Source.Seq) {
				t.Fatalf("test bug: the lost event's number is in use")
			}
			s.checkSourceOrder(map[string]int{src.Key(): len(seqs)}, map[string][]uint64{src.Key(): seqs})
		})
	}
}

// lastFrame finds the last segment file of a spool folder, its size, and
// where its last frame starts.
func lastFrame(t *testing.T, dir string) (path string, size, last int64) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segment in %s (%v)", dir, err)
	}
	slices.Sort(segs)
	path = segs[len(segs)-1]
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	last = -1
	for off := 0; off < len(data); {
		_, n, err := spool.DecodeFrame(data[off:], 1<<20)
		if err != nil {
			t.Fatalf("%s: frame at %d: %v", path, off, err)
		}
		last, off = int64(off), off+n
	}
	if last < 0 {
		t.Fatalf("%s holds no frame", path)
	}
	return path, int64(len(data)), last
}
