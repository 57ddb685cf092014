package projector

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/producers/event"
)

// Touch is what an inserted event can change in the figures: its kind,
// its time (Unix ms), and the airing, offer or order it names.
type Touch struct {
	Kind     event.Kind
	At       int64
	AiringID string
	Offer    string
	OrderID  string
}

const (
	hourMS = int64(3_600_000)
	dayMS  = 24 * hourMS
)

// Mark marks dirty every UTC day whose figures the touches may change.
// Call it after the touches' events (and airing and offer rows) are
// stored, before they are acknowledged: a computation that started before
// the mark then never counts as having seen them.
//
// A day's computation reads calls and orders from a day and an hour before
// the day to a day after the latest response window of its airings, and
// every airing whose window or baseline reaches that span. So a call or
// order at t marks the days from t − reach − 2 days to t + 1 day 1 hour,
// reach being the longest an airing's response lasts after its air time
// (its window, plus the length of an air window not yet post-logged); an
// airing event marks, for each version of the airing (the earlier ones
// too: a post-log moves calls out of the old window), the days its span
// touches in the same way; an offer marks every airing of the offer; a
// cancellation marks its order's days. Events of other kinds change no
// figure.
func Mark(ctx context.Context, db DB, database string, touches []Touch) error {
	days, err := DaysOf(ctx, db, database, touches)
	if err != nil || len(days) == 0 {
		return err
	}
	q, err := report.MarkDaysSQL(database, days)
	if err != nil {
		return err
	}
	if err := db.Exec(ctx, q); err != nil {
		return fmt.Errorf("projector: mark %d days: %w", len(days), err)
	}
	return nil
}

// DaysOf is the UTC days (day numbers, sorted) that Mark marks for
// touches.
func DaysOf(ctx context.Context, db DB, database string, touches []Touch) ([]int64, error) {
	ident, err := chsql.Ident(database)
	if err != nil {
		return nil, fmt.Errorf("projector: database: %w", err)
	}
	var times []int64
	var airingIDs, offers, orderIDs []string
	for _, t := range touches {
		switch t.Kind {
		case event.CallReceived, event.CallAnswered, event.CallAbandoned, event.OrderPlaced:
			times = append(times, t.At)
		case event.OrderCancelled:
			orderIDs = append(orderIDs, t.OrderID)
		case event.AiringScheduled, event.AiringRevised, event.AiringCancelled:
			airingIDs = append(airingIDs, t.AiringID)
		case event.OfferConfigured:
			offers = append(offers, t.Offer)
		}
	}
	if len(times)+len(airingIDs)+len(offers)+len(orderIDs) == 0 {
		return nil, nil
	}
	reach, window, err := reachOf(ctx, db, ident)
	if err != nil {
		return nil, err
	}
	set := map[int64]bool{}
	span := func(lo, hi int64) {
		for d := report.UTCDay(lo - reach - 2*dayMS); d <= report.UTCDay(hi+dayMS+hourMS); d++ {
			set[d] = true
		}
	}
	for _, t := range times {
		span(t, t)
	}
	versions := func(cond string) error {
		rows, err := db.Query(ctx, "SELECT aired_at_ms, aired_until_ms FROM "+ident+".airings WHERE "+cond)
		if err != nil {
			return fmt.Errorf("projector: read airings: %w", err)
		}
		for _, r := range rows {
			at, err1 := toInt(r["aired_at_ms"])
			until, err2 := toInt(r["aired_until_ms"])
			if err1 != nil || err2 != nil {
				return fmt.Errorf("projector: read airings: %v %v", err1, err2)
			}
			span(at-hourMS, max(at, until)+window+dayMS)
		}
		return nil
	}
	if len(airingIDs) > 0 {
		if err := versions("airing_id IN " + inList(airingIDs)); err != nil {
			return nil, err
		}
	}
	if len(offers) > 0 {
		if err := versions("offer IN " + inList(offers)); err != nil {
			return nil, err
		}
	}
	if len(orderIDs) > 0 {
		rows, err := db.Query(ctx, "SELECT occurred_at_ms FROM "+ident+".events WHERE kind = 'order.placed' AND order_id IN "+inList(orderIDs))
		if err != nil {
			return nil, fmt.Errorf("projector: read the cancelled orders: %w", err)
		}
		for _, r := range rows {
			at, err := toInt(r["occurred_at_ms"])
			if err != nil {
				return nil, fmt.Errorf("projector: read the cancelled orders: %w", err)
			}
			span(at, at)
		}
	}
	days := make([]int64, 0, len(set))
	for d := range set {
		days = append(days, d)
	}
	slices.Sort(days)
	return days, nil
}

// reachOf reads how long, at most, an airing's response lasts after its
// air time (reach) and the longest response window (window), in ms.
func reachOf(ctx context.Context, db DB, ident string) (reach, window int64, err error) {
	rows, err := db.Query(ctx, "SELECT toInt64((SELECT max(greatest(aired_until_ms - aired_at_ms, 0)) FROM "+ident+".airings)) AS spread,"+
		" toInt64(greatest((SELECT max(window_minutes) FROM "+ident+".offers), "+chsql.Int(report.DefaultWindowMinutes)+")) AS window_minutes")
	if err != nil {
		return 0, 0, fmt.Errorf("projector: read the longest response: %w", err)
	}
	if len(rows) != 1 {
		return 0, 0, fmt.Errorf("projector: read the longest response: %d rows", len(rows))
	}
	spread, err1 := toInt(rows[0]["spread"])
	minutes, err2 := toInt(rows[0]["window_minutes"])
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("projector: read the longest response: %v %v", err1, err2)
	}
	window = minutes * 60_000
	return spread + window, window, nil
}

// inList is the SQL list of the distinct strings of ss.
func inList(ss []string) string {
	out := slices.Clone(ss)
	slices.Sort(out)
	out = slices.Compact(out)
	for i, s := range out {
		out[i] = chsql.String(s)
	}
	return "(" + strings.Join(out, ", ") + ")"
}

// toInt reads an integer column as either engine returns it.
func toInt(v any) (int64, error) { return report.AsInt(v) }
