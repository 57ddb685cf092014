package event

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/airtally/airtally/producers/pci"
)

// parseScan decodes a plain, well-formed event in one pass over its bytes,
// without reflection: the form Encode writes. It reports false at any
// doubt, and Parse then takes the paths it had before (parseDecoder, then
// parseSlow), so that what parseScan accepts is exactly what they accept,
// with the same values. Doubt is: anything but an object, a key that is not
// letter for letter a field, a value of another type than its field's, a
// null, a number that is not a plain integer, a backslash or a control
// character in a string, invalid UTF-8, a time that does not parse, source
// given twice, trailing data, or a card number (pci.Contains) in a key or in
// any string or number outside the fields exempt from the card scan
// (cardExempt) — the rule parseSlow applies.
//
// Every string of the event is a substring of one copy of data, so an
// event costs two allocations (the copy and the Event).
func parseScan(data []byte) (*Event, bool) {
	sc := scanner{s: string(data)}
	sc.ws()
	if !sc.byte('{') {
		return nil, false
	}
	ev := &Event{}
	sourceSeen := false
	sc.ws()
	if sc.byte('}') {
		return ev, sc.end()
	}
	for {
		key, ok := sc.key()
		if !ok {
			return nil, false
		}
		switch key {
		case "source":
			if sourceSeen {
				return nil, false // decoders differ on repeated objects
			}
			sourceSeen = true
			ok = sc.source(&ev.Source)
		default:
			ok = sc.field(ev, key)
		}
		if !ok {
			return nil, false
		}
		sc.ws()
		if sc.byte('}') {
			return ev, sc.end()
		}
		if !sc.byte(',') {
			return nil, false
		}
		sc.ws()
	}
}

// field decodes the value of the top-level field key into ev.
func (sc *scanner) field(ev *Event, key string) bool {
	switch key {
	case "event_id":
		return sc.uuid(&ev.EventID)
	case "kind":
		return sc.str((*string)(&ev.Kind), true)
	case "schema_version":
		return sc.intSize(&ev.SchemaVersion)
	case "occurred_at":
		return sc.time(&ev.OccurredAt)
	case "call_id":
		return sc.str(&ev.CallID, true)
	case "dnis":
		return sc.str(&ev.DNIS, true)
	case "ani":
		return sc.str(&ev.ANI, false)
	case "ani_hash":
		return sc.str(&ev.ANIHash, false)
	case "queue":
		return sc.str(&ev.Queue, true)
	case "site":
		return sc.str(&ev.Site, true)
	case "agent_id":
		return sc.str(&ev.AgentID, true)
	case "talk_seconds":
		return sc.int(&ev.TalkSeconds)
	case "wait_seconds":
		return sc.int(&ev.WaitSeconds)
	case "disposition":
		return sc.str(&ev.Disposition, true)
	case "order_id":
		return sc.str(&ev.OrderID, true)
	case "offer":
		return sc.str(&ev.Offer, true)
	case "sku":
		return sc.str(&ev.SKU, true)
	case "amount_cents":
		return sc.int(&ev.AmountCents)
	case "currency":
		return sc.str(&ev.Currency, true)
	case "upsell_count":
		return sc.int(&ev.UpsellCount)
	case "continuity":
		return sc.bool(&ev.Continuity)
	case "payment_brand":
		return sc.str(&ev.PaymentBrand, true)
	case "card_last4":
		return sc.str(&ev.CardLast4, true)
	case "channel":
		return sc.str((*string)(&ev.Channel), true)
	case "promo_code":
		return sc.str(&ev.PromoCode, true)
	case "vanity_url":
		return sc.str(&ev.VanityURL, true)
	case "reason":
		return sc.str(&ev.Reason, true)
	case "interval_seconds":
		return sc.int(&ev.IntervalSeconds)
	case "airing_id":
		return sc.str(&ev.AiringID, true)
	case "station":
		return sc.str(&ev.Station, true)
	case "market":
		return sc.str(&ev.Market, true)
	case "media_type":
		return sc.str(&ev.MediaType, true)
	case "isci":
		return sc.str(&ev.ISCI, true)
	case "aired_at":
		return sc.time(&ev.AiredAt)
	case "aired_until":
		return sc.time(&ev.AiredUntil)
	case "length_seconds":
		return sc.int(&ev.LengthSeconds)
	case "spend_cents":
		return sc.int(&ev.SpendCents)
	case "did_not_run":
		return sc.bool(&ev.DidNotRun)
	case "target_ratio_pct":
		return sc.int(&ev.TargetRatioPct)
	case "window_minutes":
		return sc.int(&ev.WindowMinutes)
	case "monitored_system":
		return sc.str(&ev.MonitoredSystem, true)
	case "monitored_instance":
		return sc.str(&ev.MonitoredInstance, true)
	case "window_start":
		return sc.time(&ev.WindowStart)
	case "window_end":
		return sc.time(&ev.WindowEnd)
	case "seq_from":
		return sc.uint(&ev.SeqFrom)
	case "seq_to":
		return sc.uint(&ev.SeqTo)
	case "tolerance_seconds":
		return sc.int(&ev.ToleranceSeconds)
	case "clock_skew_ms":
		return sc.int(&ev.ClockSkewMS)
	case "delay_ms":
		return sc.int(&ev.DelayMS)
	case "event_count":
		return sc.int(&ev.EventCount)
	case "expected_calls":
		return sc.int(&ev.ExpectedCalls)
	case "observed_calls":
		return sc.int(&ev.ObservedCalls)
	case "outcome":
		return sc.str(&ev.Outcome, true)
	}
	return false // not a field: the other paths name it
}

