-- 0011: accountability views (issue 4): what the detector found, and what
-- it means for every airing. See docs/accountability.md for each view's
-- columns and an example query.
--
-- Built on the detection events (events FINAL, source_system 'detector')
-- and on the airing views of 0003 (airings_current, airing_figures,
-- airing_response_curve). Times are Unix milliseconds in the event store's
-- clock. Every statement runs on ClickHouse 18.16 and on current
-- ClickHouse: one JOIN per SELECT, equality joins only, no window
-- functions, and no lambda that captures a column (18.16 prunes such a
-- column out of subqueries).
--
-- source_silences     every silence of a source: down, delayed, lost or ongoing
-- source_downtime     the silences that were downtime (down, or ongoing)
-- sequence_gaps       holes in sources' sequence numbers: open, filled or split
-- line_outages        numbers silent (at one source, or everywhere) while heartbeats went on
-- data_delays         late data: at the producer (spool) or behind the loader
-- uncovered_spans     what could not be recorded: downtime, open gaps, silent lines
-- calls_outside_incidents, airing_sources
--                     which sources take an airing's calls and orders, and their shares
-- airing_source_minutes, airing_coverage
--                     per airing, source and minute of its window: the part uncovered
-- airing_exposure     until when an airing wins its calls (a later airing on its number takes over)
-- response_shapes     the response curve of airings free of incidents
-- airing_estimates    the share of an airing's response its uncovered minutes held
-- airing_incidents, airing_delays
--                     per airing: uncovered minutes, coverage, what happened, late data
-- airing_accountability
--                     per airing: status and reason, coverage, estimated missing calls
--                     and orders, cost per order and media ratio measured and adjusted

CREATE VIEW IF NOT EXISTS {{db}}.source_silences AS
SELECT
    concat(s_system, '.', s_instance) AS source,
    s_system AS monitored_system,
    s_instance AS monitored_instance,
    s_start_ms AS start_ms,
    if(s_closed = 1, s_end_ms, greatest(s_start_ms, toInt64(toUnixTimestamp(now())) * 1000)) AS end_ms,
    toDateTime(intDiv(start_ms, 1000), 'UTC') AS window_start,
    toDateTime(intDiv(end_ms, 1000), 'UTC') AS window_end,
    (end_ms - start_ms) / 60000 AS minutes,
    if(s_closed = 1, s_outcome, 'ongoing') AS outcome,
    toUInt8(s_closed = 0) AS ongoing,
    s_tolerance AS tolerance_seconds,
    s_skew AS clock_skew_ms
FROM
(
    SELECT
        monitored_system AS s_system,
        monitored_instance AS s_instance,
        window_start_ms AS s_start_ms,
        toUInt8(countIf(kind = 'source.up') > 0) AS s_closed,
        maxIf(window_end_ms, kind = 'source.up') AS s_end_ms,
        anyIf(outcome, kind = 'source.up') AS s_outcome,
        max(tolerance_seconds) AS s_tolerance,
        argMax(clock_skew_ms, occurred_at_ms) AS s_skew
    FROM {{db}}.events FINAL
    WHERE source_system = 'detector' AND kind IN ('source.down', 'source.up')
    GROUP BY monitored_system, monitored_instance, window_start_ms
);

CREATE VIEW IF NOT EXISTS {{db}}.source_downtime AS
SELECT source, monitored_system, monitored_instance, start_ms, end_ms, window_start, window_end, minutes, ongoing, tolerance_seconds, clock_skew_ms
FROM {{db}}.source_silences
WHERE outcome IN ('down', 'ongoing');

CREATE VIEW IF NOT EXISTS {{db}}.sequence_gaps AS
SELECT
    concat(g_system, '.', g_instance) AS source,
    g_system AS monitored_system,
    g_instance AS monitored_instance,
    g_from AS seq_from,
    g_to AS seq_to,
    g_to - g_from + 1 AS missing_events,
    g_start_ms AS start_ms,
    g_end_ms AS end_ms,
    toDateTime(intDiv(start_ms, 1000), 'UTC') AS window_start,
    toDateTime(intDiv(end_ms, 1000), 'UTC') AS window_end,
    (end_ms - start_ms) / 60000 AS minutes,
    if(g_closed = 1, g_outcome, 'open') AS status
