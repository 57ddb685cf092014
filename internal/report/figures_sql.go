package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/airtally/airtally/internal/chsql"
)

// Filter narrows a report: the airings that aired in [From, To), of one
// offer, station or market when those are set. Attribution always
// considers every airing; the filter only chooses which are shown.
type Filter struct {
	From, To time.Time
	Offer    string
	Station  string
	Market   string
}

// figureColumns are the columns that describe an airing in
// airing_figures, from the layer below.
var airingFigureColumns = []string{
	"airing_id", "status", "offer", "station", "market", "media_type", "isci", "dnis", "promo_code", "vanity_url",
	"aired_at", "aired_at_ms", "aired_until_ms", "length_seconds", "did_not_run", "currency", "window_minutes",
	"target_ratio_pct", "response_start_ms", "response_end_ms", "daypart", "broadcast_day", "broadcast_week",
}

// derivedSQL are the ratios, from additive columns of the same names
// (per airing, or summed in a rollup). Each is NULL where its denominator
// is zero.
func derivedSQL() []string {
	ratio := "net_revenue_cents / media_cost_cents"
	target := "required_revenue_x100 / target_cost_cents / 100"
	noTarget := "target_cost_cents = 0 OR media_cost_cents = 0"
	return []string{
		"if(calls = 0, NULL, abandoned / calls) AS abandonment_rate",
		"if(answered = 0, NULL, phone_orders / answered) AS close_rate",
		"if(orders = 0, NULL, gross_revenue_cents / orders) AS average_order_value_cents",
		"if(calls = 0, NULL, media_cost_cents / calls) AS cost_per_call_cents",
		"if(orders = 0, NULL, media_cost_cents / orders) AS cost_per_order_cents",
		"if(media_cost_cents = 0, NULL, " + ratio + ") AS media_ratio",
		"if(target_cost_cents = 0, NULL, " + target + ") AS target_ratio",
		"if(" + noTarget + ", NULL, (" + ratio + ") / (" + target + ")) AS ratio_to_target",
		"if(" + noTarget + ", NULL, toUInt8((" + ratio + ") >= (" + target + "))) AS on_target",
		"if(media_cost_cents = 0, NULL, calls * 100000 / media_cost_cents) AS calls_per_1000",
		"if(baseline_minutes = 0, 0, baseline_calls / baseline_minutes) AS baseline_rate",
	}
}

// additiveColumns are the figures that add up over airings.
var additiveColumns = []string{
	"calls", "answered", "abandoned", "orders", "phone_orders", "web_orders", "cancellations", "net_orders",
	"gross_revenue_cents", "refund_cents", "net_revenue_cents", "upsells", "continuity_enrolments",
	"media_cost_cents", "target_cost_cents", "required_revenue_x100",
	"window_calls", "baseline_calls", "baseline_minutes", "expected_baseline_calls", "lift",
}

// floatColumns are the additive columns that are Float64.
var floatColumns = map[string]bool{"expected_baseline_calls": true, "lift": true}

// shownSQL selects the airings shown, plus the unattributed bucket as an
// airing with the id ”.
func (b *builder) shownSQL() string {
	where := ""
	if b.sc != nil {
		where = fmt.Sprintf("\nWHERE aired_at_ms >= %s AND aired_at_ms < %s", ms(b.sc.lo), ms(b.sc.hi)) + b.filterSQL()
	}
	return `SELECT
    airing_id, status, offer, station, market, media_type, isci, dnis, promo_code, vanity_url,
    aired_at, aired_at_ms, aired_until_ms, length_seconds, did_not_run, offer_currency, window_minutes,
    target_ratio_pct, media_cost_cents, response_start_ms, response_end_ms, dnis_key
FROM ` + b.ref(ViewAirings) + where + `
UNION ALL
SELECT
    '' AS airing_id, 'unattributed' AS status, '' AS offer, '' AS station, '' AS market, '' AS media_type,
    '' AS isci, '' AS dnis, '' AS promo_code, '' AS vanity_url, toDateTime(0, 'UTC') AS aired_at,
    toInt64(0) AS aired_at_ms, toInt64(0) AS aired_until_ms, toInt64(0) AS length_seconds,
    toUInt8(0) AS did_not_run, '' AS offer_currency, toInt64(0) AS window_minutes,
    toInt64(0) AS target_ratio_pct, toInt64(0) AS media_cost_cents, toInt64(0) AS response_start_ms,
    toInt64(0) AS response_end_ms, '' AS dnis_key`
}

