// Package waitfor lets a component start, and keep running, while what it
// depends on (NATS, ClickHouse) is down: Do retries an attempt with a
// capped exponential back-off until it succeeds, the caller's deadline
// passes or the error is one that waiting cannot fix (a configuration
// error: bad credentials, a permission refused, a schema of the other
// mode). It says once that it waits, in the log and through a callback for
// the user, with the address and an error id, and records each
// dependency's state in a Status: the gauge airtally_dependency_up and the
// /readyz handler.
//
// Unreachable (waited for): connection refused or reset, timeouts, a name
// not yet resolvable, NATS "no servers", any error not known to be
// permanent. Permanent (returned at once): errors marked with Permanent,
// NATS authorization and permission errors, ClickHouse authentication and
// access errors, TLS verification failures, files that cannot be read.
package waitfor
