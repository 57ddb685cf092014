-- 0015: the accountability projection (issue 11), and rules local in time. Every figure of an
-- airing now depends only on the events of its own broadcast week and the
-- days next to it, so it can be computed for a week at a time (the
-- accountability projection) and does not drift as far-away history grows:
--
-- * response shapes are learned per broadcast week (Monday to Sunday, UTC,
--   by air time) from that week's airings free of incidents, as the
--   comparable airings of airing_expected_calls already were;
-- * an orphan cancellation is a lost order of the airings of its offer
--   whose window began in the 14 days up to the cancellation and overlaps
--   downtime or an open sequence gap of the cancellation's source (before:
--   any airing of all time with its order source out);
-- * a sequence gap's heartbeat interval is the longest announced by the
--   source's heartbeats on the day the gap began or the day before (the
--   interval in force, not the longest of all time).
--
-- The order lookup of orphan_cancellations and the heartbeat lookup of
-- gap_bounds read all history by design, marked /* all history */: a
-- computation of one week keeps those reads whole (accountability.Slice).
-- Every statement runs on ClickHouse 18.16 and on current ClickHouse.

DROP TABLE IF EXISTS {{db}}.response_shapes;

DROP TABLE IF EXISTS {{db}}.response_shapes_on_read;

CREATE VIEW IF NOT EXISTS {{db}}.response_shapes_on_read AS
SELECT
    r_week AS week,
    r_key AS shape_key,
    r_bin AS bin,
    sum(r_calls) AS calls,
    count() AS exposure,
    calls / exposure AS calls_per_airing
