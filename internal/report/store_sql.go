package report

import (
	"fmt"
	"hash/fnv"
	"strings"
	"sync"

	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/schema"
)

// The projection (docs/design.md, "The airing projection"): the figures
// kept as the events arrive. Its tables, created by the views migration:
//
//   - airing_measures: for each UTC day computed, one row per airing that
//     aired that day (its measures and response curve) and one per minute
//     of the day with unattributed calls or orders; each computation of a
//     day is a new version, and only a day's latest version is read.
//   - projection_days: one row per day computed: its version, and the
//     server time taken before the computation read anything.
//   - projection_marks: a day whose figures an insert may have changed,
//     with the server time of the insert (written after the insert).
//
// A day is clean when its latest computation started more than
// MarkMarginSeconds after its latest mark: everything marked before then
// was stored before the computation read it. A clean day's rows are its
// figures; a dirty day's are computed on read.
const (
	TableMeasures = "airing_measures"
	TableDays     = "projection_days"
	TableMarks    = "projection_marks"
	ViewStatus    = "projection_status"

	// MarkMarginSeconds absorbs the one-second resolution of the marks'
	// and computations' times (and a small clock difference between
	// replicas): a mark that close to a computation's start leaves the
	// day dirty.
	MarkMarginSeconds = 2
)

// storeMeasureColumns are the measure columns of airing_measures, in
// order, with the measure of measureRowsSQL each is filled from.
var storeMeasureColumns = []struct{ col, x string }{
	{"calls", "x_calls"}, {"answered", "x_answered"}, {"abandoned", "x_abandoned"},
	{"window_calls", "x_window_calls"}, {"baseline_calls", "x_baseline_calls"},
	{"orders", "x_orders"}, {"phone_orders", "x_phone_orders"}, {"web_orders", "x_web_orders"},
	{"cancellations", "x_cancellations"}, {"gross_revenue_cents", "x_gross"}, {"refund_cents", "x_refunds"},
	{"upsells", "x_upsells"}, {"continuity_enrolments", "x_continuity"}, {"baseline_minutes", "x_baseline_minutes"},
}

// storeShownColumns are the columns of shownSQL an airing's row of
// airing_measures keeps (its state when the day was computed, which is
// its state now while the day is clean), with their types: a report reads
// a clean day's airings from the projection alone.
var storeShownColumns = []struct{ col, typ string }{
	{"status", "String"}, {"offer", "String"}, {"station", "String"}, {"market", "String"},
	{"media_type", "String"}, {"isci", "String"}, {"dnis", "String"}, {"promo_code", "String"},
	{"vanity_url", "String"}, {"aired_at", "DateTime('UTC')"}, {"aired_at_ms", "Int64"},
	{"aired_until_ms", "Int64"}, {"length_seconds", "Int64"}, {"did_not_run", "UInt8"},
	{"offer_currency", "String"}, {"window_minutes", "Int64"}, {"target_ratio_pct", "Int64"},
	{"media_cost_cents", "Int64"}, {"response_start_ms", "Int64"}, {"response_end_ms", "Int64"},
}

// measureNames maps each x_ measure to the m_ name figuresOver reads.
var measureNames = map[string]string{
	"x_calls": "m_calls", "x_answered": "m_answered", "x_abandoned": "m_abandoned",
	"x_window_calls": "m_window_calls", "x_baseline_calls": "m_baseline_calls",
	"x_orders": "m_orders", "x_phone_orders": "m_phone_orders", "x_web_orders": "m_web_orders",
	"x_cancellations": "m_cancellations", "x_gross": "m_gross", "x_refunds": "m_refunds",
	"x_upsells": "m_upsells", "x_continuity": "m_continuity", "x_baseline_minutes": "m_baseline_minutes",
}

// storeTablesSQL creates the projection's tables in db.
func storeTablesSQL(db string) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + db + `.` + TableMeasures + `
(
    day Date,
    version UInt64,
    airing_id String,
    minute Int64,
` + shownColumnsDDL() + `
    calls UInt64,
    answered UInt64,
    abandoned UInt64,
    window_calls UInt64,
    baseline_calls UInt64,
    orders UInt64,
    phone_orders UInt64,
    web_orders UInt64,
    cancellations UInt64,
    gross_revenue_cents Int64,
    refund_cents Int64,
    upsells Int64,
    continuity_enrolments UInt64,
    baseline_minutes Int64,
    curve Array(Int64)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (day, airing_id, minute)`,
		`CREATE TABLE IF NOT EXISTS ` + db + `.` + TableDays + `
(
    day Date,
    version UInt64,
    definition UInt64,
    started_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (definition, day)`,
		`CREATE TABLE IF NOT EXISTS ` + db + `.` + TableMarks + `
(
    day Date,
    marked_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(marked_at)
ORDER BY day`,
	}
}

