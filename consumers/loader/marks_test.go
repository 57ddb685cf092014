package loader

import (
	"testing"
	"time"

	"github.com/airtally/airtally/consumers/projector"
	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/report/reporttest"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
)

// TestLoaderMarksTheProjection: once the projection is computed, what the
// loader loads next (calls, orders, cancellations, a post-log) marks the
// days it changes before it is acknowledged, so a report computes those
// days on read until the projector has computed them again, and equals
// the report on read before and after.
func TestLoaderMarksTheProjection(t *testing.T) {
	d := demoday.Generate(demoday.Config{Date: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), Seed: 3})
	var first, second []*event.Event
	for _, ev := range d.Events {
		switch {
		case ev.Kind == event.AiringRevised, !ev.Kind.IsAiring() && ev.Kind != event.OfferConfigured && ev.OccurredAt.After(d.From.Add(12*time.Hour)):
			second = append(second, ev)
		default:
			first = append(first, ev)
		}
	}
	e := newEnv(t)
	r := e.start(e.config(), nil)
	defer func() {
		if err := r.stop(t); err != nil {
			t.Error(err)
		}
	}()
	loaded := func(n int) {
		t.Helper()
		testenv.Eventually(t, 2*time.Minute, func() bool {
			var got uint64
			err := e.conn.QueryRow(ctx(t), "SELECT count() FROM "+e.db+".events").Scan(&got)
			return err == nil && got >= uint64(n)
		}, "the loader to store %d events", n)
	}
	e.publish(first...)
	loaded(len(first))
	p, err := projector.New(projector.Native(e.conn), projector.Config{Database: e.db})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CatchUp(ctx(t)); err != nil {
		t.Fatal(err)
	}
	e.publish(second...)
	loaded(len(first) + len(second))

	q := report.Native(e.conn)
	o := report.Options{Database: e.db, Filter: report.Filter{From: d.From, To: d.To}, Curves: true}
	same := func(when string) report.ReadStats {
		t.Helper()
		fast, _, same, err := reporttest.SameAsOnRead(ctx(t), q, o)
		if err != nil {
			t.Fatal(err)
		}
		if !same {
			t.Errorf("%s: the report from the projection differs from the report on read", when)
		}
		return fast.Read
	}
	dirty, err := report.DirtyDays(ctx(t), projector.Native(e.conn), e.db)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirty) == 0 {
		t.Fatal("the loader loaded calls, orders and a post-log after the projection was computed, and marked no day")
	}
	if read := same("before the projector caught up"); read.DaysOnRead == 0 {
		t.Errorf("before the projector caught up, no day was computed on read: %+v", read)
	}
	if err := p.CatchUp(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if read := same("after the projector caught up"); read.DaysOnRead != 0 || read.DaysFromProjection == 0 {
		t.Errorf("after the projector caught up: %+v, want every day from the projection", read)
	}
}
