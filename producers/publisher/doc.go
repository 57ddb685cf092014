// Package publisher is airtally's Go client library for producers: ACD and
// phone systems, agent consoles and web shops emit their events through it.
//
// Publish completes an event (a UUIDv7 id, the schema version, the caller's
// number sealed into ani_hash, the source's next sequence number),
// validates it, and publishes it to JetStream with Nats-Msg-Id set to the
// event id, returning only after the stream acknowledged it. When JetStream
// cannot take it (NATS down, no stream, timeout, refusal) the event goes to
// a local durable spool (package spool, fsync'd) instead, and a background
// forwarder delivers the spool in order once JetStream answers again.
// Nothing accepted is dropped: when the spool is full, Publish waits for
// room (push-back) and fails with ErrUnavailable only when its context ends.
//
// Order: a source's events reach the stream in sequence order. Events of
// one source are published one at a time (a per-source lock held until
// the event is acked or spooled), and while the spool holds anything, new
// events are spooled behind it. For that order to survive a disconnect,
// create the connection with nats.ReconnectBufSize(-1): the client then
// refuses to publish while disconnected (the event is spooled) instead of
// buffering it and replaying it behind the library's back.
//
// Sequence numbers: a number is consumed only by a valid event, and is
// persisted (fsync'd, in Config.SpoolDir) before the event leaves, so a
// restarted producer neither reuses nor skips one. If Publish fails with
// ErrUnavailable the event keeps its id and number: publish the same
// *event.Event again to fill that number (JetStream and the loader drop the
// copy if the first attempt got through after all).
//
// Delivery is at least once: a spooled event whose forward was interrupted
// is forwarded again; the stream's duplicate window and the loader's
// idempotent tables remove the copy.
//
// A lost connection: New watches the connection's status, and a publish
// still waiting for its ack when the connection is lost stops waiting at
// once (not after PublishTimeout): the ack can no longer arrive, so the
// event is spooled and Publish returns StatusSpooled. The server may have
// stored the event before the loss; the spooled copy then arrives as a
// duplicate of the same event id (dropped by the stream's duplicate
// window, or by the loader's idempotent tables after it), ahead of the
// source's later events, so order and counts hold.
//
// Refused subjects (NATS permissions). When the server refuses to let the
// connection's user publish an event's subject (a wrong source name, or
// another site's credentials), it sends an asynchronous permissions
// violation and JetStream never acks. The publisher chains an error
// handler in front of the connection's own (which is still called), ends
// the wait at once and returns an error wrapping *PermissionError
// (errors.Is ErrPermissionDenied and nats.ErrPermissionViolation) that
// names the subject. The decision, as a DR operator would want it: lose
// nothing, but know at once.
//   - Publish and PublishBatch do not spool a refused event: a spooled copy
//     could never drain, and the caller would be told "stored" when it is
//     not. The caller keeps the event (with its id and number, as after
//     ErrUnavailable) and learns at once; resend it once the permissions
//     or source name are fixed. While the spool is in use or NATS is down,
//     a subject refused in the last minute is refused at once rather than
//     spooled.
//   - An event already in the spool (spooled during an outage) that is
//     refused when forwarded is set aside, fsync'd, in SpoolDir/denied: it
//     neither blocks the events behind it nor is retried in a loop.
//     RetryDenied (after the fix), or the next Publisher on the same
//     SpoolDir, tries each one once more, after the spool drained; it then
//     reaches the stream after later events of its source (consumers order
//     by source.seq). DeniedDepth and the gauge
//     airtally_publisher_denied_events count them: alert on any.
//   - Each refused subject is logged once at Error (again only after an ack
//     on it showed it allowed in between); refused events are counted with
//     status "denied" in airtally_publisher_events_total.
//
// Logs name event ids, subjects and counts, never payloads or field values.
package publisher
