// Package reporttest loads events into ClickHouse 18.16 and into chDB the
// way the loader does (the events table plus the airings and offers
// projections), and runs the report on chDB, for the tests of the airing
// report, the schedule import and the demo day.
package reporttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/airtally/airtally/consumers/projector"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/airtally/airtally/internal/airings"
	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/schema"
)

// EventColumns are the columns of the events table (migration 0001).
var EventColumns = []string{
	"event_id", "kind", "schema_version", "occurred_at", "occurred_at_ms", "source_system", "source_instance", "source_seq",
	"call_id", "dnis", "ani_hash", "queue", "site", "agent_id", "talk_seconds", "wait_seconds", "disposition",
	"order_id", "offer", "sku", "amount_cents", "currency", "upsell_count", "continuity", "payment_brand", "card_last4",
	"channel", "promo_code", "vanity_url", "reason", "interval_seconds", "stream_seq", "stored_at", "stored_at_ms", "loaded_at",
}

// EventRow is ev's row of the events table, as the loader writes it.
func EventRow(ev *event.Event, streamSeq uint64, now time.Time) []any {
	b := func(v bool) uint8 {
		if v {
			return 1
		}
		return 0
	}
	now = now.UTC().Truncate(time.Millisecond)
	return []any{
		ev.EventID, string(ev.Kind), uint8(ev.SchemaVersion), ev.OccurredAt.UTC(), ev.OccurredAt.UnixMilli(),
		ev.Source.System, ev.Source.Instance, ev.Source.Seq,
		ev.CallID, ev.DNIS, ev.ANIHash, ev.Queue, ev.Site, ev.AgentID, ev.TalkSeconds, ev.WaitSeconds, ev.Disposition,
		ev.OrderID, ev.Offer, ev.SKU, ev.AmountCents, ev.Currency, ev.UpsellCount, b(ev.Continuity), ev.PaymentBrand, ev.CardLast4,
		string(ev.Channel), ev.PromoCode, ev.VanityURL, ev.Reason, ev.IntervalSeconds,
		streamSeq, now, now.UnixMilli(), now.Truncate(time.Second),
	}
}

// Sequenced is an event with the stream sequence it was stored under.
type Sequenced = airings.Projected

// Number gives evs stream sequences first, first+1, ...
func Number(evs []*event.Event, first uint64) []Sequenced {
	out := make([]Sequenced, len(evs))
	for i, e := range evs {
		out[i] = Sequenced{Event: e, StreamSeq: first + uint64(i)}
	}
	return out
}

