package report

import (
	"fmt"
	"strings"

	"github.com/airtally/airtally/internal/airings"
	"github.com/airtally/airtally/internal/chsql"
)

// Views shipped in the schema, in dependency order of the layers. Each is
// documented in docs/airings.md.
const (
	ViewOffers           = "offers_current"
	ViewAirings          = "airings_current"
	ViewCalls            = "calls_dedup"
	ViewOrders           = "orders_dedup"
	ViewCallAttribution  = "call_attribution"
	ViewOrderAttribution = "order_attribution"
	ViewFigures          = "airing_figures"
	ViewCurve            = "airing_response_curve"
)

// Dimension is what a rollup groups airings by.
type Dimension string

// Rollup dimensions.
const (
	ByOffer   Dimension = "offer"
	ByStation Dimension = "station"
	ByMarket  Dimension = "market"
	ByDaypart Dimension = "daypart"
	ByISCI    Dimension = "isci"
	ByDay     Dimension = "day"
	ByWeek    Dimension = "week"
)

// Dimensions lists every rollup dimension.
var Dimensions = []Dimension{ByOffer, ByStation, ByMarket, ByDaypart, ByISCI, ByDay, ByWeek}

// Column is the airing_figures column the rollup groups by.
func (d Dimension) Column() string {
	switch d {
	case ByDay:
		return "broadcast_day"
	case ByWeek:
		return "broadcast_week"
	}
	return string(d)
}

// View is the name of the rollup's view, e.g. airing_rollup_by_offer.
func (d Dimension) View() string { return "airing_rollup_by_" + string(d) }

// Valid reports whether d is one of Dimensions.
func (d Dimension) Valid() bool {
	for _, x := range Dimensions {
		if d == x {
			return true
		}
	}
	return false
}

// Event kinds as the events table stores them.
const (
	kindReceived  = "'call.received'"
	kindAnswered  = "'call.answered'"
	kindAbandoned = "'call.abandoned'"
	kindPlaced    = "'order.placed'"
	kindCancelled = "'order.cancelled'"
)

// Look-back and look-ahead of a report's scan, in milliseconds: calls and
// orders up to a day before the first airing shown (a phone order's call,
// an earlier airing's window), answer and hang-up events up to an hour
// before and a day after their call, orders up to a day after the last
// response window.
const (
	hourMS = int64(3_600_000)
	dayMS  = 24 * hourMS
)

// scope is a report's range: the airings shown and the calls considered.
type scope struct {
	lo, hi         int64 // airings shown: aired_at_ms in [lo, hi)
	scanLo, scanHi int64 // calls considered: received_at_ms in [scanLo, scanHi)
	filter         Filter
}

// builder renders the layers of the figures. With views set, a layer
// refers to the layer below by its view name (the shipped views); without,
// it inlines it as a subquery restricted to the scope (a report). Both
// render the same SQL per layer, so a report and the views give the same
// numbers.
type builder struct {
	cfg   Config
	db    string // quoted database name (or the migration placeholder)
	views bool
	sc    *scope
	// fast reads the figures and curves from the projection (nil: on
	// read); onRead names a view builder's figures, curve and rollups
	// ..._on_read (the audit views).
	fast   *fastPlan
	onRead bool
}

func newViewBuilder(cfg Config, db string) *builder {
	return &builder{cfg: cfg.WithDefaults(), db: db, views: true}
}

func newReportBuilder(cfg Config, db string, sc *scope) *builder {
	return &builder{cfg: cfg.WithDefaults(), db: db, sc: sc}
}

// ref is a reference to layer name: its view, or its body as a subquery.
func (b *builder) ref(name string) string {
	if b.views {
		return b.db + "." + b.viewName(name)
	}
	return "(\n" + indent(b.body(name)) + "\n)"
}

