package report

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/internal/chsql"
)

// Querier runs one SELECT and returns its rows. The report sends it plain
// SQL text with literal values, so that the same text runs on every
// ClickHouse version.
type Querier interface {
	Query(ctx context.Context, sql string) ([]Row, error)
}

// Native is a Querier over a clickhouse-go native connection.
func Native(conn driver.Conn) Querier { return nativeQuerier{conn} }

type nativeQuerier struct{ conn driver.Conn }

// Exec runs a statement that returns no rows: a Native Querier is also an
// Execer.
func (q nativeQuerier) Exec(ctx context.Context, sql string) error { return q.conn.Exec(ctx, sql) }

func (q nativeQuerier) Query(ctx context.Context, sql string) ([]Row, error) {
	rows, err := q.conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := rows.ColumnTypes()
	// One set of destinations for every row: each value is copied out of
	// it into the row (a year's report is 50,000 rows of 60 columns).
	dest := make([]any, len(cols))
	elems := make([]reflect.Value, len(cols))
	names := make([]string, len(cols))
	for i, c := range cols {
		v := reflect.New(c.ScanType())
		dest[i], elems[i], names[i] = v.Interface(), v.Elem(), c.Name()
	}
	var out []Row
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		r := make(Row, len(cols))
		for i, name := range names {
			r[name] = elems[i].Interface()
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// By is what a report shows: one row per airing ("airing") or a rollup
// dimension.
type By string

// ByAiring shows one row per airing.
const ByAiring By = "airing"

// Options shape a report.
type Options struct {
	// Database holds the events and the projections; required.
	Database string
	// Config places days, weeks and dayparts; zero fields take defaults.
	Config Config
	// Filter chooses the airings shown; From and To are required.
	Filter Filter
	// By is ByAiring (default) or a Dimension.
	By By
	// Curves fills each airing's minute-by-minute response curve.
	Curves bool
	// Source is where the figures come from: SourceAuto (the default)
	// reads the projection for the days it holds computed and computes
	// the other days on read; SourceOnRead computes every figure on read
	// from the events (for auditing). Both give the same figures.
	Source Source
}

// Source is where a report's figures come from.
type Source string

// Sources of a report's figures.
const (
	SourceAuto   Source = "auto"
	SourceOnRead Source = "on-read"
)

// Result is a report.
type Result struct {
	Options Options `json:"-"`
	// Airings are the airings shown, by air time then id (ByAiring).
	Airings []Figures `json:"airings,omitempty"`
	// Rollups are the rollup rows, by key (for a Dimension).
	Rollups []Rollup `json:"rollups,omitempty"`
	// Unattributed are the calls and orders of the range that no airing
	// claims (organic and baseline response).
	Unattributed Figures `json:"unattributed"`
	// Read says where the figures came from.
	Read ReadStats `json:"-"`
}

// ReadStats counts the UTC days of a report's range read from the
// projection and those computed on read.
type ReadStats struct {
	DaysFromProjection int
	DaysOnRead         int
}

// ErrOptions wraps every invalid option.
var ErrOptions = errors.New("report: invalid options")

func (o Options) validate() error {
	if _, err := chsql.Ident(o.Database); err != nil {
		return fmt.Errorf("%w: database: %w", ErrOptions, err)
	}
	if err := o.Config.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrOptions, err)
	}
	if o.Filter.From.IsZero() || o.Filter.To.IsZero() || !o.Filter.From.Before(o.Filter.To) {
		return fmt.Errorf("%w: the range needs a start before its end", ErrOptions)
	}
	if o.Source != "" && o.Source != SourceAuto && o.Source != SourceOnRead {
		return fmt.Errorf("%w: source %q is not auto or on-read", ErrOptions, o.Source)
	}
	if o.By != ByAiring && o.By != "" && !Dimension(o.By).Valid() {
		return fmt.Errorf("%w: by %q is not airing or a rollup dimension", ErrOptions, o.By)
	}
	return nil
}

// Queries are the SQL texts of a report, in the order Run sends them
// (the extent query first: its answer bounds the others). Run sends
// Figures (the airings and the unattributed bucket) for a report by
// airing, and Rollup instead of it for a rollup: its rows carry the
// unattributed bucket too, as the row whose unattributed column is 1, so
// that the figures are computed once.
type Queries struct {
	Extent  string
	Figures string
	Rollup  string
	Curve   string
}

// Build renders a report's queries. scanHi is the end of the latest
// response window among the airings of the range (see ExtentSQL); the
// figures of those airings are then exactly the views' figures.
func Build(o Options, scanHi int64) (Queries, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return Queries{}, err
	}
	ident, _ := chsql.Ident(o.Database)
	return newReportBuilder(o.Config, ident, o.scope(scanHi)).queries(o), nil
}

