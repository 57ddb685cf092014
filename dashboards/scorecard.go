package dashboards

// Filters every airing query of the scorecard and of media performance
// applies: the time picker filters by air time, the variables by offer,
// station and market (All: no filter).
const airingFilters = `$__timeFilter(aired_at)
    AND $__conditionalAll(offer IN (${offer:sqlstring}), $offer)
    AND $__conditionalAll(station IN (${station:sqlstring}), $station)
    AND $__conditionalAll(market IN (${market:sqlstring}), $market)`

// airingVariables adds the offer, station and market variables: the values
// of the airings that aired in the time range.
func airingVariables(b *builder) {
	for _, v := range []struct{ name, label string }{{"offer", "Offer"}, {"station", "Station / network"}, {"market", "Market"}} {
		b.queryVariable(v.name, v.label, "the "+v.name+"s of the airings in the time range", true, q(`
SELECT DISTINCT `+v.name+`
FROM airings_current
WHERE $__timeFilter(aired_at)
ORDER BY `+v.name, v.name))
	}
}

// accountable must be among the conditions of every read of
// airing_accountability: without a condition on status, ClickHouse 18.16
// prunes the view's one-row join (max(stored_at_ms) over events, which
// status needs) into one row per event, and every airing comes back once
// per event. Every airing has a status, so it filters nothing.
const accountable = `status != ''`

// Statuses of airing_accountability (docs/accountability.md).
var statuses = []string{"accounted", "partial", "no_response", "pending", "did_not_run"}

// statusColors colour an accountability status.
func statusColors() ValueMapping {
	return valueColors("accounted", "green", "partial", "orange", "no_response", "red", "pending", "blue", "did_not_run", "text")
}

func scorecard() Built {
	b := newBuilder(Dashboard{
		UID:   UIDScorecard,
		Title: "Airing scorecard",
		Description: "One row per airing in the time range (by air time): what it cost and brought, its media ratio " +
			"against the offer's target, and whether its response was fully recorded. Figures are airtally report's.",
		Tags: []string{"airings"},
		Time: TimeRange{From: "now-1d/d", To: "now"},
	})
	airingVariables(b)
	b.customVariable("status", "Accountability", "accounted: fully recorded; partial: part of the response window was not recorded; "+
		"no_response: it ran and cost money but drew far fewer calls than comparable airings predict (a suspected silent line); "+
		"pending: window open or data not loaded yet; did_not_run: the post-log says it did not run", true, statuses, nil, "")

	b.panel(statPanel(1, "Totals", "The airings shown below, summed; the media ratio is total net revenue ÷ total cost.", pos(0, 0, 24, 4),
		byName("airings", title("Airings")),
		byName("cost", title("Cost"), decimals(2)),
		byName("calls", title("Calls")),
		byName("orders", title("Orders")),
		byName("revenue", title("Net revenue"), decimals(2)),
		byName("media_ratio", title("Media ratio"), decimals(2)),
		byName("partial_airings", title("Partly recorded airings")),
		byName("no_response_airings", title("Paid airings without response"), thresholds(alarmAbove(1))),
		byName("estimated_missing_calls", title("Estimated missing calls"), decimals(1)),
	), q(`
SELECT
    t_airings AS airings,
    t_cost / 100 AS cost,
    t_calls AS calls,
    t_orders AS orders,
    t_net / 100 AS revenue,
    if(t_cost = 0, NULL, t_net / t_cost) AS media_ratio,
    t_partial AS partial_airings,
    t_no_response AS no_response_airings,
    t_missing AS estimated_missing_calls
FROM
(
    SELECT
        count() AS t_airings,
        sum(media_cost_cents) AS t_cost,
        sum(calls) AS t_calls,
        sum(orders) AS t_orders,
        sum(net_revenue_cents) AS t_net,
        countIf(status = 'partial') AS t_partial,
        countIf(status = 'no_response') AS t_no_response,
        sum(estimated_missing_calls) AS t_missing
    FROM airing_accountability
    WHERE `+accountable+`
        AND `+airingFilters+`
        AND $__conditionalAll(status IN (${status:sqlstring}), $status)
)`, "airings", "cost", "calls", "orders", "revenue", "media_ratio", "partial_airings", "no_response_airings", "estimated_missing_calls"))

	detailLink := DataLink{
		Title: "Airing detail",
		URL: "/d/" + UIDDetail + "/airing-detail?var-airing=${__data.fields.airing_id:percentencode}" +
			"&from=${__data.fields.detail_from}&to=${__data.fields.detail_to}",
	}
	b.panel(tablePanel(2, "Airings",
		"Money in the offer's currency. Vs target: the media ratio ÷ the offer's target ratio (green on target, orange within 10 %, red below). "+
			"Adjusted ratio: as if the estimated missing calls and their orders had been recorded. Click an air time for the airing's detail.",
		pos(0, 4, 24, 20),
		byName("air_time", title("Air time"), width(150), links(detailLink)),
		byName("station", title("Station")),
		byName("market", title("Market")),
		byName("offer", title("Offer")),
		byName("creative", title("Creative (ISCI)")),
		byName("cost", title("Cost"), decimals(2)),
		byName("calls", title("Calls")),
		byName("orders", title("Orders")),
		byName("revenue", title("Net revenue"), decimals(2)),
		byName("cost_per_call", title("Cost per call"), decimals(2)),
		byName("cost_per_order", title("Cost per order"), decimals(2)),
		byName("media_ratio", title("Media ratio"), decimals(2)),
		byName("ratio_to_target", title("Vs target"), unit("percentunit"), decimals(0), thresholds(ratioToTarget()), cell("color-background")),
		byName("target_ratio", title("Target"), decimals(2)),
		byName("status", title("Accountability"), mappings(statusColors()), cell("color-text")),
		byName("reason", title("Reason"), width(280)),
		byName("estimated_missing_calls", title("Est. missing calls"), decimals(1)),
		byName("adjusted_media_ratio", title("Adjusted ratio"), decimals(2)),
		byName("currency", title("Currency")),
		byName("airing_id", title("Airing")),
		byName("detail_from", hidden()),
		byName("detail_to", hidden()),
	), q(`
SELECT
    aired_at AS air_time,
    station,
    market,
    offer,
    isci AS creative,
    media_cost_cents / 100 AS cost,
    calls,
    orders,
    net_revenue_cents / 100 AS revenue,
    if(calls = 0, NULL, media_cost_cents / calls / 100) AS cost_per_call,
    cost_per_order_cents / 100 AS cost_per_order,
    media_ratio,
    ratio_to_target,
    target_ratio,
    status,
    reason,
    estimated_missing_calls,
    adjusted_media_ratio,
    currency,
    airing_id,
    response_start_ms - 3600000 AS detail_from,
    response_end_ms + 3600000 AS detail_to
FROM airing_accountability
WHERE `+accountable+`
    AND `+airingFilters+`
    AND $__conditionalAll(status IN (${status:sqlstring}), $status)
ORDER BY air_time, airing_id`,
		"air_time", "station", "market", "offer", "creative", "cost", "calls", "orders", "revenue",
		"cost_per_call", "cost_per_order", "media_ratio", "ratio_to_target", "target_ratio", "status", "reason",
		"estimated_missing_calls", "adjusted_media_ratio", "currency", "airing_id", "detail_from", "detail_to"))
	return b.done()
}
