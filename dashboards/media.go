package dashboards

// rollupColumns are the columns of every rollup table after its key.
var rollupColumns = []string{
	"airings", "cost", "calls", "orders", "revenue", "cost_per_call", "cost_per_order",
	"media_ratio", "target_ratio", "ratio_to_target", "calls_per_1000",
}

// rollupSQL sums airing_figures over the airings in the time range (and of
// the offers, stations and markets selected) by key, and computes the
// ratios from the sums, with the formulas of the rollup views
// (docs/airings.md): the same numbers as airtally report --by.
func rollupSQL(keyExpr, keyName, orderBy string) query {
	return q(`
SELECT
    k AS `+keyName+`,
    t_airings AS airings,
    t_cost / 100 AS cost,
    t_calls AS calls,
    t_orders AS orders,
    t_net / 100 AS revenue,
    if(t_calls = 0, NULL, t_cost / t_calls / 100) AS cost_per_call,
    if(t_orders = 0, NULL, t_cost / t_orders / 100) AS cost_per_order,
    if(t_cost = 0, NULL, t_net / t_cost) AS media_ratio,
    if(t_target_cost = 0, NULL, t_required / t_target_cost / 100) AS target_ratio,
    if(t_target_cost = 0 OR t_cost = 0, NULL, (t_net / t_cost) / (t_required / t_target_cost / 100)) AS ratio_to_target,
    if(t_cost = 0, NULL, t_calls * 100000 / t_cost) AS calls_per_1000
FROM
(
    SELECT
        `+keyExpr+` AS k,
        count() AS t_airings,
        sum(media_cost_cents) AS t_cost,
        sum(calls) AS t_calls,
        sum(orders) AS t_orders,
        sum(net_revenue_cents) AS t_net,
        sum(target_cost_cents) AS t_target_cost,
        sum(required_revenue_x100) AS t_required
    FROM airing_figures
    WHERE airing_id != ''
        AND `+airingFilters+`
    GROUP BY k
)
ORDER BY `+orderBy, append([]string{keyName}, rollupColumns...)...)
}

// rollupOverrides display a rollup table's columns.
func rollupOverrides(keyName, keyTitle string) []Override {
	return []Override{
		byName(keyName, title(keyTitle)),
		byName("airings", title("Airings")),
		byName("cost", title("Cost"), decimals(2)),
		byName("calls", title("Calls")),
		byName("orders", title("Orders")),
		byName("revenue", title("Net revenue"), decimals(2)),
		byName("cost_per_call", title("Cost per call"), decimals(2)),
		byName("cost_per_order", title("Cost per order"), decimals(2)),
		byName("media_ratio", title("Media ratio"), decimals(2)),
		byName("target_ratio", title("Target"), decimals(2)),
		byName("ratio_to_target", title("Vs target"), unit("percentunit"), decimals(0), thresholds(ratioToTarget()), cell("color-background")),
		byName("calls_per_1000", title("Calls per 1,000"), decimals(1)),
	}
}

func media() Built {
	b := newBuilder(Dashboard{
		UID:   UIDMedia,
		Title: "Media performance",
		Description: "The airings in the time range rolled up by station or network, daypart, creative, offer and broadcast week, " +
			"with ratio trends. Ratios come from the sums (as airtally report --by computes them); the target is cost-weighted.",
		Tags: []string{"airings"},
		Time: TimeRange{From: "now-30d/d", To: "now"},
	})
	airingVariables(b)

	b.panel(timeseriesPanel(1, "Media ratio by broadcast week, per offer",
		"Net revenue ÷ cost of each offer's airings, per broadcast week (weeks start Monday 06:00 America/New_York).",
		pos(0, 0, 12, 9), "none",
	), q(`
SELECT time, offer, media_ratio
FROM
(
    SELECT
        toDateTime(concat(toString(broadcast_week), ' 00:00:00'), 'UTC') AS time,
        offer,
        if(t_cost = 0, NULL, t_net / t_cost) AS media_ratio
    FROM
    (
        SELECT broadcast_week, offer, sum(media_cost_cents) AS t_cost, sum(net_revenue_cents) AS t_net
        FROM airing_figures
        WHERE airing_id != ''
            AND `+airingFilters+`
        GROUP BY broadcast_week, offer
    )
)
ORDER BY time, offer`, "time", "offer", "media_ratio"))

	b.panel(timeseriesPanel(2, "Media ratio and target by broadcast day",
		"All airings shown: net revenue ÷ cost per broadcast day (06:00 to 06:00 America/New_York), and their cost-weighted target.",
		pos(12, 0, 12, 9), "none",
		byName("media_ratio", title("Media ratio")),
		byName("target_ratio", title("Target"), Property{ID: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{10, 10}}}),
	), q(`
SELECT
    toDateTime(concat(toString(broadcast_day), ' 00:00:00'), 'UTC') AS time,
    if(t_cost = 0, NULL, t_net / t_cost) AS media_ratio,
    if(t_target_cost = 0, NULL, t_required / t_target_cost / 100) AS target_ratio
FROM
(
    SELECT
        broadcast_day,
        sum(media_cost_cents) AS t_cost,
        sum(net_revenue_cents) AS t_net,
        sum(target_cost_cents) AS t_target_cost,
        sum(required_revenue_x100) AS t_required
    FROM airing_figures
    WHERE airing_id != ''
        AND `+airingFilters+`
    GROUP BY broadcast_day
)
ORDER BY time`, "time", "media_ratio", "target_ratio"))

	rollups := []struct {
		id                                 int
		title, key, name, keyDesc, orderBy string
	}{
		{3, "By station / network", "station", "station", "Station / network", "cost DESC, station"},
		{4, "By daypart", "daypart", "daypart", "Daypart", "cost DESC, daypart"},
		{5, "By creative", "isci", "creative", "Creative (ISCI)", "cost DESC, creative"},
		{6, "By offer", "offer", "offer", "Offer", "cost DESC, offer"},
		{7, "By broadcast week", "broadcast_week", "broadcast_week", "Broadcast week", "broadcast_week"},
	}
	y := 9
	for i, r := range rollups {
		x, w := 0, 12
		if i%2 == 1 {
			x = 12
		}
		if i == len(rollups)-1 {
			w = 24
		}
		b.panel(tablePanel(r.id, r.title, "Airings in the time range by "+r.keyDesc+"; did-not-run airings count as airings and cost nothing.",
			pos(x, y, w, 9), rollupOverrides(r.name, r.keyDesc)...), rollupSQL(r.key, r.name, r.orderBy))
		if i%2 == 1 {
			y += 9
		}
	}
	return b.done()
}
