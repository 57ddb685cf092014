// Package grafanasql turns a dashboard query into the SQL text ClickHouse
// receives from Grafana and the official ClickHouse data source plugin
// (grafana-clickhouse-datasource), so that tests can run every panel's
// query without a Grafana server.
//
// Two stages, in the order they happen in Grafana:
//
//  1. In the browser (Interpolate): the plugin replaces every
//     $__conditionalAll(condition, $var) by 1=1 when All (or nothing) is
//     selected for var, else by the condition; then Grafana's template
//     service replaces the template variables ($var, ${var}, ${var:format})
//     with their current values, formatting multi-value variables with the
//     plugin's format ('a','b') unless the reference names a format
//     (sqlstring: quoted, quotes doubled). Unknown names, including every
//     $__ macro, are left for the next stage.
//  2. In the plugin's backend (ExpandMacros): the macros $__timeFilter(c),
//     $__fromTime, $__toTime, $__dateFilter(c), $__dateTimeFilter(d, t)
//     (alias $__dt) and $__interval_s become SQL with the panel's time
//     range and interval, exactly as the plugin's pkg/macros writes them:
//     times are toDateTime(<unix seconds>), dates toDate('YYYY-MM-DD').
//
// The macros that the plugin expands into functions ClickHouse 18.16 lacks
// ($__timeInterval, $__timeInterval_ms, $__timeFilter_ms, $__fromTime_ms,
// $__toTime_ms: toStartOfInterval, toDateTime64, fromUnixTimestamp64Milli)
// are refused, as is any other $__ name, so a dashboard that uses them
// fails its tests instead of failing in front of a media buyer. Macro
// arguments must be plain column names: the plugin's older (regular
// expression) and newer (parenthesis-aware) macro parsers then agree.
package grafanasql
