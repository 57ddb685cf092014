package event

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/google/uuid"
)

// SchemaVersion is the version of the contract this package implements.
const SchemaVersion = 1

// Kind names what happened.
type Kind string

// The kinds of event of schema version 1.
const (
	CallReceived   Kind = "call.received"
	CallAnswered   Kind = "call.answered"
	CallEnded      Kind = "call.ended"
	CallAbandoned  Kind = "call.abandoned"
	OrderPlaced    Kind = "order.placed"
	OrderCancelled Kind = "order.cancelled"
	Heartbeat      Kind = "heartbeat"

	// Airing events carry the media schedule: an airing as scheduled, a
	// revision (e.g. a post-log's actual air time or corrected spend), and
	// a cancellation (did not run).
	AiringScheduled Kind = "airing.scheduled"
	AiringRevised   Kind = "airing.revised"
	AiringCancelled Kind = "airing.cancelled"

	// OfferConfigured sets an offer's response window and target ratio.
	OfferConfigured Kind = "offer.configured"

	// Detections are emitted by the detector (source system "detector")
	// about a monitored source: a downtime window opens (source.down) and
	// ends (source.up); a hole in a source's sequence numbers opens
	// (gap.opened) and is filled by late arrivals (gap.closed); a line (a
	// DNIS on one call source) falls silent while the source's heartbeats
	// look healthy (line.silent) and rings again (line.restored); events
	// arrived late but were not lost (data.delayed).
	SourceDown   Kind = "source.down"
	SourceUp     Kind = "source.up"
	GapOpened    Kind = "gap.opened"
	GapClosed    Kind = "gap.closed"
	LineSilent   Kind = "line.silent"
	LineRestored Kind = "line.restored"
	DataDelayed  Kind = "data.delayed"
)

// DetectorSystem is the source system of every detection event.
const DetectorSystem = "detector"

// Outcomes of detection events.
const (
	// OutcomeDown (source.up): the source recorded nothing from
	// window_start to window_end: downtime.
	OutcomeDown = "down"
	// OutcomeDelayed (source.up): the silence was a delivery delay; the
	// source's events arrived late and cover the window: nothing was lost.
	OutcomeDelayed = "delayed"
	// OutcomeLost (source.up): the source went on numbering its events but
	// those of the window never arrived: recorded as a sequence gap.
	OutcomeLost = "lost"
	// OutcomeFilled (gap.closed): late arrivals filled the whole range.
	OutcomeFilled = "filled"
	// OutcomeSplit (gap.closed): a late arrival filled part of the range;
	// the rest is reopened as smaller gaps.
	OutcomeSplit = "split"
	// OutcomeProducer (data.delayed): the events waited at the producer
	// (its spool, the network) before the event store took them.
	OutcomeProducer = "producer"
	// OutcomeLoader (data.delayed): the events were stored on time but
	// waited behind a stalled loader before reaching ClickHouse.
	OutcomeLoader = "loader"
)

// Kinds lists every kind of schema version 1, in documentation order.
var Kinds = []Kind{CallReceived, CallAnswered, CallEnded, CallAbandoned, OrderPlaced, OrderCancelled, Heartbeat,
	AiringScheduled, AiringRevised, AiringCancelled, OfferConfigured,
	SourceDown, SourceUp, GapOpened, GapClosed, LineSilent, LineRestored, DataDelayed}

// Known reports whether k is a kind of this schema version.
func (k Kind) Known() bool {
	for _, known := range Kinds {
		if k == known {
			return true
		}
	}
	return false
}

// IsCall reports whether k is one of the call.* kinds.
func (k Kind) IsCall() bool { return strings.HasPrefix(string(k), "call.") }

// IsOrder reports whether k is one of the order.* kinds.
func (k Kind) IsOrder() bool { return strings.HasPrefix(string(k), "order.") }

// IsAiring reports whether k is one of the airing.* kinds.
func (k Kind) IsAiring() bool { return strings.HasPrefix(string(k), "airing.") }

