package e2e

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
)

// After a scenario with everything the other tests do one at a time (a
// loader crash between insert and ack, producer retries, invalid and card
// messages, a NATS outage while producing, ClickHouse stopped while events
// arrive, two loaders while producers publish, a card number as the
// stream's last message), a replay into a fresh database gives the very
// same rows as the live load, every column but loaded_at.
func TestReplayMatchesLive(t *testing.T) {
	s := newStack(t)
	lib, libConn := s.newPublisher(t.TempDir())
	gwPub, gwConn := s.newPublisher(t.TempDir())
	gw := s.startGateway(gwPub)
	libSources := []event.Source{source("acd", "tampa-01"), source("acd", "tampa-02")}
	web := source("web", "shop-01")
	var sent []uuid.UUID
	library := func(n int, status publisher.Status) []*event.Event {
		t.Helper()
		var all []*event.Event
		for _, src := range libSources {
			evs := newEvents(src, n)
			publishAll(t, lib, evs, status)
			all = append(all, evs...)
		}
		sent = append(sent, ids(all)...)
		return all
	}
	viaHTTP := func(n int, status publisher.Status) []*event.Event {
		t.Helper()
		evs := newEvents(web, n)
		gw.postEvents("array", evs[:n/2], status)
		gw.postEvents("ndjson", evs[n/2:], status)
		sent = append(sent, ids(evs)...)
		return evs
	}

	// 1. A backlog before any loader runs; the first loader crashes
	// between an insert and its acks.
	firstLib := library(75, "")
	firstWeb := viaHTTP(40, "")
	s.crashLoader(60)

	// 2. Another loader takes over. Producers retry events already stored.
	a := s.startLoader("a")
	publishAll(t, lib, firstLib[:10], publisher.StatusDuplicate)
	gw.postEvents("array", firstWeb[:10], publisher.StatusDuplicate)

	// 3. Invalid and card messages put raw on the stream among good ones.
	f := &rawFeed{t: t, src: source("raw", "feed-01")}
	invalid := []rawCase{
		f.edited("call without dnis", event.CallReceived, "dnis", nil, ""),
		{name: "not JSON", subject: "drtv.v1.heartbeat.raw.feed-01", data: []byte("{oops")},
		f.edited("unknown field", event.Heartbeat, "colour", "red", ""),
	}
	cards := []rawCase{
		f.edited("card in promo_code", event.OrderPlaced, "promo_code", "4242 4242 4242 4242", ""),
		f.edited("card in unknown field", event.CallEnded, "memo", "5200-8282-8282-8210", ""),
	}
	for _, c := range append(invalid, cards...) {
		g, ev := f.good(event.CallReceived)
		s.putRaw(g.subject, g.data)
		sent = append(sent, ev.EventID)
		s.putRaw(c.subject, c.data)
	}

	// 4. NATS down while producing; back.
	s.stopNATS(libConn, gwConn)
	library(30, publisher.StatusSpooled)
	viaHTTP(20, publisher.StatusSpooled)
	s.restartNATS()
	s.waitRows(uint64(len(sent)))

	// 5. ClickHouse stopped while events arrive; back.
	t.Cleanup(func() { restartClickHouse(t) })
	stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := testenv.ClickHouse().Stop(stopCtx); err != nil {
		t.Fatalf("stop ClickHouse: %v", err)
	}
	library(30, "")
	testenv.Eventually(t, wait, func() bool { return a.metric(metricInsertErrors) >= 1 },
		"the loader never failed an insert while ClickHouse was down")
	restartClickHouse(t)

	// 6. A second loader joins while producers publish concurrently.
	s.startLoader("b")
	var wg sync.WaitGroup
	for _, src := range libSources {
		evs := newEvents(src, 50)
		sent = append(sent, ids(evs)...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < len(evs); i += 10 {
				if err := tryPublishAll(lib, evs[i:i+10], ""); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	late := newEvents(web, 40)
	sent = append(sent, ids(late)...)
	var bodies [][]byte
	for i := 0; i < len(late); i += 10 {
		bodies = append(bodies, wireArray(t, late[i:i+10]))
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, body := range bodies {
			if a, err := gw.send("application/json", body); err != nil || a.code != http.StatusAccepted {
				t.Errorf("POST: %v: %d: %s", err, a.code, a.body)
				return
			}
		}
	}()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// 7. The stream's last message holds a card number: it is erased.
	last := f.edited("card last", event.CallReceived, "call_id", "4111 1111 1111 1111", "")
	lastSeq := s.putRaw(last.subject, last.data)
	cards = append(cards, last)

	s.waitRows(uint64(len(sent)))
	s.checkIDs(sent)
	testenv.Eventually(t, wait, func() bool {
		return s.streamCount(streams.DefaultDLQStream) == len(invalid)+len(cards)
	}, "want %d dead letters", len(invalid)+len(cards))
	if got := s.streamMessages(streams.DefaultEventsStream); got[len(got)-1].Sequence >= lastSeq {
		t.Fatalf("the last message (a card number) is still in the events stream")
	}

	// Replay into a fresh database.
	replayConn, replayDB := testenv.NewDatabase(t, false)
	rctx, rcancel := context.WithTimeout(context.Background(), wait)
	defer rcancel()
	stats, err := loader.Replay(rctx, s.js, replayConn, loader.ReplayConfig{
		Database: replayDB, BatchSize: 100, BackoffMin: 20 * time.Millisecond, BackoffMax: 250 * time.Millisecond,
		Logger: s.log.With("replay", replayDB),
	})
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	t.Logf("replay: %+v", stats)
	if stats.Loaded != uint64(len(sent)) || stats.Invalid != uint64(len(invalid)) || stats.LastSeq != lastSeq {
		t.Errorf("replay loaded %d rows, skipped %d invalid, up to stream seq %d; want %d, %d (the cards are erased), %d",
			stats.Loaded, stats.Invalid, stats.LastSeq, len(sent), len(invalid), lastSeq)
	}
	live, replayed := s.eventRows(s.db), s.eventRows(replayDB)
	if len(live) != len(sent) || len(replayed) != len(live) {
		t.Fatalf("live has %d rows, replay %d; want %d each", len(live), len(replayed), len(sent))
	}
	diffs := 0
	for i := range live {
		if live[i] != replayed[i] {
			if diffs < 3 {
				t.Errorf("row %d differs:\nlive:   %s\nreplay: %s", i, live[i], replayed[i])
			}
			diffs++
		}
	}
	if diffs > 0 {
		t.Errorf("%d of %d rows differ", diffs, len(live))
	}
}

// eventRows returns every row of db.events (FINAL) as text, every column
// but loaded_at, ordered by event id.
func (s *stack) eventRows(db string) []string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := s.ch.Query(ctx, "SELECT name FROM system.columns WHERE database = ? AND table = 'events' AND name != 'loaded_at' ORDER BY name", db)
	if err != nil {
		s.t.Fatalf("columns of %s.events: %v", db, err)
	}
	var cols []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			s.t.Fatal(err)
		}
		cols = append(cols, quoted(s.t, name))
	}
	rows.Close()
	if len(cols) < 30 {
		s.t.Fatalf("%s.events has only the columns %v", db, cols)
	}
	rows, err = s.ch.Query(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+quoted(s.t, db)+".events FINAL ORDER BY event_id")
	if err != nil {
		s.t.Fatalf("read %s.events: %v", db, err)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	var out []string
	for rows.Next() {
		vals := make([]any, len(types))
		for i, ct := range types {
			vals[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(vals...); err != nil {
			s.t.Fatalf("scan %s.events: %v", db, err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = fmt.Sprintf("%s=%v", cols[i], reflect.ValueOf(v).Elem().Interface())
		}
		out = append(out, strings.Join(parts, " "))
	}
	if err := rows.Err(); err != nil {
		s.t.Fatalf("read %s.events: %v", db, err)
	}
	return out
}
