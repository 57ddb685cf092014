package loader

import (
	"testing"
	"time"

	"github.com/airtally/airtally/internal/airings"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
)

// TestAiringAndOfferProjections: airing and offer events reach their
// projections; the latest version of an airing wins whatever order the
// loader sees them in (the revision is published first); a replay builds
// the same projections.
func TestAiringAndOfferProjections(t *testing.T) {
	e := newEnv(t)
	src := event.Source{System: "schedule", Instance: "import"}
	airedAt := time.Date(2026, 11, 2, 20, 0, 0, 0, time.UTC)
	scheduled := event.New(event.AiringScheduled, src, time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC))
	scheduled.AiringID, scheduled.Offer, scheduled.Station, scheduled.DNIS = "a-1", "bright-smile", "WXYZ", "8005550101"
	scheduled.AiredAt, scheduled.SpendCents, scheduled.Currency = airedAt, 150000, "USD"
	scheduled.Source.Seq = 1
	revised := *scheduled
	revised.EventID = event.New(event.AiringRevised, src, time.Now()).EventID
	revised.Kind, revised.OccurredAt = event.AiringRevised, time.Date(2026, 11, 3, 9, 0, 0, 0, time.UTC)
	revised.AiredAt, revised.SpendCents = airedAt.Add(7*time.Minute), 120000
	revised.Source.Seq = 2
	offer := event.New(event.OfferConfigured, src, time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC))
	offer.Offer, offer.Currency, offer.WindowMinutes, offer.TargetRatioPct = "bright-smile", "USD", 45, 150
	offer.Source.Seq = 3

	e.publish(&revised, scheduled, offer) // the revision arrives first
	e.start(e.config(), nil)
	e.waitCount(e.db, 3)

	check := func(db string) {
		t.Helper()
		conn := testenv.Open(t, db)
		var got []airings.Airing
		testenv.Eventually(t, waitLong, func() bool {
			cur, err := airings.Current(ctx(t), conn, db, []string{"a-1"})
			if err != nil {
				t.Fatalf("current airings of %s: %v", db, err)
			}
			got = nil
			for _, a := range cur {
				got = append(got, a)
			}
			offers, err := airings.CurrentOffers(ctx(t), conn, db)
			if err != nil {
				t.Fatalf("current offers of %s: %v", db, err)
			}
			return len(got) == 1 && len(offers) == 1
		}, "no projected airing and offer in %s", db)
		if !got[0].AiredAt.Equal(revised.AiredAt) || got[0].SpendCents != 120000 {
			t.Fatalf("%s: airing %+v, want the revision (aired %s, spend 120000)", db, got[0], revised.AiredAt)
		}
		offers, err := airings.CurrentOffers(ctx(t), conn, db)
		if err != nil {
			t.Fatal(err)
		}
		o, ok := offers[airings.OfferKey{Offer: "bright-smile"}]
		if !ok || o.WindowMinutes != 45 || o.TargetRatioPct != 150 {
			t.Fatalf("%s: offers %+v", db, offers)
		}
	}
	check(e.db)

	_, replayDB := testenv.NewDatabase(t, false)
	if _, err := Replay(ctx(t), e.js, e.conn, ReplayConfig{Database: replayDB}); err != nil {
		t.Fatal(err)
	}
	check(replayDB)
}
