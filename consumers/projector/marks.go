package projector

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/airtally/airtally/consumers/detector/accountability"
	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/producers/event"
)

// Touch is what an inserted event can change in the figures: its kind,
// its time (Unix ms), and the airing, offer or order it names. For a
// detection, At and Until are the span it describes (a source.down or a
// line.silent is open: until now).
type Touch struct {
	Kind     event.Kind
	At       int64
	Until    int64
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
//
// The accountability projection's weeks follow the days of their airings
// (a week whose day was computed again is computed again), and the
// events no day mark covers mark weeks directly (accountability.
// WeeksTouched): a detection marks the weeks its span can reach; a
// cancellation naming an order never stored (an orphan) and an order whose
// cancellation is stored mark the weeks the cancellation can reach; a
// heartbeat marks the weeks of the gaps that begin on its day or the next.
func Mark(ctx context.Context, db DB, database string, touches []Touch) error {
	days, weeks, err := marksOf(ctx, db, database, touches)
	if err != nil {
		return err
	}
	if len(days) > 0 {
		q, err := report.MarkDaysSQL(database, days)
		if err != nil {
			return err
		}
		if err := db.Exec(ctx, q); err != nil {
			return fmt.Errorf("projector: mark %d days: %w", len(days), err)
		}
	}
	if len(weeks) > 0 {
		if err := db.Exec(ctx, accountability.MarkWeeksSQL(database, weeks)); err != nil {
			return fmt.Errorf("projector: mark %d weeks: %w", len(weeks), err)
		}
	}
	return nil
}

// TouchOf is what e can change in the figures, as the loader reports it
// from e's row.
func TouchOf(e *event.Event) Touch {
	t := Touch{Kind: e.Kind, At: e.OccurredAt.UnixMilli(), AiringID: e.AiringID, Offer: e.Offer, OrderID: e.OrderID}
	if e.Kind.IsDetection() {
		t.At, t.Until = e.WindowStart.UnixMilli(), e.WindowEnd.UnixMilli()
	}
	return t
}

// marksOf is the UTC days (day numbers) and the weeks (Mondays, Unix ms)
// that Mark marks for touches, sorted.
func marksOf(ctx context.Context, db DB, database string, touches []Touch) (days, weeks []int64, err error) {
	ident, err := chsql.Ident(database)
	if err != nil {
		return nil, nil, fmt.Errorf("projector: database: %w", err)
	}
	var times, beats []int64
	var airingIDs, offers, orderIDs, placedIDs []string
	var spans [][2]int64
	for _, t := range touches {
		switch t.Kind {
		case event.CallReceived, event.CallAnswered, event.CallAbandoned:
			times = append(times, t.At)
		case event.OrderPlaced:
			times = append(times, t.At)
			if t.OrderID != "" {
				placedIDs = append(placedIDs, t.OrderID)
			}
		case event.OrderCancelled:
			orderIDs = append(orderIDs, t.OrderID)
		case event.AiringScheduled, event.AiringRevised, event.AiringCancelled:
			airingIDs = append(airingIDs, t.AiringID)
		case event.OfferConfigured:
			offers = append(offers, t.Offer)
		case event.Heartbeat:
			beats = append(beats, t.At)
		case event.SourceDown, event.LineSilent: // open until its end is found
			spans = append(spans, [2]int64{t.At, 0})
		case event.SourceUp, event.GapOpened, event.GapClosed, event.LineRestored, event.DataDelayed:
			spans = append(spans, [2]int64{t.At, t.Until})
		}
	}
	if len(times)+len(airingIDs)+len(offers)+len(orderIDs)+len(beats)+len(spans) == 0 {
		return nil, nil, nil
	}
	reach, window, err := report.Reach(ctx, db, database)
	if err != nil {
		return nil, nil, err
	}
	weekSet := map[int64]bool{}
	weekSpan := func(lo, hi int64) {
		for _, w := range accountability.WeeksTouched(lo, hi, reach) {
			weekSet[w] = true
		}
	}
	for _, sp := range spans {
		hi := sp[1]
		if hi < sp[0] { // open: until now, and on
			hi = time.Now().UnixMilli() + dayMS
		}
		weekSpan(sp[0], hi)
	}
	if len(beats) > 0 {
		lo, hi := slices.Min(beats), slices.Max(beats)
		rows, err := db.Query(ctx, fmt.Sprintf("SELECT window_start_ms, window_end_ms FROM %s.events WHERE kind IN ('gap.opened', 'gap.closed')"+
			" AND window_start_ms >= %d AND window_start_ms < %d", ident, report.UTCDay(lo)*dayMS, (report.UTCDay(hi)+2)*dayMS))
		if err != nil {
			return nil, nil, fmt.Errorf("projector: read the gaps near the heartbeats: %w", err)
		}
		for _, r := range rows {
			from, err1 := toInt(r["window_start_ms"])
			until, err2 := toInt(r["window_end_ms"])
			if err1 != nil || err2 != nil {
				return nil, nil, fmt.Errorf("projector: read the gaps near the heartbeats: %v %v", err1, err2)
			}
			weekSpan(from, max(from, until))
		}
	}
	if len(placedIDs) > 0 {
		rows, err := db.Query(ctx, "SELECT occurred_at_ms FROM "+ident+".events WHERE kind = 'order.cancelled' AND order_id IN "+inList(placedIDs))
		if err != nil {
			return nil, nil, fmt.Errorf("projector: read the cancellations of the orders: %w", err)
		}
		for _, r := range rows {
			at, err := toInt(r["occurred_at_ms"])
			if err != nil {
				return nil, nil, fmt.Errorf("projector: read the cancellations of the orders: %w", err)
			}
			weekSpan(at, at)
		}
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
			return nil, nil, err
		}
	}
	if len(offers) > 0 {
		if err := versions("offer IN " + inList(offers)); err != nil {
			return nil, nil, err
		}
	}
	if len(orderIDs) > 0 {
		rows, err := db.Query(ctx, "SELECT order_id, occurred_at_ms FROM "+ident+".events WHERE kind = 'order.placed' AND order_id IN "+inList(orderIDs))
		if err != nil {
			return nil, nil, fmt.Errorf("projector: read the cancelled orders: %w", err)
		}
		found := map[string]bool{}
		for _, r := range rows {
			at, err := toInt(r["occurred_at_ms"])
			if err != nil {
				return nil, nil, fmt.Errorf("projector: read the cancelled orders: %w", err)
			}
			id, _ := r["order_id"].(string)
			found[id] = true
			span(at, at)
		}
		for _, t := range touches {
			if t.Kind == event.OrderCancelled && !found[t.OrderID] {
				weekSpan(t.At, t.At) // an orphan: a lost order of the airings before it
			}
		}
	}
	days = make([]int64, 0, len(set))
	for d := range set {
		days = append(days, d)
	}
	slices.Sort(days)
	for w := range weekSet {
		weeks = append(weeks, w)
	}
	slices.Sort(weeks)
	return days, weeks, nil
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
