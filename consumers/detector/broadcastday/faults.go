package broadcastday

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/airtally/airtally/consumers/detector/faultday"
	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/producers/event"
)

// Fault kinds.
const (
	// Outage: a call centre recorded nothing (down) during Span.
	Outage = "outage"
	// CallGap, OrderGap: a call centre's or an order console's events of
	// a span were lost between it and the event store (their sequence
	// numbers used); Span runs from the event before them to the event
	// after them.
	CallGap  = "call gap"
	OrderGap = "order gap"
	// Silent: calls to DNIS never reached any call centre during Span,
	// while every source's heartbeats went on. SilentFromStart: the same,
	// from before an airing's start to after its window's end (the number
	// on air rang nowhere).
	Silent          = "silent"
	SilentFromStart = "silent from start"
	// Delay: a call centre spooled during Span and delivered its events at
	// its end (late, not lost).
	Delay = "delay"
	// Skew: a console's clock is Skew off (negative: behind).
	Skew = "skew"
)

// Fault is one injected fault.
type Fault struct {
	Kind string
	// Source is the source key ("system.instance") of an outage, gap,
	// delay or skew; DNIS the number of a silence.
	Source string
	DNIS   string
	// Span is when (server clock).
	Span faultday.Span
	// Where an outage was placed on its airing's window: "start",
	// "middle", "end" or "several" (spanning several airings).
	Where string
	// Target are the airings it was placed on.
	Target []string
	// SeqFrom and SeqTo are a gap's lost sequence numbers; Bound the most
	// non-heartbeat events they can have held: N − max(0, ⌈s/h⌉ − 1) for N
	// numbers over a span of s seconds on a source heartbeating every h.
	SeqFrom, SeqTo uint64
	Bound          float64
	Skew           time.Duration

	lost faultday.Span // a gap: the events lost were recorded in this span
}

// Minutes is the fault's span in minutes.
func (f Fault) Minutes() float64 { return f.Span.Minutes() }

// AiringTruth is what the faults did to one airing.
type AiringTruth struct {
	DidNotRun bool
	// Faulted: a fault overlapped its response window on a source that
	// takes its number's calls or its offer's orders, or its number was
	// silent in it. Causes are the kinds of those faults.
	Faulted bool
	Causes  []string
	// UncoveredMinutes is the union of those faults' spans within its
	// window; Timed is false when that cannot be measured (a number
	// silent from before its start: the union is then its whole window).
	UncoveredMinutes float64
	Timed            bool
	// DroppedCalls and DroppedOrders: its calls and orders on the day as
	// it happened less those on the day the event store received.
	DroppedCalls, DroppedOrders int64
	// CallsBound and OrdersBound: the evidence bound of a call source's or
	// an order console's gap that touched it (nil: none).
	CallsBound, OrdersBound *float64
	// Late: a spool of one of its sources overlapped its window (its
	// events arrived late, none lost).
	Late bool
}

// GapOnly reports whether every cause is a sequence gap.
func (a AiringTruth) GapOnly() bool {
	for _, c := range a.Causes {
		if c != CallGap && c != OrderGap {
			return false
		}
	}
	return len(a.Causes) > 0
}

// Day is a generated day with its faults.
type Day struct {
	// Full is the day as it happened (Full.Truth: every figure).
	Full demoday.Day
	// Spots are its airings, in air order; Numbers its toll-free numbers
	// by DNIS; Consoles the order console (source key) of each offer.
	Spots    []Spot
	Numbers  map[string]*Number
	Consoles map[string]string
	// Faults are the faults injected.
	Faults []Fault
	// Delivered is what reached the event store, in received order.
	Delivered []faultday.Delivery
	// Received is the truth computed from the delivered events.
	Received demoday.Truth
	// Airings is the truth of every airing, by id.
	Airings map[string]AiringTruth
}

