package loader

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/airtally/airtally/internal/airings"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/pci"
)

// column is a column of the events table: its name, its ClickHouse type
// (as system.columns spells it) and how an insert gets its values. values
// returns the column's values of rows as the typed slice that clickhouse-go
// appends to that column type in one call (a columnar append: no value is
// boxed, nothing is converted by reflection); loadedAt is the insert's
// time, the value of loaded_at. at is the value of one row of a DateTime
// column (nil for the others), for the range check of newRow.
type column struct {
	name   string
	typ    string
	values func(rows []*Row, loadedAt time.Time) any
	at     func(*Row) time.Time
}

// typedColumn is a column whose values are v of each row, a []T.
func typedColumn[T any](name, typ string, v func(*Row) T) column {
	return column{name: name, typ: typ, values: func(rows []*Row, _ time.Time) any {
		out := make([]T, len(rows))
		for i, r := range rows {
			out[i] = v(r)
		}
		return out
	}}
}

func stringColumn(name string, v func(*Row) string) column {
	return typedColumn(name, "String", v)
}

func int64Column(name string, v func(*Row) int64) column { return typedColumn(name, "Int64", v) }

func uint64Column(name string, v func(*Row) uint64) column { return typedColumn(name, "UInt64", v) }

// timeColumn is a DateTime('UTC') column; v must return UTC times.
func timeColumn(name string, v func(*Row) time.Time) column {
	c := typedColumn(name, dateTimeUTC, v)
	c.at = v
	return c
}

