package dashboards

// theAiring selects the airing the variable names.
const theAiring = `airing_id = ${airing:sqlstring}`

func detail() Built {
	b := newBuilder(Dashboard{
		UID:   UIDDetail,
		Title: "Airing detail",
		Description: "One airing: its figures and accountability, its minute-by-minute response against the expected curve, " +
			"the calls and orders around it with air times and recording gaps drawn in, and how well each source covered it.",
		Tags: []string{"airings"},
		Time: TimeRange{From: "now-1d/d", To: "now"},
	})
	b.queryVariable("airing", "Airing", "an airing that aired in the time range", false, q(`
SELECT
    airing_id,
    concat(formatDateTime(aired_at, '%Y-%m-%d %H:%M'), ' UTC  ', station, '  ', offer, '  ', airing_id) AS label
FROM airings_current
WHERE $__timeFilter(aired_at)
ORDER BY aired_at, airing_id`, "airing_id", "label"))

	b.annotation("Air times", "rgba(31, 120, 193, 1)", q(`
SELECT
    aired_at AS time,
    concat(station, ' ', isci, ' (', airing_id, ')') AS text,
    offer AS tags
FROM airings_current
WHERE $__timeFilter(aired_at)
    AND did_not_run = 0
    AND (`+theAiring+`
        OR (dnis_key != '' AND dnis_key IN (SELECT dnis_key FROM airings_current WHERE `+theAiring+`)))
ORDER BY time`, "time", "text", "tags"))
	b.annotation("Not recorded: downtime, lost events, silent lines", "rgba(224, 47, 68, 0.6)", q(`
SELECT
    toDateTime(intDiv(start_ms, 1000), 'UTC') AS time,
    toDateTime(intDiv(end_ms, 1000), 'UTC') AS timeEnd,
    what AS text,
    cause AS tags
FROM uncovered_spans
WHERE start_ms <= toInt64(toUnixTimestamp($__toTime)) * 1000
    AND end_ms >= toInt64(toUnixTimestamp($__fromTime)) * 1000
ORDER BY time`, "time", "timeEnd", "text", "tags"))

	b.panel(statPanel(1, "Figures", "Calls, orders and money as airtally report gives them; adjusted: with the estimated missing calls and their orders.", pos(0, 0, 24, 4),
		byName("calls", title("Calls")),
		byName("orders", title("Orders")),
		byName("revenue", title("Net revenue"), decimals(2)),
		byName("cost", title("Cost"), decimals(2)),
		byName("cost_per_order", title("Cost per order"), decimals(2)),
		byName("media_ratio", title("Media ratio"), decimals(2)),
		byName("target_ratio", title("Target"), decimals(2)),
		byName("estimated_missing_calls", title("Est. missing calls"), decimals(1)),
		byName("adjusted_media_ratio", title("Adjusted ratio"), decimals(2)),
	), q(`
SELECT
    calls,
    orders,
    net_revenue_cents / 100 AS revenue,
    media_cost_cents / 100 AS cost,
    cost_per_order_cents / 100 AS cost_per_order,
    media_ratio,
    target_ratio,
    estimated_missing_calls,
    adjusted_media_ratio
FROM airing_accountability
WHERE `+accountable+` AND `+theAiring, "calls", "orders", "revenue", "cost", "cost_per_order", "media_ratio", "target_ratio",
		"estimated_missing_calls", "adjusted_media_ratio"))

	b.panel(tablePanel(2, "Airing and accountability", "The airing as scheduled (post-log applied), and whether its response window was fully recorded.", pos(0, 4, 24, 4),
		byName("aired_at", title("Air time")),
		byName("station", title("Station")),
		byName("market", title("Market")),
		byName("offer", title("Offer")),
		byName("creative", title("Creative (ISCI)")),
		byName("dnis", title("Number")),
		byName("window_minutes", title("Window (min)")),
		byName("status", title("Accountability"), mappings(statusColors()), cell("color-text")),
		byName("coverage", title("Calls recorded"), unit("percentunit"), decimals(1)),
		byName("reason", title("Reason"), width(360)),
	), q(`
SELECT
    aired_at,
    station,
    market,
    offer,
    isci AS creative,
    dnis,
    window_minutes,
    status,
    coverage,
    reason
FROM airing_accountability
WHERE `+accountable+` AND `+theAiring, "aired_at", "station", "market", "offer", "creative", "dnis", "window_minutes", "status", "coverage", "reason"))

	b.panel(timeseriesPanel(3, "Response curve against expected",
		"Calls attributed to the airing per minute since air time; expected: the average per minute of this offer's airings of the same media type "+
			"whose windows were fully recorded; baseline: the number's calls per minute before air time.",
		pos(0, 8, 12, 10), "short",
		byName("calls", title("Calls")),
		byName("expected_calls", title("Expected"), Property{ID: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{10, 10}}}),
		byName("baseline_calls", title("Baseline")),
	), q(`
SELECT
    toDateTime(intDiv(start_ms, 1000) + minute * 60, 'UTC') AS time,
    calls,
    expected_calls,
    baseline_calls
FROM
(
    SELECT start_ms, minute, calls, shape_key, week, baseline_calls
    FROM
    (
        SELECT
            response_start_ms AS start_ms,
            concat(offer, '|', media_type) AS shape_key,
            toMonday(aired_at) AS week,
            baseline_rate AS baseline_calls,
            toInt64(arrayJoin(range(toUInt64(ceil(window_length_minutes))))) AS minute
        FROM airing_figures
        WHERE `+theAiring+`
    ) AS m
    ALL LEFT JOIN
    (
        SELECT minute, calls
        FROM airing_response_curve
        WHERE `+theAiring+`
    ) AS c USING (minute)
) AS mc
ALL LEFT JOIN
(
    SELECT shape_key, week, bin AS minute, calls_per_airing AS expected_calls
    FROM response_shapes
) AS s USING (shape_key, week, minute)
ORDER BY time`, "time", "calls", "expected_calls", "baseline_calls"))

	b.panel(timeseriesPanel(4, "Calls and orders around it",
		"Calls on the airing's number per minute (those attributed to this airing, and the others), and the orders attributed to it. "+
			"Air times of the airings on this number, and spans that could not be recorded, are drawn in.",
		pos(12, 8, 12, 10), "short",
	), q(`
SELECT time, series, value
FROM
(
    SELECT
        toStartOfMinute(received_at) AS time,
        if(`+theAiring+`, 'calls attributed to this airing', 'other calls on its number') AS series,
        count() AS value
    FROM call_attribution
    WHERE $__timeFilter(received_at)
        AND dnis_key IN (SELECT dnis_key FROM airings_current WHERE `+theAiring+` AND dnis_key != '')
    GROUP BY time, series
    UNION ALL
    SELECT
        toStartOfMinute(placed_at) AS time,
        'orders attributed to this airing' AS series,
        count() AS value
    FROM order_attribution
    WHERE $__timeFilter(placed_at) AND `+theAiring+`
    GROUP BY time, series
)
ORDER BY time, series`, "time", "series", "value"))

	b.panel(tablePanel(5, "Coverage per source",
		"Each source that takes this airing's calls or orders, its share of them (outside incidents, that week), "+
			"and how much of the response window it recorded.",
		pos(0, 18, 24, 7),
		byName("role", title("For")),
		byName("source", title("Source")),
		byName("share", title("Share"), unit("percentunit"), decimals(1)),
		byName("coverage", title("Recorded"), unit("percentunit"), decimals(1), thresholds(&Thresholds{Mode: "absolute", Steps: []Step{
			{Color: "red", Value: nil}, {Color: "orange", Value: fp(0.95)}, {Color: "green", Value: fp(1)},
		}}), cell("color-text")),
		byName("uncovered_minutes", title("Not recorded (min)"), decimals(1)),
		byName("window_minutes", title("Window (min)"), decimals(1)),
		byName("what_happened", title("What happened")),
	), q(`
SELECT
    role,
    source,
    share,
    coverage,
    uncovered_minutes,
    window_minutes,
    arrayStringConcat(causes, '; ') AS what_happened
FROM airing_coverage
WHERE `+theAiring+`
ORDER BY role, source`, "role", "source", "share", "coverage", "uncovered_minutes", "window_minutes", "what_happened"))
	return b.done()
}