// queries renders a report's queries with b.
func (b *builder) queries(o Options) Queries {
	q := Queries{Extent: extentSQL(b)}
	q.Figures = "SELECT *\nFROM\n(\n" + indent(b.body(ViewFigures)) + "\n)\nORDER BY aired_at_ms, airing_id"
	if o.By != ByAiring {
		d := Dimension(o.By)
		q.Rollup = "SELECT *\nFROM\n(\n" + indent(b.rollupSQL(d)) + "\n)\nORDER BY unattributed, " + d.Column()
	}
	if o.Curves {
		q.Curve = "SELECT *\nFROM\n(\n" + indent(b.body(ViewCurve)) + "\n)\nORDER BY airing_id, minute"
	}
	return q
}

func (o Options) withDefaults() Options {
	o.Config = o.Config.WithDefaults()
	if o.By == "" {
		o.By = ByAiring
	}
	if o.Source == "" {
		o.Source = SourceAuto
	}
	return o
}

func (o Options) scope(scanHi int64) *scope {
	lo, hi := o.Filter.From.UnixMilli(), o.Filter.To.UnixMilli()
	return &scope{
		lo: lo, hi: hi,
		scanLo: lo - dayMS,
		scanHi: max(hi, scanHi),
		filter: o.Filter,
	}
}

// extentSQL finds the end of the latest response window among the ran
// airings of the range.
func extentSQL(b *builder) string {
	return "SELECT toInt64(max(response_end_ms)) AS scan_hi\nFROM " + b.ref(ViewAirings) +
		"\nWHERE did_not_run = 0 AND aired_at_ms >= " + ms(b.sc.lo) + " AND aired_at_ms < " + ms(b.sc.hi)
}

// Run runs a report.
func Run(ctx context.Context, q Querier, o Options) (*Result, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	qs, read, err := plan(ctx, q, o)
	if err != nil {
		return nil, err
	}
	res := &Result{Options: o, Read: read}
	var rows []Row
	if qs.Rollup != "" {
		// The rollup query carries the unattributed bucket too: the
		// figures are computed once.
		if rows, err = q.Query(ctx, qs.Rollup); err != nil {
			return nil, fmt.Errorf("report: rollup: %w", err)
		}
		for _, r := range rows {
			bucket, err := asInt(r["unattributed"])
			if err != nil {
				return nil, fmt.Errorf("report: rollup: unattributed: %w", err)
			}
			if bucket == 1 {
				if res.Unattributed, err = DecodeFigures(r); err != nil {
					return nil, err
				}
				continue
			}
			ru, err := DecodeRollup(r, Dimension(o.By))
			if err != nil {
				return nil, err
			}
			res.Rollups = append(res.Rollups, ru)
		}
	} else {
		if rows, err = q.Query(ctx, qs.Figures); err != nil {
			return nil, fmt.Errorf("report: figures: %w", err)
		}
		for _, r := range rows {
			f, err := DecodeFigures(r)
			if err != nil {
				return nil, err
			}
			if f.AiringID == "" {
				res.Unattributed = f
				continue
			}
			res.Airings = append(res.Airings, f)
		}
	}
	if qs.Curve != "" {
		if err := res.fillCurves(ctx, q, qs.Curve); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// fillCurves sets every airing's curve: calls per minute since air time,
// zeros included, up to the end of its response window.
func (res *Result) fillCurves(ctx context.Context, q Querier, sql string) error {
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return fmt.Errorf("report: curve: %w", err)
	}
	byID := map[string]*Figures{}
	for i := range res.Airings {
		f := &res.Airings[i]
		n := (f.ResponseEnd - f.ResponseStart + 59999) / 60000
		f.Curve = make([]int64, n)
		byID[f.AiringID] = f
	}
	for _, r := range rows {
		id, err := asString(r["airing_id"])
		if err != nil {
			return fmt.Errorf("report: curve: airing_id: %w", err)
		}
		minute, err := asInt(r["minute"])
		if err != nil {
			return fmt.Errorf("report: curve: minute: %w", err)
		}
		calls, err := asInt(r["calls"])
		if err != nil {
			return fmt.Errorf("report: curve: calls: %w", err)
		}
		if f := byID[id]; f != nil && minute >= 0 && minute < int64(len(f.Curve)) {
			f.Curve[minute] = calls
		}
	}
	return nil
}

// Range returns the UTC range of the broadcast days from first to last
// (inclusive), each a date, under cfg.
func Range(cfg Config, first, last time.Time) (from, to time.Time) {
	return cfg.DayStartAt(first), cfg.DayStartAt(last.AddDate(0, 0, 1))
}
