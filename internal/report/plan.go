package report

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/airtally/airtally/internal/chsql"
)

// plan renders a report's queries: from the projection where it holds
// the range's days computed (docs/design.md, "The airing projection"),
// on read for the other days, or all on read (SourceOnRead, a
// configuration other than the projection's, or a database whose
// projection was never computed).
func plan(ctx context.Context, q Querier, o Options) (Queries, ReadStats, error) {
	ident, _ := chsql.Ident(o.Database)
	lo, hi := o.Filter.From.UnixMilli(), o.Filter.To.UnixMilli()
	days := int(UTCDay(hi-1) - UTCDay(lo) + 1)
	if o.Source == SourceOnRead || o.Config.WindowMinutes != DefaultWindowMinutes || o.Config.BaselineMinutes != DefaultBaselineMinutes {
		qs, err := onRead(ctx, q, o)
		return qs, ReadStats{DaysOnRead: days}, err
	}
	status, built, err := readStatus(ctx, q, o.Database, ident, UTCDay(lo), UTCDay(hi-1))
	if err != nil {
		return Queries{}, ReadStats{}, err
	}
	if !built {
		qs, err := onRead(ctx, q, o)
		return qs, ReadStats{DaysOnRead: days}, err
	}
	fast := &fastPlan{minuteLo: lo, minuteHi: hi}
	clean := []string{}
	var read ReadStats
	first, last := UTCDay(lo), UTCDay(hi-1)
	var runStart int64 = -1
	flush := func(end int64) error { // the dirty days runStart..end-1
		if runStart < 0 {
			return nil
		}
		p, err := partBuilder(ctx, q, o, ident, max(runStart*dayMS, lo), min(end*dayMS, hi))
		if err != nil {
			return err
		}
		fast.parts = append(fast.parts, p)
		runStart = -1
		return nil
	}
	for d := first; d <= last; d++ {
		st, known := status[d]
		dirty := known && st.dirty
		// A range edge inside a minute: the unattributed minutes there
		// are not whole, so that day is computed on read.
		if (d == first && lo%60000 != 0) || (d == last && hi%60000 != 0) {
			dirty = true
		}
		if dirty {
			read.DaysOnRead++
			if runStart < 0 {
				runStart = d
			}
			continue
		}
		read.DaysFromProjection++
		if err := flush(d); err != nil {
			return Queries{}, ReadStats{}, err
		}
		if known {
			clean = append(clean, fmt.Sprintf("(%d, %s)", d, chsql.Uint(st.version)))
		}
	}
	if err := flush(last + 1); err != nil {
		return Queries{}, ReadStats{}, err
	}
	// (0, 0) is never a computation: it keeps a one-element list a list
	// of pairs.
	fast.clean = fmt.Sprintf("day >= toDate(%s) AND day <= toDate(%s) AND (toUInt16(day), version) IN (%s)",
		chsql.String(dateOf(first)), chsql.String(dateOf(last)), strings.Join(append(clean, "(0, 0)"), ", "))
	b := newReportBuilder(o.Config, ident, o.scope(hi))
	b.fast = fast
	return b.queries(o), read, nil
}

// onRead renders a report's queries computed on read: the extent query
// first (its answer bounds the others).
func onRead(ctx context.Context, q Querier, o Options) (Queries, error) {
	scanHi, err := extent(ctx, q, o)
	if err != nil {
		return Queries{}, err
	}
	return Build(o, scanHi)
}

func extent(ctx context.Context, q Querier, o Options) (int64, error) {
	probe, err := Build(o, 0)
	if err != nil {
		return 0, err
	}
	rows, err := q.Query(ctx, probe.Extent)
	if err != nil {
		return 0, fmt.Errorf("report: extent: %w", err)
	}
	var scanHi int64
	if len(rows) == 1 {
		if scanHi, err = asInt(rows[0]["scan_hi"]); err != nil {
			return 0, fmt.Errorf("report: extent: %w", err)
		}
	}
	return scanHi, nil
}

// partBuilder is the on-read builder of a dirty part [lo, hi): every
// airing aired in it (no filter) and its unattributed bucket.
func partBuilder(ctx context.Context, q Querier, o Options, ident string, lo, hi int64) (*builder, error) {
	po := o
	po.Filter = Filter{From: msTime(lo), To: msTime(hi)}
	scanHi, err := extent(ctx, q, po)
	if err != nil {
		return nil, err
	}
	return newReportBuilder(o.Config, ident, po.scope(scanHi)), nil
}

type dayStatus struct {
	version uint64
	dirty   bool
}

// readStatus reads the projection's status of the UTC days first..last
// (day numbers), and whether the projection was ever computed with this
// definition.
func readStatus(ctx context.Context, q Querier, database, ident string, first, last int64) (map[int64]dayStatus, bool, error) {
	built, err := Built(ctx, q, database)
	if err != nil || !built {
		return nil, false, err
	}
	where := fmt.Sprintf("day >= toDate(%s) AND day <= toDate(%s)", chsql.String(dateOf(first)), chsql.String(dateOf(last)))
	rows, err := q.Query(ctx, "SELECT toInt64(toUInt16(day)) AS d, version, dirty FROM (\n"+statusSQL(ident, where)+"\n)")
	if err != nil {
		return nil, false, fmt.Errorf("report: projection status: %w", err)
	}
	out := make(map[int64]dayStatus, len(rows))
	for _, r := range rows {
		d, err1 := asInt(r["d"])
		v, err2 := asInt(r["version"])
		dirty, err3 := asInt(r["dirty"])
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, false, fmt.Errorf("report: projection status: %w", err)
		}
		out[d] = dayStatus{version: uint64(v), dirty: dirty != 0}
	}
	return out, true, nil
}

// UTCDay is the UTC day number (days since 1970-01-01) of Unix time ms.
func UTCDay(ms int64) int64 {
	d := ms / dayMS
	if ms%dayMS != 0 && ms < 0 {
		d--
	}
	return d
}

func msTime(v int64) time.Time { return time.UnixMilli(v).UTC() }

// dateOf is the date of UTC day number d (days since 1970-01-01).
func dateOf(d int64) string { return time.Unix(d*86400, 0).UTC().Format("2006-01-02") }