FROM
(
    SELECT
        monitored_system AS g_system,
        monitored_instance AS g_instance,
        seq_from AS g_from,
        seq_to AS g_to,
        toUInt8(countIf(kind = 'gap.closed') > 0) AS g_closed,
        anyIf(outcome, kind = 'gap.closed') AS g_outcome,
        min(window_start_ms) AS g_start_ms,
        max(window_end_ms) AS g_end_ms
    FROM {{db}}.events FINAL
    WHERE source_system = 'detector' AND kind IN ('gap.opened', 'gap.closed')
    GROUP BY monitored_system, monitored_instance, seq_from, seq_to
);

CREATE VIEW IF NOT EXISTS {{db}}.line_outages AS
SELECT
    l_dnis AS dnis,
    replaceRegexpOne(replaceRegexpAll(l_dnis, '[^0-9]', ''), '^1([0-9]{10})$', '\\1') AS dnis_key,
    if(l_system = '', '', concat(l_system, '.', l_instance)) AS source,
    l_site AS site,
    l_start_ms AS start_ms,
    if(l_closed = 1, l_end_ms, greatest(l_start_ms, toInt64(toUnixTimestamp(now())) * 1000)) AS end_ms,
    toDateTime(intDiv(start_ms, 1000), 'UTC') AS window_start,
    toDateTime(intDiv(end_ms, 1000), 'UTC') AS window_end,
    (end_ms - start_ms) / 60000 AS minutes,
    toUInt8(l_closed = 0) AS ongoing,
    l_expected AS expected_calls
FROM
(
    SELECT
        dnis AS l_dnis,
        monitored_system AS l_system,
        monitored_instance AS l_instance,
        window_start_ms AS l_start_ms,
        toUInt8(countIf(kind = 'line.restored') > 0) AS l_closed,
        maxIf(window_end_ms, kind = 'line.restored') AS l_end_ms,
        any(site) AS l_site,
        max(expected_calls) AS l_expected
    FROM {{db}}.events FINAL
    WHERE source_system = 'detector' AND kind IN ('line.silent', 'line.restored')
    GROUP BY dnis, monitored_system, monitored_instance, window_start_ms
);

CREATE VIEW IF NOT EXISTS {{db}}.data_delays AS
SELECT
    concat(monitored_system, '.', monitored_instance) AS source,
    monitored_system,
    monitored_instance,
    window_start_ms AS start_ms,
    window_end_ms AS end_ms,
    window_start,
    window_end,
    delay_ms / 60000 AS delay_minutes,
    event_count,
    outcome AS waited_at
FROM {{db}}.events FINAL
WHERE source_system = 'detector' AND kind = 'data.delayed';

CREATE VIEW IF NOT EXISTS {{db}}.uncovered_spans AS
SELECT 'down' AS cause, source, '' AS dnis_key, start_ms, end_ms, concat(source, ' down') AS what
FROM {{db}}.source_downtime
UNION ALL
SELECT 'gap' AS cause, source, '' AS dnis_key, start_ms, end_ms,
    concat(source, ' lost events ', toString(seq_from), '-', toString(seq_to)) AS what
FROM {{db}}.sequence_gaps
WHERE status = 'open'
UNION ALL
SELECT 'silent' AS cause, source, dnis_key, start_ms, end_ms,
    concat(dnis, ' silent', if(source = '', '', concat(' at ', source))) AS what
FROM {{db}}.line_outages;

