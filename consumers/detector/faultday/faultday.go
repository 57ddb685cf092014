// Package faultday turns a demo broadcast day (internal/demoday) into what
// the event store would receive on a bad day, with the truth of what went
// wrong: a call centre down for ten minutes inside one airing's window, a
// range of events dropped between a source and the broker, a number that
// falls silent at both call centres while their heartbeats go on, a
// producer that spools for five minutes and then delivers, and a producer
// whose clock is four minutes behind. The detector's proof plays it.
package faultday

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/producers/event"
)

// Config shapes the day.
type Config struct {
	// Date and Seed are the demo day's (see demoday.Config).
	Date time.Time
	Seed uint64
	// Response scales the calls each airing brings; default 12 (about 500
	// calls per airing: the calls a fault drops are a random draw, and a
	// draw of a few dozen calls is too noisy to judge an estimate by).
	Response float64
	// Transit is the least time from a producer to the event store;
	// default 40ms (each event adds up to 30ms more).
	Transit time.Duration
}

// Delivery is an event as the event store received it.
type Delivery struct {
	Event    *event.Event
	Received time.Time
}

// Span is a fault's time span (UTC), To excluded.
type Span struct {
	From, To time.Time
}

// Minutes is the span's length in minutes.
func (s Span) Minutes() float64 { return s.To.Sub(s.From).Minutes() }

// Faults are the faults injected.
type Faults struct {
	// Outage: Source sent nothing (it was down) during Span.
	OutageSource string
	Outage       Span
	// Gap: Source's events GapFrom to GapTo (sequence numbers) were lost
	// between it and the broker; GapSpan runs from the event before them to
	// the event after them.
	GapSource      string
	GapFrom, GapTo uint64
	GapSpan        Span
	// Silent: calls to SilentDNIS never reached either call centre during
	// Silent, while their heartbeats went on.
	SilentDNIS string
	Silent     Span
	// Spool: SpoolSource could not reach the broker during Spool; its
	// events of that span were delivered at its end.
	SpoolSource string
	Spool       Span
	// Skew: SkewSource's clock is Skew off (negative: behind).
	SkewSource string
	Skew       time.Duration
}

// AiringTruth is what the faults did to one airing.
type AiringTruth struct {
	// UncoveredMinutes is how long, within its response window, some of
	// its response could not be recorded (the union of the faults' spans).
	UncoveredMinutes float64
	// DroppedCalls and DroppedOrders are the calls and orders attributed to
	// it on the day as it happened that the event store's day lacks.
	DroppedCalls, DroppedOrders int64
	// Causes name the faults: "outage", "gap", "silent".
	Causes []string
}

// Day is a faulted day.
type Day struct {
	// Full is the day as it happened (its Truth: every figure).
	Full demoday.Day
	// Delivered is what reached the event store, in the order it did.
	Delivered []Delivery
	// Faults are the faults injected.
	Faults Faults
	// Airings is the truth for every airing the faults touched; every other
	// airing is fully recorded.
	Airings map[string]AiringTruth
	// Received is the truth computed from the delivered events.
	Received demoday.Truth
}