// IsDetection reports whether k is a detection kind (source.down,
// source.up, gap.*, line.*, data.delayed).
func (k Kind) IsDetection() bool {
	switch k {
	case SourceDown, SourceUp, GapOpened, GapClosed, LineSilent, LineRestored, DataDelayed:
		return true
	}
	return false
}

// SubjectToken is the kind as one NATS subject token ("call.received" →
// "call_received").
func (k Kind) SubjectToken() string { return strings.ReplaceAll(string(k), ".", "_") }

// Channel says how an order came in.
type Channel string

// Order channels.
const (
	ChannelPhone Channel = "phone"
	ChannelWeb   Channel = "web"
)

// Source identifies the system that emitted an event. System and Instance
// are lower-case subject-safe names ([a-z0-9_-], 1 to 64 characters); Seq
// increases by one per event of that source, starting at 1.
type Source struct {
	System   string `json:"system"`
	Instance string `json:"instance"`
	Seq      uint64 `json:"seq,omitempty"`
}

// Key is "system.instance", the source's name in subjects and tables.
func (s Source) Key() string { return s.System + "." + s.Instance }

// Event is one event of schema version 1. Fields that a kind does not use
// are left at their zero value and omitted from the JSON encoding.
type Event struct {
	EventID       uuid.UUID `json:"event_id"`
	Kind          Kind      `json:"kind"`
	SchemaVersion int       `json:"schema_version"`
	OccurredAt    time.Time `json:"occurred_at"`
	Source        Source    `json:"source"`

	// Calls (call.*), and the call an order came from.
	CallID string `json:"call_id,omitempty"`
	// DNIS is the number dialled (the toll-free number shown on air).
	DNIS string `json:"dnis,omitempty"`
	// ANI is the caller's number. Input only: producers hash it into
	// ANIHash and clear it before publishing.
	ANI string `json:"ani,omitempty"`
	// ANIHash is hex HMAC-SHA256 of the caller's number (see HashANI).
	ANIHash     string `json:"ani_hash,omitempty"`
	Queue       string `json:"queue,omitempty"`
	Site        string `json:"site,omitempty"`
	AgentID     string `json:"agent_id,omitempty"`
	TalkSeconds int64  `json:"talk_seconds,omitempty"`
	WaitSeconds int64  `json:"wait_seconds,omitempty"`
	Disposition string `json:"disposition,omitempty"`

	// Orders (order.*).
	OrderID      string  `json:"order_id,omitempty"`
	Offer        string  `json:"offer,omitempty"`
	SKU          string  `json:"sku,omitempty"`
	AmountCents  int64   `json:"amount_cents,omitempty"`
	Currency     string  `json:"currency,omitempty"`
	UpsellCount  int64   `json:"upsell_count,omitempty"`
	Continuity   bool    `json:"continuity,omitempty"`
	PaymentBrand string  `json:"payment_brand,omitempty"`
	CardLast4    string  `json:"card_last4,omitempty"`
	Channel      Channel `json:"channel,omitempty"`
	PromoCode    string  `json:"promo_code,omitempty"`
	VanityURL    string  `json:"vanity_url,omitempty"`
	Reason       string  `json:"reason,omitempty"`

	// Heartbeats: how often this source promises one.
	IntervalSeconds int64 `json:"interval_seconds,omitempty"`

	// Airings (airing.*). AiringID identifies the airing across revisions;
	// Offer, DNIS, PromoCode and VanityURL above tie responses to it.
	AiringID  string `json:"airing_id,omitempty"`
	Station   string `json:"station,omitempty"`
	Market    string `json:"market,omitempty"`
	MediaType string `json:"media_type,omitempty"`
	ISCI      string `json:"isci,omitempty"`
	// AiredAt is when the airing ran (or is scheduled to run); for a
	// schedule that gives only a window, its start.
	AiredAt time.Time `json:"-"`
	// AiredUntil is the end of a scheduled window, when the exact air time
	// is not known yet; zero otherwise.
	AiredUntil    time.Time `json:"-"`
	LengthSeconds int64     `json:"length_seconds,omitempty"`
	SpendCents    int64     `json:"spend_cents,omitempty"`
	DidNotRun     bool      `json:"did_not_run,omitempty"`

	// Offers (offer.configured): the allowable media ratio × 100 (150 means
	// revenue must be 1.5 × media cost) and the response window in minutes,
	// for MediaType only when it is set, else the offer's default.
	TargetRatioPct int64 `json:"target_ratio_pct,omitempty"`
	WindowMinutes  int64 `json:"window_minutes,omitempty"`

	// Detections (source.*, gap.*, line.*, data.delayed): the monitored
	// source they are about (the envelope's source is the detector).
	MonitoredSystem   string `json:"monitored_system,omitempty"`
	MonitoredInstance string `json:"monitored_instance,omitempty"`
	// WindowStart and WindowEnd bound the span a detection describes, in
	// the event store's clock (UTC): see docs/accountability.md.
	WindowStart time.Time `json:"-"`
	WindowEnd   time.Time `json:"-"`
	// SeqFrom and SeqTo are a missing range of source sequence numbers
	// (gap.*), both included.
	SeqFrom uint64 `json:"seq_from,omitempty"`
	SeqTo   uint64 `json:"seq_to,omitempty"`
	// ToleranceSeconds is the silence the monitored source was allowed.
	ToleranceSeconds int64 `json:"tolerance_seconds,omitempty"`
	// ClockSkewMS is the monitored source's clock minus the event store's
	// clock, as estimated by the detector (negative: the source is behind).
	ClockSkewMS int64 `json:"clock_skew_ms,omitempty"`
	// DelayMS is the longest delay of late events (data.delayed).
	DelayMS int64 `json:"delay_ms,omitempty"`
	// EventCount is how many events a detection covers (late events of
	// data.delayed).
	EventCount int64 `json:"event_count,omitempty"`
	// ExpectedCalls and ObservedCalls: the calls a silent line was expected
	// to take and took (line.*).
	ExpectedCalls int64 `json:"expected_calls,omitempty"`
	ObservedCalls int64 `json:"observed_calls,omitempty"`
	// Outcome qualifies a detection: see the Outcome constants.
	Outcome string `json:"outcome,omitempty"`
}

