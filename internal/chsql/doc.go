// Package chsql renders Go values as ClickHouse SQL literals.
//
// airtally ships its queries as plain SQL text with literal values, never
// driver-side bound parameters, so that the very same text runs on
// ClickHouse 18.16 (through clickhouse-go) and on current ClickHouse
// (through chDB). Every function here returns text that is safe to splice
// into a statement: a value can never end its literal early or inject SQL.
package chsql