// Generate builds the faulted day.
func Generate(cfg Config) Day {
	if cfg.Response == 0 {
		cfg.Response = 12
	}
	if cfg.Transit == 0 {
		cfg.Transit = 40 * time.Millisecond
	}
	full := demoday.Generate(demoday.Config{Date: cfg.Date, Seed: cfg.Seed, Response: cfg.Response, HeartbeatEvery: time.Minute})
	start := full.From
	f := Faults{
		OutageSource: demoday.ACDTampa.Key(), Outage: Span{start.Add(197 * time.Minute), start.Add(207 * time.Minute)},
		SilentDNIS: "8005550102", Silent: Span{start.Add(818 * time.Minute), start.Add(833 * time.Minute)},
		SpoolSource: demoday.ACDTampa.Key(), Spool: Span{start.Add(850 * time.Minute), start.Add(855 * time.Minute)},
		GapSource:  demoday.ACDPhoenix.Key(),
		SkewSource: demoday.Console.Key(), Skew: -4 * time.Minute,
	}
	gapSpan := Span{start.Add(482 * time.Minute), start.Add(492 * time.Minute)}

	evs := make([]*event.Event, len(full.Events))
	for i, e := range full.Events {
		c := *e
		evs[i] = &c
	}

	// The outage: the call centre recorded nothing; calls it would have
	// taken were lost, and with them their orders.
	lostCalls := map[string]bool{}
	evs = drop(evs, func(e *event.Event) bool {
		if e.Source.Key() == f.OutageSource && in(e.OccurredAt, f.Outage) {
			if e.Kind == event.CallReceived {
				lostCalls[callKey(e)] = true
			}
			return true
		}
		return false
	})
	// The silent number: calls to it never reached either call centre.
	for _, e := range evs {
		if e.Kind == event.CallReceived && report.DNISKey(e.DNIS) == f.SilentDNIS && in(e.OccurredAt, f.Silent) {
			lostCalls[callKey(e)] = true
		}
	}
	lostOrders := map[string]bool{}
	evs = drop(evs, func(e *event.Event) bool {
		switch {
		case e.Kind.IsCall():
			return lostCalls[callKey(e)] // none of a lost call's events exist
		case e.Kind == event.OrderPlaced && e.CallID != "" && lostCalls[phoneKey(e)]:
			lostOrders[e.OrderID] = true
			return true
		case e.Kind == event.OrderCancelled && lostOrders[e.OrderID]:
			return true
		}
		return false
	})
	// A source that was down, or never got the calls, numbered nothing.
	renumber(evs)

	// The gap: a range of a call centre's events lost between it and the
	// broker (its numbers were used).
	var before, after *event.Event
	evs = drop(evs, func(e *event.Event) bool {
		if e.Source.Key() != f.GapSource {
			return false
		}
		switch {
		case in(e.OccurredAt, gapSpan):
			if f.GapFrom == 0 {
				f.GapFrom = e.Source.Seq
			}
			f.GapTo = e.Source.Seq
			return true
		case e.OccurredAt.Before(gapSpan.From):
			before = e
		case after == nil:
			after = e
		}
		return false
	})
	f.GapSpan = Span{before.OccurredAt, after.OccurredAt}

	// Received times: transit, the spool, the skewed clock.
	out := Receive(evs, cfg.Transit, []Spool{{Source: f.SpoolSource, Span: f.Spool}}, map[string]time.Duration{f.SkewSource: f.Skew})

	d := Day{Full: full, Delivered: out, Faults: f, Airings: map[string]AiringTruth{}}
	received := make([]*event.Event, len(out))
	for i, dl := range out {
		received[i] = dl.Event
	}
	d.Received = demoday.ComputeTruth(received, report.DefaultConfig())
	d.truth()
	return d
}

// Spool is a producer cut off from the event store during Span: its
// events of that span were delivered at its end.
type Spool struct {
	Source string
	Span   Span
}

// Receive gives every event (in occurred order, numbered) the time the
// event store received it: its occurred time plus transit (at least
// transit, up to 30ms more); a spooled source's events of its spool
// delivered at the spool's end, in order within milliseconds; a skewed
// source's occurred times moved by its skew (received times stay true); a
// source's events received in its order. The deliveries are in received
// order.
func Receive(evs []*event.Event, transit time.Duration, spools []Spool, skews map[string]time.Duration) []Delivery {
	var out []Delivery
	lastRecv := map[string]time.Time{}
	for _, e := range evs {
		recv := e.OccurredAt.Add(transit + jitter(e))
		for _, sp := range spools {
			if e.Source.Key() == sp.Source && in(e.OccurredAt, sp.Span) {
				// Forwarded in order within milliseconds, before anything newer.
				recv = sp.Span.To.Add(e.OccurredAt.Sub(sp.Span.From) / 100_000)
			}
		}
		if skew, ok := skews[e.Source.Key()]; ok {
			e.OccurredAt = e.OccurredAt.Add(skew)
		}
		// A source's events reach the store in its order (the publisher
		// sends one at a time).
		if last, ok := lastRecv[e.Source.Key()]; ok && !recv.After(last) {
			recv = last.Add(time.Microsecond)
		}
		lastRecv[e.Source.Key()] = recv
		out = append(out, Delivery{Event: e, Received: recv})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Received.Before(out[j].Received) })
	return out
}

// Contains reports whether t is in the span.
func (s Span) Contains(t time.Time) bool { return in(t, s) }

// Overlap is the part of s within b; ok is false when they do not overlap.
func (s Span) Overlap(b Span) (o Span, ok bool) { return overlap(s, b) }

// UnionMinutes is the length of the union of spans, in minutes (0 for
// none).
func UnionMinutes(spans []Span) float64 {
	if len(spans) == 0 {
		return 0
	}
	return unionMinutes(append([]Span(nil), spans...))
}

// Renumber gives each source's events the numbers 1, 2, ... again, in the
// order given (occurred order).
func Renumber(evs []*event.Event) { renumber(evs) }

