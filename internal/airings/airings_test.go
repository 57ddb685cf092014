package airings_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/airtally/airtally/internal/airings"
	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.WithClickHouse())
}

var src = event.Source{System: "schedule", Instance: "test", Seq: 1}

func sample() airings.Airing {
	return airings.Airing{
		ID: "A-1", Offer: "bright-smile", Station: "CNBC", Market: "National", MediaType: "tv", ISCI: "BSML0060H",
		AiredAt: time.Date(2026, 11, 25, 1, 0, 0, 123e6, time.UTC), LengthSeconds: 60, SpendCents: 125000, Currency: "USD",
		DNIS: "8005550101", PromoCode: "SMILE", VanityURL: "brightsmile.example/tv",
	}
}

func TestEventRoundTrip(t *testing.T) {
	a := sample()
	a.AiredUntil = a.AiredAt.Add(time.Hour)
	for _, known := range []bool{false, true} {
		ev := a.Event(a.Kind(known), src, time.Now())
		if err := ev.Validate(); err != nil {
			t.Fatalf("event of %+v: %v", a, err)
		}
		b, err := ev.Encode()
		if err != nil {
			t.Fatal(err)
		}
		back, err := event.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if got := airings.FromEvent(back); got.Hash() != a.Hash() {
			t.Errorf("round trip: got %+v, want %+v", got, a)
		}
	}
	if k := a.Kind(true); k != event.AiringRevised {
		t.Errorf("kind of a known airing = %s", k)
	}
	a.DidNotRun = true
	if k := a.Kind(false); k != event.AiringCancelled {
		t.Errorf("kind of a did-not-run airing = %s", k)
	}
	// A cancellation means did not run, whatever the flag says.
	ev := sample().Event(event.AiringCancelled, src, time.Now())
	if !airings.FromEvent(ev).DidNotRun {
		t.Error("airing.cancelled did not mean did not run")
	}
}

func TestHashAndNaturalID(t *testing.T) {
	a, b := sample(), sample()
	b.AiredAt = b.AiredAt.In(time.FixedZone("EST", -5*3600))
	if a.Hash() != b.Hash() {
		t.Error("the same instant in another location hashes differently")
	}
	for name, change := range map[string]func(*airings.Airing){
		"spend":       func(x *airings.Airing) { x.SpendCents++ },
		"time":        func(x *airings.Airing) { x.AiredAt = x.AiredAt.Add(time.Millisecond) },
		"did not run": func(x *airings.Airing) { x.DidNotRun = true },
		"until":       func(x *airings.Airing) { x.AiredUntil = x.AiredAt.Add(time.Hour) },
		"fields run together": func(x *airings.Airing) {
			x.Offer, x.Station = "bright-smileC", "NBC"
		},
	} {
		c := sample()
		change(&c)
		if c.Hash() == a.Hash() {
			t.Errorf("changing %s keeps the hash", name)
		}
	}
	at := time.Date(2026, 11, 24, 20, 0, 0, 0, time.FixedZone("EST", -5*3600))
	id := airings.NaturalID(" cnbc ", at, "bsml0060h", "1-800-555-0101")
	if id != airings.NaturalID("CNBC", at.UTC(), "BSML0060H", "18005550101") || !strings.HasPrefix(id, "nk-") || len(id) != 23 {
		t.Errorf("natural id %q is not stable across spellings", id)
	}
	if id == airings.NaturalID("CNBC", at.Add(time.Minute), "BSML0060H", "18005550101") {
		t.Error("another start gives the same natural id")
	}
}

func TestRowsMatchColumns(t *testing.T) {
	ev := sample().Event(event.AiringScheduled, src, time.Now())
	row, err := airings.AiringRow(ev, 7, time.Now())
	if err != nil || len(row) != len(airings.AiringColumns) {
		t.Fatalf("airing row: %d values for %d columns, %v", len(row), len(airings.AiringColumns), err)
	}
	o := airings.Offer{Offer: "bright-smile", Currency: "USD", TargetRatioPct: 150, WindowMinutes: 60}
	orow, err := airings.OfferRow(o.Event(src, time.Now()), 8, time.Now())
	if err != nil || len(orow) != len(airings.OfferColumns) {
		t.Fatalf("offer row: %d values for %d columns, %v", len(orow), len(airings.OfferColumns), err)
	}
	call := event.New(event.CallReceived, event.Source{System: "acd", Instance: "x", Seq: 1}, time.Now())
	if _, err := airings.AiringRow(call, 1, time.Now()); err == nil {
		t.Error("a call was projected as an airing")
	}
	if _, err := airings.OfferRow(ev, 1, time.Now()); err == nil {
		t.Error("an airing was projected as an offer")
	}
	old := sample()
	old.AiredAt = time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := airings.AiringRow(old.Event(event.AiringScheduled, src, time.Now()), 1, time.Now()); err == nil {
		t.Error("an air time before 1970 was projected")
	}
}

// TestProjectionLatestWins inserts versions of airings and offers out of
// order, twice, into ClickHouse 18.16, and reads back the latest state of
// each: the table's columns take the rows (PrepareBatch naming them) and
// Current picks the latest version whatever the insert order.
func TestProjectionLatestWins(t *testing.T) {
	conn, db := testenv.NewDatabase(t, true)
	ctx := context.Background()
	base := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	v1 := sample()
	v2 := sample()
	v2.AiredAt, v2.SpendCents = v2.AiredAt.Add(7*time.Minute), 120000
	v3 := v2
	v3.DidNotRun = true
	other := sample()
	other.ID = "A-2"
	e1 := v1.Event(event.AiringScheduled, src, base)
	e2 := v2.Event(event.AiringRevised, src, base.Add(time.Hour))
	e3 := v3.Event(event.AiringCancelled, src, base.Add(2*time.Hour))
	e4 := other.Event(event.AiringScheduled, src, base)
	o1 := airings.Offer{Offer: "bright-smile", Currency: "USD", TargetRatioPct: 150, WindowMinutes: 60}
	o2 := o1
	o2.WindowMinutes = 45
	f1, f2 := o1.Event(src, base), o2.Event(src, base.Add(time.Minute))
	for _, batch := range [][]airings.Projected{
		{{Event: e3, StreamSeq: 3}, {Event: f2, StreamSeq: 6}},
		{{Event: e1, StreamSeq: 1}, {Event: e4, StreamSeq: 4}, {Event: f1, StreamSeq: 5}},
		{{Event: e2, StreamSeq: 2}, {Event: e3, StreamSeq: 3}, {Event: e1, StreamSeq: 1}},
	} {
		if err := airings.Insert(ctx, conn, db, batch); err != nil {
			t.Fatal(err)
		}
	}
	cur, err := airings.Current(ctx, conn, db, []string{"A-1", "A-2", "A-3"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cur) != 2 || cur["A-1"].Hash() != v3.Hash() || cur["A-2"].Hash() != other.Hash() {
		t.Errorf("current = %+v", cur)
	}
	offers, err := airings.CurrentOffers(ctx, conn, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(offers) != 1 || offers[o1.Key()] != o2 {
		t.Errorf("offers = %+v", offers)
	}
	var n uint64
	ident, _ := chsql.Ident(db)
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+ident+".airings WHERE kind = 'airing.cancelled' AND did_not_run = 1 AND stream_seq = 3 AND version = "+chsql.Int(e3.OccurredAt.UnixMilli())).Scan(&n); err != nil || n == 0 {
		t.Errorf("cancelled rows = %d, %v", n, err)
	}
}
