package loader

import (
	"errors"
	"fmt"
	"github.com/airtally/airtally/internal/airings"
	"math"
	"strings"
	"time"

	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/pci"
)

// column is a column of the events table: its name, its ClickHouse type
// (as system.columns spells it) and how a row gets its value, whose Go type
// is the one clickhouse-go appends to that column type.
type column struct {
	name  string
	typ   string
	value func(ev *event.Event, m meta) any
}

// knownColumns are every column the loader can fill, in insert order. The
// insert names the columns it uses (required on ClickHouse 18.16): the base
// columns always, the others when the events table has them (a later
// migration adds them; see readEventsTable).
var knownColumns = []column{
	{"event_id", "UUID", func(e *event.Event, _ meta) any { return e.EventID }},
	{"kind", "String", func(e *event.Event, _ meta) any { return stringValue(string(e.Kind)) }},
	{"schema_version", "UInt8", func(e *event.Event, _ meta) any { return uint8(e.SchemaVersion) }},
	{"occurred_at", dateTimeUTC, func(e *event.Event, _ meta) any { return e.OccurredAt.UTC() }},
	{"occurred_at_ms", "Int64", func(e *event.Event, _ meta) any { return e.OccurredAt.UnixMilli() }},
	{"source_system", "String", func(e *event.Event, _ meta) any { return e.Source.System }},
	{"source_instance", "String", func(e *event.Event, _ meta) any { return e.Source.Instance }},
	{"source_seq", "UInt64", func(e *event.Event, _ meta) any { return e.Source.Seq }},
	{"call_id", "String", func(e *event.Event, _ meta) any { return e.CallID }},
	{"dnis", "String", func(e *event.Event, _ meta) any { return e.DNIS }},
	{"ani_hash", "String", func(e *event.Event, _ meta) any { return e.ANIHash }},
	{"queue", "String", func(e *event.Event, _ meta) any { return e.Queue }},
	{"site", "String", func(e *event.Event, _ meta) any { return e.Site }},
	{"agent_id", "String", func(e *event.Event, _ meta) any { return e.AgentID }},
	{"talk_seconds", "Int64", func(e *event.Event, _ meta) any { return e.TalkSeconds }},
	{"wait_seconds", "Int64", func(e *event.Event, _ meta) any { return e.WaitSeconds }},
	{"disposition", "String", func(e *event.Event, _ meta) any { return e.Disposition }},
	{"order_id", "String", func(e *event.Event, _ meta) any { return e.OrderID }},
	{"offer", "String", func(e *event.Event, _ meta) any { return e.Offer }},
	{"sku", "String", func(e *event.Event, _ meta) any { return e.SKU }},
	{"amount_cents", "Int64", func(e *event.Event, _ meta) any { return e.AmountCents }},
	{"currency", "String", func(e *event.Event, _ meta) any { return e.Currency }},
	{"upsell_count", "Int64", func(e *event.Event, _ meta) any { return e.UpsellCount }},
	{"continuity", "UInt8", func(e *event.Event, _ meta) any { return boolByte(e.Continuity) }},
	{"payment_brand", "String", func(e *event.Event, _ meta) any { return e.PaymentBrand }},
	{"card_last4", "String", func(e *event.Event, _ meta) any { return e.CardLast4 }},
	{"channel", "String", func(e *event.Event, _ meta) any { return stringValue(string(e.Channel)) }},
	{"promo_code", "String", func(e *event.Event, _ meta) any { return e.PromoCode }},
	{"vanity_url", "String", func(e *event.Event, _ meta) any { return e.VanityURL }},
	{"reason", "String", func(e *event.Event, _ meta) any { return e.Reason }},
	{"interval_seconds", "Int64", func(e *event.Event, _ meta) any { return e.IntervalSeconds }},
	// Airing and offer fields are not columns of events: those events also
	// go to the airings and offers projections (see projectionOf).
	// Detections (source.*, gap.*, line.*, data.delayed), from migration
	// 0010.
	{"monitored_system", "String", func(e *event.Event, _ meta) any { return e.MonitoredSystem }},
	{"monitored_instance", "String", func(e *event.Event, _ meta) any { return e.MonitoredInstance }},
	{"window_start", dateTimeUTC, func(e *event.Event, _ meta) any { return dateTimeValue(e.WindowStart) }},
	{"window_start_ms", "Int64", func(e *event.Event, _ meta) any { return unixMilli(e.WindowStart) }},
	{"window_end", dateTimeUTC, func(e *event.Event, _ meta) any { return dateTimeValue(e.WindowEnd) }},
	{"window_end_ms", "Int64", func(e *event.Event, _ meta) any { return unixMilli(e.WindowEnd) }},
	{"seq_from", "UInt64", func(e *event.Event, _ meta) any { return e.SeqFrom }},
	{"seq_to", "UInt64", func(e *event.Event, _ meta) any { return e.SeqTo }},
	{"tolerance_seconds", "Int64", func(e *event.Event, _ meta) any { return e.ToleranceSeconds }},
	{"clock_skew_ms", "Int64", func(e *event.Event, _ meta) any { return e.ClockSkewMS }},
	{"delay_ms", "Int64", func(e *event.Event, _ meta) any { return e.DelayMS }},
	{"event_count", "Int64", func(e *event.Event, _ meta) any { return e.EventCount }},
	{"expected_calls", "Int64", func(e *event.Event, _ meta) any { return e.ExpectedCalls }},
	{"observed_calls", "Int64", func(e *event.Event, _ meta) any { return e.ObservedCalls }},
	{"outcome", "String", func(e *event.Event, _ meta) any { return e.Outcome }},
	// From the message and the loader.
	{"stream_seq", "UInt64", func(_ *event.Event, m meta) any { return m.streamSeq }},
	{"stored_at", dateTimeUTC, func(_ *event.Event, m meta) any { return m.storedAt.UTC() }},
	{"stored_at_ms", "Int64", func(_ *event.Event, m meta) any { return m.storedAt.UnixMilli() }},
	{"loaded_at", dateTimeUTC, func(*event.Event, meta) any { return time.Time{} }}, // set at insert
}

