package projector_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/airtally/airtally/consumers/projector"
	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/report/reporttest"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
)

// history is a generated stretch of broadcast days and what arrives late:
// post-logs that move airings by hours (into other days and out of
// ranges), an offer whose response window changes after the fact,
// cancellations days after their orders, and copies of events.
type history struct {
	days   []demoday.Day
	events []*event.Event
}

func generate(seed uint64, days int) history {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b9))
	var h history
	start := testDate.AddDate(0, 0, int(seed%40))
	for i := range days {
		d := demoday.Generate(demoday.Config{Date: start.AddDate(0, 0, i), Seed: seed*31 + uint64(i), Calls: 60 + rng.IntN(120)})
		h.days = append(h.days, d)
		// Each day names its calls, orders and airings alike: make them
		// the day's own, as a real ACD's, shop's and schedule's are.
		prefix := fmt.Sprintf("d%d-", i)
		for _, e := range d.Events {
			for _, id := range []*string{&e.CallID, &e.OrderID, &e.AiringID} {
				if *id != "" {
					*id = prefix + *id
				}
			}
		}
		h.events = append(h.events, d.Events...)
	}
	clone := func(e *event.Event, kind event.Kind, at time.Time) *event.Event {
		c := *e
		c.Kind, c.OccurredAt, c.EventID = kind, at, uuid.Must(uuid.NewV7())
		return &c
	}
	var extra []*event.Event
	latest := map[string]*event.Event{}
	for _, e := range h.events {
		switch {
		case e.Kind.IsAiring():
			if l := latest[e.AiringID]; l == nil || e.OccurredAt.After(l.OccurredAt) {
				latest[e.AiringID] = e
			}
		case e.Kind == event.OrderPlaced && rng.IntN(40) == 0:
			// Cancelled days later.
			extra = append(extra, clone(e, event.OrderCancelled, e.OccurredAt.Add(time.Duration(2+rng.IntN(5))*24*time.Hour)))
		case rng.IntN(50) == 0:
			extra = append(extra, e) // a copy (at-least-once delivery)
		}
	}
	ids := make([]string, 0, len(latest))
	for id := range latest {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if rng.IntN(8) != 0 {
			continue
		}
		// A post-log moves the airing by up to 30 hours either way.
		l := latest[id]
		r := clone(l, event.AiringRevised, l.OccurredAt.Add(time.Duration(1+rng.IntN(48))*time.Hour))
		r.AiredAt = l.AiredAt.Add(time.Duration(rng.IntN(61)-30)*time.Hour + time.Duration(rng.IntN(60))*time.Minute)
		r.AiredUntil = time.Time{}
		r.DidNotRun = false
		extra = append(extra, r)
	}
	for _, e := range h.events {
		if e.Kind == event.OfferConfigured && rng.IntN(2) == 0 {
			// The offer's window changes after the days aired.
			c := clone(e, event.OfferConfigured, e.OccurredAt.Add(time.Duration(days*24+rng.IntN(24))*time.Hour))
			c.WindowMinutes = int64(15 + rng.IntN(120))
			extra = append(extra, c)
		}
	}
	h.events = append(h.events, extra...)
	return h
}

// ranges are the report ranges the property checks: the whole stretch,
// each day, a sub-day range off the minute, and two days.
func (h history) ranges(rng *rand.Rand) []report.Filter {
	first, last := h.days[0], h.days[len(h.days)-1]
	out := []report.Filter{{From: first.From, To: last.To}}
	d := h.days[rng.IntN(len(h.days))]
	out = append(out, report.Filter{From: d.From, To: d.To})
	off := d.From.Add(time.Duration(rng.IntN(20))*time.Hour + time.Duration(rng.IntN(60))*time.Minute)
	if rng.IntN(2) == 0 {
		off = off.Add(time.Duration(1+rng.IntN(59_999)) * time.Millisecond) // off the minute: on read
	}
	out = append(out, report.Filter{From: off, To: off.Add(time.Duration(1+rng.IntN(30)) * time.Hour)})
	if len(h.days) > 1 {
		out = append(out, report.Filter{From: h.days[0].From, To: h.days[1].To, Offer: offerOf(h, rng)})
	}
	return out
}

func offerOf(h history, rng *rand.Rand) string {
	for _, e := range h.events[rng.IntN(len(h.events)/2):] {
		if e.Kind == event.AiringScheduled {
			return e.Offer
		}
	}
	return ""
}

// checks say how much compare checks: after a chunk, or at the end (the
// whole stretch by every rollup); on chDB, fewer (each report on read
// takes seconds there).
type checks struct {
	ranges int  // how many of h.ranges, chosen at random (0: all)
	final  bool // every rollup over the whole stretch, one more per range
	chdb   bool
}

