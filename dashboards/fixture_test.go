package dashboards

import (
	"context"
	"encoding/json"
	"github.com/airtally/airtally/consumers/projector"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/consumers/detector/faultday"
	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/report/reporttest"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
)

// dayDate is the known broadcast day: in the past, so that every response
// window is over and every figure final.
var dayDate = time.Date(2025, 11, 24, 0, 0, 0, 0, time.UTC)

// fixture is the known broadcast day with its faults, loaded into
// ClickHouse 18.16 through JetStream and the real loader, and copied into
// current ClickHouse (chDB).
type fixture struct {
	day        faultday.Day
	detections []*event.Event
	conn       driver.Conn // 18.16, default database db
	db         string
	ch         *testenv.CHDB
	chdb       string
	loadedFrom time.Time // when the events were stored and loaded
}

// Loader-lag detection the fixture adds: the loader fell 95 s behind for
// three minutes, two hours into the day.
const (
	loaderInstance = "clickhouse-loader"
	loaderDelay    = 95 * time.Second
)

// newFixture generates the day (faultday, seed 1), adds the detection
// events the detector publishes for its faults and one message the loader
// must dead-letter, publishes everything to an embedded JetStream, runs the
// loader into a fresh database on ClickHouse 18.16 (it stores the events
// and projects the schedule), and copies the tables into chDB.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	f := &fixture{day: faultday.Generate(faultday.Config{Date: dayDate, Seed: 1, Response: 1}), loadedFrom: time.Now().UTC()}
	f.detections = detectionsFor(t, f.day)

	n := testenv.StartNATS(t, natsembed.Config{})
	nc := testenv.Connect(t, n.URL)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := streams.Ensure(ctx, js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	var evs []*event.Event
	for _, d := range f.day.Delivered {
		evs = append(evs, d.Event)
	}
	evs = append(evs, f.detections...)
	publish(t, js, evs)
	// A message that is not an event: the loader dead-letters it.
	bad := &nats.Msg{Subject: streams.DefaultSubjectPrefix + ".call_received.acd.tampa-01", Data: []byte(`{"kind":"call.received"}`)}
	if _, err := js.PublishMsg(ctx, bad, jetstream.WithMsgID(uuid.NewString())); err != nil {
		t.Fatal(err)
	}

	f.conn, f.db = testenv.NewDatabase(t, true)
	l, err := loader.New(js, f.conn, loader.Config{
		Database: f.db, Consumer: "loader-" + f.db, FlushInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.Run(lctx) }()
	var schedule uint64
	for _, e := range evs {
		if e.Kind.IsAiring() || e.Kind == event.OfferConfigured {
			schedule++
		}
	}
	testenv.Eventually(t, 3*time.Minute, func() bool {
		var n, dead, projected uint64
		err1 := f.conn.QueryRow(ctx, "SELECT count() FROM "+f.db+".events").Scan(&n)
		err2 := f.conn.QueryRow(ctx, "SELECT count() FROM "+f.db+".dead_letters").Scan(&dead)
		err3 := f.conn.QueryRow(ctx, "SELECT (SELECT count() FROM "+f.db+".airings) + (SELECT count() FROM "+f.db+".offers)").Scan(&projected)
		return err1 == nil && err2 == nil && err3 == nil && n >= uint64(len(evs)) && dead >= 1 && projected >= schedule
	}, "the loader to store %d events, project %d schedule events and dead-letter one message", len(evs), schedule)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("loader: %v", err)
	}

	f.ch, f.chdb = testenv.ChDB(t)
	if err := reporttest.MigrateCHDB(f.ch, f.chdb); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"events", "airings", "offers", "dead_letters"} {
		copyTable(t, f.conn, f.db, f.ch, f.chdb, table)
	}
	// The panels read the airing projection: compute it on both engines
	// (on chDB from scratch, the copy having no marks).
	for _, db := range []struct {
		name string
		db   projector.DB
		in   string
	}{{"ClickHouse 18.16", projector.Native(f.conn), f.db}, {"chDB", reporttest.CHDBDB(f.ch), f.chdb}} {
		p, err := projector.New(db.db, projector.Config{Database: db.in})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.CatchUp(ctx); err != nil {
			t.Fatalf("%s: projector: %v", db.name, err)
		}
	}
	return f
}

// publish publishes evs in order, each acknowledged by JetStream.
func publish(t *testing.T, js jetstream.JetStream, evs []*event.Event) {
	t.Helper()
	futures := make([]jetstream.PubAckFuture, len(evs))
	wait := func(from, to int) {
		for i := from; i < to; i++ {
			select {
			case <-futures[i].Ok():
			case err := <-futures[i].Err():
				t.Fatalf("publish %d: %v", i, err)
			case <-time.After(30 * time.Second):
				t.Fatalf("publish %d: no ack", i)
			}
		}
	}
	const window = 500
	for i, e := range evs {
		data, err := e.Encode()
		if err != nil {
			t.Fatalf("encode %s: %v", e.Kind, err)
		}
		msg := &nats.Msg{Subject: e.Subject(streams.DefaultSubjectPrefix), Data: data}
		if futures[i], err = js.PublishMsgAsync(msg, jetstream.WithMsgID(e.EventID.String())); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if i%window == window-1 {
			wait(i-window+1, i+1)
		}
	}
	wait(len(evs)-len(evs)%window, len(evs))
}

