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
// Logs name event ids and counts, never payloads or field values.
package publisher