func shownColumnsDDL() string {
	lines := make([]string, len(storeShownColumns))
	for i, c := range storeShownColumns {
		lines[i] = "    " + c.col + " " + c.typ + ","
	}
	return strings.Join(lines, "\n")
}

// measureRowsSQL is, for the projection, one row per airing aired in the
// scope (its measures, baseline minutes and response curve) and one per
// minute of the scope with unattributed calls or orders (x_minute).
func (b *builder) measureRowsSQL() string {
	cols := []string{"airing_id AS x_airing_id", "aired_at_ms AS x_aired_at_ms", "m_minute AS x_minute"}
	for _, c := range storeShownColumns {
		cols = append(cols, c.col+" AS xs_"+c.col)
	}
	for _, c := range storeMeasureColumns {
		src := measureNames[c.x]
		if c.x == "x_baseline_minutes" {
			src = "baseline_minutes"
		}
		cols = append(cols, src+" AS "+c.x)
	}
	cols = append(cols, "m_curve AS x_curve")
	return "SELECT\n    " + strings.Join(cols, ",\n    ") + "\nFROM\n(\n" + indent(b.shownCoveredSQL()) +
		"\n) AS a2\nALL LEFT JOIN\n(\n" + indent(b.metricsOf(true)) + "\n) AS m ON airing_id = m_airing_id"
}

// storeInsertSQL computes the scope's days (a report scope without
// filter, whole UTC days) and writes them as version.
func (b *builder) storeInsertSQL(version uint64) string {
	cols := []string{"day", "version", "airing_id", "minute"}
	vals := []string{
		"toDate(toDateTime(intDiv(if(x_airing_id = '', x_minute, x_aired_at_ms), 1000), 'UTC'))",
		"toUInt64(" + chsql.Uint(version) + ")", "x_airing_id", "x_minute",
	}
	for _, c := range storeShownColumns {
		cols = append(cols, c.col)
		vals = append(vals, "xs_"+c.col)
	}
	for _, c := range storeMeasureColumns {
		cols = append(cols, c.col)
		vals = append(vals, c.x)
	}
	cols = append(cols, "curve")
	vals = append(vals, "x_curve")
	return "INSERT INTO " + b.db + "." + TableMeasures + " (" + strings.Join(cols, ", ") + ")\nSELECT\n    " +
		strings.Join(vals, ",\n    ") + "\nFROM\n(\n" + indent(b.measureRowsSQL()) +
		"\n)\nWHERE x_airing_id != '' OR x_calls + x_orders > 0"
}

// storeCast is the conversion to a measure column's type.
func storeCast(col string) string {
	switch col {
	case "gross_revenue_cents", "refund_cents", "upsells", "baseline_minutes":
		return "toInt64"
	}
	return "toUInt64"
}

// fastPlan is how a builder reads the projection: the rows of the clean
// days (clean, a condition on airing_measures' day and version), the
// unattributed minutes a report shows, [minuteLo, minuteHi), and a
// report's dirty parts computed on read (their builders). The views use
// clean alone.
type fastPlan struct {
	clean              string
	minuteLo, minuteHi int64
	parts              []*builder
}

// storedRowsSQL is, for the views, the projection's measure rows of the
// clean days: per airing its latest computation (an airing a post-log
// moved may still sit in its old day until that day is computed again),
// and every unattributed minute summed.
func (b *builder) storedRowsSQL() string {
	var latest, sums []string
	for _, c := range storeMeasureColumns {
		latest = append(latest, "argMax("+c.col+", version) AS "+c.x)
		sums = append(sums, "sum("+c.col+") AS "+c.x)
	}
	return "SELECT\n    airing_id AS x_airing_id,\n    " + strings.Join(latest, ",\n    ") +
		"\nFROM " + b.db + "." + TableMeasures + "\nWHERE airing_id != '' AND " + b.fast.clean + "\nGROUP BY airing_id" +
		"\nUNION ALL\nSELECT\n    '' AS x_airing_id,\n    " + strings.Join(sums, ",\n    ") +
		"\nFROM " + b.db + "." + TableMeasures + "\nWHERE airing_id = '' AND " + b.fast.clean
}