// baseColumns are the columns of the first migration; the events table must
// have every one of them.
var baseColumns = []string{
	"event_id", "kind", "schema_version", "occurred_at", "occurred_at_ms",
	"source_system", "source_instance", "source_seq",
	"call_id", "dnis", "ani_hash", "queue", "site", "agent_id", "talk_seconds", "wait_seconds", "disposition",
	"order_id", "offer", "sku", "amount_cents", "currency", "upsell_count", "continuity", "payment_brand",
	"card_last4", "channel", "promo_code", "vanity_url", "reason",
	"interval_seconds",
	"stream_seq", "stored_at", "stored_at_ms", "loaded_at",
}

// dateTimeUTC is the type of every time column.
const dateTimeUTC = "DateTime('UTC')"

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// commonValues are the kinds and channels as row values, boxed once: a
// boxed string costs an allocation, and every row has a kind.
var commonValues = func() map[string]any {
	m := map[string]any{string(event.ChannelPhone): string(event.ChannelPhone), string(event.ChannelWeb): string(event.ChannelWeb)}
	for _, k := range event.Kinds {
		m[string(k)] = string(k)
	}
	return m
}()

// stringValue is s as a row value, from commonValues when it is there.
func stringValue(s string) any {
	if v, ok := commonValues[s]; ok {
		return v
	}
	return s
}

// epochValue is the Unix epoch (DateTime's zero) as a row value, boxed
// once: most events have no window, and a boxed time costs an allocation.
var epochValue any = time.Unix(0, 0).UTC()

