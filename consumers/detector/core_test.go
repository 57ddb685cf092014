package detector

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/airtally/airtally/producers/event"
)

var t0 = time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC)

func mins(m float64) time.Duration { return time.Duration(m * float64(time.Minute)) }

// sim feeds the core events with chosen received times, as JetStream
// would deliver them.
type sim struct {
	t    *testing.T
	c    *core
	seq  map[string]uint64
	dets []detection
}

func testConfig() Config {
	return Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), CheckInterval: -1}.WithDefaults()
}

func newSim(t *testing.T, cfg Config) *sim {
	return &sim{t: t, c: newCore(cfg, nil), seq: map[string]uint64{}}
}

// number gives ev the next sequence number of its source unless it has
// one.
func (s *sim) number(ev *event.Event) *event.Event {
	k := ev.Source.Key()
	if ev.Source.Seq == 0 {
		s.seq[k]++
		ev.Source.Seq = s.seq[k]
	} else {
		s.seq[k] = max(s.seq[k], ev.Source.Seq)
	}
	return ev
}

func (s *sim) deliver(ev *event.Event, recv time.Time) {
	s.t.Helper()
	if ev.EventID.Version() != 7 {
		s.t.Fatal("event without id")
	}
	ev.Source.Seq = max(ev.Source.Seq, 1)
	if err := ev.Validate(); err != nil {
		s.t.Fatalf("invalid test event: %v", err)
	}
	s.c.apply(ev, ms(recv))
	s.collect()
}

func (s *sim) advance(now time.Time) {
	s.c.advance(ms(now))
	s.collect()
}

func (s *sim) collect() {
	s.t.Helper()
	for _, d := range s.c.take() {
		check := *d.Event
		check.Source.Seq = 1 // the publisher numbers it
		if err := check.Validate(); err != nil {
			s.t.Fatalf("detection %s is invalid: %v", d.Event.Kind, err)
		}
		s.dets = append(s.dets, d)
	}
}

func heartbeat(src string, occurred time.Time, every time.Duration) *event.Event {
	sys, inst, _ := strings.Cut(src, ".")
	ev := event.New(event.Heartbeat, event.Source{System: sys, Instance: inst}, occurred)
	ev.IntervalSeconds = int64(every / time.Second)
	return ev
}

func callAt(src, dnis, id string, occurred time.Time) *event.Event {
	sys, inst, _ := strings.Cut(src, ".")
	ev := event.New(event.CallReceived, event.Source{System: sys, Instance: inst}, occurred)
	ev.CallID, ev.DNIS, ev.Site = id, dnis, inst
	return ev
}

func (s *sim) of(kinds ...event.Kind) []*event.Event {
	var out []*event.Event
	for _, d := range s.dets {
		for _, k := range kinds {
			if d.Event.Kind == k {
				out = append(out, d.Event)
			}
		}
	}
	return out
}

func (s *sim) summary() string {
	var b strings.Builder
	for _, d := range s.dets {
		e := d.Event
		fmt.Fprintf(&b, "%s %s %s [%s, %s] %s %d-%d\n", e.Kind, e.MonitoredKey(), e.DNIS, e.WindowStart.Format("15:04:05"),
			e.WindowEnd.Format("15:04:05"), e.Outcome, e.SeqFrom, e.SeqTo)
	}
	return b.String()
}

func sameTime(t *testing.T, what string, got, want time.Time, within time.Duration) {
	t.Helper()
	if d := got.Sub(want); d < -within || d > within {
		t.Errorf("%s = %s, want %s (±%s)", what, got.Format(time.TimeOnly), want.Format(time.TimeOnly), within)
	}
}

