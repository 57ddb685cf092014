package broadcastday

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/airtally/airtally/consumers/detector/faultday"
	"github.com/airtally/airtally/internal/airings"
	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/producers/event"
)

// Config shapes the day.
type Config struct {
	// Date is the broadcast day (06:00 to 06:00 America/New_York); Seed
	// makes it reproducible: the same date and seed give the very same
	// events, faults and truth.
	Date time.Time
	Seed uint64
	// Transit is the least time from a producer to the event store;
	// default 40ms (each event adds up to 30ms more).
	Transit time.Duration
}

// Sources of every day. Call centres are ACD sources; an offer's phone
// orders are taken on its client's order console.
var (
	Sites    = []event.Source{{System: "acd", Instance: "tampa-01"}, {System: "acd", Instance: "phoenix-01"}, {System: "acd", Instance: "omaha-01"}}
	Consoles = []event.Source{{System: "console", Instance: "tampa-01"}, {System: "console", Instance: "omaha-01"}}
	WebShop  = demoday.WebShop
	Schedule = event.Source{System: "schedule", Instance: "broadcastday"}
)

// HeartbeatEvery is every source's heartbeat interval.
const HeartbeatEvery = time.Minute

// Number is a toll-free number and where its calls ring.
type Number struct {
	DNIS string
	// Offer is the offer its calls are for (the call centre's script).
	Offer string
	// Sites are the call sources (source keys) it routes to, and Weights
	// the share of its calls each takes.
	Sites   []string
	Weights []float64
	// Shared: a pool number several airings use; House: an offer's number
	// no airing uses (organic calls only); otherwise dedicated to one
	// airing.
	Shared, House bool
}

// Spot is an airing of the day as scheduled and posted.
type Spot struct {
	airings.Airing
	// Window is its response window's length; Calls the response calls
	// generated for it (0 for an airing that did not run), Tau the mean
	// delay of its response curve (exponential; about 2% of the calls come
	// after the window's end).
	Window time.Duration
	Calls  int
	Tau    time.Duration
}

// Start and End bound its response window.
func (s Spot) Start() time.Time { return s.AiredAt }
func (s Spot) End() time.Time   { return s.AiredAt.Add(s.Window) }

// Span is its response window.
func (s Spot) Span() faultday.Span { return faultday.Span{From: s.Start(), To: s.End()} }

// rate is its expected response, calls per minute, t after air time.
func (s Spot) rate(t time.Duration) float64 {
	tau := s.Tau.Minutes()
	if t < 0 {
		return 0
	}
	return float64(s.Calls) * math.Exp(-t.Minutes()/tau) / tau
}

// expected is its expected response calls between a and b after air time.
func (s Spot) expected(a, b time.Duration) float64 {
	tau := s.Tau.Minutes()
	a = max(a, 0)
	if b <= a {
		return 0
	}
	return float64(s.Calls) * (math.Exp(-a.Minutes()/tau) - math.Exp(-b.Minutes()/tau))
}

type offerSpec struct {
	offer         airings.Offer
	radioWindow   int64 // a radio setting of its own, or 0
	abbrev, isci  string
	promo, vanity string
}

var offerCatalog = []offerSpec{
	{offer: airings.Offer{Offer: "bright-smile", Currency: "USD", TargetRatioPct: 150, WindowMinutes: 60}, radioWindow: 30, abbrev: "BS", isci: "BSML", promo: "SMILE", vanity: "brightsmile.example/tv"},
	{offer: airings.Offer{Offer: "flex-roller", Currency: "USD", TargetRatioPct: 120, WindowMinutes: 45}, abbrev: "FR", isci: "FLXR", promo: "FLEX", vanity: "flexroller.example/tv"},
	{offer: airings.Offer{Offer: "sleep-well", Currency: "USD", TargetRatioPct: 110, WindowMinutes: 60}, radioWindow: 45, abbrev: "SW", isci: "SLPW", promo: "SLEEP"},
	{offer: airings.Offer{Offer: "glow-serum", Currency: "USD", TargetRatioPct: 180, WindowMinutes: 30}, abbrev: "GS", isci: "GLOW", promo: "GLOW", vanity: "glowserum.example"},
	{offer: airings.Offer{Offer: "power-wash", Currency: "USD", TargetRatioPct: 130, WindowMinutes: 45}, abbrev: "PW", isci: "PWSH", promo: "WASH", vanity: "powerwash.example/tv"},
	{offer: airings.Offer{Offer: "chef-knives", Currency: "USD", TargetRatioPct: 140, WindowMinutes: 60}, radioWindow: 30, abbrev: "CK", isci: "CHEF", vanity: "chefknives.example/tv"},
}

