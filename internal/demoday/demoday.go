// Package demoday generates a small, deterministic broadcast day of events
// for the local mode's demo: call centres' ACDs emit calls, agent consoles
// emit phone orders, a web shop emits web orders, and every source sends
// heartbeats. The same date and seed always give the very same events
// (ids, sequence numbers, times), so playing a day twice counts nothing
// twice.
package demoday

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/airtally/airtally/producers/event"
)

// Config shapes the day.
type Config struct {
	// Date is the broadcast day (its UTC calendar day is used).
	Date time.Time
	// Seed makes the day reproducible; the same seed and date give the same
	// events.
	Seed uint64
	// Calls is the number of calls; default 400.
	Calls int
	// HeartbeatEvery is the heartbeat interval of every source; default 5m.
	HeartbeatEvery time.Duration
}

// Day is a generated day: its events in the order they occurred, each with
// its source sequence number already assigned.
type Day struct {
	Events []*event.Event
}

// Sources of the demo day.
var (
	ACDTampa   = event.Source{System: "acd", Instance: "tampa-01"}
	ACDPhoenix = event.Source{System: "acd", Instance: "phoenix-01"}
	Console    = event.Source{System: "console", Instance: "tampa-01"}
	WebShop    = event.Source{System: "shop", Instance: "web-1"}
)

// DNIS shown on air, one per offer.
var dnisByOffer = map[string]string{"bright-smile": "8005550101", "flex-roller": "8005550102", "sleep-well": "8775550103"}

