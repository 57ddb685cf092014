package detector

import (
	"math"
	"sort"

	"github.com/airtally/airtally/producers/event"
)

// Times in the state are Unix milliseconds. "Received" times are the event
// store's (the server clock); "occurred" times are producers' clocks,
// corrected by each source's estimated skew into the server's clock before
// they are kept (see docs/accountability.md).
const (
	minute        = int64(60_000)
	stateVersion  = 1
	minShare      = 0.05 // a source taking less of a number's calls has no line on it
	shareAlpha    = 0.01 // weight of one call in a number's shares
	refDecay      = 0.9  // weight kept by a reference curve when an airing is added
	lineLookback  = 6 * 60 * minute
	outageMemory  = 12 * 60 * minute
	airingMemory  = 48 * 60 * minute
	minuteMemory  = 6 * 60 * minute
	callIDMemory  = 256
	baselineSpan  = 60 * minute
	baselineMin   = 10  // outside-window minutes needed for a baseline
	defaultWindow = 60  // response window (minutes) of an offer never configured
	minRefCalls   = 20  // an airing with fewer calls (a dud, or one that did not run) is no reference
	minRefRate    = 0.5 // calls per minute a reference curve needs to say how response decays
)

// deliveryMemory is how far back, in occurred time, a source's own
// deliveries set its norm: an event is late against the quickest delivery
// among the source's events that occurred in the day before it.
const (
	deliveryMemory = 24 * 60 * minute
	maxDeliveries  = 128
)

// state is what the detector knows, derived from the events in stream
// order and nothing else, so that a detector that rebuilds it (replay,
// restart from a snapshot) derives the same detections. It is saved as
// JSON.
type state struct {
	Version int    `json:"version"`
	LastSeq uint64 `json:"last_seq"` // stream sequence of the last message applied
	Now     int64  `json:"now"`      // received time the checks last ran at

	Sources map[string]*source      `json:"sources"` // by "system.instance"
	Numbers map[string]*number      `json:"numbers"` // by DNIS key
	Airings map[string]*airing      `json:"airings"` // by airing id
	Offers  map[string]offerSetting `json:"offers"`  // by "offer|media type"
	Refs    map[string]*refCurve    `json:"refs"`    // by "offer|media", "offer|*", "*"

	// Alerted are the incidents alerted and not yet resolved (id → when),
	// and Loader the loader-lag episode: both belong to the live runner.
	Alerted map[string]int64 `json:"alerted"`
	Loader  *loaderEpisode   `json:"loader,omitempty"`
}

func newState() *state {
	return &state{
		Version: stateVersion,
		Sources: map[string]*source{}, Numbers: map[string]*number{}, Airings: map[string]*airing{},
		Offers: map[string]offerSetting{}, Refs: map[string]*refCurve{}, Alerted: map[string]int64{},
	}
}

// fill makes every map of a decoded state usable.
func (st *state) fill() {
	if st.Sources == nil {
		st.Sources = map[string]*source{}
	}
	if st.Numbers == nil {
		st.Numbers = map[string]*number{}
	}
	if st.Airings == nil {
		st.Airings = map[string]*airing{}
	}
	if st.Offers == nil {
		st.Offers = map[string]offerSetting{}
	}
	if st.Refs == nil {
		st.Refs = map[string]*refCurve{}
	}
	if st.Alerted == nil {
		st.Alerted = map[string]int64{}
	}
	for _, s := range st.Sources {
		if s.Lines == nil {
			s.Lines = map[string]*line{}
		}
	}
	for _, n := range st.Numbers {
		if n.Weights == nil {
			n.Weights = map[string]float64{}
		}
		if n.Minutes == nil {
			n.Minutes = map[int64]int{}
		}
	}
}

// source is one monitored source.
type source struct {
	System   string `json:"system"`
	Instance string `json:"instance"`
	// IntervalMS is the heartbeat interval it last announced.
	IntervalMS int64 `json:"interval_ms,omitempty"`
	LastRecv   int64 `json:"last_recv"`
	// Frontier is the latest corrected occurred time seen; AliveUntil the
	// time it is known (or promised, by a heartbeat) to have been
	// recording until.
	Frontier   int64 `json:"frontier"`
	AliveUntil int64 `json:"alive_until"`

	HasSeq   bool      `json:"has_seq,omitempty"`
	MaxSeq   uint64    `json:"max_seq,omitempty"`
	MaxSeqAt int64     `json:"max_seq_at,omitempty"` // corrected occurred time of MaxSeq's event
	Gaps     []gapSpan `json:"gaps,omitempty"`       // recorded (gap.opened), unresolved
	Pending  []gapSpan `json:"pending,omitempty"`    // seen, within the grace

	Down    *downSpan        `json:"down,omitempty"`
	Lags    []lagSample      `json:"lags,omitempty"` // sliding-window minimum of received − occurred
	Delay   *delaySpan       `json:"delay,omitempty"`
	Outages []span           `json:"outages,omitempty"` // recent downtime and gaps, for line checks
	CallIDs []string         `json:"call_ids,omitempty"`
	Lines   map[string]*line `json:"lines,omitempty"` // by DNIS key

	// Deliveries: the sliding-window minimum of received − occurred by
	// occurred time (the source's normal delivery, for delay).
	Deliveries []delivery `json:"deliveries,omitempty"`
}

func (s *source) key() string { return s.System + "." + s.Instance }

// outages are the spans s recorded nothing for, or lost events of
// (pending gaps included).
func (s *source) outages() []span {
	out := append([]span(nil), s.Outages...)
	for _, g := range s.Pending {
		out = append(out, span{g.Start, g.End})
	}
	return out
}