CREATE VIEW IF NOT EXISTS {{db}}.calls_outside_incidents AS
SELECT c_dnis_key, c_week, c_source, c_calls
FROM
(
    SELECT
        replaceRegexpOne(replaceRegexpAll(dnis, '[^0-9]', ''), '^1([0-9]{10})$', '\\1') AS c_dnis_key,
        toMonday(occurred_at) AS c_week,
        toInt64(intDiv(occurred_at_ms, 3600000)) AS c_hour,
        concat(source_system, '.', source_instance) AS c_source,
        toFloat64(uniqExact(call_id)) AS c_calls
    FROM {{db}}.events FINAL
    WHERE kind = 'call.received'
    GROUP BY c_dnis_key, c_week, c_hour, c_source
) AS c
ALL LEFT JOIN
(
    SELECT DISTINCT toInt64(intDiv(start_ms, 3600000)) + toInt64(arrayJoin(range(toUInt64(greatest(0, intDiv(end_ms, 3600000) - intDiv(start_ms, 3600000) + 1))))) AS c_hour,
        toUInt8(1) AS c_touched
    FROM {{db}}.uncovered_spans
) AS h USING (c_hour)
WHERE c_touched = 0;

CREATE VIEW IF NOT EXISTS {{db}}.airing_sources AS
SELECT airing_id, role, tupleElement(x, 1) AS source, tupleElement(x, 2) / s_total AS share
FROM
(
    SELECT airing_id, role, s_total, arrayJoin(s_list) AS x
    FROM
    (
        SELECT airing_id, role, s_total, s_list
        FROM
        (
            SELECT airing_id, s_key, if(substring(s_key, 1, 1) = 'c', 'calls', 'orders') AS role
            FROM
            (
                SELECT airing_id, arrayJoin(arrayFilter(k -> k != '', [if(dnis_key = '', '', concat('c|', dnis_key, '|', toString(toMonday(aired_at)))),
                    concat('o|', offer, '|', toString(toMonday(aired_at)))])) AS s_key
                FROM {{db}}.airings_current
                WHERE did_not_run = 0
            )
        ) AS a
        ALL INNER JOIN
        (
            SELECT s_key, sum(s_n) AS s_total, groupArray((s_source, s_n)) AS s_list
            FROM
            (
                SELECT concat('c|', c_dnis_key, '|', toString(c_week)) AS s_key, c_source AS s_source, sum(c_calls) AS s_n
                FROM {{db}}.calls_outside_incidents
                GROUP BY s_key, s_source
                UNION ALL
                SELECT concat('o|', offer, '|', toString(toMonday(occurred_at))) AS s_key, concat(source_system, '.', source_instance) AS s_source,
                    toFloat64(uniqExact(order_id)) AS s_n
                FROM {{db}}.events FINAL
                WHERE kind = 'order.placed'
                GROUP BY s_key, s_source
            )
            GROUP BY s_key
        ) AS s USING (s_key)
    )
);

CREATE VIEW IF NOT EXISTS {{db}}.airing_source_minutes AS
SELECT airing_id, role, source, share, minute, least(1, sum(f)) AS uncovered, groupUniqArray(what) AS causes
FROM
(
    SELECT airing_id, role, source, share, what, p_lo, p_hi, w_start, m0,
        m0 + toInt64(arrayJoin(range(toUInt64(greatest(0, intDiv(p_hi - w_start + 59999, 60000) - m0))))) AS minute,
        (least(p_hi, w_start + (minute + 1) * 60000) - greatest(p_lo, w_start + minute * 60000)) / 60000 AS f
    FROM
    (
        SELECT airing_id, role, source, share, what, greatest(s_lo, w_start) AS p_lo, least(s_hi, w_end) AS p_hi, w_start,
            intDiv(p_lo - w_start, 60000) AS m0, s_source
        FROM
        (
            SELECT airing_id, role, source, share, w_start, w_end,
                arrayJoin(if(role = 'calls', [concat('s|', source), concat('n|', w_dnis_key)], [concat('s|', source)])) AS j_key
            FROM
            (
                SELECT airing_id, role, source, share, w_start, w_end, w_dnis_key
                FROM {{db}}.airing_sources
                ALL INNER JOIN
                (
                    SELECT airing_id, response_start_ms AS w_start, response_end_ms AS w_end, dnis_key AS w_dnis_key
                    FROM {{db}}.airings_current
                ) AS w USING (airing_id)
            )
        ) AS a
        ALL INNER JOIN
        (
            SELECT if(cause = 'silent', concat('n|', dnis_key), concat('s|', source)) AS j_key, source AS s_source,
                start_ms AS s_lo, end_ms AS s_hi, what
            FROM {{db}}.uncovered_spans
        ) AS s USING (j_key)
    )
    WHERE p_lo < p_hi AND (s_source = '' OR s_source = source)
)
GROUP BY airing_id, role, source, share, minute;

