// Package grafanapush puts airtally's dashboards into a running Grafana
// through its HTTP API (github.com/grafana/grafana-api-golang-client), for
// Grafanas that are not provisioned from files: it creates or updates the
// folder, the ClickHouse data source and every dashboard, and running it
// again changes nothing that is already right.
//
// The order of a push, and what each step does:
//
//  1. GET /api/health: is there a Grafana at the URL (no token needed)?
//  2. GET /api/plugins/grafana-clickhouse-datasource/settings: is the
//     ClickHouse plugin installed (the token is checked here first)?
//  3. The folder, by uid: created, renamed, or left.
//  4. The data source, by uid: created (a password is then required),
//     updated (its password only when one is given), or left when it is
//     provisioned from files (read-only).
//  5. Each dashboard, by uid: created; left when Grafana holds the same
//     dashboard in the same folder; else saved over the version Grafana
//     holds, and once more over a newer one if someone saved it meanwhile.
//     Changes made in Grafana's editor are replaced: the code is the
//     source. A dashboard provisioned from files is left as it is.
//
// Failures are *Error values that wrap one of the sentinel errors (ErrAuth,
// ErrForbidden, ErrNoGrafana, ErrUnreachable, ErrPluginMissing, ErrConflict,
// ErrNameTaken, ErrGrafana) and carry a sentence for the user that holds no
// server text and never the token.
package grafanapush
