// Package chlocal runs a local ClickHouse server process for airtally's
// local mode and for tests.
//
// It starts the installed binary (clickhouse-server, or the multi-call
// clickhouse binary as "clickhouse server") with a configuration it writes
// itself: its own data folder, its own ports, logs in files under the same
// folder. It never reads or writes /etc/clickhouse-server or
// /var/lib/clickhouse, and it never installs anything: when no binary is
// found the error says how to install one.
//
// The server runs in its own process group and is killed by the kernel if
// the process that started it dies (PR_SET_PDEATHSIG), so a crashed test
// binary leaves no server behind. Callers still Stop it when done.
//
// The generated configuration uses the <yandex> root element, which
// ClickHouse 18.16 requires and current ClickHouse still accepts, and keeps
// caches and per-query memory small so that several servers can share a
// small machine.
package chlocal