// viewFiguresSQL is the views' figures layer from the projection: every
// airing (its current state, on read) with the measures of its day's
// latest computation (b.fast.clean), and the unattributed bucket of all
// time.
func (b *builder) viewFiguresSQL() string {
	var sums []string
	for _, c := range storeMeasureColumns {
		sums = append(sums, "sum("+c.x+") AS "+measureNames[c.x])
	}
	agg := "SELECT\n    x_airing_id AS m_airing_id,\n    " + strings.Join(sums, ",\n    ") + "\nFROM\n(\n" +
		indent(strings.Join(wrapAll([]string{b.storedRowsSQL()}), "")) + "\n)\nGROUP BY x_airing_id"
	return b.figuresOver("m_baseline_minutes", "(\n"+indent(b.shownSQL())+"\n) AS a2\nALL LEFT JOIN\n(\n"+indent(agg)+"\n) AS m ON airing_id = m_airing_id")
}

// reportFiguresSQL is a report's figures layer from the projection: a
// clean day's airings are read from the projection alone (their state
// and measures as computed), a dirty part's computed on read, and the
// unattributed bucket summed from the projection's minutes in the range
// and the parts' buckets.
func (b *builder) reportFiguresSQL() string {
	shown := make([]string, 0, len(storeShownColumns))
	for _, c := range storeShownColumns {
		shown = append(shown, "CAST("+c.col+" AS "+c.typ+") AS "+c.col)
	}
	type measure = struct{ col, x string }
	measures := func(src func(c measure) string) []string {
		out := make([]string, 0, len(storeMeasureColumns))
		for _, c := range storeMeasureColumns {
			out = append(out, storeCast(c.col)+"("+src(c)+") AS "+measureNames[c.x])
		}
		return out
	}
	column := func(c measure) string { return c.col }
	summed := func(c measure) string { return "sum(" + c.col + ")" }
	computed := func(c measure) string {
		if c.x == "x_baseline_minutes" {
			return "baseline_minutes"
		}
		return measureNames[c.x]
	}
	filter := b.filterSQL()
	stored := "SELECT\n    airing_id,\n    " + strings.Join(shown, ",\n    ") + ",\n    " +
		strings.Join(measures(column), ",\n    ") +
		"\nFROM " + b.db + "." + TableMeasures + "\nWHERE airing_id != '' AND " + b.fast.clean +
		"\n    AND aired_at_ms >= " + ms(b.sc.lo) + " AND aired_at_ms < " + ms(b.sc.hi) + filter
	branches := []string{stored}
	buckets := []string{"SELECT\n    " + strings.Join(measures(summed), ",\n    ") +
		"\nFROM " + b.db + "." + TableMeasures + "\nWHERE airing_id = '' AND " + b.fast.clean +
		"\n    AND minute >= " + ms(b.fast.minuteLo) + " AND minute < " + ms(b.fast.minuteHi)}
	for _, p := range b.fast.parts {
		from := "FROM\n(\n" + indent(p.shownCoveredSQL()) + "\n) AS a2\nALL LEFT JOIN\n(\n" + indent(p.metricsSQL()) + "\n) AS m ON airing_id = m_airing_id"
		part := measures(computed)
		branches = append(branches, "SELECT\n    airing_id,\n    "+strings.Join(shown, ",\n    ")+",\n    "+strings.Join(part, ",\n    ")+
			"\n"+from+"\nWHERE airing_id != ''"+filter)
		buckets = append(buckets, "SELECT\n    "+strings.Join(part, ",\n    ")+"\n"+from+"\nWHERE airing_id = ''")
	}
	// The bucket's sums get t_ names first: an alias equal to the column
	// it aggregates confuses ClickHouse 18.16.
	var sums, names []string
	for _, c := range storeMeasureColumns {
		n := measureNames[c.x]
		sums = append(sums, "sum("+n+") AS t_"+n)
		names = append(names, "t_"+n+" AS "+n)
	}
	bucket := `SELECT
    '' AS airing_id,
    'unattributed' AS status,
    '' AS offer,
    '' AS station,
    '' AS market,
    '' AS media_type,
    '' AS isci,
    '' AS dnis,
    '' AS promo_code,
    '' AS vanity_url,
    toDateTime(0, 'UTC') AS aired_at,
    toInt64(0) AS aired_at_ms,
    toInt64(0) AS aired_until_ms,
    toInt64(0) AS length_seconds,
    toUInt8(0) AS did_not_run,
    '' AS offer_currency,
    toInt64(0) AS window_minutes,
    toInt64(0) AS target_ratio_pct,
    toInt64(0) AS media_cost_cents,
    toInt64(0) AS response_start_ms,
    toInt64(0) AS response_end_ms,
    ` + strings.Join(names, ",\n    ") + `
FROM
(
    SELECT
        ` + strings.Join(sums, ",\n        ") + `
    FROM
    (
` + indent(indent(strings.Join(wrapAll(buckets), "\nUNION ALL\n"))) + `
    )
)`
	branches = append(branches, bucket)
	return b.figuresOver("m_baseline_minutes", "(\n"+indent(strings.Join(wrapAll(branches), "\nUNION ALL\n"))+"\n) AS f")
}