// dateTimeValue is t in UTC, or the Unix epoch when t is unset.
func dateTimeValue(t time.Time) any {
	if t.IsZero() {
		return epochValue
	}
	return t.UTC()
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// deadLetterColumns are the columns of the dead_letters table, in the order
// of deadLetter.values.
var deadLetterColumns = []string{"stream_seq", "subject", "source_system", "source_instance", "reason", "failed_at"}

// ClickHouse DateTime is an unsigned 32-bit count of seconds.
var (
	minDateTime = time.Unix(0, 0).UTC()
	maxDateTime = time.Unix(math.MaxUint32, 0).UTC()
)

// meta is what a row takes from the message rather than the event.
type meta struct {
	streamSeq uint64
	storedAt  time.Time
}

// Reason classes of dead letters (the "reason" label of the metric).
const (
	classInvalid    = "invalid"
	classCardNumber = "card_number"
	classSubject    = "subject_mismatch"
)

// deadLetter is a message that cannot be loaded. payload is what goes to the
// dead-letter stream (card digits masked); it is never logged.
type deadLetter struct {
	streamSeq uint64
	subject   string // masked
	system    string
	instance  string
	reason    string // problems: field and reason, never values
	class     string
	card      bool // the original must be securely deleted
	payload   []byte
}

func (d *deadLetter) values(failedAt time.Time) []any {
	return []any{d.streamSeq, d.subject, d.system, d.instance, d.reason, failedAt}
}

// decodeMessage turns one message into a row of the events table or a dead
// letter. prefix is the events' subject prefix. The row is complete and
// checked: every value has the Go type its column takes.
func decodeMessage(cols []column, prefix, subject string, data []byte, m meta) (row []any, proj *projRow, dead *deadLetter) {
	ev, err := event.Decode(data)
	if err == nil {
		if !subjectOf(subject, prefix, ev) {
			err = &event.ValidationError{Problems: []event.Problem{{
				Field:  "subject",
				Reason: "does not match the event's kind, source system and source instance",
			}}}
		}
	}
	if err == nil {
		row, err = eventRow(cols, ev, m)
	}
	if err == nil {
		proj, err = projectionOf(ev, m)
	}
	if err == nil {
		return row, proj, nil
	}
	return nil, nil, newDeadLetter(prefix, subject, data, m.streamSeq, err)
}

// subjectOf reports whether subject is ev.Subject(prefix), without
// building that string: this runs for every message.
func subjectOf(subject, prefix string, ev *event.Event) bool {
	rest, ok := strings.CutPrefix(subject, prefix)
	if !ok || !strings.HasPrefix(rest, ".") {
		return false
	}
	kind := string(ev.Kind) // its subject token has '_' for '.'
	rest = rest[1:]
	if len(rest) < len(kind) {
		return false
	}
	for i := 0; i < len(kind); i++ {
		want := kind[i]
		if want == '.' {
			want = '_'
		}
		if rest[i] != want {
			return false
		}
	}
	rest = rest[len(kind):]
	sys, inst := ev.Source.System, ev.Source.Instance
	return len(rest) == 2+len(sys)+len(inst) && rest[0] == '.' && rest[1:1+len(sys)] == sys &&
		rest[1+len(sys)] == '.' && rest[2+len(sys):] == inst
}

// projRow is the row an airing or offer event adds to its projection
// table (package airings), besides its row in events.
type projRow struct {
	table string
	row   []any
}

// projectionOf is ev's projection row, or nil for kinds without one.
func projectionOf(ev *event.Event, m meta) (*projRow, error) {
	var (
		table string
		row   []any
		err   error
	)
	switch {
	case ev.Kind.IsAiring():
		table = airings.AiringsTable
		row, err = airings.AiringRow(ev, m.streamSeq, time.Now().UTC())
	case ev.Kind == event.OfferConfigured:
		table = airings.OffersTable
		row, err = airings.OfferRow(ev, m.streamSeq, time.Now().UTC())
	default:
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s projection: %w: %w", table, errRow, err)
	}
	return &projRow{table: table, row: row}, nil
}

func newDeadLetter(prefix, subject string, data []byte, seq uint64, err error) *deadLetter {
	// A message too malformed to be checked field by field (not an object,
	// too large) is still scanned as a whole.
	card := errors.Is(err, event.ErrCardNumber) || pci.Contains(subject) || pci.Contains(string(data))
	d := &deadLetter{
		streamSeq: seq,
		subject:   pci.Mask(subject),
		reason:    reasonText(err),
		class:     classInvalid,
		card:      card,
		payload:   data,
	}
	_, d.system, d.instance = subjectTokens(prefix, d.subject)
	switch {
	case card:
		d.class = classCardNumber
		d.payload = []byte(pci.Mask(string(data)))
	case len(event.Problems(err)) == 1 && event.Problems(err)[0].Field == "subject":
		d.class = classSubject
	}
	return d
}

// reasonText lists the problems of err as "field: reason; …". Reasons of
// package event never repeat values; any other error is named by a fixed
// text only, since its message might.
func reasonText(err error) string {
	ps := event.Problems(err)
	if len(ps) == 0 {
		if errors.Is(err, errRow) {
			return err.Error() // "column: is out of …", no value
		}
		return "undecodable event"
	}
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return strings.Join(parts, "; ")
}

// subjectTokens splits "<prefix>.<kind token>.<system>.<instance>"; the
// parts are empty when subject does not have that shape.
func subjectTokens(prefix, subject string) (kind, system, instance string) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return "", "", ""
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return "", "", ""
	}
	return parts[0], parts[1], parts[2]
}

// errRow is a row that a valid event cannot make (a value out of its
// column's range). It should not happen; it is a dead letter if it does.
var errRow = errors.New("is out of the range the events table can store")

// eventRow builds the row of ev for cols, checked against the column
// ranges: every value has the Go type its column takes and fits it.
func eventRow(cols []column, ev *event.Event, m meta) ([]any, error) {
	if ev.SchemaVersion < 0 || ev.SchemaVersion > math.MaxUint8 {
		return nil, fmt.Errorf("schema_version: %w", errRow)
	}
	if m.streamSeq == 0 {
		return nil, fmt.Errorf("stream_seq: %w", errRow)
	}
	row := make([]any, len(cols))
	for i, c := range cols {
		v := c.value(ev, m)
		if t, ok := v.(time.Time); ok && c.name != "loaded_at" && (t.Before(minDateTime) || t.After(maxDateTime)) {
			return nil, fmt.Errorf("%s: %w", c.name, errRow)
		}
		row[i] = v
	}
	return row, nil
}

// setLoadedAt stamps the load time into a row built by eventRow; loaded is
// the index of the loaded_at column.
func setLoadedAt(row []any, loaded int, t time.Time) { row[loaded] = t }

func insertQuery(db, table string, columns []string) string {
	return "INSERT INTO " + db + "." + table + " (" + strings.Join(columns, ", ") + ")"
}
