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

// Builder makes the events of a generated broadcast day by the demo day's
// rules: deterministic UUIDv7 ids drawn from Rng, phone and web orders
// with their cancellations. Other generators of days
// (consumers/detector/broadcastday) build on it, so that every generated
// day's orders follow the same rules.
type Builder struct {
	Rng    *rand.Rand
	Events []*event.Event
	orders int
}

// Add gives e a deterministic id and keeps it.
func (b *Builder) Add(e *event.Event) {
	b.setID(e)
	b.Events = append(b.Events, e)
}

// Event makes an event and keeps it.
func (b *Builder) Event(k event.Kind, src event.Source, t time.Time) *event.Event {
	e := event.New(k, src, t)
	b.Add(e)
	return e
}

// setID gives e a deterministic UUIDv7: its time part is the event's time
// and its random part comes from the seeded generator.
func (b *Builder) setID(e *event.Event) {
	var id uuid.UUID
	binary.BigEndian.PutUint64(id[8:], b.Rng.Uint64())
	binary.BigEndian.PutUint64(id[0:], b.Rng.Uint64())
	ms := uint64(e.OccurredAt.UnixMilli())
	id[0], id[1], id[2], id[3], id[4], id[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	id[6] = 0x70 | id[6]&0x0f
	id[8] = 0x80 | id[8]&0x3f
	e.EventID = id
}

// PhoneOrder places a phone order of call callID on console, maybe
// cancelled later.
func (b *Builder) PhoneOrder(console event.Source, at time.Time, callID, dnis, offer, site string) {
	rng := b.Rng
	b.orders++
	o := b.Event(event.OrderPlaced, console, at)
	o.OrderID, o.CallID, o.DNIS, o.Offer, o.Site = fmt.Sprintf("ph-%06d", b.orders), callID, dnis, offer, site
	o.AmountCents, o.Currency, o.Channel = int64(1995+rng.IntN(4)*1000), "USD", event.ChannelPhone
	o.UpsellCount = int64(rng.IntN(3))
	o.AmountCents += o.UpsellCount * 995
	o.Continuity = rng.IntN(3) == 0
	o.PaymentBrand, o.CardLast4 = "visa", fmt.Sprintf("%04d", rng.IntN(10000))
	b.maybeCancel(o)
}

// WebOrder places a web shop order naming a promo code or a vanity URL
// (or neither), maybe cancelled later.
func (b *Builder) WebOrder(at time.Time, offer, promo, vanity string) {
	rng := b.Rng
	b.orders++
	o := b.Event(event.OrderPlaced, WebShop, at)
	o.OrderID, o.Offer, o.Channel = fmt.Sprintf("web-%06d", b.orders), offer, event.ChannelWeb
	o.PromoCode, o.VanityURL = promo, vanity
	o.AmountCents, o.Currency = int64(2495+rng.IntN(3)*1000), "USD"
	o.UpsellCount = int64(rng.IntN(2))
	o.AmountCents += o.UpsellCount * 995
	o.Continuity = rng.IntN(4) == 0
	o.PaymentBrand, o.CardLast4 = "mastercard", fmt.Sprintf("%04d", rng.IntN(10000))
	b.maybeCancel(o)
}

// maybeCancel cancels about one order in eight, days later: with a full
// refund (no amount), a partial one, or a refund larger than the order
// (counted as the order's amount); a third of the cancellations are sent
// twice.
func (b *Builder) maybeCancel(o *event.Event) {
	rng := b.Rng
	if rng.IntN(8) != 0 {
		return
	}
	c := b.Event(event.OrderCancelled, o.Source, o.OccurredAt.Add(time.Duration(1+rng.IntN(72))*time.Hour))
	c.OrderID, c.Offer, c.Reason = o.OrderID, o.Offer, "changed mind"
	switch rng.IntN(3) {
	case 0:
		c.AmountCents, c.Currency = o.AmountCents/2, o.Currency
	case 1:
		c.AmountCents, c.Currency = o.AmountCents+500, o.Currency
	}
	if rng.IntN(3) == 0 {
		// The order system sent the cancellation again (a new event id):
		// it refunds nothing more.
		again := b.Event(event.OrderCancelled, o.Source, c.OccurredAt.Add(time.Hour))
		again.OrderID, again.Offer, again.Reason, again.AmountCents, again.Currency = c.OrderID, c.Offer, c.Reason, c.AmountCents, c.Currency
	}
}

// Sorted sorts the events by time and numbers each source's events 1, 2,
// … in that order; it returns them.
func (b *Builder) Sorted() []*event.Event {
	sort.SliceStable(b.Events, func(i, j int) bool { return b.Events[i].OccurredAt.Before(b.Events[j].OccurredAt) })
	seq := map[string]uint64{}
	for _, e := range b.Events {
		seq[e.Source.Key()]++
		e.Source.Seq = seq[e.Source.Key()]
	}
	return b.Events
}

// Messy writes a promo code as viewers type it.
func Messy(rng *rand.Rand, code string) string {
	switch rng.IntN(3) {
	case 0:
		return " " + code + " "
	case 1:
		return lower(code)
	}
	return code
}

// MessyURL writes a vanity URL as a browser reports it.
func MessyURL(rng *rand.Rand, url string) string {
	switch rng.IntN(3) {
	case 0:
		return "https://www." + url + "/"
	case 1:
		return "HTTP://" + url
	}
	return url
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