// source decodes the source object into src.
func (sc *scanner) source(src *Source) bool {
	if !sc.byte('{') {
		return false // null or another type
	}
	sc.ws()
	if sc.byte('}') {
		return true
	}
	for {
		key, ok := sc.key()
		if !ok {
			return false
		}
		switch key {
		case "system":
			ok = sc.str(&src.System, true)
		case "instance":
			ok = sc.str(&src.Instance, true)
		case "seq":
			ok = sc.uint(&src.Seq)
		default:
			return false
		}
		if !ok {
			return false
		}
		sc.ws()
		if sc.byte('}') {
			return true
		}
		if !sc.byte(',') {
			return false
		}
		sc.ws()
	}
}

// scanner reads JSON text from s, a copy of the input, at offset i.
type scanner struct {
	s string
	i int
}

// ws skips JSON whitespace.
func (sc *scanner) ws() {
	s, i := sc.s, sc.i
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	sc.i = i
}

// byte consumes c if it is next.
func (sc *scanner) byte(c byte) bool {
	if sc.i < len(sc.s) && sc.s[sc.i] == c {
		sc.i++
		return true
	}
	return false
}

// end reports whether only whitespace is left.
func (sc *scanner) end() bool {
	sc.ws()
	return sc.i == len(sc.s)
}

// key reads an object key, the colon after it and the whitespace before
// the value. Field names are plain ASCII: any other string is doubt.
func (sc *scanner) key() (string, bool) {
	key, ascii, ok := sc.rawString()
	if !ok || !ascii {
		return "", false
	}
	sc.ws()
	if !sc.byte(':') {
		return "", false
	}
	sc.ws()
	return key, true
}

// Byte classes inside a JSON string.
const (
	plain    = iota
	quote    // the closing quote
	doubt    // a backslash or a control character
	nonASCII // part of a multi-byte UTF-8 sequence
)

// stringClass is the class of every byte inside a JSON string.
var stringClass = func() (c [256]uint8) {
	for b := range c {
		switch {
		case b == '"':
			c[b] = quote
		case b == '\\' || b < ' ':
			c[b] = doubt
		case b >= utf8.RuneSelf:
			c[b] = nonASCII
		}
	}
	return c
}()

// rawString reads a string without escapes or control characters, in
// valid UTF-8: the strings that encoding/json decodes to the very bytes
// between the quotes. ascii reports that it is all ASCII.
func (sc *scanner) rawString() (v string, ascii, ok bool) {
	s, i := sc.s, sc.i
	if i >= len(s) || s[i] != '"' {
		return "", false, false
	}
	i++
	start := i
	ascii = true
	for ; i < len(s); i++ {
		switch stringClass[s[i]] {
		case plain:
			continue
		case quote:
			v = s[start:i]
			sc.i = i + 1
			if !ascii && !utf8.ValidString(v) {
				return "", false, false // encoding/json would replace the bytes
			}
			return v, ascii, true
		case doubt:
			return "", false, false
		case nonASCII:
			ascii = false
		}
	}
	return "", false, false
}

// str reads a string into to; scanCard says whether it is checked for a
// card number (false for the fields of cardExempt).
func (sc *scanner) str(to *string, scanCard bool) bool {
	v, _, ok := sc.rawString()
	if !ok || (scanCard && pci.Contains(v)) {
		return false
	}
	*to = v
	return true
}

// uuid reads a UUID string as uuid.UUID's UnmarshalText does.
func (sc *scanner) uuid(to *uuid.UUID) bool {
	v, _, ok := sc.rawString()
	if !ok {
		return false
	}
	id, err := uuid.Parse(v)
	if err != nil {
		return false
	}
	*to = id
	return true
}

// time reads an RFC 3339 time string, kept in UTC to the millisecond.
func (sc *scanner) time(to *time.Time) bool {
	v, _, ok := sc.rawString()
	if !ok {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return false
	}
	*to = t.UTC().Truncate(time.Millisecond)
	return true
}

// integer reads a JSON number that is a plain integer (no fraction, no
// exponent), checked for a card number.
func (sc *scanner) integer() (string, bool) {
	start := sc.i
	sc.byte('-')
	digits := sc.i
	for sc.i < len(sc.s) && sc.s[sc.i] >= '0' && sc.s[sc.i] <= '9' {
		sc.i++
	}
	n := sc.i - digits
	if n == 0 || (n > 1 && sc.s[digits] == '0') {
		return "", false // not a number, or a leading zero: not JSON
	}
	if sc.i < len(sc.s) {
		if c := sc.s[sc.i]; c == '.' || c == 'e' || c == 'E' {
			return "", false // a fraction or an exponent: no integer field takes it
		}
	}
	v := sc.s[start:sc.i]
	if n >= pci.MinDigits && pci.Contains(v) {
		return "", false
	}
	return v, true
}

// int reads a whole number that fits an int64.
func (sc *scanner) int(to *int64) bool {
	v, ok := sc.integer()
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return false
	}
	*to = n
	return true
}

// intSize reads a whole number that fits an int.
func (sc *scanner) intSize(to *int) bool {
	v, ok := sc.integer()
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(v, 10, strconv.IntSize)
	if err != nil {
		return false
	}
	*to = int(n)
	return true
}

// uint reads a whole number that fits a uint64.
func (sc *scanner) uint(to *uint64) bool {
	v, ok := sc.integer()
	if !ok || v[0] == '-' {
		return false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return false
	}
	*to = n
	return true
}

// bool reads true or false.
func (sc *scanner) bool(to *bool) bool {
	rest := sc.s[sc.i:]
	switch {
	case len(rest) >= 4 && rest[:4] == "true":
		sc.i += 4
		*to = true
	case len(rest) >= 5 && rest[:5] == "false":
		sc.i += 5
		*to = false
	default:
		return false
	}
	return true
}
