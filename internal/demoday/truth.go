package demoday

import (
	"bytes"
	"slices"
	"sort"
	"time"

	"github.com/airtally/airtally/internal/airings"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/producers/event"
)

// Truth is every figure of a set of events, computed in Go by the rules of
// docs/airings.md. It is the reference the views and the report are
// compared with.
type Truth struct {
	// Airings are the figures of every airing (did-not-run ones included),
	// by id, ratios derived.
	Airings map[string]report.Figures
	// Unattributed is the bucket of calls and orders no airing claims, all
	// times.
	Unattributed report.Figures
	// Rollups are the rollups by every dimension, by key.
	Rollups map[report.Dimension][]report.Rollup
	// CallAiring is the airing each call was attributed to ("" for none),
	// by source system and call id.
	CallAiring map[CallKey]string
	// OrderAiring is the airing each order was attributed to, by order id.
	OrderAiring map[string]string

	calls  map[CallKey]*refCall
	orders map[string]*refOrder
}

// UnattributedBetween is the unattributed bucket of a report over
// [from, to): the calls received and the orders placed in that range that
// no airing claims.
func (t Truth) UnattributedBetween(from, to time.Time) report.Figures {
	lo, hi := from.UnixMilli(), to.UnixMilli()
	var m report.Measures
	for _, c := range t.calls {
		if c.winner == "" && c.ms >= lo && c.ms < hi {
			m.Calls++
			if c.answered {
				m.Answered++
			}
			if c.abandoned {
				m.Abandoned++
			}
		}
	}
	for _, o := range t.orders {
		if o.airing == "" && o.ms >= lo && o.ms < hi {
			o.addTo(&m)
		}
	}
	m.NetOrders = m.Orders - m.Cancellations
	m.NetRevenueCents = m.GrossRevenueCents - m.RefundCents
	m.Derive()
	return unattributed(m)
}

func unattributed(m report.Measures) report.Figures {
	return report.Figures{Status: "unattributed", AiredAt: time.Unix(0, 0).UTC(), BroadcastDay: "1970-01-01", BroadcastWeek: "1970-01-01", Measures: m}
}

// addTo adds the order to m (its counts and money; not net figures).
func (o *refOrder) addTo(m *report.Measures) {
	m.Orders++
	switch o.via {
	case "call":
		m.PhoneOrders++
	case "promo":
		m.WebOrders++
	}
	amount := o.placed.AmountCents
	m.GrossRevenueCents += amount
	m.Upsells += o.placed.UpsellCount
	if o.placed.Continuity {
		m.ContinuityEnrolments++
	}
	if o.cancels > 0 {
		m.Cancellations++
		refund := min(amount, o.refunded)
		if o.full > 0 {
			refund = amount
		}
		m.RefundCents += refund
	}
}

// CallKey identifies a call: calls are deduplicated by source system and
// call id.
type CallKey struct{ System, CallID string }

type refAiring struct {
	a                   airings.Airing
	kind                event.Kind
	window, target      int64
	currency            string
	start, end          int64
	dnis, promo, vanity string
	preLo, preHi        int64
	ran                 bool
}

type refCall struct {
	key       CallKey
	ms        int64
	msID      [16]byte
	dnis      string
	received  bool
	answered  bool
	abandoned bool
	winner    string
	winnerAt  int64
	window    []string
	covered   bool
	pre       []string
}

type refOrder struct {
	id            string
	ms            int64
	msID          [16]byte
	placed        *event.Event
	cancels, full int64
	refunded      int64
	airing, via   string
}

// latest reports whether (ms, id) is later than (ms2, id2): the newest
// event wins, ties to the larger event id.
func later(ms int64, id [16]byte, ms2 int64, id2 [16]byte) bool {
	if ms != ms2 {
		return ms > ms2
	}
	return bytes.Compare(id[:], id2[:]) > 0
}