FROM
(
    SELECT r_week, r_key, if(r_key = '*', toInt64(floor(20 * r_minute / r_window)), r_minute) AS r_bin, c_calls[indexOf(c_minutes, r_minute)] AS r_calls
    FROM
    (
        SELECT r_week, c_minutes, c_calls, r_window, arrayJoin([concat(offer, '|', media_type), '*']) AS r_key,
            toInt64(arrayJoin(range(toUInt64(ceil(exposure_minutes))))) AS r_minute
        FROM
        (
            SELECT airing_id, r_week, offer, media_type, r_window, exposure_minutes, c_minutes, c_calls
            FROM
            (
                SELECT airing_id, r_week, offer, media_type, r_window, exposure_minutes
                FROM
                (
                    SELECT airing_id, toMonday(aired_at) AS r_week, offer, media_type, (response_end_ms - response_start_ms) / 60000 AS r_window
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
GROUP BY r_week, r_key, r_bin;

DROP TABLE IF EXISTS {{db}}.airing_estimates;

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
                SELECT airing_id, role, e_window, e_exposure, e_ms, e_us, t_key, t_week, if(t_total >= 300, 3 - t_prio, 0) AS t_rank, t_bins, t_vals
                FROM
                (
                    SELECT airing_id, role, e_window, e_exposure, e_ms, e_us, t_week, t_pair, tupleElement(t_pair, 1) AS t_key, tupleElement(t_pair, 2) AS t_prio
                    FROM
                    (
                        SELECT airing_id, role, e_window, e_exposure, e_ms, e_us, t_week, arrayJoin([(k1, 1), ('*', 2)]) AS t_pair
                        FROM
                        (
                            SELECT airing_id, role, e_ms, e_us, e_window, e_exposure, k1, t_week
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
                                    concat(offer, '|', media_type) AS k1, toMonday(aired_at) AS t_week
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
                    SELECT t_key, t_week, sum(t_n) AS t_total, groupArray(e_bin) AS t_bins, groupArray(e_shape) AS t_vals
                    FROM
                    (
                        SELECT shape_key AS t_key, week AS t_week, e_bin, avg(calls_per_airing) AS e_shape, sumIf(calls, off = 0) AS t_n
                        FROM
                        (
                            SELECT shape_key, week, calls, calls_per_airing, off, bin + off AS e_bin
                            FROM
                            (
                                SELECT shape_key, week, calls, calls_per_airing, bin, arrayJoin(if(shape_key = '*', [0], [-2, -1, 0, 1, 2])) AS off
                                FROM {{db}}.response_shapes_on_read
                            )
                        )
                        WHERE e_bin >= 0
                        GROUP BY shape_key, week, e_bin
                    )
                    GROUP BY t_key, t_week
                ) AS s USING (t_key, t_week)
            )
            GROUP BY airing_id, role
        )
    )
)
GROUP BY airing_id, role, e_key;

DROP TABLE IF EXISTS {{db}}.orphan_cancellations;

CREATE VIEW IF NOT EXISTS {{db}}.orphan_cancellations AS
SELECT order_id, o_source AS source, o_offer AS offer, o_ms AS cancelled_at_ms, toDateTime(intDiv(o_ms, 1000), 'UTC') AS cancelled_at
FROM
(
    SELECT
        order_id,
        argMin(concat(source_system, '.', source_instance), (occurred_at_ms, event_id)) AS o_source,
        argMin(offer, (occurred_at_ms, event_id)) AS o_offer,
        min(occurred_at_ms) AS o_ms
    FROM {{db}}.events
    WHERE kind = 'order.cancelled' AND order_id != ''
    GROUP BY order_id
)
WHERE order_id NOT IN
(
    SELECT order_id
    FROM {{db}}.events /* all history */
    WHERE kind = 'order.placed' AND order_id IN
    (
        SELECT order_id
        FROM {{db}}.events
        WHERE kind = 'order.cancelled' AND order_id != ''
    )
);

DROP TABLE IF EXISTS {{db}}.airing_orphans;

CREATE VIEW IF NOT EXISTS {{db}}.airing_orphans AS
SELECT airing_id, count() AS orphan_cancellations, sum(1 / o_n) AS orphan_orders
FROM
(
    SELECT order_id, groupArray(airing_id) AS o_airings, count() AS o_n
    FROM
    (
        SELECT DISTINCT order_id, airing_id
        FROM
        (
            SELECT order_id, source, o_ms, airing_id, a_start, a_end
            FROM
            (
                SELECT order_id, source, offer, cancelled_at_ms AS o_ms
                FROM {{db}}.orphan_cancellations
            ) AS o
            ALL INNER JOIN
            (
                SELECT airing_id, offer, response_start_ms AS a_start, response_end_ms AS a_end
                FROM {{db}}.airings_current
                WHERE did_not_run = 0
            ) AS a USING (offer)
            WHERE a_start <= o_ms AND a_start > o_ms - 14 * 86400000
        ) AS oa
        ALL INNER JOIN
        (
            SELECT source, start_ms AS s_lo, end_ms AS s_hi
            FROM {{db}}.uncovered_spans
            WHERE cause IN ('down', 'gap')
        ) AS s USING (source)
        WHERE s_lo < a_end AND s_hi > a_start
    )
    GROUP BY order_id
)
ARRAY JOIN o_airings AS airing_id
GROUP BY airing_id;

DROP TABLE IF EXISTS {{db}}.gap_bounds;

CREATE VIEW IF NOT EXISTS {{db}}.gap_bounds AS
SELECT source, seq_from, seq_to, missing_events, start_ms, end_ms, b_interval AS heartbeat_seconds,
    if(b_interval > 0, greatest(toInt64(0), toInt64(ceil((end_ms - start_ms) / (1000 * b_interval))) - 1), toInt64(0)) AS heartbeats_due,
    greatest(toInt64(0), toInt64(missing_events) - heartbeats_due) AS max_lost_events
FROM
(
    SELECT source, seq_from, seq_to, missing_events, start_ms, end_ms, max(h_interval) AS b_interval
    FROM
    (
        SELECT source, seq_from, seq_to, missing_events, start_ms, end_ms,
            arrayJoin([g_day - 1, g_day]) AS h_day
        FROM
        (
            SELECT source, seq_from, seq_to, missing_events, start_ms, end_ms, toDate(toDateTime(intDiv(start_ms, 1000), 'UTC')) AS g_day
            FROM {{db}}.sequence_gaps
            WHERE status = 'open'
        )
    ) AS g
    ALL LEFT JOIN
    (
        SELECT concat(source_system, '.', source_instance) AS source, toDate(occurred_at) AS h_day, max(interval_seconds) AS h_interval
        FROM {{db}}.events /* all history */
        WHERE kind = 'heartbeat'
        GROUP BY source, h_day
    ) AS h USING (source, h_day)
    GROUP BY source, seq_from, seq_to, missing_events, start_ms, end_ms
);

DROP TABLE IF EXISTS {{db}}.airing_coverage_on_read;

CREATE VIEW IF NOT EXISTS {{db}}.airing_coverage_on_read AS
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

DROP TABLE IF EXISTS {{db}}.airing_accountability_on_read;

CREATE VIEW IF NOT EXISTS {{db}}.airing_accountability_on_read AS
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
                                FROM {{db}}.events /* all history */
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

CREATE TABLE IF NOT EXISTS {{db}}.accountability_airings
(
    week Date,
    version UInt64,
    airing_id String,
    status String,
    reason String,
    offer String,
    station String,
    market String,
    media_type String,
    isci String,
    dnis String,
    aired_at DateTime('UTC'),
    response_start_ms Int64,
    response_end_ms Int64,
    window_minutes Int64,
    did_not_run UInt8,
    currency String,
    uncovered_minutes Float64,
    coverage Float64,
    sources_coverage String,
    late_events Int64,
    max_delay_minutes Float64,
    calls UInt64,
    orders UInt64,
    phone_orders UInt64,
    web_orders UInt64,
    net_revenue_cents Int64,
    media_cost_cents Int64,
    shared_calls Float64,
    shared_with String,
    expected_calls Float64,
    expected_basis String,
    comparable_min_calls Float64,
    no_response UInt8,
    missing_calls_bound Nullable(Float64),
    missing_orders_bound Nullable(Float64),
    orphan_cancellations UInt64,
    estimated_missing_calls Float64,
    estimated_missing_orders Float64,
    adjusted_calls Float64,
    adjusted_orders Float64,
    adjusted_net_revenue_cents Float64,
    cost_per_order_cents Nullable(Float64),
    adjusted_cost_per_order_cents Nullable(Float64),
    media_ratio Nullable(Float64),
    adjusted_media_ratio Nullable(Float64),
    target_ratio Nullable(Float64),
    ratio_to_target Nullable(Float64),
    adjusted_ratio_to_target Nullable(Float64),
    estimate_unavailable UInt8
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(week)
ORDER BY (week, airing_id);

CREATE TABLE IF NOT EXISTS {{db}}.accountability_coverage
(
    week Date,
    version UInt64,
    airing_id String,
    role String,
    source String,
    share Float64,
    window_minutes Float64,
    uncovered_minutes Float64,
    coverage Float64,
    causes Array(String)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(week)
ORDER BY (week, airing_id, role, source);

CREATE TABLE IF NOT EXISTS {{db}}.accountability_shapes
(
    week Date,
    version UInt64,
    shape_key String,
    bin Int64,
    calls UInt64,
    exposure UInt64,
    calls_per_airing Float64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (week, shape_key, bin);

CREATE TABLE IF NOT EXISTS {{db}}.accountability_weeks
(
    week Date,
    version UInt64,
    definition UInt64,
    started_at DateTime('UTC'),
    days_version UInt64,
    settled UInt8
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (definition, week);

CREATE TABLE IF NOT EXISTS {{db}}.accountability_marks
(
    week Date,
    marked_at DateTime('UTC')
)
ENGINE = ReplacingMergeTree(marked_at)
ORDER BY week;

DROP TABLE IF EXISTS {{db}}.airing_accountability;

CREATE VIEW IF NOT EXISTS {{db}}.airing_accountability AS
SELECT airing_id, status, reason, offer, station, market, media_type, isci, dnis, aired_at, response_start_ms, response_end_ms, window_minutes, did_not_run, currency, uncovered_minutes, coverage, sources_coverage, late_events, max_delay_minutes, calls, orders, phone_orders, web_orders, net_revenue_cents, media_cost_cents, shared_calls, shared_with, expected_calls, expected_basis, comparable_min_calls, no_response, missing_calls_bound, missing_orders_bound, orphan_cancellations, estimated_missing_calls, estimated_missing_orders, adjusted_calls, adjusted_orders, adjusted_net_revenue_cents, cost_per_order_cents, adjusted_cost_per_order_cents, media_ratio, adjusted_media_ratio, target_ratio, ratio_to_target, adjusted_ratio_to_target, estimate_unavailable
FROM {{db}}.accountability_airings
WHERE (week, version) IN (SELECT week, max(version) FROM {{db}}.accountability_weeks GROUP BY week);

DROP TABLE IF EXISTS {{db}}.airing_coverage;

CREATE VIEW IF NOT EXISTS {{db}}.airing_coverage AS
SELECT airing_id, role, source, share, window_minutes, uncovered_minutes, coverage, causes
FROM {{db}}.accountability_coverage
WHERE (week, version) IN (SELECT week, max(version) FROM {{db}}.accountability_weeks GROUP BY week);

CREATE VIEW IF NOT EXISTS {{db}}.response_shapes AS
SELECT week, shape_key, bin, calls, exposure, calls_per_airing
FROM {{db}}.accountability_shapes
WHERE (week, version) IN (SELECT week, max(version) FROM {{db}}.accountability_weeks GROUP BY week);
