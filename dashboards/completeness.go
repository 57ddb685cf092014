package dashboards

// The period the completeness panels judge: the time range, cut at now
// (the future has no downtime yet), in Unix milliseconds like the
// detection views' start_ms and end_ms.
const (
	fromMS        = `toInt64(toUnixTimestamp($__fromTime)) * 1000`
	toMS          = `toInt64(toUnixTimestamp(least($__toTime, now()))) * 1000`
	periodMinutes = `(` + toMS + ` - ` + fromMS + `) / 60000`
	// overlaps keeps spans (start_ms, end_ms) that overlap the period.
	overlaps = `start_ms < ` + toMS + ` AND end_ms > ` + fromMS
)

// Uptime targets offered; 99.9 % allows about 43 minutes of downtime in 30
// days.
var uptimeTargets = []string{"99.99", "99.9", "99.5", "99", "95"}

func completeness() Built {
	b := newBuilder(Dashboard{
		UID:   UIDCompleteness,
		Title: "Data completeness",
		Description: "Is every call and order being recorded? Sources and their heartbeats, downtime, lost events, lines that went " +
			"silent, late data, the loader's lag, dead letters, how far the airing figures the dashboards read are behind, and each source's availability against an uptime target with " +
			"what its incidents cost in airings.",
		Tags:    []string{"operations"},
		Time:    TimeRange{From: "now-7d", To: "now"},
		Refresh: "1m",
	})
	b.customVariable("uptime_target", "Uptime target (%)",
		"the availability each source should reach over the period; 99.9 % allows about 43 minutes of downtime in 30 days",
		false, uptimeTargets, nil, "99.9")

	b.panel(statPanel(1, "At a glance", "Over the period; sources down: at its end.", pos(0, 0, 24, 4),
		byName("sources_down", title("Sources down"), thresholds(alarmAbove(1))),
		byName("open_gaps", title("Open sequence gaps"), thresholds(alarmAbove(1))),
		byName("lost_events", title("Events lost"), thresholds(alarmAbove(1))),
		byName("silent_lines", title("Silent lines"), thresholds(alarmAbove(1))),
		byName("airings_partly_recorded", title("Airings partly recorded"), thresholds(alarmAbove(1))),
		byName("airings_no_response", title("Paid airings without response"), thresholds(alarmAbove(1))),
		byName("dead_letters", title("Dead letters"), thresholds(alarmAbove(1))),
		byName("projection_lag_s", title("Airing figures behind by"), unit("s"), thresholds(alarmAbove(300))),
	), q(`
SELECT
    (SELECT count() FROM source_downtime WHERE start_ms <= `+toMS+` AND end_ms >= `+toMS+`) AS sources_down,
    (SELECT count() FROM sequence_gaps WHERE status = 'open' AND `+overlaps+`) AS open_gaps,
    (SELECT sum(missing_events) FROM sequence_gaps WHERE status = 'open' AND `+overlaps+`) AS lost_events,
    (SELECT count() FROM line_outages WHERE `+overlaps+`) AS silent_lines,
    (SELECT count() FROM airing_accountability WHERE status = 'partial' AND $__timeFilter(aired_at)) AS airings_partly_recorded,
    (SELECT count() FROM airing_accountability WHERE status = 'no_response' AND $__timeFilter(aired_at)) AS airings_no_response,
    (SELECT count() FROM dead_letters FINAL WHERE $__timeFilter(failed_at)) AS dead_letters,
    (SELECT toInt64(if(count() = 0, 0, dateDiff('second', min(if(version = 0, marked_at, computed_from)), now()))) FROM projection_status WHERE dirty = 1) AS projection_lag_s`,
		"sources_down", "open_gaps", "lost_events", "silent_lines", "airings_partly_recorded", "airings_no_response", "dead_letters", "projection_lag_s"))

	b.panel(tablePanel(2, "Sources and heartbeats",
		"Every source that sent events up to the end of the period: its last event and heartbeat, and its state then. "+
			"late: silent for longer than twice its heartbeat interval plus 30 s; down: inside a downtime window.",
		pos(0, 4, 24, 8),
		byName("source", title("Source")),
		byName("last_event", title("Last event")),
		byName("last_heartbeat", title("Last heartbeat")),
		byName("heartbeat_interval_s", title("Heartbeat every"), unit("s")),
		byName("silent_s", title("Silent for"), unit("s")),
		byName("state", title("State"), mappings(valueColors("ok", "green", "late", "orange", "down", "red")), cell("color-background")),
		byName("events", title("Events in period")),
	), q(`
SELECT
    source,
    last_event,
    last_heartbeat,
    heartbeat_interval_s,
    silent_s,
    multiIf(d_down = 1, 'down', heartbeat_interval_s > 0 AND silent_s > 2 * heartbeat_interval_s + 30, 'late', 'ok') AS state,
    events
FROM
(
    SELECT
        source,
        t_last AS last_event,
        t_heartbeat AS last_heartbeat,
        t_interval AS heartbeat_interval_s,
        dateDiff('second', t_last, least(now(), $__toTime)) AS silent_s,
        t_events AS events
    FROM
    (
        SELECT
            concat(source_system, '.', source_instance) AS source,
            max(occurred_at) AS t_last,
            maxIf(occurred_at, kind = 'heartbeat') AS t_heartbeat,
            argMaxIf(interval_seconds, occurred_at_ms, kind = 'heartbeat') AS t_interval,
            uniqExactIf(event_id, $__timeFilter(occurred_at)) AS t_events
        FROM events
        WHERE occurred_at <= $__toTime AND source_system != 'detector'
        GROUP BY source
    )
) AS s
ALL LEFT JOIN
(
    SELECT source, toUInt8(1) AS d_down
    FROM source_downtime
    WHERE start_ms <= `+toMS+` AND end_ms >= `+toMS+`
    GROUP BY source
) AS d USING (source)
ORDER BY source`, "source", "last_event", "last_heartbeat", "heartbeat_interval_s", "silent_s", "state", "events"))

	b.panel(tablePanel(3, "Availability against the uptime target",
		"Per source over the period: minutes down (downtime windows), availability, the downtime the target allows, how much of it was used, "+
			"and the airings whose response window its incidents (downtime, lost events, silent lines) left partly unrecorded, "+
			"with those airings' estimated missing calls.",
		pos(0, 12, 24, 8),
		byName("source", title("Source")),
		byName("period_minutes", title("Period (min)"), decimals(0)),
		byName("down_minutes", title("Down (min)"), decimals(1)),
		byName("availability", title("Availability"), unit("percentunit"), decimals(3)),
		byName("target", title("Target"), unit("percentunit"), decimals(2)),
		byName("allowed_down_minutes", title("Allowed down (min)"), decimals(1)),
		byName("budget_used", title("Allowance used"), unit("percentunit"), decimals(0), thresholds(&Thresholds{Mode: "absolute", Steps: []Step{
			{Color: "green", Value: nil}, {Color: "orange", Value: fp(0.5)}, {Color: "red", Value: fp(1)},
		}}), cell("color-background")),
		byName("meets_target", title("Meets target"), mappings(ValueMapping{Type: "value", Options: map[string]any{
			"1": map[string]any{"text": "yes", "color": "green", "index": 0},
			"0": map[string]any{"text": "no", "color": "red", "index": 1},
		}}), cell("color-text")),
		byName("airings_affected", title("Airings affected")),
		byName("estimated_missing_calls", title("Their est. missing calls"), decimals(1)),
	), q(`
SELECT
    source,
    period_minutes,
    down_minutes,
    1 - down_minutes / period_minutes AS availability,
    ${uptime_target} / 100 AS target,
    (1 - target) * period_minutes AS allowed_down_minutes,
    if(allowed_down_minutes = 0, NULL, down_minutes / allowed_down_minutes) AS budget_used,
    toUInt8(availability >= target) AS meets_target,
    airings_affected,
    estimated_missing_calls
FROM
(
    SELECT
        source,
        `+periodMinutes+` AS period_minutes,
        t_down AS down_minutes,
        a_airings AS airings_affected,
        a_missing AS estimated_missing_calls
    FROM
    (
        SELECT source, sum(d_minutes) AS t_down
        FROM
        (
            SELECT DISTINCT
                concat(source_system, '.', source_instance) AS source,
                toFloat64(0) AS d_minutes
            FROM events
            WHERE $__timeFilter(occurred_at) AND source_system != 'detector'
            UNION ALL
            SELECT
                source,
                greatest(0, least(end_ms, `+toMS+`) - greatest(start_ms, `+fromMS+`)) / 60000 AS d_minutes
            FROM source_downtime
            WHERE `+overlaps+`
        )
        GROUP BY source
    ) AS s
    ALL LEFT JOIN
    (
        SELECT source, uniqExact(airing_id) AS a_airings, sum(e_missing) AS a_missing
        FROM
        (
            SELECT source, airing_id
            FROM airing_coverage
            WHERE uncovered_minutes > 0
            GROUP BY source, airing_id
        ) AS c
        ALL INNER JOIN
        (
            SELECT airing_id, estimated_missing_calls AS e_missing
            FROM airing_accountability
            WHERE `+accountable+` AND $__timeFilter(aired_at)
        ) AS a USING (airing_id)
        GROUP BY source
    ) AS x USING (source)
)
ORDER BY availability, source`, "source", "period_minutes", "down_minutes", "availability", "target", "allowed_down_minutes",
		"budget_used", "meets_target", "airings_affected", "estimated_missing_calls"))

	b.panel(tablePanel(4, "Alerts: incidents that touched airings",
		"What the detector alerts on (a source down, a line silent, events lost) in the period, by what happened: how often, for how long, "+
			"and the airings whose response window it left partly unrecorded, with their estimated missing calls.",
		pos(0, 20, 24, 7),
		byName("what", title("What happened")),
		byName("cause", title("Kind")),
		byName("windows", title("Times")),
		byName("first_start", title("First")),
		byName("last_end", title("Last until")),
		byName("minutes", title("Minutes"), decimals(1)),
		byName("airings_touched", title("Airings touched")),
		byName("estimated_missing_calls", title("Their est. missing calls"), decimals(1)),
	), q(`
SELECT
    what,
    t_cause AS cause,
    t_windows AS windows,
    toDateTime(intDiv(t_start, 1000), 'UTC') AS first_start,
    toDateTime(intDiv(t_end, 1000), 'UTC') AS last_end,
    t_minutes AS minutes,
    a_airings AS airings_touched,
    a_missing AS estimated_missing_calls
FROM
(
    SELECT
        what,
        any(cause) AS t_cause,
        count() AS t_windows,
        min(start_ms) AS t_start,
        max(end_ms) AS t_end,
        sum((end_ms - start_ms) / 60000) AS t_minutes
    FROM uncovered_spans
    WHERE `+overlaps+`
    GROUP BY what
) AS i
ALL LEFT JOIN
(
    SELECT what, uniqExact(airing_id) AS a_airings, sum(e_missing) AS a_missing
    FROM
    (
        SELECT DISTINCT airing_id, arrayJoin(causes) AS what
        FROM airing_coverage
    ) AS c
    ALL INNER JOIN
    (
        SELECT airing_id, estimated_missing_calls AS e_missing
        FROM airing_accountability
        WHERE `+accountable+`
    ) AS a USING (airing_id)
    GROUP BY what
) AS x USING (what)
ORDER BY first_start, what`, "what", "cause", "windows", "first_start", "last_end", "minutes", "airings_touched", "estimated_missing_calls"))

	b.panel(tablePanel(5, "Silences and downtime windows",
		"Every time a source went silent for longer than its tolerance: down (nothing recorded), delayed (its events came late), "+
			"lost (it went on numbering events that never arrived) or ongoing.",
		pos(0, 27, 12, 8),
		byName("source", title("Source")),
		byName("window_start", title("From")),
		byName("window_end", title("Until")),
		byName("minutes", title("Minutes"), decimals(1)),
		byName("outcome", title("Outcome"), mappings(valueColors("down", "red", "ongoing", "red", "lost", "orange", "delayed", "yellow")), cell("color-text")),
	), q(`
SELECT source, window_start, window_end, minutes, outcome
FROM source_silences
WHERE `+overlaps+`
ORDER BY window_start, source`, "source", "window_start", "window_end", "minutes", "outcome"))

	b.panel(tablePanel(6, "Sequence gaps",
		"Holes in a source's sequence numbers: events that left the source but never arrived (open), or came later (filled, split).",
		pos(12, 27, 12, 8),
		byName("source", title("Source")),
		byName("seq_from", title("From #")),
		byName("seq_to", title("To #")),
		byName("missing_events", title("Events")),
		byName("window_start", title("Between")),
		byName("window_end", title("And")),
		byName("status", title("Status"), mappings(valueColors("open", "red", "filled", "green", "split", "orange")), cell("color-text")),
	), q(`
SELECT source, seq_from, seq_to, missing_events, window_start, window_end, status
FROM sequence_gaps
WHERE `+overlaps+`
ORDER BY window_start, source`, "source", "seq_from", "seq_to", "missing_events", "window_start", "window_end", "status"))

	b.panel(tablePanel(7, "Suspected outages: silent lines",
		"Numbers that took no call while similar airings and their baseline said they should have, with the sources' heartbeats going on: "+
			"calls lost before they reached a call centre (at one source, or everywhere).",
		pos(0, 35, 12, 7),
		byName("dnis", title("Number")),
		byName("source", title("At source (blank: everywhere)")),
		byName("window_start", title("From")),
		byName("window_end", title("Until")),
		byName("minutes", title("Minutes"), decimals(1)),
		byName("expected_calls", title("Calls expected")),
		byName("ongoing", title("Ongoing")),
	), q(`
SELECT dnis, source, window_start, window_end, minutes, expected_calls, ongoing
FROM line_outages
WHERE `+overlaps+`
ORDER BY window_start, dnis`, "dnis", "source", "window_start", "window_end", "minutes", "expected_calls", "ongoing"))

	b.panel(tablePanel(8, "Late data",
		"Events that arrived late: waited at the producer (spooled while the broker was unreachable) or behind the loader. None lost.",
		pos(12, 35, 12, 7),
		byName("source", title("Source")),
		byName("window_start", title("From")),
		byName("window_end", title("Until")),
		byName("delay_minutes", title("Up to (min)"), decimals(1)),
		byName("event_count", title("Events")),
		byName("waited_at", title("Waited at")),
	), q(`
SELECT source, window_start, window_end, delay_minutes, event_count, waited_at
FROM data_delays
WHERE `+overlaps+`
ORDER BY window_start, source`, "source", "window_start", "window_end", "delay_minutes", "event_count", "waited_at"))

	b.panel(timeseriesPanel(9, "Loader lag",
		"How long events waited between JetStream storing them and the loader inserting them into ClickHouse: the longest per interval. "+
			"Every insert of an event counts (a redelivered copy too), so this is the lag as it happened.",
		pos(0, 42, 12, 8), "s",
		byName("max_lag_seconds", title("Longest lag")),
	), q(`
SELECT
    toDateTime(intDiv(toUInt32(stored_at), $__interval_s) * $__interval_s) AS time,
    max(toInt64(loaded_at) * 1000 - stored_at_ms) / 1000 AS max_lag_seconds
FROM events
WHERE $__timeFilter(stored_at)
GROUP BY time
ORDER BY time`, "time", "max_lag_seconds"))

	b.panel(tablePanel(10, "Dead letters",
		"Events the loader could not store (invalid, or not matching their subject), with the reason; the payload is never shown. "+
			"They are kept in the dead-letter stream and can be replayed once fixed.",
		pos(12, 42, 12, 8),
		byName("failed_at", title("When")),
		byName("source", title("Source")),
		byName("subject", title("Subject")),
		byName("reason", title("Reason"), width(360)),
		byName("stream_seq", title("Stream #")),
	), q(`
SELECT
    failed_at,
    concat(source_system, '.', source_instance) AS source,
    subject,
    reason,
    stream_seq
FROM dead_letters FINAL
WHERE $__timeFilter(failed_at)
ORDER BY failed_at DESC, stream_seq
LIMIT 1000`, "failed_at", "source", "subject", "reason", "stream_seq"))
	return b.done()
}

// alarmAbove colours a count green below n and red from n.
func alarmAbove(n float64) *Thresholds {
	return &Thresholds{Mode: "absolute", Steps: []Step{{Color: "green", Value: nil}, {Color: "red", Value: fp(n)}}}
}