CREATE VIEW IF NOT EXISTS {{db}}.airing_coverage AS
SELECT airing_id, role, source, share, c_window AS window_minutes, c_uncovered AS uncovered_minutes,
    1 - c_uncovered / c_window AS coverage, c_causes AS causes
FROM
(
    SELECT airing_id, role, source, share, c_window
    FROM {{db}}.airing_sources
    ALL INNER JOIN
    (
        SELECT airing_id, (response_end_ms - response_start_ms) / 60000 AS c_window
        FROM {{db}}.airings_current
    ) AS w USING (airing_id)
) AS s
ALL LEFT JOIN
(
    SELECT airing_id, role, source, sum(uncovered) AS c_uncovered, groupUniqArrayArray(causes) AS c_causes
    FROM {{db}}.airing_source_minutes
    GROUP BY airing_id, role, source
) AS m USING (airing_id, role, source);

CREATE VIEW IF NOT EXISTS {{db}}.airing_exposure AS
SELECT
    airing_id,
    any(x_start) AS response_start_ms,
    any(x_end) AS response_end_ms,
    min(if(o_id != '' AND o_id != airing_id AND ((o_start > x_start AND o_start < x_end)
        OR (o_start = x_start AND (o_spend > x_spend OR (o_spend = x_spend AND o_id < airing_id)))), o_start, x_end)) AS won_until_ms,
    (won_until_ms - response_start_ms) / 60000 AS exposure_minutes
FROM
(
    SELECT airing_id, x_key, x_start, x_end, x_spend,
        toInt64(intDiv(x_start, 3600000)) + toInt64(arrayJoin(range(toUInt64(greatest(0, intDiv(x_end - 1, 3600000) - intDiv(x_start, 3600000) + 1))))) AS x_hour
    FROM
    (
        SELECT airing_id, dnis_key AS x_key, response_start_ms AS x_start, response_end_ms AS x_end, spend_cents AS x_spend
        FROM {{db}}.airings_current
        WHERE did_not_run = 0 AND dnis_key != ''
    )
) AS a
ALL LEFT JOIN
(
    SELECT dnis_key AS x_key, toInt64(intDiv(response_start_ms, 3600000)) AS x_hour, airing_id AS o_id,
        response_start_ms AS o_start, spend_cents AS o_spend
    FROM {{db}}.airings_current
    WHERE did_not_run = 0 AND dnis_key != ''
) AS o USING (x_key, x_hour)
GROUP BY airing_id;

CREATE VIEW IF NOT EXISTS {{db}}.response_shapes AS
SELECT
    r_key AS shape_key,
    r_bin AS bin,
    sum(r_calls) AS calls,
    count() AS exposure,
    calls / exposure AS calls_per_airing
FROM
(
    SELECT r_key, if(r_key = '*', toInt64(floor(20 * r_minute / r_window)), r_minute) AS r_bin, c_calls[indexOf(c_minutes, r_minute)] AS r_calls
    FROM
    (
        SELECT c_minutes, c_calls, r_window, arrayJoin([concat(offer, '|', media_type), '*']) AS r_key,
            toInt64(arrayJoin(range(toUInt64(ceil(exposure_minutes))))) AS r_minute
        FROM
        (
            SELECT airing_id, offer, media_type, r_window, exposure_minutes, c_minutes, c_calls
            FROM
            (
                SELECT airing_id, offer, media_type, r_window, exposure_minutes
                FROM
                (
                    SELECT airing_id, offer, media_type, (response_end_ms - response_start_ms) / 60000 AS r_window
                    FROM {{db}}.airings_current
                    WHERE did_not_run = 0 AND dnis_key != '' AND response_end_ms <= toInt64(toUnixTimestamp(now())) * 1000
                        AND airing_id NOT IN (SELECT airing_id FROM {{db}}.airing_source_minutes)
                ) AS a
                ALL INNER JOIN
                (
                    SELECT airing_id, exposure_minutes
                    FROM {{db}}.airing_exposure
                    WHERE exposure_minutes > 0
                ) AS x USING (airing_id)
            ) AS ax
            ALL LEFT JOIN
            (
                SELECT airing_id, groupArray(toInt64(minute)) AS c_minutes, groupArray(toUInt64(calls)) AS c_calls
                FROM {{db}}.airing_response_curve
                GROUP BY airing_id
            ) AS c USING (airing_id)
        )
    )
)
GROUP BY r_key, r_bin;