// coveredSQL counts, per airing, the minutes of its baseline period that
// some ran airing's response window on the same DNIS overlaps.
func (b *builder) coveredSQL() string {
	spans := indent(indent(indent(b.spansSQL())))
	return `SELECT
    q_airing_id,
    toInt64(uniqExact(q_minute)) AS q_covered
FROM
(
    SELECT
        q_airing_id,
        q_a + toInt64(arrayJoin(range(toUInt64(intDiv(q_b - q_a, 60000))))) * 60000 AS q_minute
    FROM
    (
        SELECT
            s_airing_id AS q_airing_id,
            greatest(s_lo, intDiv(w_lo, 60000) * 60000) AS q_a,
            least(s_hi, intDiv(w_hi + 59999, 60000) * 60000) AS q_b
        FROM
        (
            SELECT s_airing_id, s_dnis_key, s_hour, s_lo, s_hi
            FROM
            (
` + spans + `
            )
            WHERE s_role = 'p'
        ) AS p
        ALL INNER JOIN
        (
            SELECT s_dnis_key AS w_dnis_key, s_hour AS w_hour, s_lo AS w_lo, s_hi AS w_hi
            FROM
            (
` + spans + `
            )
            WHERE s_role = 'w'
        ) AS w ON s_dnis_key = w_dnis_key AND s_hour = w_hour
        WHERE w_lo < s_hi AND w_hi > s_lo
    )
    WHERE q_b > q_a
)
GROUP BY q_airing_id`
}

// metricsSQL adds up, per airing, its calls (attributed, in its window,
// in its baseline period) and its orders. The unattributed bucket (”)
// counts calls and orders of the report's range only.
func (b *builder) metricsSQL() string { return b.metricsOf(false) }

// metricsOf is metricsSQL; for the projection (store) it also groups the
// unattributed bucket by minute (m_minute, the minute's first
// millisecond; 0 for an airing) and collects every attributed call's
// minute since air time (m_curve, one element per call: the response
// curve).
func (b *builder) metricsOf(store bool) string {
	callMinute, orderMinute, callCurve, orderCurve, groupMinute, aggMinute, callTimes := "", "", "", "", "", "", ""
	if store {
		callTimes = "\n            received_at_ms AS r_ms,\n            airing_aired_at_ms AS r_aired_ms,"
		callMinute = "\n        if(tupleElement(r_pair, 1) = '', toInt64(intDiv(r_ms, 60000) * 60000), toInt64(0)) AS r_minute,"
		orderMinute = "\n        if(airing_id = '', toInt64(intDiv(placed_at_ms, 60000) * 60000), toInt64(0)) AS r_minute,"
		callCurve = ",\n        if(tupleElement(r_pair, 2) = 1 AND tupleElement(r_pair, 1) != '', [toInt64(intDiv(r_ms - r_aired_ms, 60000))], emptyArrayInt64()) AS r_curve"
		orderCurve = ",\n        emptyArrayInt64() AS r_curve"
		groupMinute = ", r_minute"
		aggMinute = "\n    r_minute AS m_minute,\n    groupArrayArray(r_curve) AS m_curve,"
	}
	own := "[(airing_id, toUInt8(1))]"
	orderWhere := ""
	if b.sc != nil {
		own = fmt.Sprintf("if(airing_id != '' OR (received_at_ms >= %s AND received_at_ms < %s), %s, arrayFilter(x -> 0, %s))", ms(b.sc.lo), ms(b.sc.hi), own, own)
		orderWhere = fmt.Sprintf("\n        WHERE airing_id != '' OR (placed_at_ms >= %s AND placed_at_ms < %s)", ms(b.sc.lo), ms(b.sc.hi))
	}
	return `SELECT
    r_airing_id AS m_airing_id,` + aggMinute + `
    sum(r_calls) AS m_calls,
    sum(r_answered) AS m_answered,
    sum(r_abandoned) AS m_abandoned,
    sum(r_window_calls) AS m_window_calls,
    sum(r_baseline_calls) AS m_baseline_calls,
    sum(r_orders) AS m_orders,
    sum(r_phone_orders) AS m_phone_orders,
    sum(r_web_orders) AS m_web_orders,
    sum(r_cancellations) AS m_cancellations,
    sum(r_gross) AS m_gross,
    sum(r_refunds) AS m_refunds,
    sum(r_upsells) AS m_upsells,
    sum(r_continuity) AS m_continuity
FROM
(
    SELECT
        tupleElement(r_pair, 1) AS r_airing_id,` + callMinute + `
        toUInt64(tupleElement(r_pair, 2) = 1) AS r_calls,
        toUInt64(tupleElement(r_pair, 2) = 1 AND answered = 1) AS r_answered,
        toUInt64(tupleElement(r_pair, 2) = 1 AND abandoned = 1) AS r_abandoned,
        toUInt64(tupleElement(r_pair, 2) = 2) AS r_window_calls,
        toUInt64(tupleElement(r_pair, 2) = 3) AS r_baseline_calls,
        toUInt64(0) AS r_orders,
        toUInt64(0) AS r_phone_orders,
        toUInt64(0) AS r_web_orders,
        toUInt64(0) AS r_cancellations,
        toInt64(0) AS r_gross,
        toInt64(0) AS r_refunds,
        toInt64(0) AS r_upsells,
        toUInt64(0) AS r_continuity` + callCurve + `
    FROM
    (
        SELECT
            answered,
            abandoned,` + callTimes + `
            arrayJoin(arrayConcat(
                ` + own + `,
                arrayMap(x -> (x, toUInt8(2)), window_airings),
                arrayMap(x -> (x, toUInt8(3)), if(minute_covered = 0, baseline_airings, emptyArrayString()))
            )) AS r_pair
        FROM ` + indentTail(b.ref(ViewCallAttribution), 2) + `
    )
    UNION ALL
    SELECT
        airing_id AS r_airing_id,` + orderMinute + `
        toUInt64(0) AS r_calls,
        toUInt64(0) AS r_answered,
        toUInt64(0) AS r_abandoned,
        toUInt64(0) AS r_window_calls,
        toUInt64(0) AS r_baseline_calls,
        toUInt64(1) AS r_orders,
        toUInt64(via = 'call') AS r_phone_orders,
        toUInt64(via = 'promo') AS r_web_orders,
        toUInt64(cancelled) AS r_cancellations,
        amount_cents AS r_gross,
        refund_cents AS r_refunds,
        upsell_count AS r_upsells,
        toUInt64(continuity) AS r_continuity` + orderCurve + `
    FROM ` + indentTail(b.ref(ViewOrderAttribution), 1) + orderWhere + `
)
GROUP BY r_airing_id` + groupMinute
}