// compare checks the property for some ranges and rollups.
func compare(t *testing.T, q report.Querier, db string, h history, rng *rand.Rand, c checks) {
	t.Helper()
	ranges := h.ranges(rng)
	if c.ranges > 0 {
		rng.Shuffle(len(ranges), func(i, j int) { ranges[i], ranges[j] = ranges[j], ranges[i] })
		ranges = ranges[:c.ranges]
	}
	for i, f := range ranges {
		bys := []report.By{report.ByAiring}
		switch {
		case c.final && i == 0 && !c.chdb && f.From.Equal(h.days[0].From) && f.To.Equal(h.days[len(h.days)-1].To):
			bys = append(bys, dims()...)
		case c.final:
			bys = append(bys, dims()[rng.IntN(len(report.Dimensions))])
		}
		for _, by := range bys {
			aligned := f.From.UnixMilli()%60000 == 0 && f.To.UnixMilli()%60000 == 0
			sameAsOnRead(t, q, report.Options{Database: db, Filter: f, By: by, Curves: by == report.ByAiring}, c.final && aligned)
		}
	}
}

// TestProjectionSameAsOnRead is the projection's property: whatever
// arrives in whatever order, and whether the projector has caught up, is
// computing meanwhile or is behind, a report from the projection is the
// report on read, byte for byte (JSON), for every rollup and range. On
// ClickHouse 18.16 for AIRTALLY_PROJECTION_SEEDS seeds (default 2; more
// for a longer proof), then on current ClickHouse (chDB).
func TestProjectionSameAsOnRead(t *testing.T) {
	seeds := 2
	if v, err := strconv.Atoi(os.Getenv("AIRTALLY_PROJECTION_SEEDS")); err == nil && v > 0 {
		seeds = v
	}
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			h := generate(seed, 2+int(seed%2))
			rng := rand.New(rand.NewPCG(seed, 7))
			shuffled := slices.Clone(h.events)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			conn, db := testenv.NewDatabase(t, true)
			x := projector.Native(conn)
			// MaxDelay 1 ns: compute every dirty day at once, while chunks load.
			p, err := projector.New(x, projector.Config{Database: db, Interval: 50 * time.Millisecond, MaxDelay: time.Nanosecond, AiringsOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			chunks := 4 + rng.IntN(4)
			size := (len(shuffled) + chunks - 1) / chunks
			var seq uint64 = 1
			for i := 0; i < len(shuffled); i += size {
				part := shuffled[i:min(i+size, len(shuffled))]
				// Half the chunks arrive while the projector computes.
				ctx, stop := context.WithCancel(t.Context())
				var wg sync.WaitGroup
				if rng.IntN(2) == 0 {
					wg.Add(1)
					go func() { defer wg.Done(); _ = p.Run(ctx) }()
				}
				if err := reporttest.Load(t.Context(), conn, db, reporttest.Number(part, seq)); err != nil {
					t.Fatal(err)
				}
				seq += uint64(len(part))
				stop()
				wg.Wait()
				if i == 0 {
					if err := p.CatchUp(t.Context()); err != nil { // built: later reports read it
						t.Fatal(err)
					}
				}
				compare(t, report.Native(conn), db, h, rng, checks{ranges: 2})
			}
			if err := p.CatchUp(t.Context()); err != nil {
				t.Fatal(err)
			}
			compare(t, report.Native(conn), db, h, rng, checks{final: true})
			if dirty, err := report.DirtyDays(t.Context(), x, db); err != nil || len(dirty) != 0 {
				t.Errorf("after catching up: dirty days %v (%v)", dirty, err)
			}
		})
	}
	t.Run("current ClickHouse", func(t *testing.T) {
		h := generate(11, 2)
		rng := rand.New(rand.NewPCG(11, 7))
		ch, db := testenv.ChDB(t)
		if err := reporttest.MigrateCHDB(ch, db); err != nil {
			t.Fatal(err)
		}
		x := reporttest.CHDBDB(ch)
		p, err := projector.New(x, projector.Config{Database: db, AiringsOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		half := len(h.events) / 2
		if err := reporttest.LoadCHDB(ch, db, reporttest.Number(h.events[:half], 1)); err != nil {
			t.Fatal(err)
		}
		if err := p.CatchUp(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := reporttest.LoadCHDB(ch, db, reporttest.Number(h.events[half:], uint64(half+1))); err != nil {
			t.Fatal(err)
		}
		compare(t, x, db, h, rng, checks{ranges: 1, chdb: true}) // the second half is dirty: on read
		if err := p.CatchUp(t.Context()); err != nil {
			t.Fatal(err)
		}
		compare(t, x, db, h, rng, checks{ranges: 2, final: true, chdb: true})
	})
}
