// Package accountability reads what every airing's response window went
// through, and keeps it as a projection (a broadcast week at a time, by
// the on-read views of schema migrations 0011, 0013 and 0015): its
// status and the reason for it, how much of its window was covered, the
// calls and orders estimated missing, and its cost per order and media
// ratio both as measured and adjusted for the estimate. See
// docs/accountability.md.
package accountability

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/report"
)

// The views of migrations 0011 and 0013 analysts query.
const (
	View             = "airing_accountability"
	ViewCoverage     = "airing_coverage"
	ViewDowntime     = "source_downtime"
	ViewSilences     = "source_silences"
	ViewGaps         = "sequence_gaps"
	ViewLineOutages  = "line_outages"
	ViewDelays       = "data_delays"
	ViewUncovered    = "uncovered_spans"
	ViewEstimates    = "airing_estimates"
	ViewResponseBase = "response_shapes"
)

// Statuses of an airing.
const (
	// StatusAccounted: every source of its response was recorded for its
	// whole window (late data included: late is not lost).
	StatusAccounted = "accounted"
	// StatusPartial: its window overlapped downtime, a silent line or an
	// unresolved sequence gap.
	StatusPartial = "partial"
	// StatusDidNotRun: the post-log says it did not run.
	StatusDidNotRun = "did_not_run"
	// StatusPending: its window is still open, or its data not loaded yet.
	StatusPending = "pending"
	// StatusNoResponse: it ran and cost money, but drew far fewer calls
	// than comparable airings predict for its spend while its sources were
	// up: a suspected silent line (carrier routing, a trunk down, the
	// wrong number on air). Never reported as a clean result.
	StatusNoResponse = "no_response"
)

