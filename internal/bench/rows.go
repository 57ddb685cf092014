package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/producers/event"
)

// rowMeta is what a row takes from the stream message rather than the
// event.
type rowMeta struct {
	streamSeq uint64
	storedAt  time.Time
	loadedAt  time.Time
}

// columnValues are the values the loader writes to the events columns
// (consumers/loader, row.go), by column name, for the fields the
// benchmark's events use and the stream metadata; each has the Go type
// clickhouse-go appends to that column's type.
var columnValues = map[string]func(e *event.Event, m rowMeta) any{
	"event_id":         func(e *event.Event, _ rowMeta) any { return e.EventID },
	"kind":             func(e *event.Event, _ rowMeta) any { return string(e.Kind) },
	"schema_version":   func(e *event.Event, _ rowMeta) any { return uint8(e.SchemaVersion) },
	"occurred_at":      func(e *event.Event, _ rowMeta) any { return e.OccurredAt.UTC() },
	"occurred_at_ms":   func(e *event.Event, _ rowMeta) any { return e.OccurredAt.UnixMilli() },
	"source_system":    func(e *event.Event, _ rowMeta) any { return e.Source.System },
	"source_instance":  func(e *event.Event, _ rowMeta) any { return e.Source.Instance },
	"source_seq":       func(e *event.Event, _ rowMeta) any { return e.Source.Seq },
	"call_id":          func(e *event.Event, _ rowMeta) any { return e.CallID },
	"dnis":             func(e *event.Event, _ rowMeta) any { return e.DNIS },
	"ani_hash":         func(e *event.Event, _ rowMeta) any { return e.ANIHash },
	"queue":            func(e *event.Event, _ rowMeta) any { return e.Queue },
	"site":             func(e *event.Event, _ rowMeta) any { return e.Site },
	"agent_id":         func(e *event.Event, _ rowMeta) any { return e.AgentID },
	"talk_seconds":     func(e *event.Event, _ rowMeta) any { return e.TalkSeconds },
	"wait_seconds":     func(e *event.Event, _ rowMeta) any { return e.WaitSeconds },
	"disposition":      func(e *event.Event, _ rowMeta) any { return e.Disposition },
	"order_id":         func(e *event.Event, _ rowMeta) any { return e.OrderID },
	"offer":            func(e *event.Event, _ rowMeta) any { return e.Offer },
	"sku":              func(e *event.Event, _ rowMeta) any { return e.SKU },
	"amount_cents":     func(e *event.Event, _ rowMeta) any { return e.AmountCents },
	"currency":         func(e *event.Event, _ rowMeta) any { return e.Currency },
	"upsell_count":     func(e *event.Event, _ rowMeta) any { return e.UpsellCount },
	"continuity":       func(e *event.Event, _ rowMeta) any { return boolByte(e.Continuity) },
	"payment_brand":    func(e *event.Event, _ rowMeta) any { return e.PaymentBrand },
	"card_last4":       func(e *event.Event, _ rowMeta) any { return e.CardLast4 },
	"channel":          func(e *event.Event, _ rowMeta) any { return string(e.Channel) },
	"promo_code":       func(e *event.Event, _ rowMeta) any { return e.PromoCode },
	"vanity_url":       func(e *event.Event, _ rowMeta) any { return e.VanityURL },
	"reason":           func(e *event.Event, _ rowMeta) any { return e.Reason },
	"interval_seconds": func(e *event.Event, _ rowMeta) any { return e.IntervalSeconds },
	"airing_id":        func(e *event.Event, _ rowMeta) any { return e.AiringID },
	"station":          func(e *event.Event, _ rowMeta) any { return e.Station },
	"market":           func(e *event.Event, _ rowMeta) any { return e.Market },
	"media_type":       func(e *event.Event, _ rowMeta) any { return e.MediaType },
	"isci":             func(e *event.Event, _ rowMeta) any { return e.ISCI },
	"aired_at":         func(e *event.Event, _ rowMeta) any { return dateTime(e.AiredAt) },
	"aired_at_ms":      func(e *event.Event, _ rowMeta) any { return unixMilli(e.AiredAt) },
	"aired_until":      func(e *event.Event, _ rowMeta) any { return dateTime(e.AiredUntil) },
	"aired_until_ms":   func(e *event.Event, _ rowMeta) any { return unixMilli(e.AiredUntil) },
	"length_seconds":   func(e *event.Event, _ rowMeta) any { return e.LengthSeconds },
	"spend_cents":      func(e *event.Event, _ rowMeta) any { return e.SpendCents },
	"did_not_run":      func(e *event.Event, _ rowMeta) any { return boolByte(e.DidNotRun) },
	"target_ratio_pct": func(e *event.Event, _ rowMeta) any { return e.TargetRatioPct },
	"window_minutes":   func(e *event.Event, _ rowMeta) any { return e.WindowMinutes },
	"stream_seq":       func(_ *event.Event, m rowMeta) any { return m.streamSeq },
	"stored_at":        func(_ *event.Event, m rowMeta) any { return m.storedAt.UTC() },
	"stored_at_ms":     func(_ *event.Event, m rowMeta) any { return m.storedAt.UnixMilli() },
	"loaded_at":        func(_ *event.Event, m rowMeta) any { return m.loadedAt.UTC() },
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func dateTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return t.UTC()
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// column is a column of the events table and how a row gets its value.
type column struct {
	name  string
	value func(e *event.Event, m rowMeta) any
}

// insertColumns returns the columns of db.events, in table order, with
// their values: the loader's (columnValues) for the columns named there,
// the zero value of the type for any other column of a plain type (a
// column a later migration added; the loader fills those too, mostly with
// zero values for these events), so that the insert is as wide as the
// loader's. Columns of other types are left out (they take their
// defaults).
func insertColumns(ctx context.Context, conn driver.Conn, db string) ([]column, error) {
	q := "SELECT name, type FROM system.columns WHERE database = " + chsql.String(db) + " AND table = 'events'" // in table order
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("bench: read columns of %s.events: %w", db, err)
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("bench: read columns of %s.events: %w", db, err)
		}
		if v, ok := columnValues[name]; ok {
			cols = append(cols, column{name: name, value: v})
		} else if zero, ok := zeroValue(typ); ok {
			cols = append(cols, column{name: name, value: func(*event.Event, rowMeta) any { return zero }})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("bench: read columns of %s.events: %w", db, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("bench: %s.events has no column the loader fills (not migrated?)", db)
	}
	return cols, nil
}

// zeroValue is the zero value clickhouse-go appends to a column of type
// typ, for the plain types of the events table.
func zeroValue(typ string) (any, bool) {
	switch typ {
	case "String":
		return "", true
	case "Int64":
		return int64(0), true
	case "UInt64":
		return uint64(0), true
	case "UInt8":
		return uint8(0), true
	case "DateTime('UTC')":
		return time.Unix(0, 0).UTC(), true
	}
	return nil, false
}

// eventRows builds the rows of evs for cols, as the loader would after
// reading them from the stream at stream sequences 1..len(evs).
func eventRows(cols []column, evs []*event.Event, storedAt time.Time) [][]any {
	rows := make([][]any, len(evs))
	for i, e := range evs {
		m := rowMeta{streamSeq: uint64(i + 1), storedAt: storedAt, loadedAt: storedAt}
		row := make([]any, len(cols))
		for j, c := range cols {
			row[j] = c.value(e, m)
		}
		rows[i] = row
	}
	return rows
}

// insertQuery is the batch insert naming its columns (ClickHouse 18.16
// requires the names).
func insertQuery(db string, cols []column) (string, error) {
	ident, err := chsql.Ident(db)
	if err != nil {
		return "", fmt.Errorf("bench: database: %w", err)
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	return "INSERT INTO " + ident + ".events (" + strings.Join(names, ", ") + ")", nil
}
