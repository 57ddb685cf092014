package accountability

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/report"
)

// DB runs queries and statements: what computing a week needs.
type DB interface {
	report.Querier
	report.Execer
}

// WeekState is a week of the accountability projection, as the tables say
// now.
type WeekState struct {
	Week int64 // Monday 00:00 UTC, Unix ms
	// Computed: a computation with this Definition was recorded; Version,
	// StartedAt (server time, Unix s, taken before it read anything),
	// DaysVersion (the airing projection's latest day version among the
	// week's days it read) and Settled are the latest one's.
	Computed    bool
	Version     uint64
	StartedAt   int64
	DaysVersion uint64
	Settled     bool
	// MarkedAt is the latest week mark (Unix s; 0: none), and
	// CurrentDaysVersion the airing projection's latest day version among
	// the week's days now.
	MarkedAt           int64
	CurrentDaysVersion uint64
}

// Dirty reports whether the week must be computed (again) at server time
// now (Unix s), if it holds a day of the airing projection: never computed; marked since its computation started (an
// event its slice holds was stored); a day of its airings computed again
// since; or not settled (a response window still open, data not loaded
// yet, an incident ongoing) and computed refresh seconds ago or more.
func (w WeekState) Dirty(now, refresh int64) bool {
	if w.CurrentDaysVersion == 0 {
		return false // no airing day: nothing to compute (marks of an open incident reach to now)
	}
	return !w.Computed || w.MarkedAt >= w.StartedAt-report.MarkMarginSeconds || w.CurrentDaysVersion > w.DaysVersion ||
		(!w.Settled && now-w.StartedAt >= refresh)
}

// Clean reports whether the week's stored rows are its accountability
// now: computed, unmarked since, from the days as they are, and settled.
func (w WeekState) Clean() bool { return w.Settled && w.current() }

// current: computed, unmarked since, from the days as they are.
func (w WeekState) current() bool {
	return w.Computed && w.MarkedAt < w.StartedAt-report.MarkMarginSeconds && w.CurrentDaysVersion <= w.DaysVersion
}

// DefaultRefresh is how often the projector computes a week that is not
// settled yet, in seconds.
const DefaultRefresh = 60

// Fresh reports whether the week's stored rows may be read at server time
// now (Unix s): clean, or not settled but otherwise clean and computed
// less than refresh seconds ago (the projector computes such a week again
// every refresh seconds; until then a pending status or an ongoing
// incident may lag by that much).
func (w WeekState) Fresh(now, refresh int64) bool {
	return w.current() && (w.Settled || now-w.StartedAt < refresh)
}

// Weeks reads the state of every week that has airing days, marks or a
// computation, in order.
func Weeks(ctx context.Context, q report.Querier, database string) ([]WeekState, error) {
	ident, err := chsql.Ident(database)
	if err != nil {
		return nil, fmt.Errorf("accountability: database: %w", err)
	}
	def, err := Definition()
	if err != nil {
		return nil, err
	}
	weeks := map[int64]*WeekState{}
	get := func(w int64) *WeekState {
		if weeks[w] == nil {
			weeks[w] = &WeekState{Week: w}
		}
		return weeks[w]
	}
	rows, err := q.Query(ctx, "SELECT toInt64(toUInt16(toMonday(day))) AS w, max(v) AS dv FROM (SELECT day, max(version) AS v FROM "+ident+"."+report.TableDays+
		" WHERE definition = "+chsql.Uint(report.Definition())+" GROUP BY day) GROUP BY w")
	if err != nil {
		return nil, fmt.Errorf("accountability: read the airing days: %w", err)
	}
	for _, r := range rows {
		w, err1 := report.AsInt(r["w"])
		dv, err2 := asUint(r["dv"])
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("accountability: read the airing days: %w", err)
		}
		get(w * dayMS).CurrentDaysVersion = dv
	}
	rows, err = q.Query(ctx, "SELECT toInt64(toUInt16(week)) AS w, toInt64(toUInt32(max(marked_at))) AS m FROM "+ident+"."+TableMarks+" GROUP BY w")
	if err != nil {
		return nil, fmt.Errorf("accountability: read the week marks: %w", err)
	}
	for _, r := range rows {
		w, err1 := report.AsInt(r["w"])
		m, err2 := report.AsInt(r["m"])
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("accountability: read the week marks: %w", err)
		}
		get(w * dayMS).MarkedAt = m
	}
	rows, err = q.Query(ctx, "SELECT toInt64(toUInt16(week)) AS w, max(version) AS v, argMax(toInt64(toUInt32(started_at)), version) AS s,"+
		" argMax(days_version, version) AS dv, argMax(settled, version) AS st FROM "+ident+"."+TableWeeks+
		" WHERE definition = "+chsql.Uint(def)+" GROUP BY w")
	if err != nil {
		return nil, fmt.Errorf("accountability: read the weeks computed: %w", err)
	}
	for _, r := range rows {
		w, err1 := report.AsInt(r["w"])
		v, err2 := asUint(r["v"])
		s, err3 := report.AsInt(r["s"])
		dv, err4 := asUint(r["dv"])
		st, err5 := report.AsInt(r["st"])
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			return nil, fmt.Errorf("accountability: read the weeks computed: %w", err)
		}
		ws := get(w * dayMS)
		ws.Computed, ws.Version, ws.StartedAt, ws.DaysVersion, ws.Settled = true, v, s, dv, st == 1
	}
	out := make([]WeekState, 0, len(weeks))
	for _, w := range weeks {
		out = append(out, *w)
	}
	slices.SortFunc(out, func(a, b WeekState) int { return int(max(-1, min(1, a.Week-b.Week))) })
	return out, nil
}