// TestDowntimeWindow: a source that stops opens a downtime window as soon
// as its silence passes its tolerance (measured on the other sources'
// traffic), starting when its next heartbeat was due, and the next event
// closes it as downtime; the other source is untouched.
func TestDowntimeWindow(t *testing.T) {
	s := newSim(t, testConfig())
	for m := 0; m <= 30; m++ {
		now := t0.Add(mins(float64(m)))
		s.deliver(s.number(heartbeat("acd.b", now, time.Minute)), now.Add(20*time.Millisecond))
		if m <= 10 || m >= 20 {
			s.deliver(s.number(heartbeat("acd.a", now, time.Minute)), now.Add(30*time.Millisecond))
		}
		if m == 11 && len(s.of(event.SourceDown)) != 0 {
			t.Fatalf("down before the tolerance passed: %s", s.summary())
		}
		if m == 12 && len(s.of(event.SourceDown)) != 1 {
			t.Fatalf("not down once the tolerance (1m30s) passed: %s", s.summary())
		}
	}
	downs, ups := s.of(event.SourceDown), s.of(event.SourceUp)
	if len(downs) != 1 || len(ups) != 1 || len(s.dets) != 2 {
		t.Fatalf("want one down and one up, got:\n%s", s.summary())
	}
	d, u := downs[0], ups[0]
	if d.MonitoredKey() != "acd.a" || d.ToleranceSeconds != 90 || u.Outcome != event.OutcomeDown {
		t.Fatalf("down %+v up %+v", d, u)
	}
	sameTime(t, "window start", u.WindowStart, t0.Add(11*time.Minute), 100*time.Millisecond)
	sameTime(t, "window end", u.WindowEnd, t0.Add(20*time.Minute), 100*time.Millisecond)
	if !d.WindowStart.Equal(u.WindowStart) || d.OccurredAt != d.WindowStart || u.OccurredAt != u.WindowEnd {
		t.Error("down and up do not describe the same window at their occurred times")
	}
	if s.dets[0].Incident != s.dets[1].Incident || !s.dets[0].Opens || !s.dets[1].Resolves {
		t.Error("the up does not resolve the down's incident")
	}
}

// TestSpoolIsDelayNotDowntime: a producer cut off from the event store for
// five minutes spools and delivers: the silence opens a window (the
// detector cannot know yet), which its late events close as delayed, with
// a data.delayed of the span; no downtime.
func TestSpoolIsDelayNotDowntime(t *testing.T) {
	s := newSim(t, testConfig())
	for m := 0; m <= 20; m++ {
		now := t0.Add(mins(float64(m)))
		s.deliver(s.number(heartbeat("acd.b", now, time.Minute)), now.Add(20*time.Millisecond))
		switch {
		case m < 10 || m > 15:
			s.deliver(s.number(heartbeat("acd.a", now, time.Minute)), now.Add(20*time.Millisecond))
		case m == 15:
			// The spool: events of minutes 10 to 15, in order, now.
			for k := 10; k <= 15; k++ {
				at := t0.Add(mins(float64(k)))
				s.deliver(s.number(heartbeat("acd.a", at, time.Minute)), now.Add(time.Duration(k)*time.Millisecond+time.Second))
				s.deliver(s.number(callAt("acd.a", "8005550101", fmt.Sprint("c", k), at.Add(20*time.Second))), now.Add(time.Duration(k)*time.Millisecond+time.Second))
			}
		}
	}
	ups := s.of(event.SourceUp)
	if len(ups) != 1 || ups[0].Outcome != event.OutcomeDelayed {
		t.Fatalf("want one source.up delayed, got:\n%s", s.summary())
	}
	delays := s.of(event.DataDelayed)
	if len(delays) != 1 {
		t.Fatalf("want one data.delayed, got:\n%s", s.summary())
	}
	dl := delays[0]
	if dl.MonitoredKey() != "acd.a" || dl.Outcome != event.OutcomeProducer || dl.EventCount < 10 {
		t.Fatalf("delay %+v", dl)
	}
	if dl.DelayMS < (4*time.Minute+50*time.Second).Milliseconds() || dl.DelayMS > (5*time.Minute+2*time.Second).Milliseconds() {
		t.Errorf("delay %dms, want about five minutes", dl.DelayMS)
	}
	sameTime(t, "delay start", dl.WindowStart, t0.Add(10*time.Minute), time.Second)
	if len(s.of(event.GapOpened)) != 0 {
		t.Errorf("a spool made a gap:\n%s", s.summary())
	}
}