// Airing is one row of airing_accountability.
type Airing struct {
	AiringID  string    `json:"airing_id"`
	Status    string    `json:"status"`
	Reason    string    `json:"reason"`
	Offer     string    `json:"offer"`
	Station   string    `json:"station"`
	Market    string    `json:"market"`
	MediaType string    `json:"media_type"`
	ISCI      string    `json:"isci"`
	DNIS      string    `json:"dnis"`
	AiredAt   time.Time `json:"aired_at"`
	// ResponseStartMS and ResponseEndMS bound its response window (Unix ms).
	ResponseStartMS int64  `json:"response_start_ms"`
	ResponseEndMS   int64  `json:"response_end_ms"`
	WindowMinutes   int64  `json:"window_minutes"`
	DidNotRun       bool   `json:"did_not_run"`
	Currency        string `json:"currency"`
	// UncoveredMinutes: minutes of the window in which some source of its
	// response was out (downtime, lost events, a silent line).
	UncoveredMinutes float64 `json:"uncovered_minutes"`
	// Coverage: the share of its call taking that was recorded, each call
	// source weighted by its share of the number's calls (1: all of it).
	Coverage float64 `json:"coverage"`
	// SourcesCoverage lists the sources not fully covered, e.g.
	// "acd.tampa-01 77.8%".
	SourcesCoverage string `json:"sources_coverage"`
	// LateEvents and MaxDelayMinutes: events of its sources in its window
	// that arrived late (none lost).
	LateEvents      int64   `json:"late_events"`
	MaxDelayMinutes float64 `json:"max_delay_minutes"`

	Calls           int64 `json:"calls"`
	Orders          int64 `json:"orders"`
	PhoneOrders     int64 `json:"phone_orders"`
	WebOrders       int64 `json:"web_orders"`
	NetRevenueCents int64 `json:"net_revenue_cents"`
	MediaCostCents  int64 `json:"media_cost_cents"`
	// SharedCalls: its part of the calls in its window when each call is
	// split between the airings whose windows on its number hold it, by
	// their expected response at the call's minute (equal to Calls on a
	// number no other airing overlaps). SharedWith lists those airings.
	SharedCalls float64 `json:"shared_calls"`
	SharedWith  string  `json:"shared_with"`
	// ExpectedCalls: what comparable airings (ExpectedBasis: same offer
	// and media, same media, or all airings of its week) draw for its
	// spend; 0 where there are too few to tell.
	ExpectedCalls float64 `json:"expected_calls"`
	ExpectedBasis string  `json:"expected_basis"`
	// ComparableMinCalls: the fewest calls any of those comparable
	// airings drew (the second test of StatusNoResponse).
	ComparableMinCalls float64 `json:"comparable_min_calls"`
	// NoResponse: its calls are far below ExpectedCalls (see
	// StatusNoResponse for the test).
	NoResponse bool `json:"no_response"`
	// MissingCallsBound and MissingOrdersBound: the most calls and orders
	// the evidence can hold missing where sequence gaps are the only cause
	// (a gap's missing numbers less the heartbeats due in its span); the
	// estimates never exceed them. Nil: not bounded by evidence.
	MissingCallsBound  *float64 `json:"missing_calls_bound"`
	MissingOrdersBound *float64 `json:"missing_orders_bound"`
	// OrphanCancellations: cancellations naming an order never received,
	// lost while one of its order sources was out.
	OrphanCancellations int64 `json:"orphan_cancellations"`
	// EstimatedMissingCalls and EstimatedMissingOrders: what the uncovered
	// minutes held, by the expected response curve.
	EstimatedMissingCalls   float64 `json:"estimated_missing_calls"`
	EstimatedMissingOrders  float64 `json:"estimated_missing_orders"`
	AdjustedCalls           float64 `json:"adjusted_calls"`
	AdjustedOrders          float64 `json:"adjusted_orders"`
	AdjustedNetRevenueCents float64 `json:"adjusted_net_revenue_cents"`
	// Measured and adjusted ratios; nil where undefined (no orders, no
	// cost, no target).
	CostPerOrderCents         *float64 `json:"cost_per_order_cents"`
	AdjustedCostPerOrderCents *float64 `json:"adjusted_cost_per_order_cents"`
	MediaRatio                *float64 `json:"media_ratio"`
	AdjustedMediaRatio        *float64 `json:"adjusted_media_ratio"`
	TargetRatio               *float64 `json:"target_ratio"`
	RatioToTarget             *float64 `json:"ratio_to_target"`
	AdjustedRatioToTarget     *float64 `json:"adjusted_ratio_to_target"`
}

// ErrRange is returned for a range whose start is not before its end.
var ErrRange = errors.New("accountability: the range needs a start before its end")

// SQL is the query of the airings that aired in [from, to), by air time,
// from database db's accountability view (the projection).
func SQL(db string, from, to time.Time) (string, error) {
	ident, err := chsql.Ident(db)
	if err != nil {
		return "", fmt.Errorf("accountability: database: %w", err)
	}
	return rangeSQL(ident+"."+View, from, to)
}

func rangeSQL(table string, from, to time.Time) (string, error) {
	if from.IsZero() || !from.Before(to) {
		return "", ErrRange
	}
	cols := columns()
	return "SELECT " + strings.Join(cols, ", ") + " FROM " + table +
		" WHERE aired_at >= " + chsql.Time(from) + " AND aired_at < " + chsql.Time(to) +
		" ORDER BY aired_at, airing_id", nil
}

// Source is where Query reads from.
type Source string

const (
	// SourceAuto: the projection for the weeks it holds fresh, each other
	// week computed on read over its slice.
	SourceAuto Source = ""
	// SourceSlices: every week computed on read over its slice.
	SourceSlices Source = "slices"
	// SourceOnRead: the on-read view over all history (for auditing; on a
	// long history it is slow and needs much memory).
	SourceOnRead Source = "on-read"
)