CREATE VIEW IF NOT EXISTS {{db}}.airing_estimates AS
SELECT
    airing_id,
    role,
    e_key AS shape_key,
    sum(e_s * e_u) AS uncovered_response,
    sum(e_s * (1 - e_u)) AS covered_response,
    if(covered_response > 0, uncovered_response / covered_response, NULL) AS missing_ratio
FROM
(
    SELECT airing_id, role, e_key, e_minute, e_window, e_ms, e_us, e_bins, e_vals,
        e_us[indexOf(e_ms, e_minute)] AS e_u,
        if(e_key = '', toFloat64(1), e_vals[indexOf(e_bins, if(e_key = '*', toInt64(floor(20 * e_minute / e_window)), e_minute))]) AS e_s
    FROM
    (
        SELECT airing_id, role, e_key, e_window, e_ms, e_us, e_bins, e_vals,
            toInt64(arrayJoin(range(toUInt64(ceil(e_exposure))))) AS e_minute
        FROM
        (
            SELECT airing_id, role, any(e_window) AS e_window, any(e_exposure) AS e_exposure, any(e_ms) AS e_ms, any(e_us) AS e_us,
                if(max(t_rank) = 0, '', argMax(t_key, t_rank)) AS e_key,
                argMax(t_bins, t_rank) AS e_bins,
                argMax(t_vals, t_rank) AS e_vals
            FROM
            (
                SELECT airing_id, role, e_window, e_exposure, e_ms, e_us, t_key, if(t_total >= 300, 3 - t_prio, 0) AS t_rank, t_bins, t_vals
                FROM
                (
                    SELECT airing_id, role, e_window, e_exposure, e_ms, e_us, t_pair, tupleElement(t_pair, 1) AS t_key, tupleElement(t_pair, 2) AS t_prio
                    FROM
                    (
                        SELECT airing_id, role, e_window, e_exposure, e_ms, e_us, arrayJoin([(k1, 1), ('*', 2)]) AS t_pair
                        FROM
                        (
                            SELECT airing_id, role, e_ms, e_us, e_window, e_exposure, k1
                            FROM
                            (
                                SELECT airing_id, role, groupArray(minute) AS e_ms, groupArray(m_u) AS e_us
                                FROM
                                (
                                    SELECT airing_id, role, toInt64(minute) AS minute, least(1, sum(share * uncovered)) AS m_u
                                    FROM {{db}}.airing_source_minutes
                                    GROUP BY airing_id, role, minute
                                )
                                GROUP BY airing_id, role
                            ) AS u
                            ALL INNER JOIN
                            (
                                SELECT airing_id, (response_end_ms - response_start_ms) / 60000 AS e_window, exposure_minutes AS e_exposure,
                                    concat(offer, '|', media_type) AS k1
                                FROM {{db}}.airings_current
                                ALL INNER JOIN
                                (
                                    SELECT airing_id, exposure_minutes
                                    FROM {{db}}.airing_exposure
                                ) AS x USING (airing_id)
                            ) AS a USING (airing_id)
                        )
                    )
                ) AS t
                ALL LEFT JOIN
                (
                    SELECT t_key, sum(t_n) AS t_total, groupArray(e_bin) AS t_bins, groupArray(e_shape) AS t_vals
                    FROM
                    (
                        SELECT shape_key AS t_key, e_bin, avg(calls_per_airing) AS e_shape, sumIf(calls, off = 0) AS t_n
                        FROM
                        (
                            SELECT shape_key, calls, calls_per_airing, off, bin + off AS e_bin
                            FROM
                            (
                                SELECT shape_key, calls, calls_per_airing, bin, arrayJoin(if(shape_key = '*', [0], [-2, -1, 0, 1, 2])) AS off
                                FROM {{db}}.response_shapes
                            )
                        )
                        WHERE e_bin >= 0
                        GROUP BY shape_key, e_bin
                    )
                    GROUP BY t_key
                ) AS s USING (t_key)
            )
            GROUP BY airing_id, role
        )
    )
)
GROUP BY airing_id, role, e_key;