func (b *builder) figuresSQL() string {
	return b.figuresOver("baseline_minutes", "(\n"+indent(b.shownCoveredSQL())+"\n) AS a2\nALL LEFT JOIN\n(\n"+indent(b.metricsSQL())+"\n) AS m ON airing_id = m_airing_id")
}

// shownCoveredSQL is the airings shown (and the unattributed bucket) with
// their baseline minutes (the minutes of the baseline period no response
// window on the DNIS overlaps).
func (b *builder) shownCoveredSQL() string {
	base := chsql.Int(int64(b.cfg.BaselineMinutes))
	return `SELECT
    airing_id, status, offer, station, market, media_type, isci, dnis, promo_code, vanity_url,
    aired_at, aired_at_ms, aired_until_ms, length_seconds, did_not_run, offer_currency, window_minutes,
    target_ratio_pct, media_cost_cents, response_start_ms, response_end_ms,
    if(airing_id = '' OR did_not_run = 1 OR dnis_key = '', toInt64(0), ` + base + ` - q_covered) AS baseline_minutes
FROM
(
` + indent(b.shownSQL()) + `
) AS a
ALL LEFT JOIN
(
` + indent(b.coveredSQL()) + `
) AS q ON airing_id = q_airing_id`
}

// figuresOver is the figures layer over from, which gives the columns of
// shownSQL (but dnis_key), the baseline minutes as the column named
// baseline, and metricsSQL's m_ measures.
func (b *builder) figuresOver(baseline, from string) string {
	tz, dtz := tzLiteral(b.cfg.TimeZone), tzLiteral(b.cfg.DaypartTimeZone)
	dayMinute := fmt.Sprintf("toHour(aired_at, %[1]s) * 60 + toMinute(aired_at, %[1]s)", tz)
	daypartMinute := fmt.Sprintf("toHour(aired_at, %[1]s) * 60 + toMinute(aired_at, %[1]s)", dtz)
	ds := b.cfg.sortedDayparts()
	var parts []string
	for i := len(ds) - 1; i >= 0; i-- {
		parts = append(parts, fmt.Sprintf("%s >= %d, %s", daypartMinute, int(ds[i].Start.Minutes()), chsql.String(ds[i].Name)))
	}
	parts = append(parts, chsql.String(ds[len(ds)-1].Name))
	daypart := "multiIf(" + strings.Join(parts, ", ") + ")"
	day := fmt.Sprintf("toDate(aired_at, %s) - toUInt8((%s) < %d)", tz, dayMinute, int(b.cfg.DayStart.Minutes()))
	back := fmt.Sprintf("(toDayOfWeek(broadcast_day) + %d)", 7-b.cfg.WeekStart)
	week := fmt.Sprintf("broadcast_day - toUInt8(%[1]s - intDiv(%[1]s, 7) * 7)", back)
	baselineColumn := "baseline_minutes"
	if baseline != baselineColumn {
		baselineColumn = baseline + " AS baseline_minutes"
	}

	return `SELECT
    airing_id,
    status,
    offer,
    station,
    market,
    media_type,
    isci,
    dnis,
    promo_code,
    vanity_url,
    aired_at,
    aired_at_ms,
    aired_until_ms,
    length_seconds,
    did_not_run,
    offer_currency AS currency,
    window_minutes,
    target_ratio_pct,
    response_start_ms,
    response_end_ms,
    if(airing_id = '', '', ` + daypart + `) AS daypart,
    if(airing_id = '', toDate(0), ` + day + `) AS broadcast_day,
    if(airing_id = '', toDate(0), ` + week + `) AS broadcast_week,
    m_calls AS calls,
    m_answered AS answered,
    m_abandoned AS abandoned,
    m_orders AS orders,
    m_phone_orders AS phone_orders,
    m_web_orders AS web_orders,
    m_cancellations AS cancellations,
    toInt64(m_orders) - toInt64(m_cancellations) AS net_orders,
    m_gross AS gross_revenue_cents,
    m_refunds AS refund_cents,
    m_gross - m_refunds AS net_revenue_cents,
    m_upsells AS upsells,
    m_continuity AS continuity_enrolments,
    media_cost_cents,
    if(target_ratio_pct > 0, media_cost_cents, toInt64(0)) AS target_cost_cents,
    if(target_ratio_pct > 0, media_cost_cents * target_ratio_pct, toInt64(0)) AS required_revenue_x100,
    m_window_calls AS window_calls,
    m_baseline_calls AS baseline_calls,
    ` + baselineColumn + `,
    (response_end_ms - response_start_ms) / 60000 AS window_length_minutes,
    if(baseline_minutes = 0, 0, m_baseline_calls / baseline_minutes) * window_length_minutes AS expected_baseline_calls,
    m_window_calls - expected_baseline_calls AS lift,
    ` + strings.Join(derivedSQL(), ",\n    ") + "\nFROM\n" + from
}

