package report

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Measures are the figures of an airing, of the unattributed bucket or of
// a rollup. Money is in cents. The additive ones add up over airings; the
// ratios are computed from them (see Derive) and are nil where their
// denominator is zero. JSON names are the columns of the views.
type Measures struct {
	Calls                 int64   `json:"calls"`
	Answered              int64   `json:"answered"`
	Abandoned             int64   `json:"abandoned"`
	Orders                int64   `json:"orders"`
	PhoneOrders           int64   `json:"phone_orders"`
	WebOrders             int64   `json:"web_orders"`
	Cancellations         int64   `json:"cancellations"`
	NetOrders             int64   `json:"net_orders"`
	GrossRevenueCents     int64   `json:"gross_revenue_cents"`
	RefundCents           int64   `json:"refund_cents"`
	NetRevenueCents       int64   `json:"net_revenue_cents"`
	Upsells               int64   `json:"upsells"`
	ContinuityEnrolments  int64   `json:"continuity_enrolments"`
	MediaCostCents        int64   `json:"media_cost_cents"`
	TargetCostCents       int64   `json:"target_cost_cents"`
	RequiredRevenueX100   int64   `json:"required_revenue_x100"`
	WindowCalls           int64   `json:"window_calls"`
	BaselineCalls         int64   `json:"baseline_calls"`
	BaselineMinutes       int64   `json:"baseline_minutes"`
	ExpectedBaselineCalls float64 `json:"expected_baseline_calls"`
	Lift                  float64 `json:"lift"`

	AbandonmentRate        *float64 `json:"abandonment_rate"`
	CloseRate              *float64 `json:"close_rate"`
	AverageOrderValueCents *float64 `json:"average_order_value_cents"`
	CostPerCallCents       *float64 `json:"cost_per_call_cents"`
	CostPerOrderCents      *float64 `json:"cost_per_order_cents"`
	MediaRatio             *float64 `json:"media_ratio"`
	TargetRatio            *float64 `json:"target_ratio"`
	RatioToTarget          *float64 `json:"ratio_to_target"`
	OnTarget               *bool    `json:"on_target"`
	CallsPer1000           *float64 `json:"calls_per_1000"`
	BaselineRate           float64  `json:"baseline_rate"`
}

// Derive computes the ratios from the additive measures, by the same
// formulas as the views (Go float64 and ClickHouse Float64 divide alike).
func (m *Measures) Derive() {
	div := func(num, den int64) *float64 {
		if den == 0 {
			return nil
		}
		v := float64(num) / float64(den)
		return &v
	}
	m.AbandonmentRate = div(m.Abandoned, m.Calls)
	m.CloseRate = div(m.PhoneOrders, m.Answered)
	m.AverageOrderValueCents = div(m.GrossRevenueCents, m.Orders)
	m.CostPerCallCents = div(m.MediaCostCents, m.Calls)
	m.CostPerOrderCents = div(m.MediaCostCents, m.Orders)
	m.MediaRatio = div(m.NetRevenueCents, m.MediaCostCents)
	m.TargetRatio, m.RatioToTarget, m.OnTarget = nil, nil, nil
	if m.TargetCostCents != 0 {
		t := float64(m.RequiredRevenueX100) / float64(m.TargetCostCents) / 100
		m.TargetRatio = &t
		if m.MediaCostCents != 0 {
			r := float64(m.NetRevenueCents) / float64(m.MediaCostCents)
			q, on := r/t, r >= t
			m.RatioToTarget, m.OnTarget = &q, &on
		}
	}
	m.CallsPer1000 = div(m.Calls*100000, m.MediaCostCents)
	m.BaselineRate = 0
	if m.BaselineMinutes != 0 {
		m.BaselineRate = float64(m.BaselineCalls) / float64(m.BaselineMinutes)
	}
}