// knownColumns are every column the loader can fill, in insert order. The
// insert names the columns it uses (required on ClickHouse 18.16): the base
// columns always, the others when the events table has them (a later
// migration adds them; see readEventsTable).
var knownColumns = []column{
	typedColumn("event_id", "UUID", func(r *Row) uuid.UUID { return r.ev.EventID }),
	stringColumn("kind", func(r *Row) string { return string(r.ev.Kind) }),
	typedColumn("schema_version", "UInt8", func(r *Row) uint8 { return uint8(r.ev.SchemaVersion) }),
	timeColumn("occurred_at", func(r *Row) time.Time { return r.ev.OccurredAt.UTC() }),
	int64Column("occurred_at_ms", func(r *Row) int64 { return r.ev.OccurredAt.UnixMilli() }),
	stringColumn("source_system", func(r *Row) string { return r.ev.Source.System }),
	stringColumn("source_instance", func(r *Row) string { return r.ev.Source.Instance }),
	uint64Column("source_seq", func(r *Row) uint64 { return r.ev.Source.Seq }),
	stringColumn("call_id", func(r *Row) string { return r.ev.CallID }),
	stringColumn("dnis", func(r *Row) string { return r.ev.DNIS }),
	stringColumn("ani_hash", func(r *Row) string { return r.ev.ANIHash }),
	stringColumn("queue", func(r *Row) string { return r.ev.Queue }),
	stringColumn("site", func(r *Row) string { return r.ev.Site }),
	stringColumn("agent_id", func(r *Row) string { return r.ev.AgentID }),
	int64Column("talk_seconds", func(r *Row) int64 { return r.ev.TalkSeconds }),
	int64Column("wait_seconds", func(r *Row) int64 { return r.ev.WaitSeconds }),
	stringColumn("disposition", func(r *Row) string { return r.ev.Disposition }),
	stringColumn("order_id", func(r *Row) string { return r.ev.OrderID }),
	stringColumn("offer", func(r *Row) string { return r.ev.Offer }),
	stringColumn("sku", func(r *Row) string { return r.ev.SKU }),
	int64Column("amount_cents", func(r *Row) int64 { return r.ev.AmountCents }),
	stringColumn("currency", func(r *Row) string { return r.ev.Currency }),
	int64Column("upsell_count", func(r *Row) int64 { return r.ev.UpsellCount }),
	typedColumn("continuity", "UInt8", func(r *Row) uint8 { return boolByte(r.ev.Continuity) }),
	stringColumn("payment_brand", func(r *Row) string { return r.ev.PaymentBrand }),
	stringColumn("card_last4", func(r *Row) string { return r.ev.CardLast4 }),
	stringColumn("channel", func(r *Row) string { return string(r.ev.Channel) }),
	stringColumn("promo_code", func(r *Row) string { return r.ev.PromoCode }),
	stringColumn("vanity_url", func(r *Row) string { return r.ev.VanityURL }),
	stringColumn("reason", func(r *Row) string { return r.ev.Reason }),
	int64Column("interval_seconds", func(r *Row) int64 { return r.ev.IntervalSeconds }),
	// Airing and offer fields are not columns of events: those events also
	// go to the airings and offers projections (see projectionOf).
	// Detections (source.*, gap.*, line.*, data.delayed), from migration
	// 0010.
	stringColumn("monitored_system", func(r *Row) string { return r.ev.MonitoredSystem }),
	stringColumn("monitored_instance", func(r *Row) string { return r.ev.MonitoredInstance }),
	timeColumn("window_start", func(r *Row) time.Time { return dateTimeValue(r.ev.WindowStart) }),
	int64Column("window_start_ms", func(r *Row) int64 { return unixMilli(r.ev.WindowStart) }),
	timeColumn("window_end", func(r *Row) time.Time { return dateTimeValue(r.ev.WindowEnd) }),
	int64Column("window_end_ms", func(r *Row) int64 { return unixMilli(r.ev.WindowEnd) }),
	uint64Column("seq_from", func(r *Row) uint64 { return r.ev.SeqFrom }),
	uint64Column("seq_to", func(r *Row) uint64 { return r.ev.SeqTo }),
	int64Column("tolerance_seconds", func(r *Row) int64 { return r.ev.ToleranceSeconds }),
	int64Column("clock_skew_ms", func(r *Row) int64 { return r.ev.ClockSkewMS }),
	int64Column("delay_ms", func(r *Row) int64 { return r.ev.DelayMS }),
	int64Column("event_count", func(r *Row) int64 { return r.ev.EventCount }),
	int64Column("expected_calls", func(r *Row) int64 { return r.ev.ExpectedCalls }),
	int64Column("observed_calls", func(r *Row) int64 { return r.ev.ObservedCalls }),
	stringColumn("outcome", func(r *Row) string { return r.ev.Outcome }),
	// From the message and the loader.
	uint64Column("stream_seq", func(r *Row) uint64 { return r.meta.streamSeq }),
	timeColumn("stored_at", func(r *Row) time.Time { return r.meta.storedAt.UTC() }),
	int64Column("stored_at_ms", func(r *Row) int64 { return r.meta.storedAt.UnixMilli() }),
	{name: "loaded_at", typ: dateTimeUTC, values: func(rows []*Row, loadedAt time.Time) any {
		out := make([]time.Time, len(rows))
		for i := range out {
			out[i] = loadedAt
		}
		return out
	}},
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

// dateTimeValue is t in UTC, or the Unix epoch when t is unset.
func dateTimeValue(t time.Time) time.Time {
	if t.IsZero() {
		return minDateTime
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

// Row is a valid event as one row of the events table: the decoded event
// and what its message adds. knownColumns read their values from it.
type Row struct {
	ev   *event.Event
	meta meta
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
// letter. prefix is the events' subject prefix. The row is checked: every
// value of cols fits its column.
func decodeMessage(cols []column, prefix, subject string, data []byte, m meta) (r *Row, proj *projRow, dead *deadLetter) {
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
		r, err = newRow(cols, ev, m)
	}
	if err == nil {
		proj, err = projectionOf(ev, m)
	}
	if err == nil {
		return r, proj, nil
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

// newRow is the row of ev and m, checked against the ranges of cols: the
// error names the column whose value does not fit.
func newRow(cols []column, ev *event.Event, m meta) (*Row, error) {
	if ev.SchemaVersion < 0 || ev.SchemaVersion > math.MaxUint8 {
		return nil, fmt.Errorf("schema_version: %w", errRow)
	}
	if m.streamSeq == 0 {
		return nil, fmt.Errorf("stream_seq: %w", errRow)
	}
	r := &Row{ev: ev, meta: m}
	for _, c := range cols {
		if c.at == nil {
			continue
		}
		if t := c.at(r); t.Before(minDateTime) || t.After(maxDateTime) {
			return nil, fmt.Errorf("%s: %w", c.name, errRow)
		}
	}
	return r, nil
}

// block is the values of rows for cols, one typed slice per column (see
// column), with loaded_at set to loadedAt.
func block(cols []column, rows []*Row, loadedAt time.Time) []any {
	out := make([]any, len(cols))
	for i, c := range cols {
		out[i] = c.values(rows, loadedAt)
	}
	return out
}

func insertQuery(db, table string, columns []string) string {
	return "INSERT INTO " + db + "." + table + " (" + strings.Join(columns, ", ") + ")"
}