// Load inserts evs into database db on ClickHouse 18.16 as the loader
// would: every event into events (one batch), the schedule's events into
// the airings and offers projections.
func Load(ctx context.Context, conn driver.Conn, db string, evs []Sequenced) error {
	if len(evs) == 0 {
		return nil
	}
	ident, err := chsql.Ident(db)
	if err != nil {
		return err
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+ident+".events ("+strings.Join(EventColumns, ", ")+")")
	if err != nil {
		return fmt.Errorf("prepare events: %w", err)
	}
	defer func() {
		if !batch.IsSent() {
			_ = batch.Abort()
		}
	}()
	now := time.Now()
	for _, s := range evs {
		if err := batch.Append(EventRow(s.Event, s.StreamSeq, now)...); err != nil {
			return fmt.Errorf("append event: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("send events: %w", err)
	}
	if err := airings.Insert(ctx, conn, db, evs); err != nil {
		return err
	}
	return projector.Mark(ctx, projector.Native(conn), db, Touches(evs))
}

// MigrateCHDB applies every migration to database db of the chDB session.
func MigrateCHDB(ch *testenv.CHDB, db string) error {
	migs, err := schema.Migrations(db)
	if err != nil {
		return err
	}
	for _, m := range migs {
		for _, s := range m.Statements {
			if err := ch.Exec(s); err != nil {
				return fmt.Errorf("migration %04d: %w", m.Version, err)
			}
		}
	}
	return nil
}

// LoadCHDB inserts evs into database db of the chDB session with INSERT
// ... FORMAT JSONEachRow: the same rows as Load.
func LoadCHDB(ch *testenv.CHDB, db string, evs []Sequenced) error {
	ident, err := chsql.Ident(db)
	if err != nil {
		return err
	}
	now := time.Now()
	var events, airingRows, offerRows []string
	for _, s := range evs {
		events = append(events, jsonRow(EventColumns, EventRow(s.Event, s.StreamSeq, now)))
		switch {
		case s.Event.Kind.IsAiring():
			row, err := airings.AiringRow(s.Event, s.StreamSeq, now)
			if err != nil {
				return err
			}
			airingRows = append(airingRows, jsonRow(airings.AiringColumns, row))
		case s.Event.Kind == event.OfferConfigured:
			row, err := airings.OfferRow(s.Event, s.StreamSeq, now)
			if err != nil {
				return err
			}
			offerRows = append(offerRows, jsonRow(airings.OfferColumns, row))
		}
	}
	for _, t := range []struct {
		table string
		cols  []string
		rows  []string
	}{{"events", EventColumns, events}, {airings.AiringsTable, airings.AiringColumns, airingRows}, {airings.OffersTable, airings.OfferColumns, offerRows}} {
		for start := 0; start < len(t.rows); start += 5000 {
			chunk := t.rows[start:min(start+5000, len(t.rows))]
			q := "INSERT INTO " + ident + "." + t.table + " (" + strings.Join(t.cols, ", ") + ") FORMAT JSONEachRow\n" + strings.Join(chunk, "\n")
			if err := ch.Exec(q); err != nil {
				return fmt.Errorf("chdb: insert into %s: %w", t.table, err)
			}
		}
	}
	return projector.Mark(context.Background(), CHDBDB(ch), db, Touches(evs))
}

// jsonRow renders a row as one JSONEachRow line.
func jsonRow(cols []string, vals []any) string {
	m := make(map[string]any, len(cols))
	for i, c := range cols {
		switch v := vals[i].(type) {
		case uuid.UUID:
			m[c] = v.String()
		case time.Time:
			m[c] = v.UTC().Format(time.DateTime)
		default:
			m[c] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // strings, numbers and times always encode
	}
	return string(b)
}

// CHDB is a report.Querier over the chDB session.
func CHDB(ch *testenv.CHDB) report.Querier { return chdbQuerier{ch} }

// CHDBDB is a report.Querier and report.Execer over the chDB session
// (a projector.DB).
func CHDBDB(ch *testenv.CHDB) interface {
	report.Querier
	report.Execer
} {
	return chdbQuerier{ch}
}

type chdbQuerier struct{ ch *testenv.CHDB }

func (q chdbQuerier) Exec(_ context.Context, sql string) error { return q.ch.Exec(sql) }

// Touches are what evs can change in the figures (projector.Mark's
// input), as the loader reports them.
func Touches(evs []Sequenced) []projector.Touch {
	out := make([]projector.Touch, len(evs))
	for i, s := range evs {
		out[i] = projector.TouchOf(s.Event)
	}
	return out
}

func (q chdbQuerier) Query(_ context.Context, sql string) ([]report.Row, error) {
	rows, err := q.ch.QueryJSON(sql)
	if err != nil {
		return nil, err
	}
	out := make([]report.Row, len(rows))
	for i, r := range rows {
		out[i] = report.Row(r)
	}
	return out, nil
}

// SameAsOnRead runs o as asked (Source auto: from the projection where
// it can) and on read, and reports whether their JSON is the same, with
// both results.
func SameAsOnRead(ctx context.Context, q report.Querier, o report.Options) (fast, onRead *report.Result, same bool, err error) {
	if fast, err = report.Run(ctx, q, o); err != nil {
		return nil, nil, false, fmt.Errorf("report from the projection: %w", err)
	}
	o.Source = report.SourceOnRead
	if onRead, err = report.Run(ctx, q, o); err != nil {
		return nil, nil, false, fmt.Errorf("report on read: %w", err)
	}
	fj, err1 := json.Marshal(fast)
	sj, err2 := json.Marshal(onRead)
	if err := errors.Join(err1, err2); err != nil {
		return nil, nil, false, err
	}
	return fast, onRead, string(fj) == string(sj), nil
}