func (b *builder) body(name string) string {
	switch name {
	case ViewOffers:
		return b.offersSQL()
	case ViewAirings:
		return b.airingsSQL()
	case ViewCalls:
		return b.callsSQL()
	case ViewOrders:
		return b.ordersSQL()
	case ViewCallAttribution:
		return b.callAttributionSQL()
	case ViewOrderAttribution:
		return b.orderAttributionSQL()
	case ViewFigures:
		if b.fast != nil && b.views {
			return b.viewFiguresSQL()
		}
		if b.fast != nil {
			return b.reportFiguresSQL()
		}
		return b.figuresSQL()
	case ViewCurve:
		if b.fast != nil {
			return b.fastCurveSQL()
		}
		return b.curveSQL()
	}
	for _, d := range Dimensions {
		if name == d.View() {
			return b.rollupSQL(d)
		}
	}
	panic("report: unknown layer " + name)
}

// viewName is the name of layer name's view: the figures, the curve and
// the rollups of the audit views end in _on_read.
func (b *builder) viewName(name string) string {
	if !b.onRead {
		return name
	}
	switch name {
	case ViewFigures, ViewCurve:
		return name + OnReadSuffix
	}
	for _, d := range Dimensions {
		if name == d.View() {
			return name + OnReadSuffix
		}
	}
	return name
}

// OnReadSuffix ends the names of the views that compute the figures on
// read from the events (for auditing the projection):
// airing_figures_on_read, airing_response_curve_on_read,
// airing_rollup_by_<dimension>_on_read.
const OnReadSuffix = "_on_read"