// MonitoredKey is "system.instance" of the monitored source of a
// detection.
func (e *Event) MonitoredKey() string { return e.MonitoredSystem + "." + e.MonitoredInstance }

// New returns an event of kind k from src that occurred at t, with a fresh
// UUIDv7 id. The source sequence is left for the producer to assign.
func New(k Kind, src Source, t time.Time) *Event {
	return &Event{
		EventID:       uuid.Must(uuid.NewV7()),
		Kind:          k,
		SchemaVersion: SchemaVersion,
		OccurredAt:    t.UTC().Truncate(time.Millisecond),
		Source:        src,
	}
}

// Subject is the NATS subject the event is published on:
// "<prefix>.<kind token>.<system>.<instance>", e.g.
// "drtv.v1.call_received.acd.tampa-01".
func (e *Event) Subject(prefix string) string {
	return prefix + "." + e.Kind.SubjectToken() + "." + e.Source.System + "." + e.Source.Instance
}

// HashANI returns the keyed hash of a caller's number, after keeping only
// its digits (so "+1 (813) 555-0100" and "18135550100" hash alike).
func HashANI(key []byte, ani string) string {
	digits := make([]byte, 0, len(ani))
	for i := 0; i < len(ani); i++ {
		if ani[i] >= '0' && ani[i] <= '9' {
			digits = append(digits, ani[i])
		}
	}
	m := hmac.New(sha256.New, key)
	m.Write(digits)
	return hex.EncodeToString(m.Sum(nil))
}

// SealANI replaces a raw ANI by its keyed hash. It is a no-op when ANI is
// empty.
func (e *Event) SealANI(key []byte) {
	if e.ANI == "" {
		return
	}
	e.ANIHash = HashANI(key, e.ANI)
	e.ANI = ""
}
