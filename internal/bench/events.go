package bench

import (
	"fmt"
	"time"

	"github.com/airtally/airtally/producers/event"
)

// benchSystem is the source system of every event the benchmark makes.
const benchSystem = "bench"

// eventMix makes a call centre's traffic: for every three calls, each
// received, answered and ended (nine events), one phone order; and a
// heartbeat every hundred events. Its payloads are 300-600 bytes encoded,
// as real ones are.
type eventMix struct {
	src  event.Source
	base time.Time
	n    int
}

func newEventMix(instance string, base time.Time) *eventMix {
	return &eventMix{src: event.Source{System: benchSystem, Instance: instance}, base: base.UTC()}
}

// next returns the mix's next event, with a raw caller number (ANI) that
// the publisher seals, and no source sequence (the publisher assigns it).
// Events of one mix occur 1 ms apart from base.
func (m *eventMix) next() *event.Event {
	i := m.n
	m.n++
	at := m.base.Add(time.Duration(i) * time.Millisecond)
	if i%100 == 99 {
		e := event.New(event.Heartbeat, m.src, at)
		e.IntervalSeconds = 60
		return e
	}
	call := i / 10
	callID := fmt.Sprintf("%s-c%08d", m.src.Instance, call)
	dnis := fmt.Sprintf("80055501%02d", call%40)
	switch i % 10 {
	case 0, 3, 6:
		e := event.New(event.CallReceived, m.src, at)
		e.CallID, e.DNIS, e.Queue, e.Site = callID, dnis, "sales", "tampa"
		e.ANI = fmt.Sprintf("+1 (813) 555-%04d", i%10000)
		return e
	case 1, 4, 7:
		e := event.New(event.CallAnswered, m.src, at)
		e.CallID, e.DNIS, e.Queue, e.Site = callID, dnis, "sales", "tampa"
		e.AgentID, e.WaitSeconds = fmt.Sprintf("agent-%03d", i%250), int64(i%45)
		return e
	case 2, 5, 8:
		e := event.New(event.CallEnded, m.src, at)
		e.CallID, e.DNIS, e.AgentID, e.Disposition = callID, dnis, fmt.Sprintf("agent-%03d", i%250), "sale"
		e.TalkSeconds, e.WaitSeconds = int64(90+i%400), int64(i%45)
		return e
	default:
		e := event.New(event.OrderPlaced, m.src, at)
		e.CallID, e.DNIS = callID, dnis
		e.OrderID, e.Offer, e.SKU = fmt.Sprintf("%s-o%08d", m.src.Instance, call), "bright-smile", "BS-KIT-2"
		e.AmountCents, e.Currency, e.Channel = int64(3995+i%3*1000), "USD", event.ChannelPhone
		e.UpsellCount, e.Continuity = int64(i%3), i%7 == 0
		e.PaymentBrand, e.CardLast4, e.PromoCode = "visa", "4242", "TV25"
		return e
	}
}

// completed returns n events of the mix as they are on the stream: ANI
// sealed with key and source sequences 1..n.
func (m *eventMix) completed(n int, key []byte) []*event.Event {
	evs := make([]*event.Event, n)
	for i := range evs {
		e := m.next()
		e.SealANI(key)
		e.Source.Seq = uint64(i + 1)
		evs[i] = e
	}
	return evs
}