// Add adds the additive measures of o to m (ratios are left for Derive).
func (m *Measures) Add(o Measures) {
	m.Calls += o.Calls
	m.Answered += o.Answered
	m.Abandoned += o.Abandoned
	m.Orders += o.Orders
	m.PhoneOrders += o.PhoneOrders
	m.WebOrders += o.WebOrders
	m.Cancellations += o.Cancellations
	m.NetOrders += o.NetOrders
	m.GrossRevenueCents += o.GrossRevenueCents
	m.RefundCents += o.RefundCents
	m.NetRevenueCents += o.NetRevenueCents
	m.Upsells += o.Upsells
	m.ContinuityEnrolments += o.ContinuityEnrolments
	m.MediaCostCents += o.MediaCostCents
	m.TargetCostCents += o.TargetCostCents
	m.RequiredRevenueX100 += o.RequiredRevenueX100
	m.WindowCalls += o.WindowCalls
	m.BaselineCalls += o.BaselineCalls
	m.BaselineMinutes += o.BaselineMinutes
	m.ExpectedBaselineCalls += o.ExpectedBaselineCalls
	m.Lift += o.Lift
}

// Figures are one row of airing_figures: an airing and its measures. The
// unattributed bucket is the row whose AiringID is "" (Status
// "unattributed").
type Figures struct {
	AiringID       string    `json:"airing_id"`
	Status         string    `json:"status"`
	Offer          string    `json:"offer"`
	Station        string    `json:"station"`
	Market         string    `json:"market"`
	MediaType      string    `json:"media_type"`
	ISCI           string    `json:"isci"`
	DNIS           string    `json:"dnis"`
	PromoCode      string    `json:"promo_code"`
	VanityURL      string    `json:"vanity_url"`
	AiredAt        time.Time `json:"aired_at"`
	AiredAtMS      int64     `json:"aired_at_ms"`
	AiredUntilMS   int64     `json:"aired_until_ms"`
	LengthSeconds  int64     `json:"length_seconds"`
	DidNotRun      bool      `json:"did_not_run"`
	Currency       string    `json:"currency"`
	WindowMinutes  int64     `json:"window_minutes"`
	TargetRatioPct int64     `json:"target_ratio_pct"`
	ResponseStart  int64     `json:"response_start_ms"`
	ResponseEnd    int64     `json:"response_end_ms"`
	Daypart        string    `json:"daypart"`
	BroadcastDay   string    `json:"broadcast_day"`
	BroadcastWeek  string    `json:"broadcast_week"`
	// WindowLengthMinutes is the response window's length (with a
	// schedule window, from its start to its end plus the response
	// window).
	WindowLengthMinutes float64 `json:"window_length_minutes"`
	Measures
	// Curve is calls per minute since air time, from minute 0 to the end
	// of the response window (filled by a report that asks for curves).
	Curve []int64 `json:"curve,omitempty"`
}

// Rollup is one row of a rollup view: the airings of one key.
type Rollup struct {
	Key       string `json:"key"`
	Airings   int64  `json:"airings"`
	DidNotRun int64  `json:"did_not_run"`
	Currency  string `json:"currency"`
	Measures
}

// Row is one result row: column name to value, as a Querier returns it.
type Row map[string]any

// DecodeFigures decodes a row of airing_figures (or of a report's figures
// query).
func DecodeFigures(r Row) (Figures, error) {
	var f Figures
	err := decodeInto(r, &f)
	return f, err
}

// DecodeRollup decodes a row of the rollup by d.
func DecodeRollup(r Row, d Dimension) (Rollup, error) {
	var ru Rollup
	if err := decodeInto(r, &ru); err != nil {
		return Rollup{}, err
	}
	key, err := asString(r[d.Column()])
	if err != nil {
		return Rollup{}, fmt.Errorf("report: column %s: %w", d.Column(), err)
	}
	ru.Key = key
	return ru, nil
}

// decodeInto fills the fields of dst (a pointer to a struct) from r, by
// their json names; embedded structs are filled too. Columns missing from
// r leave their field alone; a value of the wrong kind is an error naming
// the column.
func decodeInto(r Row, dst any) error {
	v := reflect.ValueOf(dst).Elem()
	for _, f := range fieldsOf(v.Type()) {
		raw, ok := r[f.name]
		if !ok {
			continue
		}
		if err := setField(v.FieldByIndex(f.index), raw); err != nil {
			return fmt.Errorf("report: column %s: %w", f.name, err)
		}
	}
	return nil
}

