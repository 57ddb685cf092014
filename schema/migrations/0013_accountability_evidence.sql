-- 0013: accountability that holds on real broadcast days (issue 10). See
-- docs/accountability.md for the rules and every view's columns.
--
-- * An airing's call sources come from evidence an outage cannot erase:
--   its number's calls that week in the minutes no incident of the
--   number's sources touched; where the number has none, all its calls
--   that week; where it has no call at all, every call source of that day
--   (conservative). A source that carried any of the number's calls is
--   always one of its sources.
-- * An airing that ran, cost money and drew far fewer calls than
--   comparable airings predict by spend is 'no_response' (a suspected
--   silent line), never 'accounted'.
-- * A sequence gap holds at most its missing numbers less the heartbeats
--   due in its span: no estimate from gaps alone exceeds that bound.
-- * Cancellations naming an order never seen are lost orders, attached to
--   the airings whose order sources were out.
-- * Calls on a number whose airings' windows overlap are split between
--   them by their expected response at the call's minute.
--
-- Views are dropped and created again (18.16 has no DROP VIEW; DROP TABLE
-- drops a view), so applying the file again gives the same views. Every
-- statement runs on ClickHouse 18.16 and on current ClickHouse: one JOIN
-- per SELECT, equality joins only, no window functions, no lambda that
-- captures a column.

DROP TABLE IF EXISTS {{db}}.calls_outside_incidents;

DROP TABLE IF EXISTS {{db}}.call_minutes;

CREATE VIEW IF NOT EXISTS {{db}}.call_minutes AS
SELECT n_key AS dnis_key, n_week AS week, n_source AS source, n_minute AS minute_ms, count() AS calls
FROM
(
    SELECT
        source_system,
        call_id,
        replaceRegexpOne(replaceRegexpAll(argMin(dnis, (occurred_at_ms, event_id)), '[^0-9]', ''), '^1([0-9]{10})$', '\\1') AS n_key,
        concat(source_system, '.', argMin(source_instance, (occurred_at_ms, event_id))) AS n_source,
        intDiv(min(occurred_at_ms), 60000) * 60000 AS n_minute,
        toMonday(toDateTime(intDiv(n_minute, 1000), 'UTC')) AS n_week
    FROM {{db}}.events
    WHERE kind = 'call.received'
    GROUP BY source_system, call_id
)
GROUP BY dnis_key, week, source, minute_ms;

DROP TABLE IF EXISTS {{db}}.number_call_sources;

CREATE VIEW IF NOT EXISTS {{db}}.number_call_sources AS
SELECT dnis_key, week, source, sum(m_calls) AS calls, sumIf(m_calls, t_touched = 0) AS clean_calls
FROM
(
    SELECT dnis_key, week, source, minute_ms, any(calls) AS m_calls, max(k_touched) AS t_touched
    FROM
    (
        SELECT dnis_key, week, source, minute_ms, calls,
            toUInt8(arrayExists((x, m) -> tupleElement(x, 1) < m + 60000 AND tupleElement(x, 2) > m, h_spans, replicate(minute_ms, h_spans))) AS k_touched
        FROM
        (
            SELECT dnis_key, week, source, minute_ms, calls, toInt64(intDiv(minute_ms, 3600000)) AS h_hour,
                arrayJoin(arrayConcat([concat('n|', dnis_key)], arrayMap(s -> concat('s|', s), n_sources))) AS h_key
            FROM
            (
                SELECT dnis_key, week, source, minute_ms, calls
                FROM {{db}}.call_minutes
            ) AS c
            ALL INNER JOIN
            (
                SELECT dnis_key, week, groupUniqArray(source) AS n_sources
                FROM {{db}}.call_minutes
                GROUP BY dnis_key, week
            ) AS ns USING (dnis_key, week)
        ) AS ck
        ALL LEFT JOIN
        (
            SELECT h_key, h_hour, groupArray((s_lo, s_hi)) AS h_spans
            FROM
            (
                SELECT if(cause = 'silent', concat('n|', dnis_key), concat('s|', source)) AS h_key, start_ms AS s_lo, end_ms AS s_hi,
                    toInt64(intDiv(start_ms, 3600000)) + toInt64(arrayJoin(range(toUInt64(greatest(0, intDiv(end_ms, 3600000) - intDiv(start_ms, 3600000) + 1))))) AS h_hour
                FROM {{db}}.uncovered_spans
            )
            GROUP BY h_key, h_hour
        ) AS h USING (h_key, h_hour)
    )
    GROUP BY dnis_key, week, source, minute_ms
)
GROUP BY dnis_key, week, source;

