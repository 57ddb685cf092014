// Package bench measures airtally's pipeline on the machine it runs on:
// sustained end-to-end events per second (publish → rows queryable in
// ClickHouse), the event-to-queryable latency at a paced rate, and peak
// memory, for each JetStream sync setting, next to the raw limits of the
// two servers measured in the same run. "airtally bench" runs it.
//
// Run starts one local ClickHouse server (package chlocal) and, for each
// sync setting, an embedded NATS server on a fresh file store (package
// natsembed). Each phase gets freshly created streams (package streams)
// and a fresh, migrated database (package schema):
//
//  1. Raw publish: Config.Events pre-encoded events of a realistic mix
//     (built with package event: calls received, answered and ended, phone
//     orders, heartbeats) published with nats.go's async publish, at most
//     Config.Window awaiting their ack, until every ack arrived.
//  2. Raw fetch: Config.Events such events stored first, then read back
//     with an ordered consumer (the one replay uses) and nothing done
//     with them: JetStream's read rate alone.
//  3. Raw insert: the same kind of events as rows of the events table,
//     inserted as the loader does (PrepareBatch naming the columns, a
//     column at a time), Config.InsertBatch rows per insert; and again in
//     batches of Config.ReplayBatch rows, the replay's.
//  4. End to end: the real publisher (PublishBatch; Config.Sources sources
//     at once) and the real loader; the clock runs from the first publish
//     to the first count() of the run's events that reaches Config.Events.
//     Its ratio to the slower raw limit is reported.
//  5. Replay: Config.Events events stored first, then loader.Replay (the
//     code of airtally replay) into the phase's fresh database, timed from
//     its call to its return; its ratio to the raw fetch rate, the parts
//     its inserts created and left, and ClickHouse's merges meanwhile are
//     reported.
//  6. Latency: one source publishes Config.Rate events per second for
//     Config.Duration through the publisher, a small batch every 10 ms; a
//     poller reads max(source_seq) every Config.PollInterval. An event's
//     latency runs from the PublishBatch call that carried it to the return
//     of the first poll that saw it, so the poll interval bounds the
//     resolution. The loader runs with Config.FlushInterval.
//  7. Peak memory: VmHWM of this process (embedded NATS, publishers,
//     loader) and of the ClickHouse server, reset at each phase's start
//     through /proc/PID/clear_refs; a setting's peak is that of phases 4
//     and 6, where the live pipeline runs (the raw and replay phases hold
//     the benchmark's pre-built events; the replay phase reports its own).
//
// Processor time: each phase's timed part records the user and system
// time of this process and of the ClickHouse server, reported per event,
// with the rate at which that work would take every core. From the raw
// phases' costs alone it also reports the most the cores allow any
// pipeline that does that work: end to end one publish, one fetch and
// one insert per event; replay one fetch and one insert.
//
// No figure is asserted: the report states the targets (end to end at
// least 80% of the slower raw limit; replay at least 70% of the raw fetch
// rate; p99 under 1 s at 1,000 events/s) and whether they were met. Nothing here logs an event payload.
package bench