func asUint(v any) (uint64, error) {
	switch x := v.(type) {
	case uint64:
		return x, nil
	case string: // JSON output quotes 64-bit integers
		var u uint64
		_, err := fmt.Sscan(x, &u)
		return u, err
	case float64:
		return uint64(x), nil
	}
	n, err := report.AsInt(v)
	return uint64(n), err
}

// Computation is one computation of consecutive weeks.
type Computation struct {
	First, Last int64 // Mondays, Unix ms
	Version     uint64
	// StartedAt is the server time (Unix s) taken before anything was
	// read; DaysVersion the airing projection's latest day version among
	// each week's days then (by Monday).
	StartedAt   int64
	DaysVersion map[int64]uint64
}

// ComputeWeeks computes and stores the accountability of the airings aired
// in the weeks c.First..c.Last, their coverage and the weeks' response
// shapes, and records the weeks. A failure leaves the weeks dirty; a later
// computation (a new version) replaces whatever part of this one was
// written.
func ComputeWeeks(ctx context.Context, db DB, database string, c Computation) (err error) {
	ident, err := chsql.Ident(database)
	if err != nil {
		return fmt.Errorf("accountability: database: %w", err)
	}
	def, err := Definition()
	if err != nil {
		return err
	}
	reach, _, err := report.Reach(ctx, db, database)
	if err != nil {
		return fmt.Errorf("accountability: %w", err)
	}
	sl := NewSlice(c.First, c.Last, reach)
	set, err := evaluate(ctx, db, ident, sl)
	defer func() {
		if set != nil {
			err = errors.Join(err, set.drop(ctx, db))
		}
	}()
	if err != nil {
		return err
	}
	settled, err := settledWeeks(ctx, db, ident, set, sl, c.StartedAt)
	if err != nil {
		return err
	}
	cols := func(table string) (string, error) {
		rows, err := db.Query(ctx, "SELECT name FROM system.columns WHERE database = "+chsql.String(database)+" AND table = "+chsql.String(table)+
			" AND name NOT IN ('week', 'version')")
		if err != nil {
			return "", fmt.Errorf("accountability: columns of %s: %w", table, err)
		}
		names := make([]string, 0, len(rows))
		for _, r := range rows {
			n, _ := r["name"].(string)
			names = append(names, n)
		}
		if len(names) == 0 {
			return "", fmt.Errorf("accountability: %s.%s has no columns (not migrated?)", database, table)
		}
		return strings.Join(names, ", "), nil
	}
	v := chsql.Uint(c.Version)
	inWeeks := weekCond(c.First, c.Last)
	acc, err := cols(TableAirings)
	if err != nil {
		return err
	}
	cov, err := cols(TableCoverage)
	if err != nil {
		return err
	}
	shp, err := cols(TableShapes)
	if err != nil {
		return err
	}
	stmts := []struct{ what, sql string }{
		{"airings", "INSERT INTO " + ident + "." + TableAirings + " (week, version, " + acc + ")\nSELECT toMonday(aired_at) AS week, " + v + " AS version, " + acc +
			"\nFROM " + set.name(ViewOnRead) + "\nWHERE " + inWeeks},
		{"coverage", "INSERT INTO " + ident + "." + TableCoverage + " (week, version, " + cov + ")\nSELECT c_week AS week, " + v + " AS version, " + cov +
			"\nFROM " + set.name(ViewCoverageOnRead) + "\nALL INNER JOIN (SELECT airing_id, toMonday(aired_at) AS c_week FROM " + set.name(ViewOnRead) +
			" WHERE " + inWeeks + ") AS w USING (airing_id)"},
		{"shapes", "INSERT INTO " + ident + "." + TableShapes + " (week, version, " + shp + ")\nSELECT week, " + v + " AS version, " + shp +
			"\nFROM " + set.name(ViewShapesOnRead) + fmt.Sprintf("\nWHERE week >= toDate(%s) AND week <= toDate(%s)", chsql.String(msDate(c.First)), chsql.String(msDate(c.Last)))},
	}
	for _, s := range stmts {
		if err := db.Exec(ctx, s.sql); err != nil {
			return fmt.Errorf("accountability: store the %s of the weeks %s to %s: %w", s.what, msDate(c.First), msDate(c.Last), err)
		}
	}
	var rows []string
	for w := c.First; w <= c.Last; w += weekMS {
		st := 0
		if settled[w] {
			st = 1
		}
		rows = append(rows, fmt.Sprintf("SELECT toDate(%s) AS week, toUInt64(%s) AS version, toUInt64(%s) AS definition, toDateTime(%d, 'UTC') AS started_at,"+
			" toUInt64(%s) AS days_version, toUInt8(%d) AS settled", chsql.String(msDate(w)), v, chsql.Uint(def), c.StartedAt, chsql.Uint(c.DaysVersion[w]), st))
	}
	// INSERT … SELECT: the server computes the rows (an INSERT … VALUES
	// over the native protocol waits for the client's data).
	if err := db.Exec(ctx, "INSERT INTO "+ident+"."+TableWeeks+" (week, version, definition, started_at, days_version, settled)\n"+strings.Join(rows, "\nUNION ALL\n")); err != nil {
		return fmt.Errorf("accountability: record the weeks %s to %s: %w", msDate(c.First), msDate(c.Last), err)
	}
	return nil
}