// Query reads the accountability of the airings that aired in [from, to):
// from the projection for the weeks it holds clean (or, not settled yet,
// computed by the projector less than a minute ago: WeekState.Fresh), and
// computed on read, a week at a time over the events it depends on, for
// the others (never computed, marked since). q must also be an Execer for
// that (a week is evaluated into scratch tables); without one, Query reads
// the on-read view.
func Query(ctx context.Context, q report.Querier, db string, from, to time.Time) ([]Airing, error) {
	return QueryFrom(ctx, q, db, from, to, SourceAuto)
}

// QueryFrom is Query reading from src.
func QueryFrom(ctx context.Context, q report.Querier, db string, from, to time.Time, src Source) ([]Airing, error) {
	ident, err := chsql.Ident(db)
	if err != nil {
		return nil, fmt.Errorf("accountability: database: %w", err)
	}
	if from.IsZero() || !from.Before(to) {
		return nil, ErrRange
	}
	x, ok := q.(DB)
	if !ok || src == SourceOnRead {
		return queryRows(ctx, q, ident+"."+ViewOnRead, from, to)
	}
	first, last := WeekOf(from.UnixMilli()), WeekOf(to.UnixMilli()-1)
	stored := map[int64]bool{}
	if src == SourceAuto {
		states, err := Weeks(ctx, q, db)
		if err != nil {
			return nil, err
		}
		now, err := report.ServerNow(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, w := range states {
			stored[w.Week] = w.Fresh(now, DefaultRefresh)
		}
	}
	// Runs of weeks read from the projection in one query, and runs of
	// the others computed on read, up to four weeks a slice.
	var out []Airing
	for w := first; w <= last; {
		end := w
		for end+weekMS <= last && stored[end+weekMS] == stored[w] && (stored[w] || end-w < 3*weekMS) {
			end += weekMS
		}
		lo, hi := maxTime(from, w), minTime(to, end+weekMS)
		var rows []Airing
		var err error
		if stored[w] {
			rows, err = queryRows(ctx, q, ident+"."+View, lo, hi)
		} else {
			rows, err = sliceRows(ctx, x, db, w, end, lo, hi)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
		w = end + weekMS
	}
	return out, nil
}

func maxTime(t time.Time, ms int64) time.Time {
	if u := time.UnixMilli(ms).UTC(); u.After(t) {
		return u
	}
	return t
}

func minTime(t time.Time, ms int64) time.Time {
	if u := time.UnixMilli(ms).UTC(); u.Before(t) {
		return u
	}
	return t
}

// sliceRows computes the weeks first..last on read and returns the rows
// of the airings aired in [from, to).
func sliceRows(ctx context.Context, x DB, db string, first, last int64, from, to time.Time) (rows []Airing, err error) {
	ident, _ := chsql.Ident(db)
	reach, _, err := report.Reach(ctx, x, db)
	if err != nil {
		return nil, fmt.Errorf("accountability: %w", err)
	}
	set, err := evaluate(ctx, x, ident, NewSlice(first, last, reach))
	defer func() {
		if set != nil {
			err = errors.Join(err, set.drop(ctx, x))
		}
	}()
	if err != nil {
		return nil, err
	}
	return queryRows(ctx, x, set.name(ViewOnRead), from, to)
}

func queryRows(ctx context.Context, q report.Querier, table string, from, to time.Time) ([]Airing, error) {
	sql, err := rangeSQL(table, from, to)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("accountability: query %s: %w", table, err)
	}
	out := make([]Airing, 0, len(rows))
	for _, r := range rows {
		a, err := Decode(r)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// columns are the view's columns Airing holds, by their json names.
func columns() []string {
	t := reflect.TypeFor[Airing]()
	cols := make([]string, t.NumField())
	for i := range cols {
		cols[i], _, _ = strings.Cut(t.Field(i).Tag.Get("json"), ",")
	}
	return cols
}

// Decode decodes one row of the view, as either engine returns it.
func Decode(r report.Row) (Airing, error) {
	var a Airing
	v := reflect.ValueOf(&a).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		raw, ok := r[name]
		if !ok {
			return Airing{}, fmt.Errorf("accountability: column %s missing", name)
		}
		if err := set(v.Field(i), raw); err != nil {
			return Airing{}, fmt.Errorf("accountability: column %s: %w", name, err)
		}
	}
	return a, nil
}

func set(fv reflect.Value, raw any) error {
	raw = deref(raw)
	switch fv.Interface().(type) {
	case string:
		s, ok := raw.(string)
		if !ok {
			return fmt.Errorf("want text, got %T", raw)
		}
		fv.SetString(s)
	case int64, bool:
		n, err := asFloat(raw)
		if err != nil || n == nil {
			return fmt.Errorf("want a number: %v", err)
		}
		if fv.Kind() == reflect.Bool {
			fv.SetBool(*n != 0)
		} else {
			fv.SetInt(int64(math.Round(*n)))
		}
	case float64:
		n, err := asFloat(raw)
		if err != nil || n == nil {
			return fmt.Errorf("want a number: %v", err)
		}
		fv.SetFloat(*n)
	case *float64:
		n, err := asFloat(raw)
		if err != nil {
			return err
		}
		fv.Set(reflect.ValueOf(n))
	case time.Time:
		switch x := raw.(type) {
		case time.Time:
			fv.Set(reflect.ValueOf(x.UTC()))
		case string:
			t, err := time.ParseInLocation(time.DateTime, x, time.UTC)
			if err != nil {
				return err
			}
			fv.Set(reflect.ValueOf(t))
		default:
			return fmt.Errorf("want a time, got %T", raw)
		}
	default:
		return fmt.Errorf("no decoding for %s", fv.Type())
	}
	return nil
}

// deref follows pointers (Nullable columns scan into pointers).
func deref(raw any) any {
	v := reflect.ValueOf(raw)
	for v.IsValid() && v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		return nil
	}
	return v.Interface()
}

func asFloat(raw any) (*float64, error) {
	var f float64
	switch x := raw.(type) {
	case nil:
		return nil, nil
	case float64:
		f = x
	case float32:
		f = float64(x)
	case json.Number:
		v, err := strconv.ParseFloat(x.String(), 64)
		if err != nil {
			return nil, err
		}
		f = v
	case string: // 64-bit integers in JSON output are quoted
		v, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return nil, err
		}
		f = v
	case bool:
		if x {
			f = 1
		}
	default:
		v := reflect.ValueOf(x)
		switch {
		case v.CanInt():
			f = float64(v.Int())
		case v.CanUint():
			f = float64(v.Uint())
		default:
			return nil, fmt.Errorf("want a number, got %T", raw)
		}
	}
	return &f, nil
}

