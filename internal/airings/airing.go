package airings

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/airtally/airtally/producers/event"
)

// Media types an airing may have.
const (
	MediaTV    = "tv"
	MediaRadio = "radio"
)

// Airing is one airing's state: what an airing.* event carries.
type Airing struct {
	ID        string
	Offer     string
	Station   string
	Market    string
	MediaType string
	ISCI      string
	// AiredAt is when the airing ran (or is scheduled to run); for a window
	// whose exact time is not known yet, its start. UTC, milliseconds.
	AiredAt time.Time
	// AiredUntil is the end of such a window; zero otherwise.
	AiredUntil    time.Time
	LengthSeconds int64
	SpendCents    int64
	Currency      string
	DNIS          string
	PromoCode     string
	VanityURL     string
	DidNotRun     bool
}

// FromEvent returns the airing state an airing.* event carries. An
// airing.cancelled event means the airing did not run, whatever its
// did_not_run field says.
func FromEvent(ev *event.Event) Airing {
	return Airing{
		ID: ev.AiringID, Offer: ev.Offer, Station: ev.Station, Market: ev.Market, MediaType: ev.MediaType, ISCI: ev.ISCI,
		AiredAt: ms(ev.AiredAt), AiredUntil: ms(ev.AiredUntil),
		LengthSeconds: ev.LengthSeconds, SpendCents: ev.SpendCents, Currency: ev.Currency,
		DNIS: ev.DNIS, PromoCode: ev.PromoCode, VanityURL: ev.VanityURL,
		DidNotRun: ev.DidNotRun || ev.Kind == event.AiringCancelled,
	}
}

// Kind is the kind of event that publishes a as a new state: cancelled
// when it did not run, else scheduled for a new airing and revised for a
// known one.
func (a Airing) Kind(known bool) event.Kind {
	switch {
	case a.DidNotRun:
		return event.AiringCancelled
	case known:
		return event.AiringRevised
	default:
		return event.AiringScheduled
	}
}

// Event returns the event of kind k that carries a, from src at time at.
// Its id is a fresh UUIDv7 and its sequence is left to the publisher.
func (a Airing) Event(k event.Kind, src event.Source, at time.Time) *event.Event {
	ev := event.New(k, src, at)
	ev.AiringID, ev.Offer, ev.Station, ev.Market, ev.MediaType, ev.ISCI = a.ID, a.Offer, a.Station, a.Market, a.MediaType, a.ISCI
	ev.AiredAt, ev.AiredUntil = ms(a.AiredAt), ms(a.AiredUntil)
	ev.LengthSeconds, ev.SpendCents, ev.Currency = a.LengthSeconds, a.SpendCents, a.Currency
	ev.DNIS, ev.PromoCode, ev.VanityURL = a.DNIS, a.PromoCode, a.VanityURL
	ev.DidNotRun = a.DidNotRun
	return ev
}

// Hash is a digest of a's content: two states with the same hash are the
// same airing state. Times count to the millisecond, in any location.
func (a Airing) Hash() string {
	return digest(a.ID, a.Offer, a.Station, a.Market, a.MediaType, a.ISCI,
		msText(a.AiredAt), msText(a.AiredUntil),
		strconv.FormatInt(a.LengthSeconds, 10), strconv.FormatInt(a.SpendCents, 10), a.Currency,
		a.DNIS, a.PromoCode, a.VanityURL, strconv.FormatBool(a.DidNotRun))
}

// Offer is an offer's settings for one media type ("" = the offer's
// default): what an offer.configured event carries.
type Offer struct {
	Offer     string
	MediaType string
	Currency  string
	// TargetRatioPct is the allowable media ratio × 100; 0: no target.
	TargetRatioPct int64
	// WindowMinutes is the response window; 0: not set here.
	WindowMinutes int64
}

// OfferKey identifies an offer's settings.
type OfferKey struct{ Offer, MediaType string }

// Key is o's key.
func (o Offer) Key() OfferKey { return OfferKey{o.Offer, o.MediaType} }

// OfferFromEvent returns the settings an offer.configured event carries.
func OfferFromEvent(ev *event.Event) Offer {
	return Offer{Offer: ev.Offer, MediaType: ev.MediaType, Currency: ev.Currency, TargetRatioPct: ev.TargetRatioPct, WindowMinutes: ev.WindowMinutes}
}

// Event returns the offer.configured event that carries o.
func (o Offer) Event(src event.Source, at time.Time) *event.Event {
	ev := event.New(event.OfferConfigured, src, at)
	ev.Offer, ev.MediaType, ev.Currency, ev.TargetRatioPct, ev.WindowMinutes = o.Offer, o.MediaType, o.Currency, o.TargetRatioPct, o.WindowMinutes
	return ev
}

// Hash is a digest of o's content.
func (o Offer) Hash() string {
	return digest(o.Offer, o.MediaType, o.Currency, strconv.FormatInt(o.TargetRatioPct, 10), strconv.FormatInt(o.WindowMinutes, 10))
}

func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		// Length-prefixed, so that no two lists of parts collide.
		h.Write([]byte(strconv.Itoa(len(p)) + ":" + p + ";"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ms is t in UTC truncated to the millisecond; zero stays zero.
func ms(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Millisecond)
}

func msText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// NaturalID is the stable id of an airing that has no id of its own,
// derived from its natural key: station, scheduled start, ISCI and DNIS
// (station and ISCI upper-cased, DNIS reduced to its digits, the start in
// UTC to the second). It is "nk-" and 20 hex digits.
func NaturalID(station string, scheduled time.Time, isci, dnis string) string {
	d := digest(strings.ToUpper(strings.TrimSpace(station)), scheduled.UTC().Truncate(time.Second).Format(time.RFC3339),
		strings.ToUpper(strings.TrimSpace(isci)), digits(dnis))
	return "nk-" + d[:20]
}

func digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