// truth works out which airings the faults touched and how.
func (d *Day) truth() {
	f := d.Faults
	for id, a := range d.Full.Truth.Airings {
		if a.DidNotRun {
			continue
		}
		win := Span{time.UnixMilli(a.ResponseStart).UTC(), time.UnixMilli(a.ResponseEnd).UTC()}
		var spans []Span
		var causes []string
		for _, c := range []struct {
			name    string
			s       Span
			applies bool
		}{
			{"outage", f.Outage, true},
			{"gap", f.GapSpan, true},
			{"silent", f.Silent, report.DNISKey(a.DNIS) == f.SilentDNIS},
		} {
			if o, ok := overlap(win, c.s); ok && c.applies {
				spans = append(spans, o)
				causes = append(causes, c.name)
			}
		}
		if len(spans) == 0 {
			continue
		}
		got := d.Received.Airings[id]
		d.Airings[id] = AiringTruth{
			UncoveredMinutes: unionMinutes(spans),
			DroppedCalls:     a.Calls - got.Calls,
			DroppedOrders:    a.Orders - got.Orders,
			Causes:           causes,
		}
	}
}

func in(t time.Time, s Span) bool { return !t.Before(s.From) && t.Before(s.To) }

func overlap(a, b Span) (Span, bool) {
	lo, hi := a.From, a.To
	if b.From.After(lo) {
		lo = b.From
	}
	if b.To.Before(hi) {
		hi = b.To
	}
	return Span{lo, hi}, hi.After(lo)
}

func unionMinutes(spans []Span) float64 {
	sort.Slice(spans, func(i, j int) bool { return spans[i].From.Before(spans[j].From) })
	var total time.Duration
	cur := spans[0]
	for _, s := range spans[1:] {
		if s.From.After(cur.To) {
			total += cur.To.Sub(cur.From)
			cur = s
			continue
		}
		if s.To.After(cur.To) {
			cur.To = s.To
		}
	}
	total += cur.To.Sub(cur.From)
	return total.Minutes()
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

// callKey identifies a call as the attribution does: source system and
// call id.
func callKey(e *event.Event) string { return e.Source.System + "\x00" + e.CallID }

// phoneKey is the call of a phone order (the call centres' system is
// "acd").
func phoneKey(e *event.Event) string { return demoday.ACDTampa.System + "\x00" + e.CallID }

// renumber gives each source's events the numbers 1, 2, ... again, in
// occurred order.
func renumber(evs []*event.Event) {
	seq := map[string]uint64{}
	for _, e := range evs {
		k := e.Source.Key()
		seq[k]++
		e.Source.Seq = seq[k]
	}
}

// jitter is a deterministic extra transit of up to 30ms.
func jitter(e *event.Event) time.Duration {
	h := sha256.Sum256([]byte(fmt.Sprint(e.EventID)))
	return time.Duration(binary.BigEndian.Uint16(h[:2])%30) * time.Millisecond
}

// ReceivedHeader is the message header Publish puts a delivery's received
// time in (Unix milliseconds): a recorded day cannot be played at the pace
// it happened, so the detector is told when each event reached the store
// (detector.Config.ReceivedAt = ReceivedAt).
const ReceivedHeader = "Airtally-Sim-Received"

// ReceivedAt reads a message's simulated received time.
func ReceivedAt(msg jetstream.Msg) (time.Time, error) {
	v := msg.Headers().Get(ReceivedHeader)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("faultday: no simulated received time (header %s)", ReceivedHeader)
	}
	return time.UnixMilli(n).UTC(), nil
}

// Publish publishes the deliveries in order on their subjects under
// prefix, each with its received time in ReceivedHeader and its event id as
// Nats-Msg-Id, and returns their stream sequences.
func Publish(ctx context.Context, js jetstream.JetStream, prefix string, ds []Delivery) ([]uint64, error) {
	seqs := make([]uint64, len(ds))
	futures := make([]jetstream.PubAckFuture, len(ds))
	wait := func(from, to int) error {
		for i := from; i < to; i++ {
			select {
			case ack := <-futures[i].Ok():
				seqs[i] = ack.Sequence
			case err := <-futures[i].Err():
				return fmt.Errorf("faultday: publish event %d: %w", i, err)
			case <-ctx.Done():
				return fmt.Errorf("faultday: publish: %w", ctx.Err())
			}
		}
		return nil
	}
	const window = 500
	from := 0
	for i, d := range ds {
		data, err := d.Event.Encode()
		if err != nil {
			return nil, fmt.Errorf("faultday: event %d: %w", i, err)
		}
		msg := &nats.Msg{Subject: d.Event.Subject(prefix), Data: data, Header: nats.Header{}}
		msg.Header.Set(ReceivedHeader, strconv.FormatInt(d.Received.UnixMilli(), 10))
		if futures[i], err = js.PublishMsgAsync(msg, jetstream.WithMsgID(d.Event.EventID.String())); err != nil {
			return nil, fmt.Errorf("faultday: publish event %d: %w", i, err)
		}
		if i-from+1 == window {
			if err := wait(from, i+1); err != nil {
				return nil, err
			}
			from = i + 1
		}
	}
	if err := wait(from, len(ds)); err != nil {
		return nil, err
	}
	return seqs, nil
}