// TestGapOpenedAndFilled: a hole in the sequence is recorded after the
// grace with its range and time span; a late arrival splits it, the rest
// fills it; a hole filled within the grace is never recorded.
func TestGapOpenedAndFilled(t *testing.T) {
	s := newSim(t, testConfig())
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	send := func(seq uint64, sec, recvSec int) {
		ev := callAt("acd.a", "8005550101", fmt.Sprint("c", seq), at(sec))
		ev.Source.Seq = seq
		s.deliver(ev, at(recvSec).Add(10*time.Millisecond))
	}
	for i := uint64(1); i <= 10; i++ {
		send(i, int(i), int(i))
	}
	send(15, 15, 15) // 11-14 missing
	send(16, 16, 16)
	if len(s.of(event.GapOpened)) != 0 {
		t.Fatal("gap recorded within the grace")
	}
	send(17, 30, 30) // the grace (10s) passed
	opened := s.of(event.GapOpened)
	if len(opened) != 1 || opened[0].SeqFrom != 11 || opened[0].SeqTo != 14 {
		t.Fatalf("want gap 11-14, got:\n%s", s.summary())
	}
	sameTime(t, "gap start", opened[0].WindowStart, at(10), 50*time.Millisecond)
	sameTime(t, "gap end", opened[0].WindowEnd, at(15), 50*time.Millisecond)

	send(12, 12, 40) // late: splits 11-14 into 11 and 13-14
	send(11, 11, 41) // fills 11
	send(13, 13, 42)
	send(14, 14, 43) // fills the rest
	closed := s.of(event.GapClosed)
	if len(closed) != 4 {
		t.Fatalf("want four closes (split, filled, split, filled), got:\n%s", s.summary())
	}
	if closed[0].Outcome != event.OutcomeSplit || closed[len(closed)-1].Outcome != event.OutcomeFilled {
		t.Errorf("outcomes:\n%s", s.summary())
	}
	if src := s.c.st.Sources["acd.a"]; len(src.Gaps) != 0 || len(src.Pending) != 0 {
		t.Errorf("gaps left open: %+v %+v", src.Gaps, src.Pending)
	}

	send(20, 44, 44) // 18-19 missing...
	send(18, 45, 45) // ...18 arrives within the grace
	send(19, 46, 46)
	send(21, 70, 70)
	if n := len(s.of(event.GapOpened)); n != 4 { // 11-14, then 11 and 13-14, then 14, from the splits
		t.Errorf("a hole filled within the grace was recorded:\n%s", s.summary())
	}
}

// TestClockSkew: sources whose clocks are several minutes off (behind and
// ahead) are neither delayed nor down while they send; their windows are
// placed in the server's clock when they stop.
func TestClockSkew(t *testing.T) {
	for _, skew := range []time.Duration{-6 * time.Minute, 4 * time.Minute} {
		t.Run(skew.String(), func(t *testing.T) {
			s := newSim(t, testConfig())
			for m := 0; m <= 30; m++ {
				now := t0.Add(mins(float64(m)))
				s.deliver(s.number(heartbeat("acd.ref", now, time.Minute)), now.Add(15*time.Millisecond))
				if m <= 10 || m >= 20 {
					// The source's clock is off by skew: it writes now+skew.
					s.deliver(s.number(heartbeat("acd.drift", now.Add(skew), time.Minute)), now.Add(40*time.Millisecond))
					s.deliver(s.number(callAt("acd.drift", "8005550101", fmt.Sprint("c", m), now.Add(skew).Add(30*time.Second))), now.Add(30*time.Second+40*time.Millisecond))
				}
			}
			if n := len(s.of(event.DataDelayed)); n != 0 {
				t.Fatalf("clock skew taken for delay:\n%s", s.summary())
			}
			ups := s.of(event.SourceUp)
			if len(ups) != 1 || ups[0].Outcome != event.OutcomeDown || ups[0].MonitoredKey() != "acd.drift" {
				t.Fatalf("want one downtime of acd.drift:\n%s", s.summary())
			}
			// Last heard at 10:30 (a call), next heartbeat due 11:00, back at
			// 20:00: in the server's clock, whatever the source's.
			sameTime(t, "window start", ups[0].WindowStart, t0.Add(11*time.Minute), time.Second)
			sameTime(t, "window end", ups[0].WindowEnd, t0.Add(20*time.Minute), time.Second)
			wantSkew := skew.Milliseconds()
			if got := ups[0].ClockSkewMS; got < wantSkew-100 || got > wantSkew+100 {
				t.Errorf("clock_skew_ms = %d, want about %d", got, wantSkew)
			}
		})
	}
}