// Generate builds the day and its faults.
func Generate(cfg Config) Day {
	if cfg.Transit == 0 {
		cfg.Transit = 40 * time.Millisecond
	}
	date := time.Date(cfg.Date.Year(), cfg.Date.Month(), cfg.Date.Day(), 0, 0, 0, 0, time.UTC)
	fd, spots, numbers, consoles := full(cfg, rand.New(rand.NewPCG(cfg.Seed, uint64(date.Unix()))))
	d := Day{Full: fd, Spots: spots, Numbers: numbers, Consoles: map[string]string{}}
	for o, c := range consoles {
		d.Consoles[o] = c.Key()
	}
	// The faults come from a stream of their own: the same day with other
	// faults is another seed.
	rng := rand.New(rand.NewPCG(cfg.Seed^0x6661756c74, uint64(date.Unix())))
	for range 200 {
		p := &planner{rng: rng, d: &d, busy: map[string][]faultday.Span{}}
		if fs, ok := p.plan(); ok {
			d.Faults = fs
			break
		}
	}
	d.apply(cfg.Transit)
	d.truth()
	return d
}

// planner places faults on the day's airings.
type planner struct {
	rng  *rand.Rand
	d    *Day
	busy map[string][]faultday.Span // per source: faults placed, with margins
}

// margin keeps faults of one source (and a silence and its number's
// sources) apart: the detector judges each on its own.
const margin = 10 * time.Minute

func (p *planner) free(src string, s faultday.Span) bool {
	for _, b := range p.busy[src] {
		if s.From.Before(b.To.Add(margin)) && b.From.Before(s.To.Add(margin)) {
			return false
		}
	}
	return true
}

func (p *planner) reserve(src string, s faultday.Span) { p.busy[src] = append(p.busy[src], s) }

func (p *planner) ran() []Spot {
	var out []Spot
	for _, s := range p.d.Spots {
		if !s.DidNotRun {
			out = append(out, s)
		}
	}
	return out
}

func (p *planner) minutes(lo, hi int) time.Duration {
	if hi <= lo {
		return time.Duration(lo) * time.Minute
	}
	return time.Duration(lo+p.rng.IntN(hi-lo+1)) * time.Minute
}

func (p *planner) seconds() time.Duration { return time.Duration(p.rng.IntN(60)) * time.Second }

// silence places the day's silent line: mid-window when an airing's
// response makes it visible to the detector's rate test, else (and one
// day in two) silent from before an airing's start.
func (p *planner) silence() (Fault, bool) {
	ran := p.ran()
	type cand struct {
		s      Spot
		t0, t1 time.Duration
	}
	var cands []cand
	for _, s := range ran {
		if p.d.Numbers[s.DNIS].Shared {
			continue
		}
		// The mid-window rule: the silence starts at least 5 minutes after
		// air time while the airing's expected response is at least 5
		// calls a minute, ends while it is still at least 3 a minute, lasts
		// 3 to 15 minutes and held at least 18 expected calls.
		for t0 := 5 * time.Minute; s.rate(t0) >= 5; t0 += 30 * time.Second {
			t1 := t0 + 3*time.Minute
			for t1+30*time.Second <= t0+15*time.Minute && s.rate(t1+30*time.Second) >= 3 {
				t1 += 30 * time.Second
			}
			if s.rate(t1) >= 3 && s.expected(t0, t1) >= 18 {
				cands = append(cands, cand{s, t0, t1})
			}
		}
	}
	var f Fault
	if len(cands) > 0 && p.rng.IntN(2) == 0 {
		c := cands[p.rng.IntN(len(cands))]
		f = Fault{Kind: Silent, DNIS: c.s.DNIS, Span: faultday.Span{From: c.s.AiredAt.Add(c.t0), To: c.s.AiredAt.Add(c.t1)}, Target: []string{c.s.ID}}
	} else {
		var ded []Spot
		for _, s := range ran {
			if !p.d.Numbers[s.DNIS].Shared {
				ded = append(ded, s)
			}
		}
		if len(ded) == 0 {
			return Fault{}, false
		}
		s := ded[p.rng.IntN(len(ded))]
		f = Fault{Kind: SilentFromStart, DNIS: s.DNIS, Span: faultday.Span{From: s.AiredAt.Add(-2 * time.Minute), To: s.End().Add(3 * time.Minute)}, Target: []string{s.ID}}
	}
	for _, site := range p.d.Numbers[f.DNIS].Sites {
		if !p.free(site, f.Span) {
			return Fault{}, false
		}
	}
	for _, site := range p.d.Numbers[f.DNIS].Sites {
		p.reserve(site, f.Span)
	}
	return f, true
}