// settledWeeks tells, for each week of the slice, whether its figures can
// no longer change with time alone: every response window of its airings
// closed and loaded (before both the computation's start and the latest
// stored event), and, while a silence or line outage is ongoing (it grows
// until now), also those of every airing of the slice (those near enough
// to share an orphan cancellation with them). A week whose schedule grows
// later is marked through its days.
func settledWeeks(ctx context.Context, q report.Querier, ident string, set *scratchSet, sl Slice, startedAt int64) (map[int64]bool, error) {
	rows, err := q.Query(ctx, "SELECT toInt64((SELECT max(stored_at_ms) FROM "+ident+".events)) AS loaded,"+
		" toInt64((SELECT count() FROM "+set.name("source_silences")+" WHERE ongoing = 1)"+
		" + (SELECT count() FROM "+set.name("line_outages")+" WHERE ongoing = 1)) AS ongoing,"+
		" toInt64((SELECT max(response_end_ms) FROM "+set.name("airings_current")+")) AS slice_end")
	if err != nil {
		return nil, fmt.Errorf("accountability: read what is settled: %w", err)
	}
	if len(rows) != 1 {
		return nil, fmt.Errorf("accountability: read what is settled: %d rows", len(rows))
	}
	loaded, err1 := report.AsInt(rows[0]["loaded"])
	ongoing, err2 := report.AsInt(rows[0]["ongoing"])
	sliceEnd, err3 := report.AsInt(rows[0]["slice_end"])
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("accountability: read what is settled: %w", err)
	}
	ends, err := q.Query(ctx, "SELECT toInt64(toUInt16(toMonday(aired_at))) AS w, toInt64(max(response_end_ms)) AS e FROM "+set.name("airings_current")+
		" WHERE "+weekCond(sl.First, sl.Last)+" GROUP BY w")
	if err != nil {
		return nil, fmt.Errorf("accountability: read what is settled: %w", err)
	}
	weekEnd := map[int64]int64{}
	for _, r := range ends {
		w, err1 := report.AsInt(r["w"])
		e, err2 := report.AsInt(r["e"])
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("accountability: read what is settled: %w", err)
		}
		weekEnd[w*dayMS] = e
	}
	horizon := min(startedAt*1000, loaded) - report.MarkMarginSeconds*1000
	out := map[int64]bool{}
	for w := sl.First; w <= sl.Last; w += weekMS {
		out[w] = weekEnd[w] <= horizon && (ongoing == 0 || sliceEnd <= horizon)
	}
	return out, nil
}

// MarkWeeksSQL marks the weeks (Mondays, Unix ms) dirty, at the server's
// time.
func MarkWeeksSQL(database string, weeks []int64) string {
	ident, _ := chsql.Ident(database)
	ws := make([]string, len(weeks))
	for i, w := range weeks {
		ws[i] = chsql.String(msDate(w))
	}
	return "INSERT INTO " + ident + "." + TableMarks + " (week, marked_at)\nSELECT toDate(arrayJoin([" + strings.Join(ws, ", ") + "])), now()"
}