// detectionsFor returns the detection events the detector publishes for the
// day's faults (as docs/accountability.md describes them): the outage as a
// downtime window, the lost range as an open gap, the silent number as a
// line silent everywhere, the spool as producer delay; and a loader delay.
func detectionsFor(t *testing.T, d faultday.Day) []*event.Event {
	t.Helper()
	var seq uint64
	det := func(k event.Kind, at time.Time, monitored string) *event.Event {
		seq++
		e := event.New(k, event.Source{System: event.DetectorSystem, Instance: "main", Seq: seq}, at)
		if monitored != "" {
			e.MonitoredSystem, e.MonitoredInstance, _ = strings.Cut(monitored, ".")
		}
		return e
	}
	fl := d.Faults
	const tolerance = 630 // 2 × the 5-minute heartbeat + 30 s
	var evs []*event.Event

	down := det(event.SourceDown, fl.Outage.From.Add(tolerance*time.Second), fl.OutageSource)
	down.WindowStart, down.ToleranceSeconds = fl.Outage.From, tolerance
	up := det(event.SourceUp, fl.Outage.To, fl.OutageSource)
	up.WindowStart, up.WindowEnd, up.ToleranceSeconds, up.Outcome = fl.Outage.From, fl.Outage.To, tolerance, event.OutcomeDown
	evs = append(evs, down, up)

	gap := det(event.GapOpened, fl.GapSpan.To.Add(10*time.Second), fl.GapSource)
	gap.SeqFrom, gap.SeqTo, gap.WindowStart, gap.WindowEnd = fl.GapFrom, fl.GapTo, fl.GapSpan.From, fl.GapSpan.To
	evs = append(evs, gap)

	silent := det(event.LineSilent, fl.Silent.From.Add(5*time.Minute), "")
	silent.DNIS, silent.WindowStart, silent.ExpectedCalls = fl.SilentDNIS, fl.Silent.From, 14
	restored := det(event.LineRestored, fl.Silent.To, "")
	restored.DNIS, restored.WindowStart, restored.WindowEnd, restored.ExpectedCalls = fl.SilentDNIS, fl.Silent.From, fl.Silent.To, 14
	evs = append(evs, silent, restored)

	spool := det(event.DataDelayed, fl.Spool.To.Add(time.Second), fl.SpoolSource)
	spool.WindowStart, spool.WindowEnd, spool.DelayMS, spool.EventCount, spool.Outcome =
		fl.Spool.From, fl.Spool.To, fl.Spool.To.Sub(fl.Spool.From).Milliseconds(), 12, event.OutcomeProducer
	lagFrom := d.Full.From.Add(2 * time.Hour)
	lag := det(event.DataDelayed, lagFrom.Add(3*time.Minute), "loader."+loaderInstance)
	lag.WindowStart, lag.WindowEnd, lag.DelayMS, lag.EventCount, lag.Outcome =
		lagFrom, lagFrom.Add(3*time.Minute), loaderDelay.Milliseconds(), 40, event.OutcomeLoader
	evs = append(evs, spool, lag)

	for _, e := range evs {
		if err := e.Validate(); err != nil {
			t.Fatalf("detection %s: %v", e.Kind, err)
		}
	}
	return evs
}

// copyTable copies a table of db on 18.16 into database cdb of chDB.
func copyTable(t *testing.T, conn driver.Conn, db string, ch *testenv.CHDB, cdb, table string) {
	t.Helper()
	res, err := server{conn}.run(t, "SELECT * FROM "+db+"."+table)
	if err != nil {
		t.Fatal(err)
	}
	lines := make([]string, 0, len(res.rows))
	for _, r := range res.rows {
		m := map[string]any{}
		for k, v := range r {
			switch x := v.(type) {
			case time.Time:
				m[k] = x.UTC().Format(time.DateTime)
			case uuid.UUID:
				m[k] = x.String()
			default:
				m[k] = x
			}
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	ident, err := chsql.Ident(cdb)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(lines); i += 5000 {
		chunk := lines[i:min(i+5000, len(lines))]
		if err := ch.Exec("INSERT INTO " + ident + "." + table + " FORMAT JSONEachRow\n" + strings.Join(chunk, "\n")); err != nil {
			t.Fatalf("chDB insert into %s: %v", table, err)
		}
	}
}
