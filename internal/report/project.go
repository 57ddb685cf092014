package report

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/airtally/airtally/internal/chsql"
)

// Execer runs one statement that returns no rows (here: INSERT … SELECT,
// computed by the server).
type Execer interface {
	Exec(ctx context.Context, sql string) error
}

// ComputeDays computes the projection of the UTC days first..last (day
// numbers) as version and records them computed from startedAt (the
// server's time, Unix seconds, taken before anything was read): the
// figures of every airing aired in those days, their response curves and
// the days' unattributed minutes, by the same SQL as a report on read.
// A failure leaves the days dirty; a later computation (a new version)
// replaces whatever part of this one was written.
func ComputeDays(ctx context.Context, q Querier, x Execer, database string, first, last int64, version uint64, startedAt int64) error {
	ident, err := chsql.Ident(database)
	if err != nil {
		return fmt.Errorf("report: projection: database: %w", err)
	}
	lo, hi := first*dayMS, (last+1)*dayMS
	o := Options{Database: database, Filter: Filter{From: msTime(lo), To: msTime(hi)}}.withDefaults()
	scanHi, err := extent(ctx, q, o)
	if err != nil {
		return fmt.Errorf("report: projection of %s to %s: %w", dateOf(first), dateOf(last), err)
	}
	b := newReportBuilder(o.Config, ident, o.scope(scanHi))
	if err := x.Exec(ctx, b.storeInsertSQL(version)); err != nil {
		return fmt.Errorf("report: projection of %s to %s: insert: %w", dateOf(first), dateOf(last), err)
	}
	if err := x.Exec(ctx, daysInsertSQL(ident, first, last, version, startedAt)); err != nil {
		return fmt.Errorf("report: projection of %s to %s: record: %w", dateOf(first), dateOf(last), err)
	}
	return nil
}

func daysInsertSQL(ident string, first, last int64, version uint64, startedAt int64) string {
	return fmt.Sprintf("INSERT INTO %s.%s (day, version, definition, started_at)\nSELECT toDate(arrayJoin(%s)), toUInt64(%s), toUInt64(%s), toDateTime(%d, 'UTC')",
		ident, TableDays, dateArray(first, last), chsql.Uint(version), chsql.Uint(Definition()), startedAt)
}

// dateArray is an array literal of the dates of days first..last.
func dateArray(first, last int64) string {
	ds := make([]string, 0, last-first+1)
	for d := first; d <= last; d++ {
		ds = append(ds, chsql.String(dateOf(d)))
	}
	return "[" + strings.Join(ds, ", ") + "]"
}

// MarkDaysSQL marks the UTC days (day numbers) dirty, at the server's
// time.
func MarkDaysSQL(database string, days []int64) (string, error) {
	ident, err := chsql.Ident(database)
	if err != nil {
		return "", fmt.Errorf("report: mark: database: %w", err)
	}
	ds := make([]string, len(days))
	for i, d := range days {
		ds[i] = chsql.String(dateOf(d))
	}
	return "INSERT INTO " + ident + "." + TableMarks + " (day, marked_at)\nSELECT toDate(arrayJoin([" + strings.Join(ds, ", ") + "])), now()", nil
}

// DirtyDay is a day the projection must compute: marked since its latest
// computation started (or never computed).
type DirtyDay struct {
	Day int64 // UTC day number
	// MarkedAt is the latest mark's server time, ComputedFrom the start
	// of the latest computation (0: never), both Unix seconds.
	MarkedAt, ComputedFrom int64
}

// DirtyDays lists the days the projection must compute, in order.
func DirtyDays(ctx context.Context, q Querier, database string) ([]DirtyDay, error) {
	ident, err := chsql.Ident(database)
	if err != nil {
		return nil, fmt.Errorf("report: projection: database: %w", err)
	}
	rows, err := q.Query(ctx, "SELECT toInt64(toUInt16(day)) AS d, toInt64(toUInt32(marked_at)) AS m, toInt64(if(version = 0, 0, toUInt32(computed_from))) AS c FROM (\n"+
		statusSQL(ident, "")+"\n) WHERE dirty = 1 ORDER BY d")
	if err != nil {
		return nil, fmt.Errorf("report: projection: dirty days: %w", err)
	}
	out := make([]DirtyDay, 0, len(rows))
	for _, r := range rows {
		d, err1 := asInt(r["d"])
		m, err2 := asInt(r["m"])
		c, err3 := asInt(r["c"])
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("report: projection: dirty days: %w", err)
		}
		out = append(out, DirtyDay{Day: d, MarkedAt: m, ComputedFrom: c})
	}
	return out, nil
}

// Built reports whether the projection was ever computed with this
// definition (until then every report is computed on read).
func Built(ctx context.Context, q Querier, database string) (bool, error) {
	ident, err := chsql.Ident(database)
	if err != nil {
		return false, fmt.Errorf("report: projection: database: %w", err)
	}
	rows, err := q.Query(ctx, "SELECT count() AS n FROM "+ident+"."+TableDays+" WHERE definition = "+chsql.Uint(Definition()))
	if err != nil {
		return false, fmt.Errorf("report: projection status: %w", err)
	}
	if len(rows) != 1 {
		return false, fmt.Errorf("report: projection status: %d rows", len(rows))
	}
	n, err := asInt(rows[0]["n"])
	return n > 0, err
}