// TestBacklogHole: events that arrive together long after they happened
// (a backlog, a day played at once) still show a source's downtime, from
// the hole in their occurred times; they are not late (the source never
// delivered them any quicker).
func TestBacklogHole(t *testing.T) {
	s := newSim(t, testConfig())
	recv := t0.Add(24 * time.Hour)
	for m := 0; m <= 30; m++ {
		if m > 10 && m < 20 {
			continue
		}
		s.deliver(s.number(heartbeat("acd.a", t0.Add(mins(float64(m))), time.Minute)), recv.Add(time.Duration(m)*time.Millisecond))
	}
	s.advance(recv.Add(time.Second))
	ups := s.of(event.SourceUp)
	if len(ups) != 1 || ups[0].Outcome != event.OutcomeDown {
		t.Fatalf("want the hole as downtime:\n%s", s.summary())
	}
	sameTime(t, "window start", ups[0].WindowStart, t0.Add(11*time.Minute), 0)
	sameTime(t, "window end", ups[0].WindowEnd, t0.Add(20*time.Minute), 0)
	if n := len(s.of(event.DataDelayed)); n != 0 {
		t.Errorf("a day played at once was called late:\n%s", s.summary())
	}
}

// TestLateAgainstTheSourcesOwnDelivery: late means late against how the
// source normally delivers, not against the wall clock. A day imported in
// bulk a day later (its lag shrinking as its events advance) is not late;
// the same source then live and spooling for five minutes is, by the
// spool's length; a source that spooled before it was ever heard has no
// norm to be late against.
func TestLateAgainstTheSourcesOwnDelivery(t *testing.T) {
	s := newSim(t, testConfig())
	replayed := t0.Add(24 * time.Hour)
	// Yesterday's events of acd.a, all received within a second, a day on.
	for m := 0; m < 60; m++ {
		at := t0.Add(mins(float64(m)))
		s.deliver(s.number(heartbeat("acd.a", at, time.Minute)), replayed.Add(time.Duration(m)*10*time.Millisecond))
		s.deliver(s.number(callAt("acd.a", "8005550101", fmt.Sprint("old", m), at.Add(20*time.Second))), replayed.Add(time.Duration(m)*10*time.Millisecond+5*time.Millisecond))
	}
	if n := len(s.of(event.DataDelayed)); n != 0 {
		t.Fatalf("a day replayed in bulk was called late:\n%s", s.summary())
	}
	// Then live, with a five-minute spool at minutes 20 to 25.
	live := replayed.Add(time.Minute)
	for m := 0; m <= 40; m++ {
		now := live.Add(mins(float64(m)))
		switch {
		case m < 20 || m > 25:
			s.deliver(s.number(heartbeat("acd.a", now, time.Minute)), now.Add(30*time.Millisecond))
		case m == 25:
			for k := 20; k <= 25; k++ {
				at := live.Add(mins(float64(k)))
				s.deliver(s.number(heartbeat("acd.a", at, time.Minute)), now.Add(time.Duration(k)*time.Millisecond+time.Second))
			}
		}
	}
	delays := s.of(event.DataDelayed)
	if len(delays) != 1 {
		t.Fatalf("want one data.delayed (the spool), got:\n%s", s.summary())
	}
	if d := time.Duration(delays[0].DelayMS) * time.Millisecond; d < 4*time.Minute+50*time.Second || d > 5*time.Minute+2*time.Second {
		t.Errorf("spool delay %s, want about five minutes", d)
	}
	sameTime(t, "delay start", delays[0].WindowStart, live.Add(20*time.Minute), time.Second)

	// A source first heard through its spool: nothing to be late against.
	first := live.Add(time.Hour)
	for k := 0; k < 5; k++ {
		s.deliver(s.number(heartbeat("acd.new", first.Add(mins(float64(k))), time.Minute)), first.Add(5*time.Minute+time.Duration(k)*time.Millisecond))
	}
	if n := len(s.of(event.DataDelayed)); n != 1 {
		t.Errorf("a source's first events were called late:\n%s", s.summary())
	}
}

