// Package demoday generates a deterministic broadcast day with known ground
// truth: a media schedule (offers' settings, airings on several stations
// and toll-free numbers, overlapping response windows on a shared number,
// a revised post-log, a did-not-run airing, a schedule window), the calls
// and orders that respond to it, organic calls, cancellations, upsells,
// re-sent ACD records, web orders by promo code and vanity URL, and every
// source's heartbeats. Every fact is an event, schedule included.
//
// The same date and seed always give the very same events (ids, sequence
// numbers, times), so playing a day twice counts nothing twice. The local
// mode plays it; the report's tests compare every figure the views compute
// with Day.Truth, which ComputeTruth derives from the events by a plain Go
// implementation of the attribution rules (docs/airings.md), independent of
// the SQL.
package demoday

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/airtally/airtally/internal/airings"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/producers/event"
)

// Config shapes the day.
type Config struct {
	// Date is the broadcast day (its year, month and day): it runs from
	// 06:00 that day to 06:00 the next, America/New_York.
	Date time.Time
	// Seed makes the day reproducible; the same seed and date give the same
	// events.
	Seed uint64
	// Calls is the number of organic calls (not caused by an airing),
	// spread over the day on every toll-free number; default 150.
	Calls int
	// Response scales the calls each airing brings; default 1.0 (about
	// 40 calls per airing on average).
	Response float64
	// HeartbeatEvery is the heartbeat interval of every source; default 5m.
	HeartbeatEvery time.Duration
}

// Day is a generated day.
type Day struct {
	// Events are every event, in the order they occurred, each with its
	// source sequence number assigned: offer settings and the schedule
	// (published before the day, revisions after it), calls, orders,
	// cancellations and heartbeats.
	Events []*event.Event
	// From and To bound the broadcast day (UTC).
	From, To time.Time
	// Intended maps a response call's call_id to the airing it was
	// generated for (organic calls are absent). Where windows overlap the
	// attribution rule may give the call to another airing.
	Intended map[string]string
	// Truth is every figure of the day, computed from Events by
	// ComputeTruth with report.DefaultConfig().
	Truth Truth
}

// Sources of the demo day.
var (
	ACDTampa   = event.Source{System: "acd", Instance: "tampa-01"}
	ACDPhoenix = event.Source{System: "acd", Instance: "phoenix-01"}
	Console    = event.Source{System: "console", Instance: "tampa-01"}
	WebShop    = event.Source{System: "shop", Instance: "web-1"}
	Schedule   = event.Source{System: "schedule", Instance: "demo"}
)

// offers of the demo day: bright-smile has a radio window of its own;
// sleep-well is never configured (60 minutes, no target).
var demoOffers = []airings.Offer{
	{Offer: "bright-smile", Currency: "USD", TargetRatioPct: 150, WindowMinutes: 60},
	{Offer: "bright-smile", MediaType: airings.MediaRadio, WindowMinutes: 30},
	{Offer: "flex-roller", Currency: "USD", TargetRatioPct: 120, WindowMinutes: 45},
}

type spot struct {
	id, offer, station, market, media, isci, dnis, promo, vanity string
	at                                                           time.Duration // after the day's start (06:00)
	until                                                        time.Duration // a schedule window's end, or 0
	spend                                                        int64
	// revisedAt/revisedSpend: a post-log moved the airing and corrected
	// its spend; dnr: the post-log says it did not run.
	revisedAt    time.Duration
	revisedSpend int64
	dnr          bool
	response     int // calls it brings (before scaling)
}