CREATE VIEW IF NOT EXISTS {{db}}.airing_incidents AS
SELECT
    airing_id,
    sumIf(k_minutes, k_key = '*') AS uncovered_minutes,
    1 - sumIf(k_calls, k_key = '*') / any(k_window) AS call_coverage,
    arrayStringConcat(arraySort(groupArrayIf(concat(substring(k_key, 3), ' ', toString(round(k_minutes, 1)), ' min'), substring(k_key, 1, 2) = 'c:')), '; ') AS incidents,
    arrayStringConcat(arraySort(groupArrayIf(concat(substring(k_key, 3), ' ', toString(round(100 * (1 - k_minutes / k_window), 1)), '%'), substring(k_key, 1, 2) = 's:')), ', ') AS sources_coverage
FROM
(
    SELECT airing_id, k_key, sum(k_u) AS k_minutes, sum(k_c) AS k_calls, any(k_window) AS k_window
    FROM
    (
        SELECT airing_id, k_key, minute, max(uncovered) AS k_u, least(1, sumIf(share * uncovered, role = 'calls')) AS k_c, any(k_window) AS k_window
        FROM
        (
            SELECT airing_id, role, source, share, minute, uncovered, k_window,
                arrayJoin(arrayConcat(['*', concat('s:', source)], arrayMap(c -> concat('c:', c), causes))) AS k_key
            FROM
            (
                SELECT airing_id, role, source, share, minute, uncovered, causes, k_window
                FROM {{db}}.airing_source_minutes
                ALL INNER JOIN
                (
                    SELECT airing_id, (response_end_ms - response_start_ms) / 60000 AS k_window
                    FROM {{db}}.airings_current
                ) AS w USING (airing_id)
            )
        )
        GROUP BY airing_id, k_key, minute
    )
    GROUP BY airing_id, k_key
)
GROUP BY airing_id;

CREATE VIEW IF NOT EXISTS {{db}}.airing_delays AS
SELECT airing_id, sum(event_count) AS late_events, max(delay_minutes) AS max_delay_minutes,
    arrayStringConcat(groupUniqArray(source), ', ') AS late_sources
FROM
(
    SELECT airing_id, source, w_start, w_end
    FROM {{db}}.airing_sources
    ALL INNER JOIN
    (
        SELECT airing_id, response_start_ms AS w_start, response_end_ms AS w_end
        FROM {{db}}.airings_current
    ) AS w USING (airing_id)
) AS a
ALL INNER JOIN
(
    SELECT source, start_ms, end_ms, delay_minutes, event_count
    FROM {{db}}.data_delays
) AS d USING (source)
WHERE start_ms < w_end AND end_ms >= w_start
GROUP BY airing_id;