// ComputeTruth computes every figure of evs under cfg. Copies of one
// event (the same event id) count once, as in ClickHouse.
func ComputeTruth(evs []*event.Event, cfg report.Config) Truth {
	cfg = cfg.WithDefaults()
	seen := map[[16]byte]bool{}
	unique := make([]*event.Event, 0, len(evs))
	for _, e := range evs {
		if !seen[e.EventID] {
			seen[e.EventID] = true
			unique = append(unique, e)
		}
	}
	evs = unique
	const minute = int64(60000)
	base := int64(cfg.BaselineMinutes) * minute

	// The latest state of every airing and offer setting.
	airingEv := map[string]*event.Event{}
	offerEv := map[airings.OfferKey]*event.Event{}
	for _, e := range evs {
		switch {
		case e.Kind.IsAiring():
			if cur := airingEv[e.AiringID]; cur == nil || later(e.OccurredAt.UnixMilli(), e.EventID, cur.OccurredAt.UnixMilli(), cur.EventID) {
				airingEv[e.AiringID] = e
			}
		case e.Kind == event.OfferConfigured:
			k := airings.OfferFromEvent(e).Key()
			if cur := offerEv[k]; cur == nil || later(e.OccurredAt.UnixMilli(), e.EventID, cur.OccurredAt.UnixMilli(), cur.EventID) {
				offerEv[k] = e
			}
		}
	}
	pick := func(offer, media string, get func(airings.Offer) (int64, string)) (int64, string) {
		for _, k := range []airings.OfferKey{{Offer: offer, MediaType: media}, {Offer: offer}} {
			if e := offerEv[k]; e != nil {
				if n, s := get(airings.OfferFromEvent(e)); n != 0 || s != "" {
					return n, s
				}
			}
		}
		return 0, ""
	}
	var all []*refAiring
	for _, e := range airingEv {
		a := airings.FromEvent(e)
		r := &refAiring{a: a, kind: e.Kind, ran: !a.DidNotRun}
		r.window, _ = pick(a.Offer, a.MediaType, func(o airings.Offer) (int64, string) { return o.WindowMinutes, "" })
		if r.window == 0 {
			r.window = int64(cfg.WindowMinutes)
		}
		r.target, _ = pick(a.Offer, a.MediaType, func(o airings.Offer) (int64, string) { return o.TargetRatioPct, "" })
		_, r.currency = pick(a.Offer, a.MediaType, func(o airings.Offer) (int64, string) { return 0, o.Currency })
		if r.currency == "" {
			r.currency = a.Currency
		}
		r.start = a.AiredAt.UnixMilli()
		r.end = r.start
		if !a.AiredUntil.IsZero() && a.AiredUntil.UnixMilli() > r.end {
			r.end = a.AiredUntil.UnixMilli()
		}
		r.end += r.window * minute
		r.dnis, r.promo, r.vanity = report.DNISKey(a.DNIS), report.PromoKey(a.PromoCode), report.VanityKey(a.VanityURL)
		r.preHi = r.start - r.start%minute
		r.preLo = r.preHi - base
		all = append(all, r)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].a.ID < all[j].a.ID })
	// best is the attribution rule: the most recent airing, then the
	// larger spend, then the smaller id.
	best := func(cands []*refAiring) *refAiring {
		var w *refAiring
		for _, c := range cands {
			if w == nil || c.start > w.start || (c.start == w.start && (c.a.SpendCents > w.a.SpendCents ||
				(c.a.SpendCents == w.a.SpendCents && c.a.ID < w.a.ID))) {
				w = c
			}
		}
		return w
	}

	// Calls: one per (source system, call id); the earliest call.received
	// gives its time and number.
	calls := map[CallKey]*refCall{}
	orders := map[string]*refOrder{}
	for _, e := range evs {
		switch {
		case e.Kind.IsCall():
			k := CallKey{e.Source.System, e.CallID}
			c := calls[k]
			if c == nil {
				c = &refCall{key: k}
				calls[k] = c
			}
			switch e.Kind {
			case event.CallReceived:
				if !c.received || later(c.ms, c.msID, e.OccurredAt.UnixMilli(), e.EventID) {
					c.ms, c.msID, c.dnis = e.OccurredAt.UnixMilli(), e.EventID, e.DNIS
				}
				c.received = true
			case event.CallAnswered:
				c.answered = true
			case event.CallAbandoned:
				c.abandoned = true
			}
		case e.Kind == event.OrderPlaced || e.Kind == event.OrderCancelled:
			o := orders[e.OrderID]
			if o == nil {
				o = &refOrder{id: e.OrderID}
				orders[e.OrderID] = o
			}
			if e.Kind == event.OrderPlaced {
				if o.placed == nil || later(o.ms, o.msID, e.OccurredAt.UnixMilli(), e.EventID) {
					o.placed, o.ms, o.msID = e, e.OccurredAt.UnixMilli(), e.EventID
				}
			} else {
				o.cancels++
				o.refunded = max(o.refunded, e.AmountCents)
				if e.AmountCents == 0 {
					o.full++
				}
			}
		}
	}
	byCallID := map[string][]*refCall{}
	for k, c := range calls {
		if !c.received {
			delete(calls, k)
			continue
		}
		c.abandoned = c.abandoned && !c.answered
		key := report.DNISKey(c.dnis)
		var cands []*refAiring
		m := c.ms - c.ms%minute
		for _, a := range all {
			if !a.ran || a.dnis == "" || a.dnis != key {
				continue
			}
			if c.ms >= a.start && c.ms < a.end {
				cands = append(cands, a)
				c.window = append(c.window, a.a.ID)
			}
			if a.start < m+minute && a.end > m {
				c.covered = true
			}
			if c.ms >= a.preLo && c.ms < a.preHi {
				c.pre = append(c.pre, a.a.ID)
			}
		}
		if w := best(cands); w != nil {
			c.winner, c.winnerAt = w.a.ID, w.start
		}
		byCallID[c.key.CallID] = append(byCallID[c.key.CallID], c)
	}
	for id, o := range orders {
		if o.placed == nil {
			delete(orders, id)
			continue
		}
		p := o.placed
		if p.CallID != "" {
			// The call with this id (the earliest, then the smallest source
			// system, if several ACDs used it).
			var first *refCall
			for _, c := range byCallID[p.CallID] {
				if first == nil || c.ms < first.ms || (c.ms == first.ms && c.key.System < first.key.System) {
					first = c
				}
			}
			if first != nil {
				o.airing, o.via = first.winner, "call"
			}
			continue
		}
		var keys []string
		if k := report.PromoKey(p.PromoCode); k != "" {
			keys = append(keys, "p:"+k)
		}
		if k := report.VanityKey(p.VanityURL); k != "" {
			keys = append(keys, "v:"+k)
		}
		var cands []*refAiring
		for _, a := range all {
			if !a.ran || o.ms < a.start || o.ms >= a.end {
				continue
			}
			if (a.promo != "" && slices.Contains(keys, "p:"+a.promo)) || (a.vanity != "" && slices.Contains(keys, "v:"+a.vanity)) {
				cands = append(cands, a)
			}
		}
		if w := best(cands); w != nil {
			o.airing, o.via = w.a.ID, "promo"
		}
	}

	// Measures.
	ms := map[string]*report.Measures{"": {}}
	for _, a := range all {
		ms[a.a.ID] = &report.Measures{}
	}
	t := Truth{Airings: map[string]report.Figures{}, CallAiring: map[CallKey]string{}, OrderAiring: map[string]string{}, calls: calls, orders: orders}
	for k, c := range calls {
		t.CallAiring[k] = c.winner
		m := ms[c.winner]
		m.Calls++
		if c.answered {
			m.Answered++
		}
		if c.abandoned {
			m.Abandoned++
		}
		for _, id := range c.window {
			ms[id].WindowCalls++
		}
		if !c.covered {
			for _, id := range c.pre {
				ms[id].BaselineCalls++
			}
		}
	}
	for id, o := range orders {
		t.OrderAiring[id] = o.airing
		o.addTo(ms[o.airing])
	}
	for _, m := range ms {
		m.NetOrders = m.Orders - m.Cancellations
		m.NetRevenueCents = m.GrossRevenueCents - m.RefundCents
	}
	dtz, _ := time.LoadLocation(cfg.DaypartTimeZone)
	for _, a := range all {
		m := ms[a.a.ID]
		if a.ran {
			m.MediaCostCents = a.a.SpendCents
		}
		if a.target > 0 {
			m.TargetCostCents = m.MediaCostCents
			m.RequiredRevenueX100 = m.MediaCostCents * a.target
		}
		if a.ran && a.dnis != "" {
			covered := 0
			for mm := a.preLo; mm < a.preHi; mm += minute {
				for _, o := range all {
					if o.ran && o.dnis == a.dnis && o.start < mm+minute && o.end > mm {
						covered++
						break
					}
				}
			}
			m.BaselineMinutes = base/minute - int64(covered)
		}
		length := float64(a.end-a.start) / 60000
		rate := 0.0
		if m.BaselineMinutes != 0 {
			rate = float64(m.BaselineCalls) / float64(m.BaselineMinutes)
		}
		m.ExpectedBaselineCalls = rate * length
		m.Lift = float64(m.WindowCalls) - m.ExpectedBaselineCalls
		m.Derive()
		status := "scheduled"
		switch {
		case a.a.DidNotRun:
			status = "did_not_run"
		case a.kind == event.AiringRevised:
			status = "revised"
		}
		local := a.a.AiredAt.In(dtz)
		f := report.Figures{
			AiringID: a.a.ID, Status: status, Offer: a.a.Offer, Station: a.a.Station, Market: a.a.Market,
			MediaType: a.a.MediaType, ISCI: a.a.ISCI, DNIS: a.a.DNIS, PromoCode: a.a.PromoCode, VanityURL: a.a.VanityURL,
			AiredAt: a.a.AiredAt.Truncate(time.Second), AiredAtMS: a.start, LengthSeconds: a.a.LengthSeconds, DidNotRun: a.a.DidNotRun,
			Currency: a.currency, WindowMinutes: a.window, TargetRatioPct: a.target, ResponseStart: a.start, ResponseEnd: a.end,
			Daypart:             cfg.DaypartAt(local.Hour()*60 + local.Minute()),
			BroadcastDay:        cfg.BroadcastDay(a.a.AiredAt).Format(time.DateOnly),
			BroadcastWeek:       cfg.BroadcastWeek(a.a.AiredAt).Format(time.DateOnly),
			WindowLengthMinutes: length,
			Measures:            *m,
		}
		if !a.a.AiredUntil.IsZero() {
			f.AiredUntilMS = a.a.AiredUntil.UnixMilli()
		}
		// The curve: calls won per minute since air time.
		f.Curve = make([]int64, (a.end-a.start+59999)/60000)
		for _, c := range calls {
			if c.winner == a.a.ID {
				f.Curve[(c.ms-c.winnerAt)/60000]++
			}
		}
		t.Airings[a.a.ID] = f
	}
	u := ms[""]
	u.Derive()
	t.Unattributed = unattributed(*u)

	t.Rollups = map[report.Dimension][]report.Rollup{}
	for _, d := range report.Dimensions {
		groups := map[string]*report.Rollup{}
		currencies := map[string][]string{}
		for _, a := range all {
			f := t.Airings[a.a.ID]
			key := map[report.Dimension]string{
				report.ByOffer: f.Offer, report.ByStation: f.Station, report.ByMarket: f.Market, report.ByDaypart: f.Daypart,
				report.ByISCI: f.ISCI, report.ByDay: f.BroadcastDay, report.ByWeek: f.BroadcastWeek,
			}[d]
			g := groups[key]
			if g == nil {
				g = &report.Rollup{Key: key}
				groups[key] = g
			}
			g.Airings++
			if f.DidNotRun {
				g.DidNotRun++
			}
			g.Add(f.Measures)
			currencies[key] = append(currencies[key], f.Currency)
		}
		var rows []report.Rollup
		for key, g := range groups {
			cs := currencies[key]
			g.Currency = slices.Min(cs)
			if slices.Max(cs) != g.Currency {
				g.Currency = "mixed"
			}
			g.Derive()
			rows = append(rows, *g)
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].Key < rows[j].Key })
		t.Rollups[d] = rows
	}
	return t
}