// TestSourcesWithoutHeartbeats: a batch source (the schedule importer)
// that never announced a heartbeat is not watched for downtime, unless
// configured.
func TestSourcesWithoutHeartbeats(t *testing.T) {
	for _, configured := range []bool{false, true} {
		cfg := testConfig()
		if configured {
			cfg.SourceTolerance = map[string]time.Duration{"schedule.demo": 10 * time.Minute}
		}
		s := newSim(t, cfg)
		ev := s.number(callAt("schedule.demo", "8005550101", "x", t0))
		s.deliver(ev, t0)
		s.advance(t0.Add(time.Hour))
		if got := len(s.of(event.SourceDown)); got != map[bool]int{false: 0, true: 1}[configured] {
			t.Errorf("configured=%v: %d downs", configured, got)
		}
	}
}

// silentLineDay is a day with three airings on one number answered by two
// call centres; in the third, the number stops ringing at one of them from
// minute 8 to minute 25 of its window, while its heartbeats go on.
func silentLineDay(t *testing.T, rng *rand.Rand, s *sim, tick func(time.Time)) (silentFrom, silentTo time.Time) {
	const dnis = "8005550102"
	airs := []time.Time{t0, t0.Add(2 * time.Hour), t0.Add(4 * time.Hour)}
	silentFrom, silentTo = airs[2].Add(8*time.Minute), airs[2].Add(25*time.Minute)
	type item struct {
		ev   *event.Event
		recv time.Time
	}
	var items []item
	add := func(ev *event.Event, at time.Time) { items = append(items, item{ev, at}) }
	for i, a := range airs {
		ev := event.New(event.AiringScheduled, event.Source{System: "schedule", Instance: "demo"}, t0.Add(-48*time.Hour))
		ev.AiringID, ev.Offer, ev.Station, ev.DNIS, ev.AiredAt, ev.SpendCents, ev.Currency = fmt.Sprint("A", i), "flex", "WXYZ", dnis, a, 50000, "USD"
		add(ev, t0.Add(-48*time.Hour).Add(time.Duration(i)*time.Second))
	}
	calls := 0
	for _, a := range airs {
		// About 240 response calls, decaying over the hour, and a baseline.
		for range 240 {
			at := a.Add(time.Duration(rng.ExpFloat64() * float64(15*time.Minute)))
			if at.Sub(a) < time.Hour {
				calls++
				src := []string{"acd.tampa", "acd.phoenix"}[rng.IntN(2)]
				if src == "acd.tampa" && !at.Before(silentFrom) && at.Before(silentTo) {
					continue
				}
				add(callAt(src, dnis, fmt.Sprint("c", calls), at), at.Add(50*time.Millisecond))
			}
		}
	}
	for m := -90; m <= 300; m++ {
		at := t0.Add(mins(float64(m)))
		add(heartbeat("acd.tampa", at, time.Minute), at.Add(10*time.Millisecond))
		add(heartbeat("acd.phoenix", at, time.Minute), at.Add(10*time.Millisecond))
		if rng.IntN(10) == 0 {
			calls++
			src := []string{"acd.tampa", "acd.phoenix"}[rng.IntN(2)]
			if src == "acd.tampa" && !at.Before(silentFrom) && at.Before(silentTo) {
				continue
			}
			add(callAt(src, dnis, fmt.Sprint("c", calls), at.Add(7*time.Second)), at.Add(7*time.Second+time.Millisecond))
		}
	}
	// Deliver in received order.
	for i := 1; i < len(items); i++ {
		for j := i; j > 0 && items[j].recv.Before(items[j-1].recv); j-- {
			items[j], items[j-1] = items[j-1], items[j]
		}
	}
	for _, it := range items {
		if tick != nil {
			tick(it.recv)
		}
		s.deliver(s.number(it.ev), it.recv)
	}
	return silentFrom, silentTo
}