// Generate builds the day.
func Generate(cfg Config) Day {
	if cfg.Calls == 0 {
		cfg.Calls = 400
	}
	if cfg.HeartbeatEvery == 0 {
		cfg.HeartbeatEvery = 5 * time.Minute
	}
	day := time.Date(cfg.Date.Year(), cfg.Date.Month(), cfg.Date.Day(), 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(day.Unix())))
	g := &gen{rng: rng}
	offers := []string{"bright-smile", "flex-roller", "sleep-well"}
	// Calls bunch up in the minutes after a few spots, over a thin baseline.
	spots := []time.Duration{9 * time.Hour, 13*time.Hour + 30*time.Minute, 19 * time.Hour, 21*time.Hour + 15*time.Minute}
	for i := 0; i < cfg.Calls; i++ {
		var at time.Time
		if rng.IntN(5) == 0 {
			at = day.Add(time.Duration(rng.Int64N(int64(24 * time.Hour))))
		} else {
			spot := spots[rng.IntN(len(spots))]
			at = day.Add(spot + time.Duration(rng.ExpFloat64()*float64(8*time.Minute)))
		}
		if !at.Before(day.Add(24 * time.Hour)) {
			at = day.Add(24*time.Hour - time.Second)
		}
		offer := offers[rng.IntN(len(offers))]
		acd := ACDTampa
		site := "tampa"
		if rng.IntN(2) == 0 {
			acd, site = ACDPhoenix, "phoenix"
		}
		callID := fmt.Sprintf("%s-%06d", site, i+1)
		base := func(k event.Kind, t time.Time, src event.Source) *event.Event {
			e := g.event(k, src, t)
			e.CallID, e.DNIS, e.Site, e.Queue = callID, dnisByOffer[offer], site, offer
			return e
		}
		recv := base(event.CallReceived, at, acd)
		recv.ANIHash = event.HashANI([]byte("demo-day-ani-key"), fmt.Sprintf("1813555%04d", rng.IntN(10000)))
		if rng.IntN(8) == 0 {
			ab := base(event.CallAbandoned, at.Add(time.Duration(20+rng.IntN(90))*time.Second), acd)
			ab.WaitSeconds = int64(20 + rng.IntN(90))
			continue
		}
		agent := fmt.Sprintf("agent-%02d", 1+rng.IntN(12))
		answeredAt := at.Add(time.Duration(2+rng.IntN(30)) * time.Second)
		ans := base(event.CallAnswered, answeredAt, acd)
		ans.AgentID = agent
		talk := int64(60 + rng.IntN(600))
		end := base(event.CallEnded, answeredAt.Add(time.Duration(talk)*time.Second), acd)
		end.AgentID, end.TalkSeconds = agent, talk
		end.Disposition = "no-sale"
		if rng.IntN(10) < 4 {
			end.Disposition = "sale"
			o := g.event(event.OrderPlaced, Console, end.OccurredAt.Add(-30*time.Second))
			o.OrderID, o.CallID, o.DNIS, o.Offer, o.AgentID, o.Site = fmt.Sprintf("ph-%06d", i+1), callID, dnisByOffer[offer], offer, agent, site
			o.AmountCents, o.Currency, o.Channel = int64(1995+rng.IntN(4)*1000), "USD", event.ChannelPhone
			o.UpsellCount = int64(rng.IntN(3))
			o.AmountCents += o.UpsellCount * 995
			o.Continuity = rng.IntN(3) == 0
			o.PaymentBrand, o.CardLast4 = "visa", fmt.Sprintf("%04d", rng.IntN(10000))
			if rng.IntN(12) == 0 {
				c := g.event(event.OrderCancelled, Console, o.OccurredAt.Add(time.Duration(1+rng.IntN(120))*time.Minute))
				c.OrderID, c.Offer, c.Reason = o.OrderID, offer, "changed mind"
			}
		}
	}
	// Web orders with promo codes after the spots.
	for i := 0; i < cfg.Calls/4; i++ {
		spot := spots[rng.IntN(len(spots))]
		at := day.Add(spot + time.Duration(rng.ExpFloat64()*float64(12*time.Minute)))
		if !at.Before(day.Add(24 * time.Hour)) {
			at = day.Add(24*time.Hour - time.Second)
		}
		offer := offers[rng.IntN(len(offers))]
		o := g.event(event.OrderPlaced, WebShop, at)
		o.OrderID, o.Offer, o.Channel = fmt.Sprintf("web-%06d", i+1), offer, event.ChannelWeb
		o.PromoCode, o.VanityURL = "TV-"+offer, offer+".example"
		o.AmountCents, o.Currency, o.PaymentBrand, o.CardLast4 = int64(2495+rng.IntN(3)*1000), "USD", "mastercard", fmt.Sprintf("%04d", rng.IntN(10000))
	}
	for _, src := range []event.Source{ACDTampa, ACDPhoenix, Console, WebShop} {
		for t := day; t.Before(day.Add(24 * time.Hour)); t = t.Add(cfg.HeartbeatEvery) {
			h := g.event(event.Heartbeat, src, t)
			h.IntervalSeconds = int64(cfg.HeartbeatEvery / time.Second)
		}
	}
	return g.day()
}

type gen struct {
	rng    *rand.Rand
	events []*event.Event
}

// event makes an event with a deterministic UUIDv7: its time part is the
// event's time and its random part comes from the seeded generator.
func (g *gen) event(k event.Kind, src event.Source, t time.Time) *event.Event {
	e := event.New(k, src, t)
	var id uuid.UUID
	binary.BigEndian.PutUint64(id[8:], g.rng.Uint64())
	binary.BigEndian.PutUint64(id[0:], g.rng.Uint64())
	ms := uint64(e.OccurredAt.UnixMilli())
	id[0], id[1], id[2], id[3], id[4], id[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	id[6] = 0x70 | id[6]&0x0f
	id[8] = 0x80 | id[8]&0x3f
	e.EventID = id
	g.events = append(g.events, e)
	return e
}

// day sorts the events by time and numbers each source's events 1, 2, ...
func (g *gen) day() Day {
	sort.SliceStable(g.events, func(i, j int) bool { return g.events[i].OccurredAt.Before(g.events[j].OccurredAt) })
	seq := map[string]uint64{}
	for _, e := range g.events {
		seq[e.Source.Key()]++
		e.Source.Seq = seq[e.Source.Key()]
	}
	return Day{Events: g.events}
}