DROP TABLE IF EXISTS {{db}}.airing_sources;

CREATE VIEW IF NOT EXISTS {{db}}.airing_sources AS
SELECT airing_id, role, tupleElement(x, 1) AS source, tupleElement(x, 2) / s_total AS share, s_basis AS basis
FROM
(
    SELECT airing_id, role, s_total, s_basis, arrayJoin(s_list) AS x
    FROM
    (
        SELECT airing_id, role, argMin(s_total, s_level) AS s_total, argMin(s_list, s_level) AS s_list,
            argMin(multiIf(role = 'orders', 'offer', s_level = 1, 'number', 'day'), s_level) AS s_basis
        FROM
        (
            SELECT airing_id, s_key, if(substring(s_key, 1, 1) = 'o', 'orders', 'calls') AS role, if(substring(s_key, 1, 1) = 'd', 2, 1) AS s_level
            FROM
            (
                SELECT airing_id, arrayJoin(arrayFilter(k -> k != '', [
                    if(dnis_key = '', '', concat('c|', dnis_key, '|', toString(toMonday(aired_at)))),
                    if(dnis_key = '', '', concat('d|', toString(toDate(aired_at)))),
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
                SELECT concat('c|', dnis_key, '|', toString(week)) AS s_key, source AS s_source, toFloat64(sum(if(clean_calls > 0, clean_calls, calls))) AS s_n
                FROM {{db}}.number_call_sources
                GROUP BY s_key, s_source
                UNION ALL
                SELECT concat('d|', toString(toDate(toDateTime(intDiv(minute_ms, 1000), 'UTC')))) AS s_key, source AS s_source, toFloat64(sum(calls)) AS s_n
                FROM {{db}}.call_minutes
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
        GROUP BY airing_id, role
    )
);

DROP TABLE IF EXISTS {{db}}.call_shares;

CREATE VIEW IF NOT EXISTS {{db}}.call_shares AS
SELECT call_system, call_id, received_at_ms, tupleElement(w_pair, 1) AS airing_id, tupleElement(w_pair, 2) / w_total AS share,
    w_n AS window_airings, arrayFilter((x, a) -> x != a, w_ids, replicate(tupleElement(w_pair, 1), w_ids)) AS shared_with
FROM
(
    SELECT call_system, call_id, any(c_ms) AS received_at_ms, groupArray((airing_id, w_weight)) AS w_list, sum(w_weight) AS w_total,
        count() AS w_n, groupArray(airing_id) AS w_ids
    FROM
    (
        SELECT call_system, call_id, c_ms, airing_id,
            toFloat64(greatest(w_spend, 1)) * exp(-4 * (c_ms - w_start) / greatest(w_end - w_start, 60000)) AS w_weight
        FROM
        (
            SELECT call_system, call_id, received_at_ms AS c_ms, arrayJoin(window_airings) AS airing_id
            FROM {{db}}.call_attribution
            WHERE notEmpty(window_airings)
        ) AS c
        ALL INNER JOIN
        (
            SELECT airing_id, response_start_ms AS w_start, response_end_ms AS w_end, spend_cents AS w_spend
            FROM {{db}}.airings_current
        ) AS w USING (airing_id)
    )
    GROUP BY call_system, call_id
)
ARRAY JOIN w_list AS w_pair;

DROP TABLE IF EXISTS {{db}}.airing_shares;

CREATE VIEW IF NOT EXISTS {{db}}.airing_shares AS
SELECT airing_id, sum(share) AS shared_calls, countIf(window_airings > 1) AS overlapping_calls,
    arrayStringConcat(arraySort(groupUniqArrayArray(shared_with)), ', ') AS shared_with
FROM {{db}}.call_shares
GROUP BY airing_id;

DROP TABLE IF EXISTS {{db}}.gap_bounds;

CREATE VIEW IF NOT EXISTS {{db}}.gap_bounds AS
SELECT source, seq_from, seq_to, missing_events, start_ms, end_ms, b_interval AS heartbeat_seconds,
    if(b_interval > 0, greatest(toInt64(0), toInt64(ceil((end_ms - start_ms) / (1000 * b_interval))) - 1), toInt64(0)) AS heartbeats_due,
    greatest(toInt64(0), toInt64(missing_events) - heartbeats_due) AS max_lost_events
FROM
(
    SELECT source, seq_from, seq_to, missing_events, start_ms, end_ms
    FROM {{db}}.sequence_gaps
    WHERE status = 'open'
) AS g
ALL LEFT JOIN
(
    SELECT concat(source_system, '.', source_instance) AS source, max(interval_seconds) AS b_interval
    FROM {{db}}.events
    WHERE kind = 'heartbeat'
    GROUP BY source
) AS h USING (source);

DROP TABLE IF EXISTS {{db}}.airing_bounds;

CREATE VIEW IF NOT EXISTS {{db}}.airing_bounds AS
SELECT airing_id, role, b_only_gaps AS only_gaps, b_bound AS max_lost_events
FROM
(
    SELECT airing_id, role, toUInt8(arrayAll(c -> position(c, ' lost events ') > 0, groupUniqArrayArray(causes))) AS b_only_gaps
    FROM {{db}}.airing_source_minutes
    GROUP BY airing_id, role
) AS k
ALL LEFT JOIN
(
    SELECT airing_id, role, toFloat64(sum(max_lost_events)) AS b_bound
    FROM
    (
        SELECT airing_id, role, source, w_start, w_end
        FROM {{db}}.airing_sources
        ALL INNER JOIN
        (
            SELECT airing_id, response_start_ms AS w_start, response_end_ms AS w_end
            FROM {{db}}.airings_current
        ) AS w USING (airing_id)
    ) AS a
    ALL INNER JOIN
    (
        SELECT source, start_ms, end_ms, max_lost_events
        FROM {{db}}.gap_bounds
    ) AS g USING (source)
    WHERE start_ms < w_end AND end_ms > w_start
    GROUP BY airing_id, role
) AS b USING (airing_id, role);

DROP TABLE IF EXISTS {{db}}.orphan_cancellations;

CREATE VIEW IF NOT EXISTS {{db}}.orphan_cancellations AS
SELECT order_id, o_source AS source, o_offer AS offer, o_ms AS cancelled_at_ms, toDateTime(intDiv(o_ms, 1000), 'UTC') AS cancelled_at
FROM
(
    SELECT
        order_id,
        countIf(kind = 'order.placed') AS o_placed,
        argMinIf(concat(source_system, '.', source_instance), (occurred_at_ms, event_id), kind = 'order.cancelled') AS o_source,
        argMinIf(offer, (occurred_at_ms, event_id), kind = 'order.cancelled') AS o_offer,
        minIf(occurred_at_ms, kind = 'order.cancelled') AS o_ms
    FROM {{db}}.events
    WHERE kind IN ('order.placed', 'order.cancelled') AND order_id != ''
    GROUP BY order_id
)
WHERE o_placed = 0;

DROP TABLE IF EXISTS {{db}}.airing_orphans;

CREATE VIEW IF NOT EXISTS {{db}}.airing_orphans AS
SELECT airing_id, count() AS orphan_cancellations, sum(1 / o_n) AS orphan_orders
FROM
(
    SELECT order_id, groupArray(airing_id) AS o_airings, count() AS o_n
    FROM
    (
        SELECT order_id, concat(source, '|', offer) AS o_key
        FROM {{db}}.orphan_cancellations
    ) AS o
    ALL INNER JOIN
    (
        SELECT airing_id, concat(source, '|', a_offer) AS o_key
        FROM
        (
            SELECT DISTINCT airing_id, source
            FROM {{db}}.airing_source_minutes
            WHERE role = 'orders' AND uncovered > 0
        ) AS m
        ALL INNER JOIN
        (
            SELECT airing_id, offer AS a_offer
            FROM {{db}}.airings_current
        ) AS ao USING (airing_id)
    ) AS a USING (o_key)
    GROUP BY order_id
)
ARRAY JOIN o_airings AS airing_id
GROUP BY airing_id;

DROP TABLE IF EXISTS {{db}}.airing_expected_calls;

CREATE VIEW IF NOT EXISTS {{db}}.airing_expected_calls AS
SELECT airing_id, any(a_spend) * argMin(g_rate, g_level) AS expected_calls, argMin(g_name, g_level) AS expected_basis,
    argMin(g_n, g_level) AS comparable_airings, argMin(g_level, g_level) AS expected_level,
    argMin(arrayReduce('min', arrayMap(x -> tupleElement(x, 2), arrayFilter((x, a) -> tupleElement(x, 1) != a, g_list, replicate(airing_id, g_list)))), g_level)
        AS comparable_min_calls,
    argMin(g_orders_per_call, g_level) AS expected_orders_per_call, argMin(g_revenue_per_order, g_level) AS expected_revenue_per_order
FROM
(
    SELECT airing_id, a_spend, g_key, g_level, g_name, g_rate, g_n, g_list, g_orders_per_call, g_revenue_per_order
    FROM
    (
        SELECT airing_id, spend_cents AS a_spend,
            arrayJoin([
                (concat('1|', offer, '|', media_type, '|', toString(toMonday(aired_at))), 1, 'same offer and media'),
                (concat('2|', offer, '|', toString(toMonday(aired_at))), 2, 'same offer'),
                (concat('3|', media_type, '|', toString(toMonday(aired_at))), 3, 'same media'),
                (concat('4|', toString(toMonday(aired_at))), 4, 'all airings')]) AS g,
            tupleElement(g, 1) AS g_key, tupleElement(g, 2) AS g_level, tupleElement(g, 3) AS g_name
        FROM {{db}}.airings_current
        WHERE did_not_run = 0 AND dnis_key != '' AND spend_cents > 0
    ) AS a
    ALL INNER JOIN
    (
        SELECT g_key, quantileExact(0.5)(r_rate) AS g_rate, count() AS g_n, groupArray((r_id, r_shared)) AS g_list,
            if(sum(r_calls) = 0, toFloat64(0), sum(r_phone_orders) / sum(r_calls)) AS g_orders_per_call,
            if(sum(r_orders) = 0, toFloat64(0), sum(r_revenue) / sum(r_orders)) AS g_revenue_per_order
        FROM
        (
            SELECT arrayJoin([concat('1|', offer, '|', media_type, '|', r_week), concat('2|', offer, '|', r_week), concat('3|', media_type, '|', r_week),
                concat('4|', r_week)]) AS g_key,
                airing_id AS r_id, r_shared, r_shared / r_spend AS r_rate, r_calls, r_phone_orders, r_orders, r_revenue
            FROM
            (
                SELECT airing_id, offer, media_type, toString(toMonday(aired_at)) AS r_week, media_cost_cents AS r_spend,
                    calls AS r_calls, phone_orders AS r_phone_orders, orders AS r_orders, net_revenue_cents AS r_revenue
                FROM {{db}}.airing_figures
                WHERE airing_id != '' AND did_not_run = 0 AND dnis != '' AND media_cost_cents > 0
                    AND response_end_ms <= toInt64(toUnixTimestamp(now())) * 1000
                    AND airing_id NOT IN (SELECT airing_id FROM {{db}}.airing_source_minutes)
            ) AS r
            ALL LEFT JOIN
            (
                SELECT airing_id, shared_calls AS r_shared
                FROM {{db}}.airing_shares
            ) AS s USING (airing_id)
        )
        GROUP BY g_key
        HAVING g_n >= 5
    ) AS s USING (g_key)
)
GROUP BY airing_id;

DROP TABLE IF EXISTS {{db}}.airing_accountability;

CREATE VIEW IF NOT EXISTS {{db}}.airing_accountability AS
SELECT
    airing_id,
    multiIf(did_not_run = 1, 'did_not_run', response_end_ms > k_now_ms OR response_end_ms > k_loaded_ms, 'pending',
        r_silent = 1, 'no_response', uncovered_minutes > 0, 'partial', 'accounted') AS status,
    multiIf(
        did_not_run = 1, 'the post-log says it did not run',
        response_end_ms > k_now_ms, concat('response window open until ', formatDateTime(toDateTime(intDiv(response_end_ms, 1000), 'UTC'), '%Y-%m-%d %H:%M UTC'),
            if(incidents = '', '', concat('; so far: ', incidents))),
        response_end_ms > k_loaded_ms, concat('data loaded only up to ', formatDateTime(toDateTime(intDiv(k_loaded_ms, 1000), 'UTC'), '%Y-%m-%d %H:%M UTC'),
            if(incidents = '', '', concat('; so far: ', incidents))),
        r_silent = 1, concat('no response: ', toString(round(shared_calls)), ' calls where ', toString(round(expected_calls)),
            ' were expected (', expected_basis, ', by spend; the fewest any of them drew: ', toString(round(comparable_min_calls)),
            ') while its sources were up: suspected silent line (carrier routing, a trunk, the wrong number on air)',
            if(incidents = '', '', concat('; ', incidents))),
        uncovered_minutes > 0, incidents,
        'full coverage')
        || if(did_not_run = 1 OR shared_with = '', '', concat('; shares ', dnis, ' with ', shared_with, ': ', toString(round(shared_calls, 1)),
            ' of its window''s calls by expected response'))
        || if(did_not_run = 1 OR orphan_cancellations = 0, '', concat('; ', toString(orphan_cancellations), ' cancellations name orders never received'))
        || if(late_events = 0 OR did_not_run = 1, '', concat('; ', toString(late_events), ' events from ', late_sources, ' arrived up to ',
            toString(round(max_delay_minutes, 1)), ' min late, none lost')) AS reason,
    offer, station, market, media_type, isci, dnis, aired_at, response_start_ms, response_end_ms, window_minutes, did_not_run, currency,
    uncovered_minutes,
    if(i_found = 1, call_coverage, toFloat64(1)) AS coverage,
    sources_coverage,
    late_events,
    max_delay_minutes,
    calls, orders, phone_orders, web_orders, net_revenue_cents, media_cost_cents,
    shared_calls,
    shared_with,
    expected_calls,
    expected_basis,
    comparable_min_calls,
    toUInt8(r_silent) AS no_response,
    if(c_bounded = 1, c_bound, NULL) AS missing_calls_bound,
    if(o_bounded = 1, o_bound, NULL) AS missing_orders_bound,
    orphan_cancellations,
    if(did_not_run = 1, toFloat64(0), least(
        greatest(if(isNull(e_calls_ratio), toFloat64(0), if(calls >= 20 OR expected_calls = 0, calls * assumeNotNull(e_calls_ratio),
                expected_calls * assumeNotNull(e_calls_ratio) / (1 + assumeNotNull(e_calls_ratio)))),
            if(r_silent = 1, greatest(toFloat64(0), expected_calls * coverage - shared_calls), toFloat64(0))),
        if(c_bounded = 1, c_bound, toFloat64(1e15)))) AS estimated_missing_calls,
    if(did_not_run = 1, toFloat64(0), least(greatest(
        estimated_missing_calls * if(calls = 0, e_orders_per_call, phone_orders / calls)
            + least(if(isNull(e_orders_ratio), toFloat64(0), orders * assumeNotNull(e_orders_ratio)), if(o_gaps_only = 1, o_gap_bound, toFloat64(1e15))),
        orphan_orders), if(o_bounded = 1, o_bound, toFloat64(1e15)))) AS estimated_missing_orders,
    calls + estimated_missing_calls AS adjusted_calls,
    orders + estimated_missing_orders AS adjusted_orders,
    if(orders = 0, toFloat64(net_revenue_cents) + estimated_missing_orders * e_revenue_per_order, net_revenue_cents * adjusted_orders / orders) AS adjusted_net_revenue_cents,
    cost_per_order_cents,
    if(adjusted_orders = 0, NULL, media_cost_cents / adjusted_orders) AS adjusted_cost_per_order_cents,
    media_ratio,
    if(media_cost_cents = 0, NULL, adjusted_net_revenue_cents / media_cost_cents) AS adjusted_media_ratio,
    target_ratio,
    ratio_to_target,
    if(media_cost_cents = 0 OR isNull(target_ratio), NULL, adjusted_net_revenue_cents / media_cost_cents / assumeNotNull(target_ratio)) AS adjusted_ratio_to_target,
    toUInt8(estimated_missing_calls > 0 AND e_calls_ratio_missing = 1 AND r_silent = 0) AS estimate_unavailable
FROM
(
    SELECT *,
        toUInt8(did_not_run = 0 AND media_cost_cents > 0 AND expected_calls > 0
            AND 2 * (sqrt(expected_calls * if(i_found = 1, call_coverage, toFloat64(1)) / 3) - sqrt(shared_calls + 0.5)) >= 3.5
            AND 2 * (sqrt(comparable_min_calls * if(i_found = 1, call_coverage, toFloat64(1)) / 2) - sqrt(shared_calls + 0.5)) >= 3.5) AS r_silent,
        toUInt8(c_gaps_only = 1) AS c_bounded,
        c_gap_bound AS c_bound,
        toUInt8(o_gaps_only = 1 AND (c_found = 0 OR c_gaps_only = 1) AND r_silent = 0) AS o_bounded,
        o_gap_bound + if(c_found = 1 AND calls > 0, c_gap_bound * phone_orders / calls, toFloat64(0)) AS o_bound
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
                ALL LEFT JOIN
                (
                    SELECT airing_id, late_events, max_delay_minutes, late_sources
                    FROM {{db}}.airing_delays
                ) AS d USING (airing_id)
            ) AS fd
            ALL LEFT JOIN
            (
                SELECT airing_id, shared_calls, shared_with, expected_calls, expected_basis, expected_level, comparable_min_calls, e_orders_per_call,
                    e_revenue_per_order, orphan_cancellations, orphan_orders
                FROM
                (
                    SELECT airing_id, shared_calls, shared_with, expected_calls, expected_basis, expected_level, comparable_min_calls, e_orders_per_call,
                        e_revenue_per_order
                    FROM
                    (
                        SELECT airing_id, shared_calls, shared_with
                        FROM {{db}}.airing_shares
                    ) AS s
                    FULL JOIN
                    (
                        SELECT airing_id, expected_calls, expected_basis, expected_level, comparable_min_calls,
                            expected_orders_per_call AS e_orders_per_call, expected_revenue_per_order AS e_revenue_per_order
                        FROM {{db}}.airing_expected_calls
                    ) AS x USING (airing_id)
                ) AS sx
                FULL JOIN
                (
                    SELECT airing_id, orphan_cancellations, orphan_orders
                    FROM {{db}}.airing_orphans
                ) AS o USING (airing_id)
            ) AS so USING (airing_id)
        ) AS fs
        ALL LEFT JOIN
        (
            SELECT airing_id,
                toUInt8(countIf(role = 'calls') > 0) AS c_found,
                toUInt8(countIf(role = 'calls' AND only_gaps = 1) > 0) AS c_gaps_only,
                sumIf(max_lost_events, role = 'calls') AS c_gap_bound,
                toUInt8(countIf(role = 'orders' AND only_gaps = 1) > 0) AS o_gaps_only,
                sumIf(max_lost_events, role = 'orders') AS o_gap_bound
            FROM {{db}}.airing_bounds
            GROUP BY airing_id
        ) AS b USING (airing_id)
    ) AS fb
) AS fo;