func (b *builder) curveSQL() string {
	where := "airing_id != ''"
	if b.sc != nil {
		where += "\n    AND airing_id IN (SELECT airing_id FROM (\n" + indent(indent(b.shownSQL())) + "\n    ) WHERE airing_id != '')"
	}
	return `SELECT
    airing_id,
    toInt64(intDiv(received_at_ms - airing_aired_at_ms, 60000)) AS minute,
    count() AS calls
FROM ` + b.ref(ViewCallAttribution) + `
WHERE ` + where + `
GROUP BY airing_id, minute`
}

func (b *builder) rollupSQL(d Dimension) string {
	// Aggregates get t_ names first: an alias equal to the column it sums
	// confuses ClickHouse 18.16.
	sums := make([]string, 0, len(additiveColumns))
	names := make([]string, 0, len(additiveColumns))
	for _, c := range additiveColumns {
		if floatColumns[c] {
			// Summed in sorted order: the same figures give the same
			// sum to the last bit, however the rows arrive.
			sums = append(sums, "arraySum(arraySort(groupArray("+c+"))) AS t_"+c)
			names = append(names, "t_"+c+" AS "+c)
			continue
		}
		sums = append(sums, "sum("+c+") AS t_"+c)
		names = append(names, "t_"+c+" AS "+c)
	}
	// A view rolls up the airings only. A report's rollup also carries
	// the unattributed bucket, as the group whose unattributed column is
	// 1 (its one row's descriptive columns taken with any), so that the
	// figures are computed once for both.
	group, where, bucket, bucketSums := "", "\n    WHERE airing_id != ''", "", ""
	if b.sc != nil {
		group, where = "t_unattributed, ", ""
		bucket = "t_unattributed AS unattributed,\n    "
		bucketSums = "toUInt8(airing_id = '') AS t_unattributed,\n        "
		for _, c := range append(airingFigureColumns, "window_length_minutes") {
			if c == d.Column() || c == "currency" || c == "did_not_run" {
				continue // the key, and the rollup's own columns
			}
			names = append(names, "t_"+c+" AS "+c)
			sums = append(sums, "any("+c+") AS t_"+c)
		}
	}
	return `SELECT
    ` + bucket + `t_key AS ` + d.Column() + `,
    t_airings AS airings,
    t_did_not_run AS did_not_run,
    t_currency AS currency,
    ` + strings.Join(names, ",\n    ") + `,
    ` + strings.Join(derivedSQL(), ",\n    ") + `
FROM
(
    SELECT
        ` + bucketSums + d.Column() + ` AS t_key,
        count() AS t_airings,
        toUInt64(sum(did_not_run)) AS t_did_not_run,
        if(min(currency) = max(currency), min(currency), 'mixed') AS t_currency,
        ` + strings.Join(sums, ",\n        ") + `
    FROM ` + indentTail(b.ref(ViewFigures), 1) + where + `
    GROUP BY ` + group + d.Column() + `
)`
}
