// Package dashboards defines airtally's Grafana dashboards as code: the
// airing scorecard, the airing detail, media performance and data
// completeness. Each panel's SQL runs on the official ClickHouse data
// source plugin (grafana-clickhouse-datasource) against the views of the
// schema (docs/airings.md, docs/accountability.md), with table names left
// unqualified so that the data source's default database chooses the
// database.
//
// The JSON files Grafana provisions are generated from this package into
// dashboards/json (go generate ./dashboards); a test fails when they
// differ. `airtally dashboards push` sends the same dashboards to a running
// Grafana. Every query records the columns it returns, so that the tests
// can check them on ClickHouse 18.16 and on current ClickHouse (chDB), and
// can check that every column a panel's overrides and links name exists.
//
// Rules the SQL follows (besides docs/design.md's ClickHouse rules): only
// the plugin macros whose expansion runs on ClickHouse 18.16
// ($__timeFilter, $__fromTime, $__toTime, $__interval_s, see
// internal/grafanasql), each with a plain column as argument; filters by
// multi-value variables written
// $__conditionalAll(col IN (${var:sqlstring}), $var), so that All means no
// filter and values are quoted; time buckets with toStartOfMinute or
// intDiv arithmetic on toUInt32(time); aggregates that a not yet merged
// copy of an event cannot change (views, FINAL, uniqExact, max).
package dashboards
