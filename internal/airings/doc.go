// Package airings is the media schedule's state: an airing and an offer's
// settings as the airing.* and offer.configured events carry them, the rows
// the loader projects them into (tables airings and offers, migration
// 0002), and the reading of the current projection.
//
// Every airing event carries the airing's whole state, so the projection
// keeps the state of the latest event per airing (version = the event's
// occurred_at in Unix milliseconds; ties go to the larger event id), and
// the order in which events reach the loader does not matter.
//
// The loader calls AiringRow and OfferRow with the insert columns
// AiringColumns and OfferColumns; Insert does the same for tests and tools
// that fill the projection directly.
package airings