type station struct {
	call, market, media string
	national            bool
}

var stations = []station{
	{"WFLA", "Tampa", airings.MediaTV, false}, {"KTVK", "Phoenix", airings.MediaTV, false}, {"WPIX", "New York", airings.MediaTV, false},
	{"KTLA", "Los Angeles", airings.MediaTV, false}, {"WGN", "Chicago", airings.MediaTV, false},
	{"HGTV", "National", airings.MediaTV, true}, {"CNBC", "National", airings.MediaTV, true}, {"TLC", "National", airings.MediaTV, true},
	{"AMC", "National", airings.MediaTV, true},
	{"WLS-AM", "Chicago", airings.MediaRadio, false}, {"WABC-AM", "New York", airings.MediaRadio, false},
	{"KFI-AM", "Los Angeles", airings.MediaRadio, false}, {"WBZ-AM", "Boston", airings.MediaRadio, false},
}

// gen builds the day's events on the demo day's builder (ids, orders and
// their cancellations by the same rules).
type gen struct {
	demoday.Builder
	calls    int
	numbers  map[string]*Number
	consoles map[string]event.Source // by offer
	offers   map[string]offerSpec
}

func (g *gen) site(n *Number) event.Source {
	x := g.Rng.Float64()
	for i, w := range n.Weights {
		if x < w || i == len(n.Weights)-1 {
			for _, s := range Sites {
				if s.Key() == n.Sites[i] {
					return s
				}
			}
		}
		x -= w
	}
	panic("unreachable")
}

// call generates one call at t on number n, at one of its sites: answered
// or abandoned, maybe re-sent by the ACD, maybe ordering on the offer's
// console.
func (g *gen) call(t time.Time, n *Number) {
	rng := g.Rng
	g.calls++
	acd := g.site(n)
	site := acd.Instance[:len(acd.Instance)-3]
	callID := fmt.Sprintf("%s-%06d", site, g.calls)
	shown := n.DNIS
	if rng.IntN(10) == 0 {
		shown = "1" + n.DNIS // some ACDs keep the country code
	}
	base := func(k event.Kind, at time.Time) *event.Event {
		e := g.Event(k, acd, at)
		e.CallID, e.DNIS, e.Site, e.Queue = callID, shown, site, "drtv"
		return e
	}
	recv := base(event.CallReceived, t)
	recv.ANIHash = event.HashANI([]byte("broadcast-day-ani-key"), fmt.Sprintf("1%03d555%04d", 201+rng.IntN(700), rng.IntN(10000)))
	if rng.IntN(20) == 0 {
		again := base(event.CallReceived, t.Add(2*time.Second))
		again.ANIHash = recv.ANIHash
	}
	if rng.IntN(8) == 0 {
		wait := int64(20 + rng.IntN(90))
		ab := base(event.CallAbandoned, t.Add(time.Duration(wait)*time.Second))
		ab.WaitSeconds = wait
		return
	}
	agent := fmt.Sprintf("agent-%s-%02d", site, 1+rng.IntN(20))
	answeredAt := t.Add(time.Duration(2+rng.IntN(30)) * time.Second)
	ans := base(event.CallAnswered, answeredAt)
	ans.AgentID = agent
	talk := int64(60 + rng.IntN(540))
	end := base(event.CallEnded, answeredAt.Add(time.Duration(talk)*time.Second))
	end.AgentID, end.TalkSeconds, end.Disposition = agent, talk, "no_sale"
	if rng.IntN(10) < 4 {
		end.Disposition = "sale"
		g.PhoneOrder(g.consoles[n.Offer], end.OccurredAt.Add(-30*time.Second), callID, shown, n.Offer, site)
	}
}