// The schedule, in minutes after 06:00. 0101 is shared by four
// bright-smile airings whose windows overlap (two of them start at the
// same second with the same spend: the smaller id wins).
var demoSpots = []spot{
	{id: "BS-0705-WFLA", offer: "bright-smile", station: "WFLA", market: "Tampa", media: "tv", isci: "BSML0060H", dnis: "8005550101", promo: "SMILE", vanity: "brightsmile.example/tv", at: 65 * time.Minute, spend: 42000, response: 30},
	{id: "BS-0730-WLSR", offer: "bright-smile", station: "WLS-AM", market: "Chicago", media: "radio", isci: "BSML0060R", dnis: "8005550104", at: 90 * time.Minute, until: 150 * time.Minute, spend: 18000, response: 25},
	{id: "FR-0915-HGTV", offer: "flex-roller", station: "HGTV", market: "National", media: "tv", isci: "FLXR0120", dnis: "8005550102", promo: "FLEX", vanity: "https://www.flexroller.example/tv", at: 195 * time.Minute, spend: 150000, response: 50},
	{id: "SW-1100-KTVK", offer: "sleep-well", station: "KTVK", market: "Phoenix", media: "tv", isci: "SLPW0060", dnis: "8775550103", at: 300 * time.Minute, spend: 30000, response: 35},
	{id: "FR-1300-CNBC", offer: "flex-roller", station: "CNBC", market: "National", media: "tv", isci: "FLXR0060", dnis: "8005550102", promo: "FLEX", at: 420 * time.Minute, spend: 90000, dnr: true, response: 0},
	{id: "BS-1400-CNBC", offer: "bright-smile", station: "CNBC", market: "National", media: "tv", isci: "BSML0120H", dnis: "8005550101", promo: "SMILE", vanity: "brightsmile.example/tv", at: 480 * time.Minute, spend: 120000, response: 60},
	{id: "BS-1420-HGTV", offer: "bright-smile", station: "HGTV", market: "National", media: "tv", isci: "BSML0060H", dnis: "8005550101", promo: "SMILE", at: 500 * time.Minute, spend: 80000, response: 45},
	{id: "SW-1700-WFLA", offer: "sleep-well", station: "WFLA", market: "Tampa", media: "tv", isci: "SLPW0030", dnis: "8775550103", promo: "SLEEP", at: 660 * time.Minute, spend: 25000, revisedAt: 667 * time.Minute, revisedSpend: 23500, response: 30},
	{id: "FR-1930-CNBC", offer: "flex-roller", station: "CNBC", market: "National", media: "tv", isci: "FLXR0120", dnis: "8005550102", promo: "FLEX", vanity: "flexroller.example/tv", at: 810 * time.Minute, spend: 210000, response: 70},
	{id: "BS-2000-WFLA", offer: "bright-smile", station: "WFLA", market: "Tampa", media: "tv", isci: "BSML0120H", dnis: "8005550101", promo: "SMILE", at: 840 * time.Minute, spend: 60000, response: 40},
	{id: "BS-2000-KTVK", offer: "bright-smile", station: "KTVK", market: "Phoenix", media: "tv", isci: "BSML0060H", dnis: "8005550101", promo: "SMILE", at: 840 * time.Minute, spend: 60000, response: 40},
	{id: "SW-2300-HGTV", offer: "sleep-well", station: "HGTV", market: "National", media: "tv", isci: "SLPW0060", dnis: "8775550103", promo: "SLEEP", at: 1020 * time.Minute, spend: 45000, response: 35},
	{id: "FR-0200-CNBC", offer: "flex-roller", station: "CNBC", market: "National", media: "tv", isci: "FLXR0060", dnis: "8005550102", at: 1200 * time.Minute, spend: 20000, response: 20},
}

// dnisList are the toll-free numbers, for organic calls.
var dnisList = []string{"8005550101", "8005550102", "8775550103", "8005550104"}

// Generate builds the day.
func Generate(cfg Config) Day {
	if cfg.Calls == 0 {
		cfg.Calls = 150
	}
	if cfg.Response == 0 {
		cfg.Response = 1
	}
	if cfg.HeartbeatEvery == 0 {
		cfg.HeartbeatEvery = 5 * time.Minute
	}
	rcfg := report.DefaultConfig()
	date := time.Date(cfg.Date.Year(), cfg.Date.Month(), cfg.Date.Day(), 0, 0, 0, 0, time.UTC)
	start := rcfg.DayStartAt(date)
	end := rcfg.DayStartAt(date.AddDate(0, 0, 1))
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(date.Unix())))
	g := &gen{Builder: Builder{Rng: rng}, intended: map[string]string{}}

	// The offers were configured three days before, the schedule imported
	// two days before; post-logs came the morning after.
	configured := start.Add(-72 * time.Hour)
	scheduled := start.Add(-48 * time.Hour)
	postLogged := end.Add(4 * time.Hour)
	for _, o := range demoOffers {
		g.Add(o.Event(Schedule, configured))
	}
	for i, s := range demoSpots {
		a := airings.Airing{
			ID: s.id, Offer: s.offer, Station: s.station, Market: s.market, MediaType: s.media, ISCI: s.isci,
			AiredAt: start.Add(s.at), LengthSeconds: 60, SpendCents: s.spend, Currency: "USD",
			DNIS: s.dnis, PromoCode: s.promo, VanityURL: s.vanity,
		}
		if s.until != 0 {
			a.AiredUntil = start.Add(s.until)
		}
		g.Add(a.Event(event.AiringScheduled, Schedule, scheduled.Add(time.Duration(i)*time.Second)))
		switch {
		case s.dnr:
			a.DidNotRun = true
			g.Add(a.Event(event.AiringCancelled, Schedule, postLogged.Add(time.Duration(i)*time.Second)))
		case s.revisedAt != 0:
			a.AiredAt, a.SpendCents = start.Add(s.revisedAt), s.revisedSpend
			g.Add(a.Event(event.AiringRevised, Schedule, postLogged.Add(time.Duration(i)*time.Second)))
		}
		if s.dnr {
			continue
		}
		// Responses: calls decaying from air time, and web orders.
		window := 60 * time.Minute
		if s.offer == "flex-roller" {
			window = 45 * time.Minute
		}
		if s.media == "radio" {
			window = 30 * time.Minute
		}
		span := window
		if s.until != 0 {
			span += a.AiredUntil.Sub(a.AiredAt)
		}
		n := int(float64(s.response) * cfg.Response)
		for range n {
			at := a.AiredAt.Add(time.Duration(rng.ExpFloat64() * float64(span) / 4))
			if !at.Before(a.AiredAt.Add(span)) {
				at = a.AiredAt.Add(time.Duration(rng.Int64N(int64(span))))
			}
			g.call(at, s.dnis, s.id)
		}
		if n > 0 {
			// Calls on the window's edges: the first millisecond is in, the
			// end is out.
			g.call(a.AiredAt, s.dnis, s.id)
			g.call(a.AiredAt.Add(span), s.dnis, "")
		}
		for range n / 6 {
			at := a.AiredAt.Add(time.Duration(rng.ExpFloat64() * float64(span) / 3))
			if !at.Before(a.AiredAt.Add(span)) {
				continue
			}
			switch {
			case s.promo != "" && rng.IntN(2) == 0:
				g.WebOrder(at, s.offer, Messy(rng, s.promo), "")
			case s.vanity != "":
				g.WebOrder(at, s.offer, "", MessyURL(rng, s.vanity))
			case s.promo != "":
				g.WebOrder(at, s.offer, s.promo, "")
			}
		}
	}
	// Organic calls, anywhere in the day on any number.
	for range cfg.Calls {
		g.call(start.Add(time.Duration(rng.Int64N(int64(end.Sub(start))))), dnisList[rng.IntN(len(dnisList))], "")
	}
	// Web orders that match no airing: an unknown code, no code, a code
	// outside every window.
	for i := range 6 {
		at := start.Add(time.Duration(rng.Int64N(int64(end.Sub(start)))))
		switch i % 3 {
		case 0:
			g.WebOrder(at, "bright-smile", "NOSUCHCODE", "")
		case 1:
			g.WebOrder(at, "flex-roller", "", "")
		default:
			g.WebOrder(start.Add(2*time.Minute), "sleep-well", "SLEEP", "")
		}
	}
	// A phone order whose call never reached the ACD's records.
	g.PhoneOrder(Console, start.Add(5*time.Hour), "tampa-lost-000001", "8005550101", "bright-smile", "tampa")
	for _, src := range []event.Source{ACDTampa, ACDPhoenix, Console, WebShop} {
		for t := start; t.Before(end); t = t.Add(cfg.HeartbeatEvery) {
			h := g.Event(event.Heartbeat, src, t)
			h.IntervalSeconds = int64(cfg.HeartbeatEvery / time.Second)
		}
	}
	d := g.day()
	d.From, d.To, d.Intended = start, end, g.intended
	d.Truth = ComputeTruth(d.Events, rcfg)
	return d
}