type gapSpan struct {
	From  uint64 `json:"from"`
	To    uint64 `json:"to"`
	Start int64  `json:"start"` // occurred time of the event before the range
	End   int64  `json:"end"`   // occurred time of the event after it
	Seen  int64  `json:"seen"`  // received time it was seen
}

type downSpan struct {
	Start int64  `json:"start"`
	Tol   int64  `json:"tol"`
	ID    string `json:"id"`
}

type delaySpan struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	Max   int64 `json:"max"`
	Count int64 `json:"count"`
}

type lagSample struct {
	Recv int64 `json:"r"`
	Lag  int64 `json:"l"`
}

type delivery struct {
	Occ int64 `json:"o"`
	Lag int64 `json:"l"`
}

type span struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// line is one number (DNIS) on one call source.
type line struct {
	LastCall int64         `json:"last_call"`
	Site     string        `json:"site,omitempty"`
	Silent   *silence      `json:"silent,omitempty"`
	Minutes  map[int64]int `json:"minutes,omitempty"` // recent calls per minute (lines of a source)
}

type silence struct {
	Start  int64  `json:"start"`
	Airing string `json:"airing,omitempty"`
	ID     string `json:"id"`
}

// number is a toll-free number: which sources take its calls, and its
// recent calls per minute (for its baseline).
type number struct {
	Weights map[string]float64 `json:"weights"`
	Total   float64            `json:"total"`
	Minutes map[int64]int      `json:"minutes"`
	// Line is the number as a whole, at every source.
	Line *line `json:"line,omitempty"`
}

func (n *number) share(key string) float64 {
	if n == nil || n.Total == 0 {
		return 0
	}
	return n.Weights[key] / n.Total
}

type airing struct {
	ID        string `json:"id"`
	Offer     string `json:"offer"`
	Media     string `json:"media,omitempty"`
	DNIS      string `json:"dnis,omitempty"` // key
	Start     int64  `json:"start"`
	Until     int64  `json:"until,omitempty"`
	Spend     int64  `json:"spend,omitempty"`
	DNR       bool   `json:"dnr,omitempty"`
	Version   int64  `json:"version"`
	VersionID string `json:"version_id"`
	Calls     []int  `json:"calls,omitempty"` // per minute since Start
	Affected  bool   `json:"affected,omitempty"`
	Folded    bool   `json:"folded,omitempty"`
}

type offerSetting struct {
	Window    int64  `json:"window"`
	Version   int64  `json:"version"`
	VersionID string `json:"version_id"`
}

// refCurve is the response of past airings free of incidents: calls per
// minute since air time and their count, summed with a decay.
type refCurve struct {
	N     float64   `json:"n"`
	Calls []float64 `json:"calls"`
	// Exposure is, per minute, the (decayed) number of airings whose calls
	// that minute were theirs: a minute after a later airing on the same
	// number took the calls over adds nothing, so it cannot pull the
	// curve down. Empty in a state saved before it was kept: N for every
	// minute.
	Exposure []float64 `json:"exposure,omitempty"`
}

type loaderEpisode struct {
	Start   int64  `json:"start"`
	Max     int64  `json:"max"`
	Pending uint64 `json:"pending"`
	ID      string `json:"id"`
	Alerted bool   `json:"alerted,omitempty"`
}

// detection is a detection event and what the runner needs to alert.
type detection struct {
	Event *event.Event
	// Incident is the id of the incident the detection opens or resolves
	// (the id of its opening event).
	Incident string
	Opens    bool
	Resolves bool
	// Airings are the airings whose live windows the incident touches.
	Airings []string
}

// core derives detections from events; it is not safe for concurrent
// use.
type core struct {
	cfg Config
	st  *state
	out []detection
	// byNumber indexes the airings by DNIS key (rebuilt when nil).
	byNumber map[string][]*airing
}

// on returns the airings on number d.
func (c *core) on(d string) []*airing {
	if c.byNumber == nil {
		c.byNumber = map[string][]*airing{}
		for _, id := range sortedKeys(c.st.Airings) {
			a := c.st.Airings[id]
			c.byNumber[a.DNIS] = append(c.byNumber[a.DNIS], a)
		}
	}
	return c.byNumber[d]
}

func newCore(cfg Config, st *state) *core {
	if st == nil {
		st = newState()
	}
	return &core{cfg: cfg.WithDefaults(), st: st}
}

