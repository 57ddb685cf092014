package schedule_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/internal/airings"
	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/report/reporttest"
	"github.com/airtally/airtally/internal/schedule"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.WithClickHouse())
}

// rig is an importer publishing through the real publisher to an
// embedded NATS server, reading the projection from ClickHouse 18.16;
// project plays the loader's part (stream → events and projections).
type rig struct {
	t         *testing.T
	conn      driver.Conn
	db        string
	stream    jetstream.Stream
	im        *schedule.Importer
	projected uint64
	clock     time.Time
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx := context.Background()
	n := testenv.StartNATS(t, natsembed.Config{})
	nc := testenv.Connect(t, n.URL)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := streams.Ensure(ctx, js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, streams.DefaultEventsStream)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := publisher.New(ctx, nc, publisher.Config{SpoolDir: t.TempDir(), ANIKey: []byte("schedule-test-key-0123456789"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close(context.Background()) })
	conn, db := testenv.NewDatabase(t, true)
	r := &rig{t: t, conn: conn, db: db, stream: stream, clock: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
	r.im, err = schedule.New(schedule.Config{Instance: "test", Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { r.clock = r.clock.Add(time.Second); return r.clock }}, pub, schedule.ClickHouseStore(conn, db))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) schedule(csv string) schedule.Summary {
	r.t.Helper()
	s, err := r.im.Schedule(context.Background(), strings.NewReader(csv))
	if err != nil {
		r.t.Fatalf("import: %v", err)
	}
	return s
}

func (r *rig) offers(csv string) schedule.Summary {
	r.t.Helper()
	s, err := r.im.Offers(context.Background(), strings.NewReader(csv))
	if err != nil {
		r.t.Fatalf("import offers: %v", err)
	}
	return s
}

// streamLen is the number of messages on the events stream.
func (r *rig) streamLen() uint64 {
	r.t.Helper()
	info, err := r.stream.Info(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return info.State.Msgs
}

// project loads the stream's new events into ClickHouse, as the loader
// does, and returns them.
func (r *rig) project() []*event.Event {
	r.t.Helper()
	ctx := context.Background()
	info, err := r.stream.Info(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	var evs []*event.Event
	var seqd []reporttest.Sequenced
	for seq := r.projected + 1; seq <= info.State.LastSeq; seq++ {
		msg, err := r.stream.GetMsg(ctx, seq)
		if err != nil {
			r.t.Fatalf("get %d: %v", seq, err)
		}
		ev, err := event.Decode(msg.Data)
		if err != nil {
			r.t.Fatalf("the importer published an invalid event: %v", err)
		}
		if msg.Subject != ev.Subject(streams.DefaultSubjectPrefix) {
			r.t.Fatalf("subject %s for a %s event", msg.Subject, ev.Kind)
		}
		evs = append(evs, ev)
		seqd = append(seqd, reporttest.Sequenced{Event: ev, StreamSeq: seq})
	}
	r.projected = info.State.LastSeq
	if err := reporttest.Load(ctx, r.conn, r.db, seqd); err != nil {
		r.t.Fatal(err)
	}
	return evs
}

func (r *rig) current() map[string]airings.Airing {
	r.t.Helper()
	cur, err := airings.Current(context.Background(), r.conn, r.db, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return cur
}

func utc(y int, mo time.Month, d, h, mi int) time.Time {
	return time.Date(y, mo, d, h, mi, 0, 0, time.UTC)
}

func checkSummary(t *testing.T, got schedule.Summary, want schedule.Summary) {
	t.Helper()
	if got.Rows != want.Rows || got.New != want.New || got.Revised != want.Revised || got.Unchanged != want.Unchanged ||
		got.Rejected != want.Rejected || got.Failed != want.Failed {
		t.Errorf("summary = rows %d, new %d, revised %d, unchanged %d, rejected %d, failed %d; want %d, %d, %d, %d, %d, %d\nproblems: %v",
			got.Rows, got.New, got.Revised, got.Unchanged, got.Rejected, got.Failed,
			want.Rows, want.New, want.Revised, want.Unchanged, want.Rejected, want.Failed, got.Problems)
	}
}

// Three files as agencies send them: spaced headers with 12-hour times
// and zone abbreviations; canonical headers separated by semicolons with
// schedule windows and RFC 3339 times; tab-separated without airing ids
// (a natural key) with a window column and an IANA zone.
const agencyFile = `Spot ID,Show,ISCI Code,Network,DMA,Media,Air Date,Air Time,Time Zone,Length,Net Cost,800 #,Promo Code,URL
S-1,bright-smile,bsml0060h,CNBC,National,Cable,11/24/2026,8:00 PM,ET,:60,"$1,250.00",1-800-555-0101,SMILE,brightsmile.example/tv
S-2,bright-smile,BSML0120H,HGTV,National,TV,11/24/2026,25:30,CT,120,900,(800) 555-0101,,
S-3,flex-roller,FLXR0060,WFLA,Tampa,tv,2026-11-24,14:00,EST,1:00,USD 400.5,8005550102,,
`

const canonicalFile = "airing_id;offer;isci;station;market;media_type;start;end;length_seconds;spend;currency;dnis;vanity_url;promo_code;did_not_run\n" +
	"R-1;bright-smile;BSML0060R;WLS-AM;Chicago;radio;2026-11-24T07:00:00-06:00;08:00;60;180.00;USD;8005550104;;;\n" +
	"R-2;flex-roller;FLXR0120;KTVK;Phoenix;tv;2026-11-24 23:30;00:30;120;300;USD;8005550102;flexroller.example;;no\n" +
	"W-1;sleep-well;SLPW0060;HGTV;National;tv;2026-11-24 21:00;;60;500;EUR;;;SLEEP;yes\n"

const naturalFile = "Station\tDate\tWindow\tISCI\tDNIS\tProduct\tCost\tTZ\n" +
	"KTVK\t2026-11-24\t6:00 PM - 7:00 PM\tSLPW0030\t877-555-0103\tsleep-well\t250\tAmerica/Phoenix\n"

func TestImportHeaderSpellingsZonesAndWindows(t *testing.T) {
	r := newRig(t)
	checkSummary(t, r.schedule(agencyFile), schedule.Summary{Rows: 3, New: 3})
	checkSummary(t, r.schedule(canonicalFile), schedule.Summary{Rows: 3, New: 3})
	checkSummary(t, r.schedule(naturalFile), schedule.Summary{Rows: 1, New: 1})
	evs := r.project()
	if len(evs) != 7 {
		t.Fatalf("%d events on the stream, want 7", len(evs))
	}
	kinds := map[string]event.Kind{}
	for _, e := range evs {
		kinds[e.AiringID] = e.Kind
		if e.Source.System != "schedule" || e.Source.Instance != "test" || e.Source.Seq == 0 {
			t.Errorf("source %+v", e.Source)
		}
	}
	natural := airings.NaturalID("KTVK", utc(2026, 11, 25, 1, 0), "SLPW0030", "8775550103")
	want := map[string]airings.Airing{
		"S-1": {ID: "S-1", Offer: "bright-smile", ISCI: "BSML0060H", Station: "CNBC", Market: "National", MediaType: "tv",
			AiredAt: utc(2026, 11, 25, 1, 0), LengthSeconds: 60, SpendCents: 125000, Currency: "USD", DNIS: "18005550101",
			PromoCode: "SMILE", VanityURL: "brightsmile.example/tv"},
		"S-2": {ID: "S-2", Offer: "bright-smile", ISCI: "BSML0120H", Station: "HGTV", Market: "National", MediaType: "tv",
			AiredAt: utc(2026, 11, 25, 7, 30), LengthSeconds: 120, SpendCents: 90000, Currency: "USD", DNIS: "8005550101"},
		"S-3": {ID: "S-3", Offer: "flex-roller", ISCI: "FLXR0060", Station: "WFLA", Market: "Tampa", MediaType: "tv",
			AiredAt: utc(2026, 11, 24, 19, 0), LengthSeconds: 60, SpendCents: 40050, Currency: "USD", DNIS: "8005550102"},
		"R-1": {ID: "R-1", Offer: "bright-smile", ISCI: "BSML0060R", Station: "WLS-AM", Market: "Chicago", MediaType: "radio",
			AiredAt: utc(2026, 11, 24, 13, 0), AiredUntil: utc(2026, 11, 24, 14, 0), LengthSeconds: 60, SpendCents: 18000, Currency: "USD", DNIS: "8005550104"},
		"R-2": {ID: "R-2", Offer: "flex-roller", ISCI: "FLXR0120", Station: "KTVK", Market: "Phoenix", MediaType: "tv",
			AiredAt: utc(2026, 11, 25, 4, 30), AiredUntil: utc(2026, 11, 25, 5, 30), LengthSeconds: 120, SpendCents: 30000, Currency: "USD",
			DNIS: "8005550102", VanityURL: "flexroller.example"},
		"W-1": {ID: "W-1", Offer: "sleep-well", ISCI: "SLPW0060", Station: "HGTV", Market: "National", MediaType: "tv",
			AiredAt: utc(2026, 11, 25, 2, 0), LengthSeconds: 60, SpendCents: 50000, Currency: "EUR", PromoCode: "SLEEP", DidNotRun: true},
		natural: {ID: natural, Offer: "sleep-well", ISCI: "SLPW0030", Station: "KTVK", AiredAt: utc(2026, 11, 25, 1, 0),
			AiredUntil: utc(2026, 11, 25, 2, 0), SpendCents: 25000, Currency: "USD", DNIS: "8775550103"},
	}
	cur := r.current()
	if len(cur) != len(want) {
		t.Errorf("%d airings in the projection, want %d", len(cur), len(want))
	}
	for id, w := range want {
		g, ok := cur[id]
		if !ok {
			t.Errorf("airing %s missing", id)
			continue
		}
		if g.Hash() != w.Hash() {
			t.Errorf("airing %s:\n got %+v\nwant %+v", id, g, w)
		}
	}
	if kinds["W-1"] != event.AiringCancelled || kinds["S-1"] != event.AiringScheduled {
		t.Errorf("kinds: W-1 %s (want cancelled), S-1 %s (want scheduled)", kinds["W-1"], kinds["S-1"])
	}
}

func TestBadRowsReportedGoodRowsImported(t *testing.T) {
	r := newRig(t)
	const file = `Airing ID,Offer,Station,Date,Time,Spend,DNIS,Media Type,Time Zone
G-1,bright-smile,CNBC,2026-11-24,20:00,100,8005550101,tv,
B-1,bright-smile,CNBC,2026-13-45,20:00,100,8005550101,tv,
B-2,bright-smile,CNBC,2026-11-24,20:00,12.345,8005550101,tv,
B-3,bright-smile,CNBC,2026-11-24,20:00,100,8005550101,billboard,
B-4,,CNBC,2026-11-24,20:00,100,8005550101,tv,
B-5,bright-smile,CNBC,2026-11-24,20:00,100,,tv,
G-1,bright-smile,HGTV,2026-11-24,21:00,100,8005550101,tv,
B-6,bright-smile,CNBC,2026-11-24,20:00,100,8005550101,tv,Mars/Base
"G-2","flex-roller, the original",HGTV,2026-11-24,8:30 PM,"1,000",8005550102,tv,
B-7,flex-roller,HGTV,2026-11-24,8:30 PM,-5,8005550102,tv,
B-8,flex-roller,HGTV,,8:30 PM,5,8005550102,tv,
`
	s := r.schedule(file)
	checkSummary(t, s, schedule.Summary{Rows: 11, New: 2, Rejected: 9})
	want := []schedule.RowError{
		{Line: 3, Column: "Date", Reason: "is not a date"},
		{Line: 4, Column: "Spend", Reason: "at most 2 decimals"},
		{Line: 5, Column: "Media Type", Reason: "must be tv or radio"},
		{Line: 6, Column: "Offer", Reason: "is required"},
		{Line: 7, Column: "DNIS", Reason: "needs a dnis, promo_code or vanity_url"},
		{Line: 8, Column: "Airing ID", Reason: "same airing as line 2"},
		{Line: 9, Column: "Time Zone", Reason: "is not a time zone"},
		{Line: 11, Column: "Spend", Reason: "must not be negative"},
		{Line: 12, Column: "Date", Reason: "needs a date"},
	}
	if len(s.Problems) != len(want) {
		t.Errorf("%d problems, want %d: %v", len(s.Problems), len(want), s.Problems)
	}
	for i, w := range want {
		if i >= len(s.Problems) {
			break
		}
		g := s.Problems[i]
		if g.Line != w.Line || g.Column != w.Column || !strings.Contains(g.Reason, w.Reason) {
			t.Errorf("problem %d = %v, want line %d, column %s, reason containing %q", i, g, w.Line, w.Column, w.Reason)
		}
	}
	r.project()
	cur := r.current()
	if len(cur) != 2 || cur["G-1"].Station != "CNBC" || cur["G-2"].Offer != "flex-roller, the original" || cur["G-2"].SpendCents != 100000 {
		t.Errorf("projection after a file with bad rows: %+v", cur)
	}
}

// TestImportTwiceChangesNothing imports the same files again once the
// loader has projected them: every row is unchanged and nothing new
// reaches the stream.
func TestImportTwiceChangesNothing(t *testing.T) {
	r := newRig(t)
	r.offers(offersFile)
	r.schedule(agencyFile)
	r.schedule(canonicalFile)
	r.schedule(naturalFile)
	r.project()
	before := r.streamLen()
	checkSummary(t, r.offers(offersFile), schedule.Summary{Rows: 5, Unchanged: 4, Rejected: 1})
	checkSummary(t, r.schedule(agencyFile), schedule.Summary{Rows: 3, Unchanged: 3})
	checkSummary(t, r.schedule(canonicalFile), schedule.Summary{Rows: 3, Unchanged: 3})
	checkSummary(t, r.schedule(naturalFile), schedule.Summary{Rows: 1, Unchanged: 1})
	if after := r.streamLen(); after != before {
		t.Errorf("the second import put %d events on the stream, want none", after-before)
	}
}

// TestRevisedPostLog imports post-logs after the schedule: by airing id
// (an actual time alone, a did-not-run status, a corrected spend) and by
// natural key (station, scheduled window, ISCI, DNIS). They revise what
// they name and nothing else.
func TestRevisedPostLog(t *testing.T) {
	r := newRig(t)
	r.schedule(agencyFile)
	r.schedule(naturalFile)
	r.project()
	before := r.current()

	const byID = `Spot ID,Actual Time,Status,Net Cost
S-1,8:07 PM,aired,1200.00
S-2,,did not run,
`
	checkSummary(t, r.schedule(byID), schedule.Summary{Rows: 2, Revised: 2})
	const byKey = "Station,Date,Window,ISCI,DNIS,Actual Time,TZ\n" +
		"KTVK,2026-11-24,6:00 PM - 7:00 PM,SLPW0030,877-555-0103,6:42 PM,America/Phoenix\n"
	checkSummary(t, r.schedule(byKey), schedule.Summary{Rows: 1, Revised: 1})
	evs := r.project()
	kinds := map[string]event.Kind{}
	for _, e := range evs {
		kinds[e.AiringID] = e.Kind
	}
	natural := airings.NaturalID("KTVK", utc(2026, 11, 25, 1, 0), "SLPW0030", "8775550103")
	if len(evs) != 3 || kinds["S-1"] != event.AiringRevised || kinds["S-2"] != event.AiringCancelled || kinds[natural] != event.AiringRevised {
		t.Errorf("post-log events: %v", kinds)
	}
	after := r.current()
	s1 := before["S-1"]
	s1.AiredAt, s1.SpendCents = utc(2026, 11, 25, 1, 7), 120000
	s2 := before["S-2"]
	s2.DidNotRun = true
	nk := before[natural]
	nk.AiredAt, nk.AiredUntil = utc(2026, 11, 25, 1, 42), time.Time{}
	for id, w := range map[string]airings.Airing{"S-1": s1, "S-2": s2, natural: nk, "S-3": before["S-3"]} {
		if after[id].Hash() != w.Hash() {
			t.Errorf("airing %s after the post-log:\n got %+v\nwant %+v", id, after[id], w)
		}
	}
	// The same post-logs again change nothing.
	checkSummary(t, r.schedule(byID), schedule.Summary{Rows: 2, Unchanged: 2})
	checkSummary(t, r.schedule(byKey), schedule.Summary{Rows: 1, Unchanged: 1})
	// An actual time for an airing never imported needs its scheduled start.
	s := r.schedule("Spot ID,Actual Time\nS-99,8:07 PM\n")
	checkSummary(t, s, schedule.Summary{Rows: 1, Rejected: 1})
	if len(s.Problems) != 1 || s.Problems[0].Column != "Actual Time" {
		t.Errorf("problems %v", s.Problems)
	}
}

const offersFile = `Offer,Media Type,Currency,Target Ratio,Response Window
bright-smile,,USD,1.5,60
bright-smile,radio,,,30 min
flex-roller,,USD,120%,45
sleep-well,,USD,1.25x,1h
bad,,US,abc,0
`

func TestImportOffers(t *testing.T) {
	r := newRig(t)
	s := r.offers(offersFile)
	checkSummary(t, s, schedule.Summary{Rows: 5, New: 4, Rejected: 1})
	cols := map[string]bool{}
	for _, p := range s.Problems {
		if p.Line != 6 {
			t.Errorf("problem on line %d, want 6: %v", p.Line, p)
		}
		cols[p.Column] = true
	}
	if !cols["Currency"] || !cols["Target Ratio"] || !cols["Response Window"] {
		t.Errorf("problems %v, want currency, target ratio and window", s.Problems)
	}
	r.project()
	got, err := airings.CurrentOffers(context.Background(), r.conn, r.db)
	if err != nil {
		t.Fatal(err)
	}
	want := []airings.Offer{
		{Offer: "bright-smile", Currency: "USD", TargetRatioPct: 150, WindowMinutes: 60},
		{Offer: "bright-smile", MediaType: "radio", WindowMinutes: 30},
		{Offer: "flex-roller", Currency: "USD", TargetRatioPct: 120, WindowMinutes: 45},
		{Offer: "sleep-well", Currency: "USD", TargetRatioPct: 125, WindowMinutes: 60},
	}
	if len(got) != len(want) {
		t.Errorf("%d offers, want %d: %v", len(got), len(want), got)
	}
	for _, w := range want {
		if got[w.Key()] != w {
			t.Errorf("offer %v = %+v, want %+v", w.Key(), got[w.Key()], w)
		}
	}
	// A change of target revises the one offer it names.
	checkSummary(t, r.offers("Offer,Target\nflex-roller,1.3\n"), schedule.Summary{Rows: 1, Revised: 1})
	r.project()
	got, _ = airings.CurrentOffers(context.Background(), r.conn, r.db)
	if o := got[airings.OfferKey{Offer: "flex-roller"}]; o.TargetRatioPct != 130 || o.WindowMinutes != 45 {
		t.Errorf("flex-roller after the change: %+v", o)
	}
}
