package airings

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/producers/event"
)

// Projection tables.
const (
	AiringsTable = "airings"
	OffersTable  = "offers"
)

// AiringColumns are the columns of the airings table in the order of
// AiringRow's values.
var AiringColumns = []string{
	"airing_id", "kind", "offer", "station", "market", "media_type", "isci",
	"aired_at", "aired_at_ms", "aired_until", "aired_until_ms",
	"length_seconds", "spend_cents", "currency", "dnis", "promo_code", "vanity_url", "did_not_run",
	"source_system", "source_instance", "version", "event_id", "stream_seq", "loaded_at",
}

// OfferColumns are the columns of the offers table in the order of
// OfferRow's values.
var OfferColumns = []string{
	"offer", "media_type", "currency", "target_ratio_pct", "window_minutes",
	"source_system", "source_instance", "version", "event_id", "stream_seq", "loaded_at",
}

// ErrNotProjected is returned by AiringRow and OfferRow for an event they
// do not project (another kind), and wrapped for values out of range.
var ErrNotProjected = errors.New("airings: event not projected")

// ClickHouse DateTime is an unsigned 32-bit count of seconds.
var (
	minDateTime = time.Unix(0, 0).UTC()
	maxDateTime = time.Unix(math.MaxUint32, 0).UTC()
)

// AiringRow maps an airing.* event to its row of the airings table
// (AiringColumns), given the event's stream sequence and the load time.
// Every value has the Go type its column takes:
//
//	airing_id, offer, station, market, media_type, isci, currency, dnis,
//	promo_code, vanity_url        the event's fields of those names
//	kind                          the event's kind
//	aired_at, aired_at_ms         AiredAt (DateTime, Unix ms)
//	aired_until, aired_until_ms   AiredUntil; epoch and 0 when unset
//	length_seconds, spend_cents   the event's fields
//	did_not_run                   1 when DidNotRun or the kind is airing.cancelled
//	source_system, source_instance the event's source
//	version                       OccurredAt in Unix ms
//	event_id, stream_seq          the event id, the stream sequence
//	loaded_at                     loadedAt (UTC, to the second)
//
// It returns an error wrapping ErrNotProjected for another kind or a time
// that DateTime cannot hold.
func AiringRow(ev *event.Event, streamSeq uint64, loadedAt time.Time) ([]any, error) {
	if !ev.Kind.IsAiring() {
		return nil, fmt.Errorf("%w: kind %s", ErrNotProjected, ev.Kind)
	}
	a := FromEvent(ev)
	for _, f := range []struct {
		name string
		t    time.Time
	}{{"aired_at", a.AiredAt}, {"aired_until", a.AiredUntil}} {
		if !f.t.IsZero() && (f.t.Before(minDateTime) || f.t.After(maxDateTime)) {
			return nil, fmt.Errorf("%w: %s out of DateTime range", ErrNotProjected, f.name)
		}
	}
	return []any{
		a.ID, string(ev.Kind), a.Offer, a.Station, a.Market, a.MediaType, a.ISCI,
		dateTime(a.AiredAt), unixMilli(a.AiredAt), dateTime(a.AiredUntil), unixMilli(a.AiredUntil),
		a.LengthSeconds, a.SpendCents, a.Currency, a.DNIS, a.PromoCode, a.VanityURL, boolByte(a.DidNotRun),
		ev.Source.System, ev.Source.Instance, ev.OccurredAt.UnixMilli(), ev.EventID, streamSeq, loadedAt.UTC().Truncate(time.Second),
	}, nil
}

// OfferRow maps an offer.configured event to its row of the offers table
// (OfferColumns): offer, media_type, currency, target_ratio_pct and
// window_minutes are the event's fields, version its occurred_at in Unix
// ms, then the source, event id, stream sequence and load time.
func OfferRow(ev *event.Event, streamSeq uint64, loadedAt time.Time) ([]any, error) {
	if ev.Kind != event.OfferConfigured {
		return nil, fmt.Errorf("%w: kind %s", ErrNotProjected, ev.Kind)
	}
	o := OfferFromEvent(ev)
	return []any{
		o.Offer, o.MediaType, o.Currency, o.TargetRatioPct, o.WindowMinutes,
		ev.Source.System, ev.Source.Instance, ev.OccurredAt.UnixMilli(), ev.EventID, streamSeq, loadedAt.UTC().Truncate(time.Second),
	}, nil
}

// InsertQuery is the batch insert of table (AiringsTable or OffersTable)
// in database ident (already quoted, e.g. by chsql.Ident), naming its
// columns as ClickHouse 18.16 requires.
func InsertQuery(ident, table string) string {
	cols := AiringColumns
	if table == OffersTable {
		cols = OfferColumns
	}
	return "INSERT INTO " + ident + "." + table + " (" + strings.Join(cols, ", ") + ")"
}

// Projected is an event with its stream sequence.
type Projected struct {
	Event     *event.Event
	StreamSeq uint64
}

// Insert projects the airing and offer events of evs into the airings and
// offers tables of database db, with one batch insert per table. Other
// kinds are skipped. It is what the loader does, for tests and tools that
// fill the projection directly.
func Insert(ctx context.Context, conn driver.Conn, db string, evs []Projected) error {
	ident, err := chsql.Ident(db)
	if err != nil {
		return fmt.Errorf("airings: insert: %w", err)
	}
	now := time.Now()
	var airingRows, offerRows [][]any
	for _, p := range evs {
		switch {
		case p.Event.Kind.IsAiring():
			row, err := AiringRow(p.Event, p.StreamSeq, now)
			if err != nil {
				return fmt.Errorf("airings: insert: event %s: %w", p.Event.EventID, err)
			}
			airingRows = append(airingRows, row)
		case p.Event.Kind == event.OfferConfigured:
			row, err := OfferRow(p.Event, p.StreamSeq, now)
			if err != nil {
				return fmt.Errorf("airings: insert: event %s: %w", p.Event.EventID, err)
			}
			offerRows = append(offerRows, row)
		}
	}
	if err := insertRows(ctx, conn, InsertQuery(ident, AiringsTable), airingRows); err != nil {
		return fmt.Errorf("airings: insert into %s: %w", AiringsTable, err)
	}
	if err := insertRows(ctx, conn, InsertQuery(ident, OffersTable), offerRows); err != nil {
		return fmt.Errorf("airings: insert into %s: %w", OffersTable, err)
	}
	return nil
}

func insertRows(ctx context.Context, conn driver.Conn, query string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	batch, err := conn.PrepareBatch(ctx, query)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer func() {
		if !batch.IsSent() {
			_ = batch.Abort()
		}
	}()
	for i, row := range rows {
		if err := batch.Append(row...); err != nil {
			return fmt.Errorf("append row %d: %w", i, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// dateTime is t in UTC, or the epoch (DateTime's zero) when t is unset.
func dateTime(t time.Time) time.Time {
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
