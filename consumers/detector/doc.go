// Package detector accounts for every source and every show: it reads the
// events stream through its own durable consumer, keeps per-source state,
// and publishes what it finds as detection events (source.down/up,
// gap.opened/closed, line.silent/restored, data.delayed) through the
// producer library, so that the loader projects them into ClickHouse like
// any event and the accountability views (docs/accountability.md) can say,
// for each airing, whether its response was fully recorded, and if not,
// how much and what it cost.
//
// What it detects:
//   - Source downtime: nothing received from a source for longer than its
//     tolerance (from its heartbeat interval) opens a downtime window at
//     once; the next event closes it, as downtime when the source recorded
//     nothing for longer than its tolerance, as delay when its late events
//     cover the silence (a spool delivered), as loss when its sequence
//     numbers went on (a gap).
//   - Lost events: holes in a source's sequence numbers, with their range
//     and time span; late arrivals that fill them close them.
//   - Silent lines: a number (DNIS) on one call source that takes no call
//     although, from similar airings' response and its baseline, it was
//     expected to take several during an airing's response window, while the
//     source's heartbeats go on: a suspected outage.
//   - Delayed data: events that arrived later than their source's quickest
//     delivery by more than a tolerance, and a loader that fell behind.
//
// Times: every decision uses the event store's clock. A message's received
// time is when JetStream stored it; a producer's occurred times are
// corrected by that source's estimated clock skew before use. Detection
// events carry the corrected times.
//
// Determinism: what the detector derives depends only on the events and
// their received times, in stream order (checks by the clock between
// events, in live mode, find the same things a little sooner). A detection
// event's id is derived from what it describes, so a detector restarted
// from an older snapshot, or replayed over the stream, publishes the same
// events again and JetStream and the events table keep one copy of each.
//
// Alerts: an incident (a source down, a line silent) that touches a live
// airing's response window is alerted once, to the log, a NATS subject and
// an optional webhook, and its end once.
package detector