// TestSilentLine: the number falls silent at one call centre during an
// airing expected (from the two airings before) to bring calls: a
// suspected outage from about when it stopped until about when it rang
// again, while the other call centre's line stays healthy.
func TestSilentLine(t *testing.T) {
	s := newSim(t, testConfig())
	from, to := silentLineDay(t, rand.New(rand.NewPCG(7, 7)), s, nil)
	silent, restored := s.of(event.LineSilent), s.of(event.LineRestored)
	if len(silent) != 1 || len(restored) != 1 {
		t.Fatalf("want one silent line and its restoration:\n%s", s.summary())
	}
	sl, rs := silent[0], restored[0]
	if sl.MonitoredKey() != "acd.tampa" || sl.DNIS != "8005550102" || sl.AiringID != "A2" || sl.Site != "tampa" {
		t.Fatalf("silent line %+v", sl)
	}
	sameTime(t, "silence start", rs.WindowStart, from, time.Minute)
	sameTime(t, "silence end", rs.WindowEnd, to, time.Minute)
	if rs.ExpectedCalls < 8 {
		t.Errorf("expected calls %d over a 17-minute silence at peak", rs.ExpectedCalls)
	}
	if n := len(s.of(event.SourceDown, event.GapOpened)); n != 0 {
		t.Errorf("the silent line looked like downtime or a gap:\n%s", s.summary())
	}
}

// TestSameDetectionsWhateverTheChecks: the detections depend on the events
// and their received times only, not on when checks by the clock run, nor
// on a restart from a saved state: same ids, same content.
func TestSameDetectionsWhateverTheChecks(t *testing.T) {
	run := func(ticks bool, restartEvery int) []string {
		s := newSim(t, testConfig())
		rng := rand.New(rand.NewPCG(11, 3))
		n := 0
		var tick func(time.Time)
		if ticks || restartEvery > 0 {
			tick = func(next time.Time) {
				n++
				if ticks && n%3 == 0 && next.After(at(s.c.st.Now)) {
					// A check by the clock somewhere before the next event.
					gap := next.Sub(at(s.c.st.Now))
					s.advance(at(s.c.st.Now).Add(time.Duration(rng.Int64N(int64(gap)))))
				}
				if restartEvery > 0 && n%restartEvery == 0 {
					raw, err := json.Marshal(s.c.st)
					if err != nil {
						t.Fatal(err)
					}
					st := newState()
					if err := json.Unmarshal(raw, st); err != nil {
						t.Fatal(err)
					}
					st.fill()
					s.c = newCore(testConfig(), st)
				}
			}
		}
		silentLineDay(t, rand.New(rand.NewPCG(7, 7)), s, tick)
		var out []string
		for _, d := range s.dets {
			b, _ := json.Marshal(d.Event)
			out = append(out, string(b))
		}
		return out
	}
	want := run(false, 0)
	if len(want) == 0 {
		t.Fatal("no detections")
	}
	for _, tc := range []struct {
		name    string
		ticks   bool
		restart int
	}{{"clock checks", true, 0}, {"restarts from snapshots", false, 97}, {"both", true, 41}} {
		t.Run(tc.name, func(t *testing.T) {
			got := run(tc.ticks, tc.restart)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("detections differ:\n got %v\nwant %v", got, want)
			}
		})
	}
}