// Write writes rows as a table for people: one line per airing, money in
// units of its currency.
func Write(w io.Writer, rows []Airing) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AIRING\tAIRED (UTC)\tSTATUS\tCOVERAGE\tUNCOVERED\tCALLS\tSHARED\tEXPECTED\t+MISSING\tORDERS\t+MISSING\tCPO\tCPO ADJ.\tRATIO\tRATIO ADJ.\tREASON")
	for _, a := range rows {
		shared := "-"
		if a.SharedWith != "" {
			shared = fmt.Sprintf("%.1f", a.SharedCalls)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f%%\t%.1f min\t%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n",
			a.AiringID, a.AiredAt.UTC().Format("2006-01-02 15:04"), a.Status, a.Coverage*100, a.UncoveredMinutes,
			a.Calls, shared, estimate(a.ExpectedCalls), estimate(a.EstimatedMissingCalls), a.Orders, estimate(a.EstimatedMissingOrders),
			money(a.CostPerOrderCents), money(a.AdjustedCostPerOrderCents), ratio(a.MediaRatio), ratio(a.AdjustedMediaRatio), a.Reason)
	}
	return tw.Flush()
}

func estimate(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("~%.0f", x)
}

func money(c *float64) string {
	if c == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *c/100)
}

func ratio(r *float64) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *r)
}
