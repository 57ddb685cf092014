// Package loader moves events from the JetStream events stream into
// ClickHouse, exactly once in the results.
//
// A Loader is a durable pull consumer (shared by every loader instance) that
// gathers messages into batches (by count, bytes and time), decodes and
// checks each one, inserts the valid ones with one batch insert that names
// its columns, reads the batch back, and acknowledges it only once the
// table holds it. The contract, in the order things happen to a batch:
//
//   - A valid event becomes one row: the event's fields plus the stream
//     sequence and storage time from the message metadata and the load time.
//     The row is checked against every column's range when it is decoded,
//     because a failed Append spoils a clickhouse-go batch; an insert then
//     appends the batch a column at a time (one typed slice per column).
//   - The read-back (verify.go) asks the table for the batch's keys in one
//     query. ClickHouse 18.16, shut down while an insert's data is on its
//     way, answers the insert as done with nothing stored; a batch not
//     found whole is inserted again, as below.
//   - ClickHouse down or an insert failing: the batch is aborted and the same
//     messages are inserted again (a fresh batch each time) after an
//     exponential, capped, jittered back-off, while InProgress keeps them
//     from being redelivered. Nothing is acknowledged, nothing is dropped, and
//     memory stays bounded by two batches (the next batch is fetched and
//     decoded while one is inserted).
//   - An invalid event (or one whose subject does not match its kind and
//     source) is a dead letter: it is published to the dead-letter stream
//     with the reason in headers (field and reason, never values), recorded
//     as a row of the dead_letters table (never the payload), and only then
//     terminated, so it is never redelivered. It never holds up the valid
//     events of its batch. A payload holding a card number is dead-lettered
//     with the card digits masked, and the original is securely deleted from
//     the events stream.
//   - Delivery is at least once (redelivery after a crash, two loaders, a
//     producer's late retry); the events table is a ReplacingMergeTree keyed
//     by the event id and every query reads it with FINAL, so each event is
//     counted once.
//   - Cancelling Run's context stops fetching and gives the batch in flight
//     Config.ShutdownTimeout to be inserted and acknowledged; a batch that
//     cannot make it is abandoned unacknowledged (negatively acknowledged, so
//     it is redelivered at once), never acknowledged.
//
// Replay rebuilds the tables in a fresh database from the events stream with
// the same decoding, rows and inserts, without touching the live database or
// the durable consumer. It reads, decodes and inserts in a pipeline,
// inserting strictly in stream order (a
// batch's projection rows before its events rows), so that a replay stopped
// anywhere resumes after the highest stream sequence in the events table
// and loads every event once.
//
// Nothing in this package logs an event payload or a field value.
package loader