// routing picks the sites of a number: one, or two with shares between
// 35% and 65%.
func (g *gen) routing(two bool) ([]string, []float64) {
	p := g.Rng.Perm(len(Sites))
	if !two {
		return []string{Sites[p[0]].Key()}, []float64{1}
	}
	w := 0.35 + 0.3*g.Rng.Float64()
	return []string{Sites[p[0]].Key(), Sites[p[1]].Key()}, []float64{w, 1 - w}
}

var tollFree = []string{"800", "888", "877", "866", "855"}

func (g *gen) newNumber(offer string, shared, two bool) *Number {
	dnis := fmt.Sprintf("%s555%04d", tollFree[len(g.numbers)%len(tollFree)], 100+len(g.numbers))
	n := &Number{DNIS: dnis, Offer: offer, Shared: shared}
	n.Sites, n.Weights = g.routing(two)
	g.numbers[dnis] = n
	return n
}

// schedule draws the day's airings (in air order).
func (g *gen) schedule(start time.Time) []Spot {
	rng := g.Rng
	// Three to five offers; one shared number for two of them (a pool
	// rotated across national cable; one number per offer on radio).
	perm := rng.Perm(len(offerCatalog))
	var offers []offerSpec
	for _, i := range perm[:3+rng.IntN(3)] {
		offers = append(offers, offerCatalog[i])
		g.offers[offerCatalog[i].offer.Offer] = offerCatalog[i]
	}
	nConsoles := 1 + rng.IntN(2)
	for i, o := range offers {
		g.consoles[o.offer.Offer] = Consoles[i%nConsoles]
	}
	pools := map[string]*Number{}
	for _, o := range offers[:2] {
		pools[o.offer.Offer] = g.newNumber(o.offer.Offer, true, rng.IntN(3) != 0)
	}
	window := func(o offerSpec, media string) time.Duration {
		if media == airings.MediaRadio && o.radioWindow != 0 {
			return time.Duration(o.radioWindow) * time.Minute
		}
		return time.Duration(o.offer.WindowMinutes) * time.Minute
	}
	spend := func(st station) int64 {
		switch {
		case st.media == airings.MediaRadio:
			return int64(8000 + rng.IntN(32)*1000)
		case st.national:
			return int64(60000 + rng.IntN(38)*5000)
		}
		return int64(15000 + rng.IntN(66)*1000)
	}
	var spots []Spot
	ids := map[string]int{}
	mk := func(o offerSpec, st station, at time.Time, n *Number) Spot {
		local := at.In(easternTZ)
		id := fmt.Sprintf("%s-%02d%02d-%s", o.abbrev, local.Hour(), local.Minute(), st.call)
		if ids[id]++; ids[id] > 1 {
			id = fmt.Sprintf("%s-%d", id, ids[id])
		}
		a := airings.Airing{
			ID: id, Offer: o.offer.Offer, Station: st.call, Market: st.market, MediaType: st.media,
			ISCI:    fmt.Sprintf("%s%04d%s", o.isci, []int{30, 60, 120}[rng.IntN(3)], map[string]string{airings.MediaTV: "H", airings.MediaRadio: "R"}[st.media]),
			AiredAt: at, LengthSeconds: 60, SpendCents: spend(st), Currency: "USD", DNIS: n.DNIS,
		}
		if o.promo != "" && rng.IntN(4) != 0 {
			a.PromoCode = o.promo
		}
		if o.vanity != "" && st.media == airings.MediaTV {
			a.VanityURL = o.vanity
		}
		return Spot{Airing: a, Window: window(o, st.media)}
	}
	airAt := func() time.Time {
		// Anywhere from 06:20 to 04:00, on a break: a whole minute plus 0,
		// 15, 30 or 45 seconds.
		return start.Add(time.Duration(20+rng.IntN(22*60-20))*time.Minute + time.Duration(rng.IntN(4)*15)*time.Second)
	}
	pick := func(media string) station {
		for {
			st := stations[rng.IntN(len(stations))]
			if media == "" || st.media == media {
				return st
			}
		}
	}
	// Two airings of a pool offer at the same second on two stations (a
	// simulcast; equal spend one time in three: the smaller id wins), and a
	// third on the same number inside their windows.
	po := offers[rng.IntN(2)]
	at := airAt()
	a1 := mk(po, pick(airings.MediaTV), at, pools[po.offer.Offer])
	a2 := mk(po, pick(airings.MediaTV), at, pools[po.offer.Offer])
	for a2.Station == a1.Station {
		a2 = mk(po, pick(airings.MediaTV), at, pools[po.offer.Offer])
	}
	if rng.IntN(3) == 0 {
		a2.SpendCents = a1.SpendCents
	}
	a3 := mk(po, pick(""), at.Add(time.Duration(10+rng.IntN(int(a1.Window/time.Minute)-15))*time.Minute+30*time.Second), pools[po.offer.Offer])
	spots = append(spots, a1, a2, a3)
	n := 16 + rng.IntN(15)
	for len(spots) < n {
		o := offers[rng.IntN(len(offers))]
		st := pick("")
		var num *Number
		if p := pools[o.offer.Offer]; p != nil && rng.IntN(4) == 0 {
			num = p
		} else {
			num = g.newNumber(o.offer.Offer, false, rng.IntN(10) < 3)
		}
		spots = append(spots, mk(o, st, airAt(), num))
	}
	sort.SliceStable(spots, func(i, j int) bool {
		if !spots[i].AiredAt.Equal(spots[j].AiredAt) {
			return spots[i].AiredAt.Before(spots[j].AiredAt)
		}
		return spots[i].ID < spots[j].ID
	})
	// Two or three did not run (the post-log says so): airings on numbers
	// of their own, not the simulcast.
	var cands []int
	for i, s := range spots {
		if !g.numbers[s.DNIS].Shared {
			cands = append(cands, i)
		}
	}
	rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	for _, i := range cands[:2+rng.IntN(2)] {
		spots[i].DidNotRun = true
	}
	// Response: 40 to 150 calls, affine in spend, times a log-normal factor
	// (sigma 0.25); a curve decaying exponentially with a mean of a quarter
	// of the window.
	for i := range spots {
		s := &spots[i]
		s.Tau = s.Window / 4
		if s.DidNotRun {
			continue
		}
		f := float64(s.SpendCents-8000) / float64(250000-8000)
		s.Calls = int(math.Round((40 + 110*f) * math.Exp(0.25*rng.NormFloat64())))
	}
	return spots
}