// filterSQL is " AND …" for the report's offer, station and market, or
// nothing.
func (b *builder) filterSQL() string {
	var out string
	for _, f := range []struct{ col, v string }{{"offer", b.sc.filter.Offer}, {"station", b.sc.filter.Station}, {"market", b.sc.filter.Market}} {
		if f.v != "" {
			out += " AND " + f.col + " = " + chsql.String(f.v)
		}
	}
	return out
}

// wrapAll makes each SELECT a subquery, so that a UNION ALL of them
// keeps each one's own clauses.
func wrapAll(selects []string) []string {
	out := make([]string, len(selects))
	for i, s := range selects {
		out[i] = "SELECT *\nFROM\n(\n" + indent(s) + "\n)"
	}
	return out
}

// fastCurveSQL is the response curves read from the projection (clean
// days) and computed on read (dirty parts).
func (b *builder) fastCurveSQL() string {
	stored := `SELECT
    c_airing_id AS airing_id,
    c_minute AS minute,
    count() AS calls
FROM
(
    SELECT
        c_airing_id,
        arrayJoin(c_curve) AS c_minute
    FROM
    (
        SELECT
            airing_id AS c_airing_id,
            argMax(curve, version) AS c_curve
        FROM ` + b.db + `.` + TableMeasures + `
        WHERE airing_id != '' AND ` + b.fast.clean + `
        GROUP BY airing_id
    )
)
GROUP BY c_airing_id, c_minute`
	branches := []string{stored}
	for _, p := range b.fast.parts {
		branches = append(branches, p.curveSQL())
	}
	return strings.Join(wrapAll(branches), "\nUNION ALL\n")
}

// statusSQL is one row per day the projection knows: the latest
// computation's version and start, the latest mark, and whether the day
// is dirty. where (may be empty) restricts the days.
func statusSQL(db string, where string) string {
	cond := ""
	if where != "" {
		cond = " AND " + where
	}
	return `SELECT
    t_day AS day,
    t_version AS version,
    t_started_at AS computed_from,
    t_marked_at AS marked_at,
    toUInt8(t_version = 0 OR t_marked_at >= t_started_at - ` + chsql.Int(MarkMarginSeconds) + `) AS dirty
FROM
(
    SELECT
        s_day AS t_day,
        max(s_version) AS t_version,
        argMax(s_started_at, s_version) AS t_started_at,
        max(s_marked_at) AS t_marked_at
    FROM
    (
        SELECT day AS s_day, toUInt64(0) AS s_version, toDateTime(0, 'UTC') AS s_started_at, marked_at AS s_marked_at
        FROM ` + db + `.` + TableMarks + `
        WHERE 1` + cond + `
        UNION ALL
        SELECT day AS s_day, version AS s_version, started_at AS s_started_at, toDateTime(0, 'UTC') AS s_marked_at
        FROM ` + db + `.` + TableDays + `
        WHERE definition = ` + chsql.Uint(Definition()) + cond + `
    )
    GROUP BY s_day
)`
}

var definition = sync.OnceValue(func() uint64 {
	sc := &scope{lo: 0, hi: dayMS, scanLo: -dayMS, scanHi: dayMS}
	h := fnv.New64a()
	h.Write([]byte(newReportBuilder(DefaultConfig(), schema.Placeholder, sc).storeInsertSQL(0)))
	return h.Sum64() >> 1 // fits an Int64 too
})

// Definition identifies the SQL the projection is computed with: days
// computed with another definition (an older airtally) are dirty, and the
// projector computes them again.
func Definition() uint64 { return definition() }

// latestCleanSQL is the views' condition on airing_measures: each day's
// latest computation with this definition.
func latestCleanSQL(db string) string {
	return fmt.Sprintf("(day, version) IN (SELECT day, max(version) FROM %s.%s WHERE definition = %s GROUP BY day)", db, TableDays, chsql.Uint(Definition()))
}