type gen struct {
	Builder
	calls    int
	intended map[string]string
}

// call generates one call at t on dnis, answered or abandoned, maybe
// re-sent by the ACD, maybe ordering.
func (g *gen) call(t time.Time, dnis, intended string) {
	rng := g.Rng
	g.calls++
	acd, site := ACDTampa, "tampa"
	if rng.IntN(2) == 0 {
		acd, site = ACDPhoenix, "phoenix"
	}
	callID := fmt.Sprintf("%s-%06d", site, g.calls)
	if intended != "" {
		g.intended[callID] = intended
	}
	shown := dnis
	if rng.IntN(10) == 0 {
		shown = "1" + dnis // some ACDs keep the country code
	}
	base := func(k event.Kind, at time.Time) *event.Event {
		e := g.Event(k, acd, at)
		e.CallID, e.DNIS, e.Site, e.Queue = callID, shown, site, "drtv"
		return e
	}
	recv := base(event.CallReceived, t)
	recv.ANIHash = event.HashANI([]byte("demo-day-ani-key"), fmt.Sprintf("1813555%04d", rng.IntN(10000)))
	if rng.IntN(20) == 0 {
		// The ACD sent the record again (a new event id, a little later).
		again := base(event.CallReceived, t.Add(2*time.Second))
		again.ANIHash = recv.ANIHash
	}
	if rng.IntN(8) == 0 {
		ab := base(event.CallAbandoned, t.Add(time.Duration(20+rng.IntN(90))*time.Second))
		ab.WaitSeconds = int64(20 + rng.IntN(90))
		return
	}
	agent := fmt.Sprintf("agent-%02d", 1+rng.IntN(12))
	answeredAt := t.Add(time.Duration(2+rng.IntN(30)) * time.Second)
	ans := base(event.CallAnswered, answeredAt)
	ans.AgentID = agent
	talk := int64(60 + rng.IntN(600))
	end := base(event.CallEnded, answeredAt.Add(time.Duration(talk)*time.Second))
	end.AgentID, end.TalkSeconds, end.Disposition = agent, talk, "no_sale"
	if rng.IntN(10) < 4 {
		end.Disposition = "sale"
		g.PhoneOrder(Console, end.OccurredAt.Add(-30*time.Second), callID, shown, offerOf(dnis), site)
	}
}

func offerOf(dnis string) string {
	switch dnis {
	case "8005550102":
		return "flex-roller"
	case "8775550103":
		return "sleep-well"
	}
	return "bright-smile"
}

// day sorts the events by time and numbers each source's events 1, 2, ...
func (g *gen) day() Day { return Day{Events: g.Sorted()} }