CREATE VIEW IF NOT EXISTS {{db}}.airing_accountability AS
SELECT
    airing_id,
    multiIf(did_not_run = 1, 'did_not_run', response_end_ms > k_now_ms OR response_end_ms > k_loaded_ms, 'pending',
        uncovered_minutes > 0, 'partial', 'accounted') AS status,
    multiIf(
        did_not_run = 1, 'the post-log says it did not run',
        response_end_ms > k_now_ms, concat('response window open until ', formatDateTime(toDateTime(intDiv(response_end_ms, 1000), 'UTC'), '%Y-%m-%d %H:%M UTC'),
            if(incidents = '', '', concat('; so far: ', incidents))),
        response_end_ms > k_loaded_ms, concat('data loaded only up to ', formatDateTime(toDateTime(intDiv(k_loaded_ms, 1000), 'UTC'), '%Y-%m-%d %H:%M UTC'),
            if(incidents = '', '', concat('; so far: ', incidents))),
        uncovered_minutes > 0, incidents,
        'full coverage')
        || if(late_events = 0 OR did_not_run = 1, '', concat('; ', toString(late_events), ' events from ', late_sources, ' arrived up to ',
            toString(round(max_delay_minutes, 1)), ' min late, none lost')) AS reason,
    offer, station, market, media_type, isci, dnis, aired_at, response_start_ms, response_end_ms, window_minutes, did_not_run, currency,
    uncovered_minutes,
    if(i_found = 1, call_coverage, toFloat64(1)) AS coverage,
    sources_coverage,
    late_events,
    max_delay_minutes,
    calls, orders, phone_orders, web_orders, net_revenue_cents, media_cost_cents,
    if(did_not_run = 1, toFloat64(0), if(isNull(e_calls_ratio), toFloat64(0), calls * assumeNotNull(e_calls_ratio))) AS estimated_missing_calls,
    if(did_not_run = 1, toFloat64(0), if(calls = 0, 0, estimated_missing_calls * phone_orders / calls)
        + if(isNull(e_orders_ratio), toFloat64(0), orders * assumeNotNull(e_orders_ratio))) AS estimated_missing_orders,
    calls + estimated_missing_calls AS adjusted_calls,
    orders + estimated_missing_orders AS adjusted_orders,
    if(orders = 0, toFloat64(net_revenue_cents), net_revenue_cents * adjusted_orders / orders) AS adjusted_net_revenue_cents,
    cost_per_order_cents,
    if(adjusted_orders = 0, NULL, media_cost_cents / adjusted_orders) AS adjusted_cost_per_order_cents,
    media_ratio,
    if(media_cost_cents = 0, NULL, adjusted_net_revenue_cents / media_cost_cents) AS adjusted_media_ratio,
    target_ratio,
    ratio_to_target,
    if(media_cost_cents = 0 OR isNull(target_ratio), NULL, adjusted_net_revenue_cents / media_cost_cents / assumeNotNull(target_ratio)) AS adjusted_ratio_to_target,
    toUInt8(estimated_missing_calls > 0 AND e_calls_ratio_missing = 1) AS estimate_unavailable
FROM
(
    SELECT *
    FROM
    (
        SELECT *
        FROM
        (
            SELECT *
            FROM
            (
                SELECT *
                FROM
                (
                    SELECT airing_id, offer, station, market, media_type, isci, dnis, aired_at, response_start_ms, response_end_ms,
                        window_minutes, did_not_run, currency, calls, orders, phone_orders, web_orders, net_revenue_cents,
                        media_cost_cents, cost_per_order_cents, media_ratio, target_ratio, ratio_to_target, 1 AS k_one
                    FROM {{db}}.airing_figures
                    WHERE airing_id != ''
                ) AS f
                ALL LEFT JOIN
                (
                    SELECT any(1) AS k_one, toInt64(toUnixTimestamp(now())) * 1000 AS k_now_ms, max(stored_at_ms) AS k_loaded_ms
                    FROM {{db}}.events
                ) AS k USING (k_one)
            ) AS fk
            ALL LEFT JOIN
            (
                SELECT airing_id, uncovered_minutes, call_coverage, incidents, sources_coverage, toUInt8(1) AS i_found
                FROM {{db}}.airing_incidents
            ) AS i USING (airing_id)
        ) AS fi
        ALL LEFT JOIN
        (
            SELECT airing_id,
                anyIf(missing_ratio, role = 'calls') AS e_calls_ratio,
                toUInt8(countIf(role = 'calls' AND isNull(missing_ratio)) > 0) AS e_calls_ratio_missing,
                anyIf(missing_ratio, role = 'orders') AS e_orders_ratio
            FROM {{db}}.airing_estimates
            GROUP BY airing_id
        ) AS e USING (airing_id)
    ) AS fe
) AS fo
ALL LEFT JOIN
(
    SELECT airing_id, late_events, max_delay_minutes, late_sources
    FROM {{db}}.airing_delays
) AS d USING (airing_id);