// outage places a call centre's outage of 2 to 30 minutes at the start,
// in the middle or at the end of an airing's window, or across several
// airings' windows.
func (p *planner) outage() (Fault, bool) {
	ran := p.ran()
	s := ran[p.rng.IntN(len(ran))]
	n := p.d.Numbers[s.DNIS]
	site := n.Sites[p.rng.IntN(len(n.Sites))]
	d := p.minutes(2, 29) + p.seconds()
	w := s.Window
	f := Fault{Kind: Outage, Source: site, Target: []string{s.ID}}
	where := []string{"start", "middle", "end", "several"}[p.rng.IntN(4)]
	if where == "middle" && w-d < 10*time.Minute {
		where = "start"
	}
	switch where {
	case "start":
		f.Span.From = s.AiredAt.Add(-p.minutes(0, min(5, int(d/time.Minute)-1)))
	case "middle":
		f.Span.From = s.AiredAt.Add(p.minutes(3, int((w-d)/time.Minute)-3) + p.seconds())
	case "end":
		f.Span.From = s.End().Add(-p.minutes(1, max(1, int(d/time.Minute)-1)))
	case "several":
		// A later airing on a number ringing at the same site, starting in
		// this one's window: one outage across both.
		var next *Spot
		for i, o := range ran {
			if o.ID != s.ID && o.AiredAt.After(s.AiredAt) && o.AiredAt.Before(s.AiredAt.Add(min(w, 25*time.Minute))) &&
				slices.Contains(p.d.Numbers[o.DNIS].Sites, site) {
				next = &ran[i]
				break
			}
		}
		if next == nil {
			return Fault{}, false
		}
		f.Span.From = s.AiredAt.Add(p.minutes(1, 3) + p.seconds())
		to := next.AiredAt.Add(p.minutes(3, 8))
		d = to.Sub(f.Span.From)
		if d > 30*time.Minute {
			return Fault{}, false
		}
		f.Target = append(f.Target, next.ID)
	}
	f.Where = where
	f.Span.To = f.Span.From.Add(d)
	if !p.free(site, f.Span) {
		return Fault{}, false
	}
	p.reserve(site, f.Span)
	return f, true
}

// gap places a lost range of 2 to 10 minutes of a call centre's events
// (orders false) or 3 to 10 minutes of an order console's, inside an
// airing's window.
func (p *planner) gap(orders bool) (Fault, bool) {
	ran := p.ran()
	s := ran[p.rng.IntN(len(ran))]
	f := Fault{Kind: CallGap, Target: []string{s.ID}}
	var l time.Duration
	if orders {
		f.Kind, f.Source = OrderGap, p.d.Consoles[s.Offer]
		l = p.minutes(3, 10) + p.seconds()
		f.lost.From = s.AiredAt.Add(p.minutes(1, 12) + p.seconds())
	} else {
		n := p.d.Numbers[s.DNIS]
		f.Source = n.Sites[p.rng.IntN(len(n.Sites))]
		l = p.minutes(2, 10) + p.seconds()
		f.lost.From = s.AiredAt.Add(p.minutes(2, max(3, int((s.Window-l)/time.Minute)-2)) + p.seconds())
	}
	f.lost.To = f.lost.From.Add(l)
	f.Span = f.lost
	if !p.free(f.Source, f.lost) {
		return Fault{}, false
	}
	p.reserve(f.Source, f.lost)
	return f, true
}

// delay places a call centre's spool of 3 to 8 minutes inside an airing's
// window.
func (p *planner) delay() (Fault, bool) {
	ran := p.ran()
	s := ran[p.rng.IntN(len(ran))]
	n := p.d.Numbers[s.DNIS]
	f := Fault{Kind: Delay, Source: n.Sites[p.rng.IntN(len(n.Sites))], Target: []string{s.ID}}
	f.Span.From = s.AiredAt.Add(p.minutes(2, 15) + p.seconds())
	f.Span.To = f.Span.From.Add(p.minutes(3, 7) + p.seconds())
	if !p.free(f.Source, f.Span) {
		return Fault{}, false
	}
	p.reserve(f.Source, f.Span)
	return f, true
}

