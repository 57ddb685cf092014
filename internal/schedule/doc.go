// Package schedule imports media schedules, post-logs and offer settings
// from CSV files as media buyers receive them, and publishes them as
// events: airing.scheduled for a new airing, airing.revised for a changed
// one, airing.cancelled for one that did not run, offer.configured for an
// offer's settings. The schedule is event-sourced like everything else;
// ClickHouse holds its projection (tables airings and offers), which the
// importer reads to classify every row as new, revised or unchanged, so
// that importing the same file twice publishes nothing the second time.
//
// A file's columns are recognised by their usual header spellings (see
// docs/airings.md and HeaderAliases). A row that cannot be read is
// reported with its line, column and reason, and the good rows are still
// imported. A post-log row names its airing by airing id, or by the
// natural key (station, scheduled start, ISCI, DNIS) through its scheduled
// start, and changes only what it gives: e.g. the actual air time, the
// did-not-run flag or a corrected spend.
package schedule