// when returns " AND cond" in a report, nothing in a view.
func (b *builder) when(format string, args ...any) string {
	if b.sc == nil {
		return ""
	}
	return "\n    AND " + fmt.Sprintf(format, args...)
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func ms(v int64) string { return chsql.Int(v) }

// seconds renders a millisecond bound as a DateTime literal, for the
// events table's primary key.
func seconds(v int64) string {
	return "toDateTime(" + chsql.Int(max(v, 0)/1000) + ", 'UTC')"
}

// Normalised keys: a DNIS by its digits (a leading US country code 1 of an
// 11-digit number dropped), a promo code upper-cased without spaces, a
// vanity URL lower-cased without scheme, "www." and trailing slashes. The
// Go twins are DNISKey, PromoKey and VanityKey.
func dnisKeySQL(col string) string {
	return "replaceRegexpOne(replaceRegexpAll(" + col + ", '[^0-9]', ''), '^1([0-9]{10})$', '\\\\1')"
}

func promoKeySQL(col string) string {
	return "upper(replaceRegexpAll(" + col + ", '[[:space:]]', ''))"
}

func vanityKeySQL(col string) string {
	// Two replacements, not one alternation: after an empty match,
	// ClickHouse 18.16's replaceRegexpAll stops looking.
	return "replaceRegexpOne(replaceRegexpOne(lower(" + col + "), '^[[:space:]]*(https?://)?(www[.])?', ''), '/*[[:space:]]*$', '')"
}

// hoursSQL expands [lo, hi) into the hour numbers (ms / 3600000) it covers.
//
// Two rules for every query here, from ClickHouse 18.16: no lambda
// captures a column (18.16 does not read a column of a subquery that only
// a lambda uses; pass it as a second array with replicate instead), and no
// "x % n" (18.16 gives the remainder the divisor's type: ms % 60000 is an
// Int16 and overflows); round with intDiv(x, n) * n.
func hoursSQL(lo, hi string) string {
	return fmt.Sprintf("toInt64(intDiv(%[1]s, 3600000)) + toInt64(arrayJoin(range(toUInt64(intDiv(%[2]s - 1, 3600000) - intDiv(%[1]s, 3600000) + 1))))", lo, hi)
}

// winnerSQL picks, from an array of (aired_at_ms, spend_cents, airing_id)
// candidates, the attribution rule's winner: the most recent airing, then
// the larger spend, then the smaller airing id; an empty array gives
// (0, 0, ”).
func winnerSQL(cands string) string {
	return "arraySort(x -> (-tupleElement(x, 1), -tupleElement(x, 2), tupleElement(x, 3)), " + cands + ")[1]"
}

func (b *builder) offersSQL() string {
	return "SELECT\n    o_offer AS offer,\n    o_media_type AS media_type,\n    o_currency AS currency,\n" +
		"    o_target_ratio_pct AS target_ratio_pct,\n    o_window_minutes AS window_minutes,\n    o_version AS version\n" +
		"FROM (\n" + indent(airings.LatestOffersSQL(b.db)) + "\n)"
}

func (b *builder) airingsSQL() string {
	// pick takes an offer setting for the airing's media type, else the
	// offer's default (arr[0] is the element type's default).
	pick := func(arr, unset, fallback string) string {
		forMedia := arr + "[indexOf(oc_media_types, a_media_type)]"
		forOffer := arr + "[indexOf(oc_media_types, '')]"
		return fmt.Sprintf("multiIf(%[1]s != %[3]s, %[1]s, %[2]s != %[3]s, %[2]s, %[4]s)", forMedia, forOffer, unset, fallback)
	}
	return `SELECT
    a_id AS airing_id,
    multiIf(a_did_not_run = 1, 'did_not_run', a_kind = 'airing.revised', 'revised', 'scheduled') AS status,
    a_offer AS offer,
    a_station AS station,
    a_market AS market,
    a_media_type AS media_type,
    a_isci AS isci,
    toDateTime(intDiv(a_aired_at_ms, 1000), 'UTC') AS aired_at,
    a_aired_at_ms AS aired_at_ms,
    a_aired_until_ms AS aired_until_ms,
    a_length_seconds AS length_seconds,
    a_spend_cents AS spend_cents,
    a_currency AS currency,
    a_dnis AS dnis,
    a_promo_code AS promo_code,
    a_vanity_url AS vanity_url,
    a_did_not_run AS did_not_run,
    if(a_did_not_run = 1, toInt64(0), a_spend_cents) AS media_cost_cents,
    toInt64(` + pick("oc_windows", "0", chsql.Int(int64(b.cfg.WindowMinutes))) + `) AS window_minutes,
    toInt64(` + pick("oc_targets", "0", "0") + `) AS target_ratio_pct,
    ` + pick("oc_currencies", "''", "a_currency") + ` AS offer_currency,
    a_aired_at_ms AS response_start_ms,
    greatest(a_aired_at_ms, a_aired_until_ms) + window_minutes * 60000 AS response_end_ms,
    ` + dnisKeySQL("a_dnis") + ` AS dnis_key,
    ` + promoKeySQL("a_promo_code") + ` AS promo_key,
    ` + vanityKeySQL("a_vanity_url") + ` AS vanity_key,
    a_version AS version
FROM
(
` + indent(airings.LatestAiringsSQL(b.db, b.airingsPrefilter())) + `
) AS a
ALL LEFT JOIN
(
    SELECT
        offer AS oc_offer,
        groupArray(media_type) AS oc_media_types,
        groupArray(window_minutes) AS oc_windows,
        groupArray(target_ratio_pct) AS oc_targets,
        groupArray(currency) AS oc_currencies
    FROM ` + b.ref(ViewOffers) + `
    GROUP BY offer
) AS oc ON a_offer = oc_offer`
}

// airingsPrefilter narrows, in a report, the airings whose latest state
// is computed to those that can matter to it: an airing shown, or whose
// response window or baseline period reaches the report's scan. The
// condition is on airing ids, so a kept airing's every row (every
// version) is still read; it keeps every airing that has some row whose
// air time is before the scan's end and whose window may end after the
// scan's start (the longest window any offer or the default gives), a
// superset of those the layers above keep by their latest state. A view
// reads every airing.
func (b *builder) airingsPrefilter() string {
	if b.sc == nil {
		return ""
	}
	ahead := max(dayMS, int64(b.cfg.BaselineMinutes+1)*60000)
	return fmt.Sprintf("airing_id IN (SELECT airing_id FROM %[1]s.airings WHERE aired_at_ms < %[2]s"+
		" AND greatest(aired_at_ms, aired_until_ms) > %[3]s - greatest(toInt64(%[4]d), (SELECT toInt64(max(window_minutes)) FROM %[1]s.offers)) * 60000)",
		b.db, ms(b.sc.scanHi+ahead), ms(b.sc.scanLo), b.cfg.WindowMinutes)
}

func (b *builder) callsSQL() string { return b.callsWhere("") }

// callsWhere is the calls layer, its events further restricted by cond
// (when not empty).
func (b *builder) callsWhere(cond string) string {
	var scan, keep string
	if b.sc != nil {
		scan = b.when("occurred_at >= %s AND occurred_at < %s", seconds(b.sc.scanLo-hourMS), seconds(b.sc.scanHi+dayMS))
		keep = b.when("k_ms >= %s AND k_ms < %s", ms(b.sc.scanLo), ms(b.sc.scanHi))
	}
	return `SELECT
    k_system AS call_system,
    k_call_id AS call_id,
    k_dnis AS dnis,
    ` + dnisKeySQL("k_dnis") + ` AS dnis_key,
    k_ms AS received_at_ms,
    toDateTime(intDiv(k_ms, 1000), 'UTC') AS received_at,
    k_answered AS answered,
    k_abandoned AS abandoned
FROM
(
    SELECT
        source_system AS k_system,
        call_id AS k_call_id,
        countIf(kind = ` + kindReceived + `) AS k_received,
        minIf(occurred_at_ms, kind = ` + kindReceived + `) AS k_ms,
        argMinIf(dnis, (occurred_at_ms, event_id), kind = ` + kindReceived + `) AS k_dnis,
        toUInt8(countIf(kind = ` + kindAnswered + `) > 0) AS k_answered,
        toUInt8(countIf(kind = ` + kindAbandoned + `) > 0 AND countIf(kind = ` + kindAnswered + `) = 0) AS k_abandoned
    FROM ` + b.db + `.events
    WHERE kind IN (` + kindReceived + `, ` + kindAnswered + `, ` + kindAbandoned + `)` + strings.ReplaceAll(scan, "\n", "\n    ") + and(cond) + `
    GROUP BY source_system, call_id
)
WHERE k_received > 0` + keep
}

func (b *builder) ordersSQL() string {
	var scan, keep string
	if b.sc != nil {
		from, to := seconds(b.sc.scanLo), seconds(b.sc.scanHi+dayMS)
		scan = b.when("((kind = %s AND occurred_at >= %s AND occurred_at < %s) OR (kind = %s AND occurred_at >= %s))", kindPlaced, from, to, kindCancelled, from)
		keep = b.when("k_ms >= %s AND k_ms < %s", ms(b.sc.scanLo), ms(b.sc.scanHi+dayMS))
	}
	return `SELECT
    k_order_id AS order_id,
    k_ms AS placed_at_ms,
    toDateTime(intDiv(k_ms, 1000), 'UTC') AS placed_at,
    tupleElement(k_o, 1) AS call_id,
    tupleElement(k_o, 2) AS channel,
    tupleElement(k_o, 3) AS offer,
    tupleElement(k_o, 4) AS amount_cents,
    tupleElement(k_o, 5) AS currency,
    tupleElement(k_o, 6) AS upsell_count,
    tupleElement(k_o, 7) AS continuity,
    tupleElement(k_o, 8) AS promo_code,
    tupleElement(k_o, 9) AS vanity_url,
    tupleElement(k_o, 10) AS dnis,
    toUInt8(k_cancels > 0) AS cancelled,
    multiIf(k_cancels = 0, toInt64(0), k_full_cancels > 0, amount_cents, least(amount_cents, k_refunded)) AS refund_cents
FROM
(
    SELECT
        order_id AS k_order_id,
        countIf(kind = ` + kindPlaced + `) AS k_placed,
        minIf(occurred_at_ms, kind = ` + kindPlaced + `) AS k_ms,
        argMinIf((call_id, channel, offer, amount_cents, currency, upsell_count, continuity, promo_code, vanity_url, dnis), (occurred_at_ms, event_id), kind = ` + kindPlaced + `) AS k_o,
        countIf(kind = ` + kindCancelled + `) AS k_cancels,
        countIf(kind = ` + kindCancelled + ` AND amount_cents = 0) AS k_full_cancels,
        maxIf(amount_cents, kind = ` + kindCancelled + `) AS k_refunded
    FROM ` + b.db + `.events
    WHERE kind IN (` + kindPlaced + `, ` + kindCancelled + `)` + strings.ReplaceAll(scan, "\n", "\n    ") + `
    GROUP BY order_id
)
WHERE k_placed > 0` + keep
}

// spansSQL is every ran airing with a DNIS as two spans of time on its
// DNIS, each expanded over the hours it covers: its response window (role
// 'w') and the baseline period before it (role 'p': the whole minutes
// BaselineMinutes before the minute of air time).
func (b *builder) spansSQL() string {
	base := chsql.Int(int64(b.cfg.BaselineMinutes) * 60000)
	var scan string
	if b.sc != nil {
		scan = b.when("response_end_ms > %s AND response_start_ms < %s", ms(b.sc.scanLo), ms(b.sc.scanHi+int64(b.cfg.BaselineMinutes+1)*60000))
	}
	return `SELECT
    s_airing_id,
    s_dnis_key,
    s_role,
    s_lo,
    s_hi,
    s_start,
    s_spend,
    ` + hoursSQL("s_lo", "s_hi") + ` AS s_hour
FROM
(
    SELECT
        airing_id AS s_airing_id,
        dnis_key AS s_dnis_key,
        response_start_ms AS s_start,
        spend_cents AS s_spend,
        arrayJoin([('w', response_start_ms, response_end_ms), ('p', intDiv(response_start_ms, 60000) * 60000 - ` + base + `, intDiv(response_start_ms, 60000) * 60000)]) AS s_span,
        tupleElement(s_span, 1) AS s_role,
        tupleElement(s_span, 2) AS s_lo,
        tupleElement(s_span, 3) AS s_hi
    FROM ` + b.ref(ViewAirings) + `
    WHERE did_not_run = 0 AND dnis_key != ''` + strings.ReplaceAll(scan, "\n", "\n    ") + `
)`
}

// spansByHourSQL groups the spans by DNIS and hour: one row per key, so
// that every call finds its candidates with one lookup.
func (b *builder) spansByHourSQL() string {
	return `SELECT
    s_dnis_key AS h_dnis_key,
    s_hour AS h_hour,
    groupArray((s_role, s_lo, s_hi, s_start, s_spend, s_airing_id)) AS h_spans
FROM
(
` + indent(b.spansSQL()) + `
)
GROUP BY s_dnis_key, s_hour`
}

// and is "\n      AND cond", or nothing for an empty cond.
func and(cond string) string {
	if cond == "" {
		return ""
	}
	return "\n      AND " + cond
}

func (b *builder) callAttributionSQL() string { return b.callAttributionOf(b.ref(ViewCalls)) }

// callAttributionOf attributes the calls of calls (a reference to the
// calls layer or a restriction of it).
func (b *builder) callAttributionOf(calls string) string {
	// h_spans elements: (role, lo, hi, aired_at_ms, spend_cents, airing_id).
	// The call's time goes into the lambdas as a second array (replicate),
	// not as a captured column: ClickHouse 18.16 drops a column of a
	// subquery that only a lambda uses.
	in := func(role string) string {
		return "arrayFilter((x, t) -> tupleElement(x, 1) = '" + role + "' AND t >= tupleElement(x, 2) AND t < tupleElement(x, 3), h_spans, replicate(l_ms, h_spans))"
	}
	return `SELECT
    call_system,
    call_id,
    dnis,
    dnis_key,
    received_at_ms,
    received_at,
    answered,
    abandoned,
    tupleElement(c_win, 3) AS airing_id,
    tupleElement(c_win, 1) AS airing_aired_at_ms,
    arrayMap(x -> tupleElement(x, 3), c_cands) AS window_airings,
    c_covered AS minute_covered,
    c_pre AS baseline_airings
FROM
(
    SELECT
        call_system,
        call_id,
        dnis,
        dnis_key,
        l_ms AS received_at_ms,
        toDateTime(intDiv(l_ms, 1000), 'UTC') AS received_at,
        answered,
        abandoned,
        arrayMap(x -> (tupleElement(x, 4), tupleElement(x, 5), tupleElement(x, 6)), ` + in("w") + `) AS c_cands,
        ` + winnerSQL("c_cands") + ` AS c_win,
        toUInt8(arrayExists((x, m) -> tupleElement(x, 1) = 'w' AND tupleElement(x, 2) < m + 60000 AND tupleElement(x, 3) > m, h_spans, replicate(l_minute, h_spans))) AS c_covered,
        arrayMap(x -> tupleElement(x, 6), ` + in("p") + `) AS c_pre
    FROM
    (
        SELECT
            call_system,
            call_id,
            dnis,
            dnis_key,
            received_at_ms AS l_ms,
            answered,
            abandoned,
            intDiv(received_at_ms, 60000) * 60000 AS l_minute,
            toInt64(intDiv(received_at_ms, 3600000)) AS l_hour
        FROM ` + indentTail(calls, 2) + `
    ) AS l
    ANY LEFT JOIN
    (
` + indent(indent(b.spansByHourSQL())) + `
    ) AS h ON dnis_key = h_dnis_key AND l_hour = h_hour
)`
}

// indentTail indents every line but the first by n levels (for a
// reference that follows text on its line).
func indentTail(s string, n int) string {
	return strings.ReplaceAll(s, "\n", "\n"+strings.Repeat("    ", n))
}

// orderColumns are the columns of orders_dedup that order_attribution
// carries.
var orderColumns = []string{
	"order_id", "placed_at_ms", "placed_at", "call_id", "channel", "offer", "amount_cents", "currency",
	"upsell_count", "continuity", "promo_code", "vanity_url", "dnis", "cancelled", "refund_cents",
}

// promoSpansSQL is every ran airing's response window under each of its
// keys ('p:' promo code, 'v:' vanity URL), grouped by key and hour: one row
// per key, for one lookup per order. Elements: (lo, hi, spend, airing_id).
func (b *builder) promoSpansSQL() string {
	var scan string
	if b.sc != nil {
		scan = b.when("response_end_ms > %s AND response_start_ms < %s", ms(b.sc.scanLo), ms(b.sc.scanHi+dayMS))
	}
	return `SELECT
    p_key,
    p_hour,
    groupArray((p_lo, p_hi, p_spend, p_airing_id)) AS p_spans
FROM
(
    SELECT
        p_airing_id,
        p_key,
        p_lo,
        p_hi,
        p_spend,
        ` + hoursSQL("p_lo", "p_hi") + ` AS p_hour
    FROM
    (
        SELECT
            airing_id AS p_airing_id,
            response_start_ms AS p_lo,
            response_end_ms AS p_hi,
            spend_cents AS p_spend,
            arrayJoin(arrayFilter(k -> k != 'p:' AND k != 'v:', [concat('p:', promo_key), concat('v:', vanity_key)])) AS p_key
        FROM ` + indentTail(b.ref(ViewAirings), 2) + `
        WHERE did_not_run = 0` + strings.ReplaceAll(scan, "\n", "\n        ") + `
    )
)
GROUP BY p_key, p_hour`
}

// orderAttributionSQL attributes every order once: an order with a
// call_id follows its call; one without follows the airing whose promo
// code or vanity URL it names and whose window contains it (the same rule
// as calls). Three lookups, one per level (ClickHouse 18.16 joins once
// per SELECT): the call, the promo code, the vanity URL.
func (b *builder) orderAttributionSQL() string {
	cols := strings.Join(orderColumns, ",\n    ")
	inWindow := func(spans string) string {
		// (lo, hi, spend, airing_id) → (aired_at_ms, spend, airing_id) of
		// the spans whose window contains the order.
		return "arrayMap(x -> (tupleElement(x, 1), tupleElement(x, 3), tupleElement(x, 4)), arrayFilter((x, t) -> t >= tupleElement(x, 1) AND t < tupleElement(x, 2), " +
			spans + ", replicate(placed_at_ms, " + spans + ")))"
	}
	lookup := func(level int, key, inner string) string {
		return `SELECT
    ` + cols + `,
    o_airing_id,
    o_call_found,
    o_hour,
    o_promo_key,
    o_vanity_key` + map[int]string{1: "", 2: ",\n    o_promo_spans"}[level] + `,
    p_spans AS ` + map[int]string{1: "o_promo_spans", 2: "o_vanity_spans"}[level] + `
FROM
(
` + indent(inner) + `
) AS o` + chsql.Int(int64(level)) + `
ANY LEFT JOIN
(
` + indent(b.promoSpansSQL()) + `
) AS p ON ` + key + ` = p_key AND o_hour = p_hour`
	}
	linked := `SELECT
    ` + cols + `,
    k_airing_id AS o_airing_id,
    toUInt8(k_call_id != '') AS o_call_found,
    toInt64(intDiv(placed_at_ms, 3600000)) AS o_hour,
    if(call_id = '' AND promo_code != '', concat('p:', ` + promoKeySQL("promo_code") + `), '') AS o_promo_key,
    if(call_id = '' AND vanity_url != '', concat('v:', ` + vanityKeySQL("vanity_url") + `), '') AS o_vanity_key
FROM ` + b.ref(ViewOrders) + ` AS o0
ALL LEFT JOIN
(
` + indent(b.linkedCallsSQL()) + `
) AS k ON call_id = k_call_id`
	return `SELECT
    ` + cols + `,
    if(call_id != '', o_airing_id, tupleElement(o_win, 3)) AS airing_id,
    multiIf(o_call_found = 1, 'call', call_id = '' AND tupleElement(o_win, 3) != '', 'promo', '') AS via
FROM
(
    SELECT
        ` + strings.Join(orderColumns, ",\n        ") + `,
        o_airing_id,
        o_call_found,
        ` + winnerSQL("arrayConcat("+inWindow("o_promo_spans")+", "+inWindow("o_vanity_spans")+")") + ` AS o_win
    FROM
    (
` + indent(indent(lookup(2, "o_vanity_key", lookup(1, "o_promo_key", linked)))) + `
    )
)`
}

// linkedCallsSQL attributes the calls that phone orders name (only
// those), one row per call id: k_call_id and k_airing_id, the airing of
// the earliest call of that id (then the smaller source system). Only
// call.received events decide it: the earliest received event of the id,
// by (time, source system, event id), is the first received event of the
// earliest call, so it gives that call's time and DNIS without grouping
// the calls' other events; the call's airing is then the winner among the
// response windows on its DNIS that contain its time, as in
// call_attribution.
func (b *builder) linkedCallsSQL() string {
	cond := "call_id IN (SELECT call_id FROM " + b.db + ".events WHERE kind = " + kindPlaced + " AND call_id != ''"
	var scan, keep string
	if b.sc != nil {
		cond += " AND occurred_at >= " + seconds(b.sc.scanLo) + " AND occurred_at < " + seconds(b.sc.scanHi+dayMS)
		scan = b.when("occurred_at >= %s AND occurred_at < %s", seconds(b.sc.scanLo-hourMS), seconds(b.sc.scanHi+dayMS))
		keep = fmt.Sprintf("\nWHERE k_ms >= %s AND k_ms < %s", ms(b.sc.scanLo), ms(b.sc.scanHi))
	}
	cond += ")"
	win := "arrayMap(x -> (tupleElement(x, 4), tupleElement(x, 5), tupleElement(x, 6)), " +
		"arrayFilter((x, t) -> tupleElement(x, 1) = 'w' AND t >= tupleElement(x, 2) AND t < tupleElement(x, 3), h_spans, replicate(k_ms, h_spans)))"
	return `SELECT
    k_call_id,
    tupleElement(` + winnerSQL(win) + `, 3) AS k_airing_id
FROM
(
    SELECT
        k_call_id,
        k_ms,
        k_dnis_key,
        toInt64(intDiv(k_ms, 3600000)) AS k_hour
    FROM
    (
        SELECT
            call_id AS k_call_id,
            argMin((dnis, occurred_at_ms), (occurred_at_ms, source_system, event_id)) AS k_first,
            tupleElement(k_first, 2) AS k_ms,
            ` + dnisKeySQL("tupleElement(k_first, 1)") + ` AS k_dnis_key
        FROM ` + b.db + `.events
        WHERE kind = ` + kindReceived + strings.ReplaceAll(scan, "\n", "\n        ") + `
            AND ` + cond + `
        GROUP BY call_id
    )` + strings.ReplaceAll(keep, "\n", "\n    ") + `
) AS kc
ANY LEFT JOIN
(
` + indent(b.spansByHourSQL()) + `
) AS h ON k_dnis_key = h_dnis_key AND k_hour = h_hour`
}

func prefixAll(cols []string, prefix string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = prefix + c
	}
	return out
}