var easternTZ = func() *time.Location {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic(err)
	}
	return loc
}()

// respond generates an airing's calls and web orders.
func (g *gen) respond(s Spot) {
	rng := g.Rng
	n := g.numbers[s.DNIS]
	// The response goes on after the window closes (the window is the
	// attribution's horizon, not the viewers'): a call after it is the
	// number's, unattributed or a later airing's.
	draw := func(mean time.Duration) time.Duration {
		return time.Duration(rng.ExpFloat64() * float64(mean))
	}
	for range s.Calls {
		g.call(s.AiredAt.Add(draw(s.Tau)), n)
	}
	o := g.offers[s.Offer]
	for range s.Calls / 6 {
		at := s.AiredAt.Add(draw(s.Window / 3))
		switch {
		case s.PromoCode != "" && rng.IntN(2) == 0:
			g.WebOrder(at, s.Offer, demoday.Messy(rng, s.PromoCode), "")
		case s.VanityURL != "":
			g.WebOrder(at, s.Offer, "", demoday.MessyURL(rng, s.VanityURL))
		case s.PromoCode != "":
			g.WebOrder(at, s.Offer, s.PromoCode, "")
		default:
			g.WebOrder(at, o.offer.Offer, "", "") // no code: unattributed
		}
	}
}

