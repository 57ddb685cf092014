// Package backup backs up and restores airtally's two stores: the
// JetStream streams (the events stream and the dead-letter stream) and the
// ClickHouse tables.
//
// The streams are saved with JetStream's own snapshot API
// ($JS.API.STREAM.SNAPSHOT / RESTORE, the protocol `nats stream backup`
// and `nats stream restore` speak). nats.go v1.55.0 has no client for it
// (neither its jetstream package nor the legacy JetStreamContext), so this
// package speaks the protocol itself: a request naming a delivery subject,
// chunks acknowledged one by one for flow control, an empty message at the
// end. A snapshot is the server's own archive of the stream's store: every
// message with its subject, headers, sequence and timestamp, the stream's
// configuration and, unless Config.SkipConsumers, its durable consumers and
// their positions.
//
// The tables (every table of the database but schema_migrations; views are
// recreated by the migrations) are read through the native protocol and
// written as JSON lines, one header line naming the columns and their
// types, then one JSON array per row. Restore migrates the target database
// first, checks that the backup's migrations are among those applied, and
// inserts the rows with PrepareBatch naming the columns (ClickHouse 18.16
// needs that).
//
// A backup is a folder: one file per stream and per table, and
// manifest.json, written last, holding every file's SHA-256, size and row
// or message count. Restore checks every checksum before it changes
// anything.
package backup
