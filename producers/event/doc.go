// Package event is airtally's event contract, version 1: the envelope and
// fields of every call, order and heartbeat event, their one JSON encoding,
// and their validation.
//
// Every event carries an envelope: a UUIDv7 event_id, its kind, the schema
// version, occurred_at (UTC, millisecond precision) and its source (system,
// instance and a per-source sequence number that increases by one per
// event). The remaining fields depend on the kind; see Kind and docs/events.md
// for the reference with an example of every kind.
//
// Rules that hold for every event:
//   - Validation reports every problem at once; each Problem names the field
//     and the reason, and no reason ever repeats the value that was sent.
//   - A card number (13–19 digits passing Luhn) anywhere in an event rejects
//     it (see package pci).
//   - The caller's number (ANI) never travels: producers replace "ani" by
//     "ani_hash", an HMAC-SHA256 keyed by the deployment's secret, before
//     publishing. An event on the stream with a raw "ani" is invalid.
//   - Money is integer cents with an ISO 4217 currency; times are UTC.
package event