func (p *planner) plan() ([]Fault, bool) {
	var fs []Fault
	add := func(f Fault, ok bool) bool {
		if ok {
			fs = append(fs, f)
		}
		return ok
	}
	if !add(p.silence()) {
		return nil, false
	}
	for range 1 + p.rng.IntN(3) {
		if !add(p.outage()) {
			return nil, false
		}
	}
	if !add(p.gap(false)) || !add(p.gap(true)) || !add(p.delay()) {
		return nil, false
	}
	// A console's clock off by 2 to 6 minutes, one day in two: a console
	// without the order gap.
	if p.rng.IntN(2) == 0 {
		gapConsole := fs[len(fs)-2].Source
		for _, c := range Consoles {
			if c.Key() != gapConsole && slices.Contains(mapValues(p.d.Consoles), c.Key()) {
				sk := time.Duration(2+p.rng.IntN(5)) * time.Minute
				if p.rng.IntN(2) == 0 {
					sk = -sk
				}
				fs = append(fs, Fault{Kind: Skew, Source: c.Key(), Skew: sk})
			}
		}
	}
	// At least a third of the airings that ran untouched (gap spans
	// widened by a minute, as the events before and after them may be).
	touched := 0
	ran := p.ran()
	for _, s := range ran {
		if k, _ := p.d.causes(s, fs, time.Minute); len(k) > 0 {
			touched++
		}
	}
	return fs, 3*(len(ran)-touched) >= len(ran)
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// causes are the faults (their kinds and spans within its window) that
// touch airing s; gap spans widened by widen.
func (d *Day) causes(s Spot, fs []Fault, widen time.Duration) (kinds []string, spans []faultday.Span) {
	win := s.Span()
	n := d.Numbers[s.DNIS]
	for _, f := range fs {
		span := f.Span
		applies := false
		switch f.Kind {
		case Outage:
			applies = slices.Contains(n.Sites, f.Source)
		case CallGap:
			applies = slices.Contains(n.Sites, f.Source)
			span = faultday.Span{From: span.From.Add(-widen), To: span.To.Add(widen)}
		case OrderGap:
			applies = d.Consoles[s.Offer] == f.Source
			span = faultday.Span{From: span.From.Add(-widen), To: span.To.Add(widen)}
		case Silent, SilentFromStart:
			applies = f.DNIS == s.DNIS
		}
		if !applies {
			continue
		}
		if o, ok := win.Overlap(span); ok {
			if !slices.Contains(kinds, f.Kind) {
				kinds = append(kinds, f.Kind)
			}
			spans = append(spans, o)
		}
	}
	return kinds, spans
}

// apply turns the day as it happened into what the event store received.
func (d *Day) apply(transit time.Duration) {
	evs := make([]*event.Event, len(d.Full.Events))
	for i, e := range d.Full.Events {
		c := *e
		evs[i] = &c
	}
	callKey := func(e *event.Event) string { return e.Source.System + "\x00" + e.CallID }
	// Outages: the call centre recorded nothing; the calls it would have
	// taken were lost, and with them their orders.
	lostCalls := map[string]bool{}
	for _, f := range d.Faults {
		if f.Kind != Outage {
			continue
		}
		evs = drop(evs, func(e *event.Event) bool {
			if e.Source.Key() == f.Source && f.Span.Contains(e.OccurredAt) {
				if e.Kind == event.CallReceived {
					lostCalls[callKey(e)] = true
				}
				return true
			}
			return false
		})
	}
	// Silences: calls to the number never reached a call centre.
	for _, f := range d.Faults {
		if f.Kind != Silent && f.Kind != SilentFromStart {
			continue
		}
		for _, e := range evs {
			if e.Kind == event.CallReceived && report.DNISKey(e.DNIS) == f.DNIS && f.Span.Contains(e.OccurredAt) {
				lostCalls[callKey(e)] = true
			}
		}
	}
	lostOrders := map[string]bool{}
	evs = drop(evs, func(e *event.Event) bool {
		switch {
		case e.Kind.IsCall():
			return lostCalls[callKey(e)]
		case e.Kind == event.OrderPlaced && e.CallID != "" && lostCalls[Sites[0].System+"\x00"+e.CallID]:
			lostOrders[e.OrderID] = true
			return true
		case e.Kind == event.OrderCancelled && lostOrders[e.OrderID]:
			return true
		}
		return false
	})
	// A source that was down, or never got the calls, numbered nothing.
	faultday.Renumber(evs)
	// Gaps: events lost between the source and the store, their numbers
	// used.
	for i, f := range d.Faults {
		if f.Kind != CallGap && f.Kind != OrderGap {
			continue
		}
		var before, after *event.Event
		evs = drop(evs, func(e *event.Event) bool {
			if e.Source.Key() != f.Source {
				return false
			}
			switch {
			case f.lost.Contains(e.OccurredAt):
				if f.SeqFrom == 0 {
					f.SeqFrom = e.Source.Seq
				}
				f.SeqTo = e.Source.Seq
				return true
			case e.OccurredAt.Before(f.lost.From):
				before = e
			case after == nil:
				after = e
			}
			return false
		})
		f.Span = faultday.Span{From: before.OccurredAt, To: after.OccurredAt}
		s := f.Span.To.Sub(f.Span.From).Seconds()
		hb := math.Max(0, math.Ceil(s/HeartbeatEvery.Seconds())-1)
		f.Bound = float64(f.SeqTo-f.SeqFrom+1) - hb
		d.Faults[i] = f
	}
	var spools []faultday.Spool
	skews := map[string]time.Duration{}
	for _, f := range d.Faults {
		switch f.Kind {
		case Delay:
			spools = append(spools, faultday.Spool{Source: f.Source, Span: f.Span})
		case Skew:
			skews[f.Source] = f.Skew
		}
	}
	d.Delivered = faultday.Receive(evs, transit, spools, skews)
	received := make([]*event.Event, len(d.Delivered))
	for i, dl := range d.Delivered {
		received[i] = dl.Event
	}
	d.Received = demoday.ComputeTruth(received, report.DefaultConfig())
}

// truth works out what the faults did to every airing.
func (d *Day) truth() {
	d.Airings = map[string]AiringTruth{}
	for _, s := range d.Spots {
		if s.DidNotRun {
			d.Airings[s.ID] = AiringTruth{DidNotRun: true, Timed: true}
			continue
		}
		kinds, spans := d.causes(s, d.Faults, 0)
		a := AiringTruth{Faulted: len(kinds) > 0, Causes: kinds, UncoveredMinutes: faultday.UnionMinutes(spans), Timed: !slices.Contains(kinds, SilentFromStart)}
		sort.Strings(a.Causes)
		full, got := d.Full.Truth.Airings[s.ID], d.Received.Airings[s.ID]
		a.DroppedCalls, a.DroppedOrders = full.Calls-got.Calls, full.Orders-got.Orders
		n := d.Numbers[s.DNIS]
		for _, f := range d.Faults {
			_, overlaps := s.Span().Overlap(f.Span)
			if !overlaps {
				continue
			}
			switch {
			case f.Kind == CallGap && slices.Contains(n.Sites, f.Source):
				a.CallsBound = minBound(a.CallsBound, f.Bound)
			case f.Kind == OrderGap && d.Consoles[s.Offer] == f.Source:
				a.OrdersBound = minBound(a.OrdersBound, f.Bound)
			case f.Kind == Delay && slices.Contains(n.Sites, f.Source):
				a.Late = true
			}
		}
		d.Airings[s.ID] = a
	}
}

func minBound(b *float64, v float64) *float64 {
	if b == nil || v < *b {
		return &v
	}
	return b
}

func drop(evs []*event.Event, gone func(*event.Event) bool) []*event.Event {
	kept := evs[:0]
	for _, e := range evs {
		if !gone(e) {
			kept = append(kept, e)
		}
	}
	return kept
}