// take returns the detections derived since the last call.
func (c *core) take() []detection {
	out := c.out
	c.out = nil
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (c *core) tol(s *source) int64 { return c.cfg.tolerance(s.key(), s.IntervalMS) }

// advance runs the checks that depend on time passing, at received time
// now: sources silent beyond their tolerance, sequence gaps past their
// grace, delay episodes that ended in silence, airings whose windows have
// closed. Its results depend on now and the state only, never on when or
// how often it runs.
func (c *core) advance(now int64) {
	if now < c.st.Now {
		return
	}
	c.st.Now = now
	for _, k := range sortedKeys(c.st.Sources) {
		s := c.st.Sources[k]
		tol := c.tol(s)
		silent := tol > 0 && s.LastRecv != 0 && now-s.LastRecv > tol
		if s.Delay != nil && (silent || now-s.LastRecv > c.cfg.DelayTolerance.Milliseconds()) {
			c.closeDelay(s)
		}
		if silent && s.Down == nil {
			c.openDown(s, tol, now)
		}
		grace := c.cfg.GapGrace.Milliseconds()
		kept := s.Pending[:0]
		for _, g := range s.Pending {
			if now-g.Seen >= grace {
				c.openGap(s, g)
			} else {
				kept = append(kept, g)
			}
		}
		s.Pending = kept
		s.Outages = pruneSpans(s.Outages, now-outageMemory)
		for _, l := range s.Lines {
			for m := range l.Minutes {
				if m < now-minuteMemory {
					delete(l.Minutes, m)
				}
			}
		}
	}
	c.foldAirings(now)
	for _, d := range sortedKeys(c.st.Numbers) {
		n := c.st.Numbers[d]
		for m := range n.Minutes {
			if m < now-minuteMemory {
				delete(n.Minutes, m)
			}
		}
	}
}

func pruneSpans(spans []span, before int64) []span {
	kept := spans[:0]
	for _, s := range spans {
		if s.End >= before {
			kept = append(kept, s)
		}
	}
	return kept
}

// apply advances time to the message's received time and applies ev.
func (c *core) apply(ev *event.Event, recv int64) {
	c.advance(recv)
	if ev.Source.System == event.DetectorSystem {
		return // the detector's own events say nothing about the sources
	}
	switch {
	case ev.Kind.IsAiring():
		c.applyAiring(ev)
	case ev.Kind == event.OfferConfigured:
		c.applyOffer(ev)
	}
	s := c.source(ev.Source)
	occ := ms(ev.OccurredAt)
	lag := recv - occ
	s.pushLag(recv, lag, c.cfg.ClockWindow.Milliseconds())
	off := s.offset(c.cfg.MaxClockSkew.Milliseconds())
	o := occ + off
	c.trackDelay(s, o, lag-s.normalLag(occ, lag))
	jump := s.HasSeq && ev.Source.Seq > s.MaxSeq+1
	c.trackLiveness(s, o, recv, jump)
	c.trackSeq(s, ev.Source.Seq, o, recv)
	s.LastRecv = recv
	s.Frontier = max(s.Frontier, o)
	alive := o
	if ev.Kind == event.Heartbeat {
		s.IntervalMS = ev.IntervalSeconds * 1000
		alive = o + s.IntervalMS
	}
	s.AliveUntil = max(s.AliveUntil, alive)
	if ev.Kind == event.CallReceived {
		c.applyCall(s, ev, o)
	}
	c.checkLines(s)
}

func (c *core) source(src event.Source) *source {
	k := src.Key()
	s := c.st.Sources[k]
	if s == nil {
		s = &source{System: src.System, Instance: src.Instance, Lines: map[string]*line{}}
		c.st.Sources[k] = s
	}
	if s.Lines == nil {
		s.Lines = map[string]*line{}
	}
	return s
}

// pushLag adds a sample to the sliding-window minimum of received −
// occurred (a monotonic queue).
func (s *source) pushLag(recv, lag, window int64) {
	for len(s.Lags) > 0 && s.Lags[len(s.Lags)-1].Lag >= lag {
		s.Lags = s.Lags[:len(s.Lags)-1]
	}
	s.Lags = append(s.Lags, lagSample{Recv: recv, Lag: lag})
	for len(s.Lags) > 1 && s.Lags[0].Recv < recv-window {
		s.Lags = s.Lags[1:]
	}
}

// normalLag records an event's lag (received − occurred, at occurred
// time occ) and returns the source's normal lag: the quickest delivery
// among its events that occurred in the deliveryMemory before occ (a
// monotonic queue in occurred order). An event arriving after later ones
// is compared with the quickest delivery of the window ending at the
// latest one, and not kept. Delay is measured against it, so that a day
// imported or replayed in bulk, whose lag shrinks as its events advance,
// is not late, while events a live source spooled are: the source's
// events just before them came quickly.
func (s *source) normalLag(occ, lag int64) int64 {
	q := s.Deliveries
	if len(q) == 0 || occ >= q[len(q)-1].Occ {
		for len(q) > 0 && q[len(q)-1].Lag >= lag {
			q = q[:len(q)-1]
		}
		q = append(q, delivery{Occ: occ, Lag: lag})
		for len(q) > 1 && q[0].Occ < occ-deliveryMemory {
			q = q[1:]
		}
		if len(q) > maxDeliveries {
			// A lag that keeps growing: thin the queue, keeping its ends
			// (a later norm may then be a little slower than it was).
			thin := q[:1]
			for i := 2; i < len(q)-1; i += 2 {
				thin = append(thin, q[i])
			}
			q = append(thin, q[len(q)-1])
		}
		s.Deliveries = q
	}
	return min(q[0].Lag, lag)
}

// offset is what to add to the source's occurred times to get the server's
// clock: the smallest lag of the window (the quickest delivery, which is
// the clock difference plus a transit of milliseconds), when it is within
// maxSkew; beyond that the lag is delay, not clock error, and nothing is
// corrected.
func (s *source) offset(maxSkew int64) int64 {
	if len(s.Lags) == 0 {
		return 0
	}
	if off := s.Lags[0].Lag; off >= -maxSkew && off <= maxSkew {
		return off
	}
	return 0
}

// skewMS is the source's clock minus the server's, as estimated.
func (c *core) skewMS(s *source) int64 { return -s.offset(c.cfg.MaxClockSkew.Milliseconds()) }

func (c *core) newEvent(k event.Kind, occurred int64, parts ...string) *event.Event {
	ev := event.New(k, event.Source{System: event.DetectorSystem, Instance: c.cfg.Instance}, at(occurred))
	ev.EventID = detectionID(k, occurred, parts...)
	return ev
}

func (c *core) monitored(ev *event.Event, s *source) {
	ev.MonitoredSystem, ev.MonitoredInstance = s.System, s.Instance
	ev.ClockSkewMS = c.skewMS(s)
}

func (c *core) emit(d detection) { c.out = append(c.out, d) }

func seconds(msec int64) int64 { return max(1, (msec+999)/1000) }

// openDown opens a downtime window: nothing received from s for longer
// than its tolerance. The window starts where s was last known (or
// promised) to be recording.
func (c *core) openDown(s *source, tol, now int64) {
	start := min(s.AliveUntil, now)
	ev := c.newEvent(event.SourceDown, start, s.key(), itoa(start))
	c.monitored(ev, s)
	ev.WindowStart, ev.ToleranceSeconds = at(start), seconds(tol)
	s.Down = &downSpan{Start: start, Tol: tol, ID: ev.EventID.String()}
	c.emit(detection{Event: ev, Incident: s.Down.ID, Opens: true, Airings: c.liveAiringsServedBy(s, now)})
}

// closeDown ends s's open downtime window at end with an outcome.
func (c *core) closeDown(s *source, end int64, outcome string) {
	d := s.Down
	s.Down = nil
	end = max(end, d.Start)
	ev := c.newEvent(event.SourceUp, end, s.key(), itoa(d.Start))
	c.monitored(ev, s)
	ev.WindowStart, ev.WindowEnd, ev.ToleranceSeconds, ev.Outcome = at(d.Start), at(end), seconds(d.Tol), outcome
	if outcome == event.OutcomeDown {
		s.Outages = append(s.Outages, span{d.Start, end})
		c.markAffected(c.numbersServedBy(s), d.Start, end)
	}
	c.emit(detection{Event: ev, Incident: d.ID, Resolves: true})
}

// trackLiveness closes s's downtime window, or finds one in events
// delivered late, given the corrected occurred time o of its next event
// and its received time recv; jump says its sequence number skipped some.
func (c *core) trackLiveness(s *source, o, recv int64, jump bool) {
	tol := c.tol(s)
	if tol <= 0 {
		if s.Down != nil { // its tolerance was withdrawn
			c.closeDown(s, max(o, recv), event.OutcomeDelayed)
		}
		return
	}
	hole := s.Frontier != 0 && o-s.Frontier > tol
	switch {
	case s.Down != nil && hole && jump:
		c.closeDown(s, o, event.OutcomeLost)
	case s.Down != nil && hole:
		c.closeDown(s, o, event.OutcomeDown)
	case s.Down != nil && o >= s.Down.Start:
		// Its events caught up with the silence without a hole: they were
		// late, not missing. The window is the silence the store saw.
		c.closeDown(s, max(o, recv), event.OutcomeDelayed)
	case s.Down == nil && hole && !jump:
		// A hole in events that arrived together (a backlog): the source
		// recorded nothing for longer than its tolerance.
		start := min(s.AliveUntil, o)
		ev := c.newEvent(event.SourceDown, start, s.key(), itoa(start))
		c.monitored(ev, s)
		ev.WindowStart, ev.ToleranceSeconds = at(start), seconds(tol)
		s.Down = &downSpan{Start: start, Tol: tol, ID: ev.EventID.String()}
		c.emit(detection{Event: ev, Incident: s.Down.ID})
		c.closeDown(s, o, event.OutcomeDown)
	}
}

// trackSeq follows s's sequence numbers: a number beyond the next one
// leaves a hole (recorded after the grace); one inside a hole fills it.
func (c *core) trackSeq(s *source, seq uint64, o, recv int64) {
	switch {
	case seq == 0:
	case !s.HasSeq:
		s.HasSeq, s.MaxSeq, s.MaxSeqAt = true, seq, o
	case seq == s.MaxSeq+1:
		s.MaxSeq, s.MaxSeqAt = seq, o
	case seq > s.MaxSeq+1:
		s.Pending = append(s.Pending, gapSpan{From: s.MaxSeq + 1, To: seq - 1, Start: s.MaxSeqAt, End: max(o, s.MaxSeqAt), Seen: recv})
		s.MaxSeq, s.MaxSeqAt = seq, max(o, s.MaxSeqAt)
	default:
		if i := findGap(s.Pending, seq); i >= 0 {
			g := s.Pending[i]
			s.Pending = append(s.Pending[:i], append(splitGap(g, seq, o), s.Pending[i+1:]...)...)
			return
		}
		if i := findGap(s.Gaps, seq); i >= 0 {
			g := s.Gaps[i]
			parts := splitGap(g, seq, o)
			s.Gaps = append(s.Gaps[:i], s.Gaps[i+1:]...)
			c.closeGap(s, g, len(parts) > 0)
			for _, p := range parts {
				c.openGap(s, p)
			}
			return
		}
		if seq == 1 && s.MaxSeq > 1 {
			// The source started numbering again (its sequence state was
			// lost): take the new numbering as it comes.
			c.cfg.Logger.Warn("detector: source restarted its sequence numbers at 1", "source", s.key(), "previous", s.MaxSeq)
			s.MaxSeq, s.MaxSeqAt, s.Pending = 1, o, nil
		}
		// Otherwise a copy of an event already seen.
	}
}

func findGap(gaps []gapSpan, seq uint64) int {
	for i, g := range gaps {
		if seq >= g.From && seq <= g.To {
			return i
		}
	}
	return -1
}

// splitGap returns what is left of g once seq (occurred at o) arrived.
func splitGap(g gapSpan, seq uint64, o int64) []gapSpan {
	o = min(max(o, g.Start), g.End)
	var parts []gapSpan
	if seq > g.From {
		parts = append(parts, gapSpan{From: g.From, To: seq - 1, Start: g.Start, End: o, Seen: g.Seen})
	}
	if seq < g.To {
		parts = append(parts, gapSpan{From: seq + 1, To: g.To, Start: o, End: g.End, Seen: g.Seen})
	}
	return parts
}

func (c *core) gapEvent(k event.Kind, s *source, g gapSpan, occurred int64) *event.Event {
	ev := c.newEvent(k, occurred, s.key(), utoa(g.From), utoa(g.To))
	c.monitored(ev, s)
	ev.SeqFrom, ev.SeqTo, ev.WindowStart, ev.WindowEnd = g.From, g.To, at(g.Start), at(g.End)
	return ev
}

func (c *core) openGap(s *source, g gapSpan) {
	s.Gaps = append(s.Gaps, g)
	s.Outages = append(s.Outages, span{g.Start, g.End})
	c.markAffected(c.numbersServedBy(s), g.Start, g.End)
	ev := c.gapEvent(event.GapOpened, s, g, g.Start)
	c.emit(detection{Event: ev, Incident: ev.EventID.String()})
}

func (c *core) closeGap(s *source, g gapSpan, split bool) {
	ev := c.gapEvent(event.GapClosed, s, g, g.End)
	ev.Outcome = event.OutcomeFilled
	if split {
		ev.Outcome = event.OutcomeSplit
	}
	open := c.gapEvent(event.GapOpened, s, g, g.Start)
	c.emit(detection{Event: ev, Incident: open.EventID.String(), Resolves: true})
}

// trackDelay follows late events: delay is how much later than its
// source's normal delivery (normalLag) an event arrived.
func (c *core) trackDelay(s *source, o, delay int64) {
	if delay > c.cfg.DelayTolerance.Milliseconds() {
		if s.Delay == nil {
			s.Delay = &delaySpan{Start: o, End: o}
		}
		d := s.Delay
		d.Start, d.End, d.Max = min(d.Start, o), max(d.End, o), max(d.Max, delay)
		d.Count++
		return
	}
	if s.Delay != nil {
		c.closeDelay(s)
	}
}

func (c *core) closeDelay(s *source) {
	d := s.Delay
	s.Delay = nil
	ev := c.newEvent(event.DataDelayed, d.Start, s.key(), itoa(d.Start), event.OutcomeProducer)
	c.monitored(ev, s)
	ev.WindowStart, ev.WindowEnd, ev.DelayMS, ev.EventCount, ev.Outcome = at(d.Start), at(d.End), d.Max, d.Count, event.OutcomeProducer
	c.emit(detection{Event: ev, Incident: ev.EventID.String()})
}

// applyCall counts a call.received: the shares of its number's sources,
// its number's minutes, its line, and the airing it responds to.
func (c *core) applyCall(s *source, ev *event.Event, o int64) {
	d := dnisKey(ev.DNIS)
	if d == "" {
		return
	}
	for _, id := range s.CallIDs {
		if id == ev.CallID {
			return // the ACD sent the call again
		}
	}
	s.CallIDs = append(s.CallIDs, ev.CallID)
	if len(s.CallIDs) > callIDMemory {
		s.CallIDs = s.CallIDs[len(s.CallIDs)-callIDMemory:]
	}
	n := c.number(d)
	for k := range n.Weights {
		n.Weights[k] *= 1 - shareAlpha
	}
	n.Weights[s.key()]++
	n.Total = n.Total*(1-shareAlpha) + 1
	n.Minutes[o-o%minute]++

	if n.Line == nil {
		n.Line = &line{}
	}
	if n.Line.Silent != nil {
		c.restoreLine(nil, d, n.Line, o, 1)
	}
	n.Line.LastCall = max(n.Line.LastCall, o)
	l := s.Lines[d]
	if l == nil {
		l = &line{}
		s.Lines[d] = l
	}
	if ev.Site != "" {
		l.Site = ev.Site
	}
	if l.Minutes == nil {
		l.Minutes = map[int64]int{}
	}
	l.Minutes[o-o%minute]++
	if l.Silent != nil {
		c.restoreLine(s, d, l, o, n.share(s.key()))
	}
	l.LastCall = max(l.LastCall, o)
	if a := c.airingAt(d, o); a != nil && !a.Folded {
		i := int((o - a.Start) / minute)
		for len(a.Calls) <= i {
			a.Calls = append(a.Calls, 0)
		}
		a.Calls[i]++
	}
}

func (c *core) number(d string) *number {
	n := c.st.Numbers[d]
	if n == nil {
		n = &number{Weights: map[string]float64{}, Minutes: map[int64]int{}}
		c.st.Numbers[d] = n
	}
	return n
}

// numbersServedBy returns whether a number's calls are (partly) taken by
// s; a source that takes no calls (an order system) serves every number.
func (c *core) numbersServedBy(s *source) func(string) bool {
	k := s.key()
	served := false
	for _, n := range c.st.Numbers {
		if n.share(k) >= minShare {
			served = true
			break
		}
	}
	return func(d string) bool { return !served || c.st.Numbers[d].share(k) >= minShare }
}

// markAffected marks the airings on the numbers for which serves is true
// whose windows overlap [start, end]: they are not references.
func (c *core) markAffected(serves func(string) bool, start, end int64) {
	for _, a := range c.st.Airings {
		if !a.Folded && serves(a.DNIS) && a.Start < end && c.end(a) > start {
			a.Affected = true
		}
	}
}

func (c *core) liveAiringsServedBy(s *source, now int64) []string {
	serves := c.numbersServedBy(s)
	var ids []string
	for _, id := range sortedKeys(c.st.Airings) {
		a := c.st.Airings[id]
		if !a.DNR && serves(a.DNIS) && a.Start <= now && now < c.end(a) {
			ids = append(ids, id)
		}
	}
	return ids
}

// window is an offer's response window in minutes, for a media type.
func (c *core) window(offer, media string) int64 {
	if o, ok := c.st.Offers[offer+"|"+media]; ok && o.Window > 0 {
		return o.Window
	}
	if o, ok := c.st.Offers[offer+"|"]; ok && o.Window > 0 {
		return o.Window
	}
	return defaultWindow
}

// end is when an airing's response window closes.
func (c *core) end(a *airing) int64 {
	return max(a.Start, a.Until) + c.window(a.Offer, a.Media)*minute
}

func (c *core) applyAiring(ev *event.Event) {
	a := c.st.Airings[ev.AiringID]
	v, id := ms(ev.OccurredAt), ev.EventID.String()
	if a != nil && (v < a.Version || (v == a.Version && id <= a.VersionID)) {
		return // an older state of the airing
	}
	if a == nil {
		a = &airing{ID: ev.AiringID}
		c.st.Airings[ev.AiringID] = a
	}
	a.Offer, a.Media, a.DNIS, a.Spend, a.DNR = ev.Offer, ev.MediaType, dnisKey(ev.DNIS), ev.SpendCents, ev.DidNotRun
	a.Start, a.Until = ms(ev.AiredAt), 0
	if !ev.AiredUntil.IsZero() {
		a.Until = ms(ev.AiredUntil)
	}
	a.Version, a.VersionID = v, id
	c.byNumber = nil
}

func (c *core) applyOffer(ev *event.Event) {
	k := ev.Offer + "|" + ev.MediaType
	o, ok := c.st.Offers[k]
	v, id := ms(ev.OccurredAt), ev.EventID.String()
	if ok && (v < o.Version || (v == o.Version && id <= o.VersionID)) {
		return
	}
	c.st.Offers[k] = offerSetting{Window: ev.WindowMinutes, Version: v, VersionID: id}
}

// airingAt is the airing on number d whose window holds t: the most recent
// one, then the larger spend, then the smaller id (the attribution rule).
func (c *core) airingAt(d string, t int64) *airing {
	var best *airing
	for _, a := range c.on(d) {
		if a.DNR || t < a.Start || t >= c.end(a) {
			continue
		}
		if best == nil || a.Start > best.Start || (a.Start == best.Start && (a.Spend > best.Spend || (a.Spend == best.Spend && a.ID < best.ID))) {
			best = a
		}
	}
	return best
}

// foldAirings adds the response of airings whose windows closed (with the
// delay tolerance for late calls) to the reference curves, unless an
// incident touched them, and forgets old airings.
func (c *core) foldAirings(now int64) {
	late := c.cfg.DelayTolerance.Milliseconds()
	for _, id := range sortedKeys(c.st.Airings) {
		a := c.st.Airings[id]
		end := c.end(a)
		if !a.Folded && now >= end+late {
			a.Folded = true
			if !a.Affected && !a.DNR && a.DNIS != "" && sum(a.Calls) >= minRefCalls {
				win := int(c.window(a.Offer, a.Media))
				for _, k := range []string{a.Offer + "|" + a.Media, a.Offer + "|*", "*"} {
					c.addRef(k, a, win)
				}
			}
			a.Calls = nil
		}
		if a.Folded && end < now-airingMemory {
			delete(c.st.Airings, id)
			c.byNumber = nil
		}
	}
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

func (c *core) addRef(k string, a *airing, win int) {
	r := c.st.Refs[k]
	if r == nil {
		r = &refCurve{}
		c.st.Refs[k] = r
	}
	if len(r.Exposure) < len(r.Calls) {
		for len(r.Exposure) < len(r.Calls) {
			r.Exposure = append(r.Exposure, r.N)
		}
	}
	r.N = r.N*refDecay + 1
	for len(r.Calls) < win {
		r.Calls = append(r.Calls, 0)
		r.Exposure = append(r.Exposure, 0)
	}
	won := c.wonMinutes(a)
	for i := range r.Calls {
		r.Calls[i] *= refDecay
		r.Exposure[i] *= refDecay
		if i < won {
			r.Exposure[i]++
			if i < len(a.Calls) {
				r.Calls[i] += float64(a.Calls[i])
			}
		}
	}
}

// wonMinutes is how many whole minutes from its start airing a took its
// number's calls: until a later airing on the number (or one at the same
// moment that wins the tie) began, at most its window.
func (c *core) wonMinutes(a *airing) int {
	until := c.end(a)
	for _, b := range c.on(a.DNIS) {
		if b == a || b.DNR || b.Start < a.Start || b.Start >= until {
			continue
		}
		if b.Start > a.Start || b.Spend > a.Spend || (b.Spend == a.Spend && b.ID < a.ID) {
			until = b.Start
		}
	}
	return int((until - a.Start) / minute)
}

// refRate is the calls per minute similar airings (same offer and media
// type, else same offer) brought at minute m of their window, on average
// and smoothed; ok is false when no similar airing is known. Only its
// shape is used: how response decays.
func (c *core) refRate(a *airing, m int) (rate float64, ok bool) {
	var r *refCurve
	for _, k := range []string{a.Offer + "|" + a.Media, a.Offer + "|*"} {
		if r = c.st.Refs[k]; r != nil && r.N > 0 {
			break
		}
		r = nil
	}
	if r == nil {
		return 0, false
	}
	if m < 0 || m >= len(r.Calls) {
		return 0, true
	}
	// Smooth the curve over neighbouring minutes, more widely as the
	// response thins out: a few past airings make a noisy curve.
	h := 1 + m/10
	var sum, exposure float64
	for i := max(0, m-h); i <= min(len(r.Calls)-1, m+h); i++ {
		sum += r.Calls[i]
		if i < len(r.Exposure) {
			exposure += r.Exposure[i]
		} else {
			exposure += r.N
		}
	}
	if exposure <= 0 {
		return 0, true
	}
	return sum / exposure, true
}

// baseline is number d's calls per minute in the hour before t, over the
// minutes no airing window on it covers.
func (c *core) baseline(d string, t int64) float64 {
	n := c.st.Numbers[d]
	if n == nil {
		return 0
	}
	from := t - t%minute - baselineSpan
	calls, minutes := 0, 0
	for m := from; m < from+baselineSpan; m += minute {
		if c.inWindow(d, m) {
			continue
		}
		minutes++
		calls += n.Minutes[m]
	}
	if minutes < baselineMin {
		return 0
	}
	return float64(calls) / float64(minutes)
}

func (c *core) inWindow(d string, t int64) bool {
	for _, a := range c.on(d) {
		if !a.DNR && t+minute > a.Start && t < c.end(a) {
			return true
		}
	}
	return false
}

// expectation is how many calls a line was expected to take between two
// times. A number on several call sources: the calls its other sources
// took meanwhile, in proportion to the shares (when one site stops getting
// a number's calls, the others keep ringing). A number as a whole: its rate
// in the minutes before it fell silent, decaying as similar airings'
// response decays (or by half every ten minutes without similar airings),
// never below its baseline.
type expectation struct {
	c     *core
	d     string
	l     *line
	ratio float64 // share / (1 - share) for a line; 0 for the whole number
	r0    float64 // the whole number's recent rate, calls per minute
	t0    int64   // the middle of the span r0 was measured over
	base  float64
}

const (
	recentSpan  = 5 * minute
	recentCalls = 3    // calls in recentSpan for a number to count as ringing
	soloShare   = 0.95 // a source taking more of a number's calls is the number
	halfLife    = 10 * minute
)

// expect builds the expectation of line l (number d at source s with its
// share, or the whole number when s is nil) for a silence since from. ok
// is false when nothing can be expected: a line without other sources, a
// number that was not ringing.
func (c *core) expect(d string, s *source, l *line, share float64, from int64) (expectation, bool) {
	e := expectation{c: c, d: d, l: l}
	if s != nil {
		if share >= soloShare {
			return e, false
		}
		e.ratio = share / (1 - share)
		return e, true
	}
	calls := bucketSum(c.st.Numbers[d].Minutes, nil, from-recentSpan, from+1)
	if calls < recentCalls {
		return e, false
	}
	e.r0, e.t0, e.base = calls/float64(recentSpan/minute), from-recentSpan/2, c.baseline(d, from)
	return e, true
}

// threshold is how many calls must be expected, without one coming, for
// the line to be flagged: as unlikely by chance as no call when silent
// calls were expected of a steady (Poisson) stream. A line compared with
// its number's other sources needs more: a run of n calls all going
// elsewhere has probability (1 - share)^n.
func (e expectation) threshold(silent float64) float64 {
	if e.ratio == 0 {
		return silent
	}
	share := e.ratio / (1 + e.ratio)
	return e.ratio * silent / -math.Log(1-share)
}

// calls is the expected calls in [a, b).
func (e expectation) calls(a, b int64) float64 {
	if e.ratio > 0 {
		return e.ratio * bucketSum(e.c.st.Numbers[e.d].Minutes, e.l.Minutes, a, b)
	}
	return e.rate((a+b)/2) * float64(b-a) / float64(minute)
}

// rate is the whole number's expected calls per minute at t.
func (e expectation) rate(t int64) float64 {
	decay := math.Exp2(-float64(t-e.t0) / float64(halfLife))
	if a := e.c.airingAt(e.d, t); a != nil {
		now, ok1 := e.c.refRate(a, int((t-a.Start)/minute))
		then, ok2 := e.c.refRate(a, int((e.t0-a.Start)/minute))
		if ok1 && ok2 && then >= minRefRate && e.t0 >= a.Start {
			// The faster of the two decays: a reference aired at another
			// time than scheduled (until its post-log) has a shifted curve.
			decay = math.Min(decay, now/then)
		}
	}
	return math.Max(e.base, e.r0*math.Min(1, decay))
}

// bucketSum is the calls counted per minute in m (less those in minus)
// over [a, b), a minute counted in proportion to its overlap.
func bucketSum(m, minus map[int64]int, a, b int64) float64 {
	var sum float64
	for t := a - a%minute; t < b; t += minute {
		n := m[t] - minus[t]
		if n <= 0 {
			continue
		}
		lo, hi := max(t, a), min(t+minute, b)
		sum += float64(n) * float64(hi-lo) / float64(minute)
	}
	return sum
}

// checkLines looks for silent lines after an event of s: first s's numbers
// as wholes (a carrier failure silences a number at every call centre),
// then each number at s alone (a routing failure at one site), at the
// event time the sources' heartbeats vouch for.
func (c *core) checkLines(s *source) {
	if s.Down != nil || c.tol(s) <= 0 {
		return
	}
	for _, d := range sortedKeys(s.Lines) {
		n := c.st.Numbers[d]
		if n == nil {
			continue
		}
		if n.Line != nil && n.Line.Silent == nil {
			if now, outages, ok := c.numberWatch(d); ok {
				c.checkSilence(nil, d, n.Line, now, 1, outages)
			}
		}
		if n.Line == nil || n.Line.Silent == nil {
			c.checkSilence(s, d, s.Lines[d], s.Frontier, n.share(s.key()), s.outages())
		}
	}
}

// numberWatch returns how far every source taking number d's calls
// vouches for it (the earliest of their event times), and their outages;
// ok is false while one of them is down or unwatched.
func (c *core) numberWatch(d string) (now int64, outages []span, ok bool) {
	n := c.st.Numbers[d]
	now = math.MaxInt64
	for _, k := range sortedKeys(n.Weights) {
		if n.share(k) < minShare {
			continue
		}
		s := c.st.Sources[k]
		if s == nil || s.Down != nil || c.tol(s) <= 0 {
			return 0, nil, false
		}
		now = min(now, s.Frontier)
		outages = append(outages, s.outages()...)
	}
	return now, outages, now != math.MaxInt64
}

// checkSilence flags line l (number d at source s, or the whole number
// when s is nil) silent when it has taken no call since its last one
// although it was expected to take SilentCalls of them, the threshold being
// reached inside an airing's response window. The silence is estimated to
// have begun when one call was expected.
func (c *core) checkSilence(s *source, d string, l *line, now int64, share float64, outages []span) {
	if l == nil || l.Silent != nil || l.LastCall == 0 || share < minShare {
		return
	}
	from := max(l.LastCall, now-lineLookback)
	if now <= from || !c.liveBetween(d, from, now) {
		return
	}
	e, ok := c.expect(d, s, l, share, from)
	if !ok {
		return
	}
	threshold := e.threshold(c.cfg.SilentCalls)
	var acc float64
	one := int64(0)
	for t := from; t < now; {
		next := min(t+minute-(t-from)%minute, now)
		gain := e.calls(t, next) * float64(covered(outages, t, next)) / float64(next-t)
		if gain > 0 {
			if one == 0 && acc+gain >= 1 {
				one = t + int64((1-acc)/gain*float64(next-t))
			}
			if acc+gain >= threshold {
				// The threshold is crossed once; the flag goes at the first
				// moment from then on inside a live window, or not at all.
				cross := t + int64((threshold-acc)/gain*float64(next-t))
				if flagAt, a := c.firstLive(d, cross, now); a != nil {
					c.silence(s, d, l, max(one, from), flagAt, a)
				}
				return
			}
			acc += gain
		}
		t = next
	}
}

// liveBetween reports whether an airing window on d overlaps [from, now).
func (c *core) liveBetween(d string, from, now int64) bool {
	for _, a := range c.on(d) {
		if !a.DNR && a.Start < now && c.end(a) > from {
			return true
		}
	}
	return false
}

// covered is how much of [t, next) no outage holds: silence while a source
// itself was out says nothing about the line.
func covered(outages []span, t, next int64) int64 {
	d := next - t
	for _, o := range outages {
		lo, hi := max(o.Start, t), min(o.End, next)
		if hi > lo {
			d -= hi - lo
		}
	}
	return max(d, 0)
}

// firstLive returns the first time at or after from and before now that
// an airing window on d holds, and the airing it belongs to then.
func (c *core) firstLive(d string, from, now int64) (int64, *airing) {
	best := int64(math.MaxInt64)
	for _, a := range c.on(d) {
		if !a.DNR && c.end(a) > from {
			best = min(best, max(a.Start, from))
		}
	}
	if best >= now {
		return 0, nil
	}
	return best, c.airingAt(d, best)
}

// lineParts are the id parts and monitored source of line (d, s).
func (c *core) lineEvent(k event.Kind, s *source, d string, l *line, occurred, start int64) *event.Event {
	key := ""
	if s != nil {
		key = s.key()
	}
	ev := c.newEvent(k, occurred, d, key, itoa(start))
	if s != nil {
		c.monitored(ev, s)
		ev.Site = l.Site
	}
	ev.DNIS = d
	return ev
}

func (c *core) silence(s *source, d string, l *line, start, flagAt int64, a *airing) {
	ev := c.lineEvent(event.LineSilent, s, d, l, start, start)
	ev.AiringID, ev.WindowStart = a.ID, at(start)
	ev.ExpectedCalls = int64(math.Round(c.cfg.SilentCalls))
	l.Silent = &silence{Start: start, Airing: a.ID, ID: ev.EventID.String()}
	c.markAffected(func(n string) bool { return n == d }, start, flagAt)
	c.emit(detection{Event: ev, Incident: l.Silent.ID, Opens: true, Airings: []string{a.ID}})
}

// restoreLine ends line l's silence: a call came at o. The line is
// estimated to have worked again one expected call before it. When a whole
// number works again, its lines' silence clocks restart there.
func (c *core) restoreLine(s *source, d string, l *line, o int64, share float64) {
	sl := l.Silent
	l.Silent = nil
	end := o
	var expected float64
	if e, ok := c.expect(d, s, l, share, sl.Start); ok {
		// Walk back from o to where one call was expected, at most a
		// minute: deep into a silence the expected rate rests on a
		// decaying extrapolation, and a rate too low would move the end
		// far too early.
		var back float64
		floor := max(sl.Start, o-minute)
		for t := o; t > floor; {
			prev := max(t-minute, floor)
			gain := e.calls(prev, t)
			if back+gain >= 1 {
				end = t - int64((1-back)/gain*float64(t-prev))
				break
			}
			back += gain
			t = prev
			end = t
		}
		end = min(max(end, sl.Start), o)
		expected = e.calls(sl.Start, end)
	}
	if s == nil {
		for _, src := range c.st.Sources {
			if sl := src.Lines[d]; sl != nil {
				sl.LastCall = max(sl.LastCall, end)
			}
		}
	}
	ev := c.lineEvent(event.LineRestored, s, d, l, end, sl.Start)
	ev.AiringID, ev.WindowStart, ev.WindowEnd = sl.Airing, at(sl.Start), at(end)
	ev.ExpectedCalls = int64(math.Round(expected))
	c.markAffected(func(n string) bool { return n == d }, sl.Start, end)
	c.emit(detection{Event: ev, Incident: sl.ID, Resolves: true})
}