// field is a struct field filled from the column of its json name.
type field struct {
	index []int
	name  string
}

var fieldCache sync.Map // reflect.Type → []field

// fieldsOf lists t's fields by json name, those of embedded structs
// included, once per type.
func fieldsOf(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			for _, inner := range fieldsOf(f.Type) {
				fs = append(fs, field{index: append([]int{i}, inner.index...), name: inner.name})
			}
			continue
		}
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
			fs = append(fs, field{index: []int{i}, name: name})
		}
	}
	fieldCache.Store(t, fs)
	return fs
}

func setField(fv reflect.Value, raw any) error {
	switch fv.Interface().(type) {
	case string:
		s, err := asString(raw)
		fv.SetString(s)
		return err
	case int64:
		n, err := asInt(raw)
		fv.SetInt(n)
		return err
	case float64:
		x, err := asFloat(raw)
		if x == nil {
			return fmt.Errorf("unexpected NULL")
		}
		fv.SetFloat(*x)
		return err
	case *float64:
		x, err := asFloat(raw)
		fv.Set(reflect.ValueOf(x))
		return err
	case bool:
		n, err := asInt(raw)
		fv.SetBool(n != 0)
		return err
	case *bool:
		if isNull(raw) {
			fv.Set(reflect.Zero(fv.Type()))
			return nil
		}
		n, err := asInt(raw)
		b := n != 0
		fv.Set(reflect.ValueOf(&b))
		return err
	case time.Time:
		t, err := asTime(raw)
		fv.Set(reflect.ValueOf(t))
		return err
	}
	return fmt.Errorf("no decoding for %s", fv.Type())
}

// deref follows pointers (Nullable columns scan into pointers).
func deref(raw any) any {
	switch raw.(type) {
	case nil, string, int64, int32, int16, int8, uint64, uint32, uint16, uint8, float64, float32, bool, time.Time:
		return raw // not a pointer: no reflection
	}
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

func isNull(raw any) bool { return deref(raw) == nil }

func asString(raw any) (string, error) {
	switch x := deref(raw).(type) {
	case string:
		return x, nil
	case time.Time:
		return x.UTC().Format(time.DateOnly), nil // Date columns
	case nil:
		return "", fmt.Errorf("unexpected NULL")
	}
	return "", fmt.Errorf("want text, got %T", raw)
}

func asInt(raw any) (int64, error) {
	switch x := deref(raw).(type) {
	case int64:
		return x, nil
	case int32:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("%d out of range", x)
		}
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint8:
		return int64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case json.Number:
		return strconv.ParseInt(x.String(), 10, 64)
	case string: // 64-bit integers in JSON output are quoted
		return strconv.ParseInt(x, 10, 64)
	case nil:
		return 0, fmt.Errorf("unexpected NULL")
	}
	return 0, fmt.Errorf("want an integer, got %T", raw)
}

func asFloat(raw any) (*float64, error) {
	var f float64
	switch x := deref(raw).(type) {
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
	case string:
		v, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return nil, err
		}
		f = v
	default:
		n, err := asInt(raw)
		if err != nil {
			return nil, err
		}
		f = float64(n)
	}
	return &f, nil
}

func asTime(raw any) (time.Time, error) {
	switch x := deref(raw).(type) {
	case time.Time:
		return x.UTC(), nil
	case string:
		if t, err := time.ParseInLocation(time.DateTime, x, time.UTC); err == nil {
			return t, nil
		}
		return time.ParseInLocation(time.DateOnly, x, time.UTC)
	}
	return time.Time{}, fmt.Errorf("want a time, got %T", raw)
}

// AsInt reads an integer column as either engine returns it (the
// driver's integer types, or a JSON number or string from chDB).
func AsInt(raw any) (int64, error) { return asInt(raw) }