// full builds the day as it happened.
func full(cfg Config, rng *rand.Rand) (demoday.Day, []Spot, map[string]*Number, map[string]event.Source) {
	rcfg := report.DefaultConfig()
	date := time.Date(cfg.Date.Year(), cfg.Date.Month(), cfg.Date.Day(), 0, 0, 0, 0, time.UTC)
	start, end := rcfg.DayStartAt(date), rcfg.DayStartAt(date.AddDate(0, 0, 1))
	g := &gen{Builder: demoday.Builder{Rng: rng}, numbers: map[string]*Number{}, consoles: map[string]event.Source{}, offers: map[string]offerSpec{}}
	spots := g.schedule(start)

	configured, scheduled, postLogged := start.Add(-72*time.Hour), start.Add(-48*time.Hour), end.Add(4*time.Hour)
	var offerNames []string
	for name := range g.offers {
		offerNames = append(offerNames, name)
	}
	sort.Strings(offerNames)
	for _, name := range offerNames {
		o := g.offers[name]
		g.Add(o.offer.Event(Schedule, configured))
		if o.radioWindow != 0 {
			g.Add(airings.Offer{Offer: name, MediaType: airings.MediaRadio, WindowMinutes: o.radioWindow}.Event(Schedule, configured.Add(time.Second)))
		}
	}
	for i, s := range spots {
		a := s.Airing
		a.DidNotRun = false
		g.Add(a.Event(event.AiringScheduled, Schedule, scheduled.Add(time.Duration(i)*time.Second)))
		if s.DidNotRun {
			g.Add(s.Airing.Event(event.AiringCancelled, Schedule, postLogged.Add(time.Duration(i)*time.Second)))
			continue
		}
		g.respond(s)
	}
	// Organic calls, anywhere in the day, on the numbers that ring outside
	// airings: the shared pool numbers and each offer's house number (on
	// its packaging and web site, never on air). A dedicated number rings
	// only in and after its airing's window.
	for _, name := range offerNames {
		g.newNumber(name, false, rng.IntN(2) == 0).House = true
	}
	var dnis []string
	for d, n := range g.numbers {
		if n.Shared || n.House {
			dnis = append(dnis, d)
		}
	}
	sort.Strings(dnis)
	for range 120 + rng.IntN(60) {
		g.call(start.Add(time.Duration(rng.Int64N(int64(end.Sub(start))))), g.numbers[dnis[rng.IntN(len(dnis))]])
	}
	// Web orders no airing claims: an unknown code, no code.
	for i := range 6 {
		at := start.Add(time.Duration(rng.Int64N(int64(end.Sub(start)))))
		o := offerNames[i%len(offerNames)]
		if i%2 == 0 {
			g.WebOrder(at, o, "NOSUCHCODE", "")
		} else {
			g.WebOrder(at, o, "", "")
		}
	}
	srcs := append(append([]event.Source{}, Sites...), WebShop)
	used := map[string]bool{}
	for _, c := range g.consoles {
		if !used[c.Key()] {
			used[c.Key()] = true
		}
	}
	for _, c := range Consoles {
		if used[c.Key()] {
			srcs = append(srcs, c)
		}
	}
	for _, src := range srcs {
		for t := start; t.Before(end); t = t.Add(HeartbeatEvery) {
			h := g.Event(event.Heartbeat, src, t)
			h.IntervalSeconds = int64(HeartbeatEvery / time.Second)
		}
	}
	d := demoday.Day{Events: g.Sorted(), From: start, To: end, Intended: map[string]string{}}
	d.Truth = demoday.ComputeTruth(d.Events, rcfg)
	numbers := map[string]*Number{}
	for k, v := range g.numbers {
		numbers[k] = v
	}
	return d, spots, numbers, g.consoles
}
