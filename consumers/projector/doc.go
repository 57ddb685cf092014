// Package projector keeps the airing projection (docs/design.md, "The
// airing projection"): the figures of every airing, computed once per
// day and kept exact as events, schedules, post-logs and offers arrive.
//
// Every insert that can change a figure marks the UTC days whose figures
// it may change (Mark, called by the loader after the insert is stored
// and before it is acknowledged). The projector computes each marked day
// again (Projector.Pass), by the same SQL as a report on read, and a
// report reads the days computed since their latest mark from the
// projection and computes the others on read: a figure is never stale,
// only sometimes slower.
package projector
