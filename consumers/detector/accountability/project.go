package accountability

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/schema"
)

// The accountability projection (docs/design.md, "The accountability
// projection"): every airing's accountability, its coverage per source and
// the week's response shapes, computed a broadcast week (Monday to Sunday,
// UTC, by air time) at a time by the on-read views themselves, evaluated
// over the events that week's figures can depend on (Slice). Its tables
// and views are created by migration 0015.
const (
	TableAirings  = "accountability_airings"
	TableCoverage = "accountability_coverage"
	TableShapes   = "accountability_shapes"
	TableWeeks    = "accountability_weeks"
	TableMarks    = "accountability_marks"

	// The on-read views a week is computed by.
	ViewOnRead         = "airing_accountability_on_read"
	ViewCoverageOnRead = "airing_coverage_on_read"
	ViewShapesOnRead   = "response_shapes_on_read"
)

const (
	hourMS = int64(3_600_000)
	dayMS  = 24 * hourMS
	weekMS = 7 * dayMS
	// mondayOffsetMS: Unix day 0 (1970-01-01) was a Thursday, three days
	// after a Monday.
	mondayOffsetMS = 3 * dayMS
)

// WeekOf is the Monday 00:00 UTC (Unix ms) of the week holding t (Unix ms).
func WeekOf(t int64) int64 {
	d := t + mondayOffsetMS
	w := d / weekMS
	if d%weekMS < 0 {
		w--
	}
	return w*weekMS - mondayOffsetMS
}

// Slice is what a computation of the weeks first..last (Mondays, Unix ms)
// reads, reach being the longest response of any airing after its air
// time (report.Reach): an airing's figures depend on
//
//   - the calls, answers and orders of its week, and those in its response
//     window and a day after it (Lo..Hi);
//   - the cancellations in the 14 days after its window began
//     (Lo..CancelHi), orphan cancellations being lost orders of the
//     airings whose window began in the 14 days before them;
//   - the airings whose window is near enough to share its number's calls
//     or an orphan cancellation with it (AiringLo..AiringHi);
//   - every detection, and (marked /* all history */ in the views) the
//     heartbeats of a gap's first day and the day before, the orders the
//     cancellations name, and the time of the latest stored event.
type Slice struct {
	First, Last        int64
	Lo, Hi, CancelHi   int64
	AiringLo, AiringHi int64
}

// NewSlice is the slice of the weeks first..last.
func NewSlice(first, last, reach int64) Slice {
	end := last + weekMS
	return Slice{
		First: first, Last: last,
		Lo: first - dayMS - hourMS, Hi: end + reach + dayMS + hourMS,
		CancelHi: end + 2*weekMS + reach + hourMS,
		AiringLo: first - 2*weekMS - hourMS, AiringHi: end + 2*weekMS + reach + hourMS,
	}
}

// WeeksTouched is the weeks (Mondays, Unix ms) whose figures an event
// spanning lo..hi (Unix ms; a detection's span, or one instant) can
// change, for the events whose weeks the airing projection's day marks do
// not already cover: detections, orphan cancellations, the gaps near a
// heartbeat.
func WeeksTouched(lo, hi, reach int64) []int64 {
	// A week's slice reaches from AiringLo (two weeks before) to AiringHi
	// (two weeks and a reach after its end), and a detection matters to
	// the airings whose windows it overlaps: a reach further.
	var out []int64
	for w := WeekOf(lo - 3*weekMS - 2*reach - 2*hourMS); w <= hi+2*weekMS+2*hourMS; w += weekMS {
		s := NewSlice(w, w, reach)
		if s.AiringLo <= hi && lo < s.AiringHi+reach {
			out = append(out, w)
		}
	}
	return out
}

// detectionKinds are the kinds the detector writes: a slice keeps them all.
var detectionKinds = []event.Kind{event.SourceDown, event.SourceUp, event.GapOpened, event.GapClosed, event.LineSilent, event.LineRestored, event.DataDelayed}

// predicate is the condition on events of a slice.
func (s Slice) predicate() string {
	kinds := make([]string, len(detectionKinds))
	for i, k := range detectionKinds {
		kinds[i] = chsql.String(string(k))
	}
	return fmt.Sprintf("kind IN (%s) OR (occurred_at_ms >= %d AND occurred_at_ms < %d) OR (kind = 'order.cancelled' AND occurred_at_ms >= %d AND occurred_at_ms < %d)",
		strings.Join(kinds, ", "), s.Lo, s.Hi, s.Lo, s.CancelHi)
}

// leaves are the views a slice reads filtered rather than evaluated, in
// the order they are read: the airings, and the airing projection's
// figures and curves.
var leaves = []leaf{
	{"airings_current", func(s Slice, _ func(string) string) string {
		return fmt.Sprintf("response_end_ms >= %d AND response_start_ms < %d", s.AiringLo, s.AiringHi)
	}, false},
	{"airing_figures", func(s Slice, _ func(string) string) string {
		return fmt.Sprintf("response_end_ms >= %d AND response_start_ms < %d", s.AiringLo, s.AiringHi)
	}, true},
	{"airing_response_curve", func(s Slice, scratch func(string) string) string {
		return "airing_id IN (SELECT airing_id FROM " + scratch("airings_current") + ")"
	}, true},
}

// A leaf is a view read filtered: filter is its condition over a slice,
// scratch names the scratch table of a view. A leaf fromBody is evaluated
// from its own text, its reads of the airing projection's measures
// narrowed to the slice's days (the projection is sorted by day), rather
// than filtered after computing every day.
type leaf struct {
	view     string
	filter   func(s Slice, scratch func(string) string) string
	fromBody bool
}

func isLeaf(view string) bool {
	return slices.ContainsFunc(leaves, func(l leaf) bool { return l.view == view })
}

// allHistory marks, in a view, a read of events that a slice keeps whole.
const allHistory = "/* all history */"

// refPattern matches a view's reads of database ident's tables and views:
// the name, FINAL, and the allHistory mark.
func refPattern(ident string) *regexp.Regexp {
	return regexp.MustCompile(regexp.QuoteMeta(ident) + `\.([a-z0-9_]+)(\s+FINAL)?(\s*` + regexp.QuoteMeta(allHistory) + `)?`)
}

// chain is the views the on-read accountability is computed by, as the
// migrations leave them, in an order where each comes after those it
// reads.
type chain struct {
	ident  string
	order  []string          // evaluated views, dependencies first
	bodies map[string]string // view name → SELECT
	hash   uint64
}

var viewRE = regexp.MustCompile(`(?s)^CREATE VIEW IF NOT EXISTS (\S+)\.([a-z0-9_]+) AS\s+(.*)$`)

var (
	chainOnce sync.Once
	chainDef  *chain
	chainErr  error
)

// placeholderDB is the database the chain is parsed for; its name is
// replaced by the real one's when a slice is built.
const placeholderDB = "acct_placeholder_db"

func loadChain() (*chain, error) {
	chainOnce.Do(func() {
		migs, err := schema.Migrations(placeholderDB)
		if err != nil {
			chainErr = fmt.Errorf("accountability: %w", err)
			return
		}
		ident, _ := chsql.Ident(placeholderDB)
		bodies := map[string]string{}
		for _, m := range migs {
			for _, st := range m.Statements {
				if v := viewRE.FindStringSubmatch(strings.TrimSpace(st)); v != nil {
					bodies[v[2]] = v[3]
				}
			}
		}
		refRE := refPattern(ident)
		readsEvents := map[string]bool{}
		var visit func(name string, seen map[string]bool) bool
		c := &chain{ident: ident, bodies: map[string]string{}}
		visit = func(name string, seen map[string]bool) bool {
			if done, ok := readsEvents[name]; ok {
				return done
			}
			if seen[name] {
				chainErr = fmt.Errorf("accountability: view %s reads itself", name)
				return false
			}
			seen[name] = true
			body := bodies[name]
			reads := false
			for _, m := range refRE.FindAllStringSubmatch(body, -1) {
				ref, all := m[1], m[3]
				switch {
				case ref == "events":
					if all == "" {
						reads = true
					}
				case isLeaf(ref):
					reads = true
				case bodies[ref] != "":
					// Visited first: its scratch table comes before this one's.
					if visit(ref, seen) {
						reads = true
					}
				}
			}
			readsEvents[name] = reads
			if reads {
				c.order = append(c.order, name)
				c.bodies[name] = body
			}
			return reads
		}
		for _, root := range []string{ViewOnRead, ViewCoverageOnRead, ViewShapesOnRead} {
			if bodies[root] == "" {
				chainErr = fmt.Errorf("accountability: no view %s in the migrations", root)
				return
			}
			visit(root, map[string]bool{})
		}
		if chainErr != nil {
			return
		}
		for _, l := range leaves {
			if l.fromBody {
				if bodies[l.view] == "" {
					chainErr = fmt.Errorf("accountability: no view %s in the migrations", l.view)
					return
				}
				c.bodies[l.view] = bodies[l.view]
			}
		}
		h := fnv.New64a()
		for _, name := range slices.Sorted(maps.Keys(c.bodies)) {
			h.Write([]byte(name + "\n" + c.bodies[name] + "\n"))
		}
		sl := NewSlice(0, 0, 1)
		fmt.Fprintf(h, "%+v\n%s\n", sl, sl.predicate())
		for _, l := range leaves {
			fmt.Fprintf(h, "%s %s\n", l.view, l.filter(sl, func(v string) string { return v }))
		}
		c.hash = h.Sum64() &^ (1 << 63)
		chainDef = c
	})
	return chainDef, chainErr
}

// Definition identifies the views and the slice a week is computed by: a
// week computed with another definition is computed again.
func Definition() (uint64, error) {
	c, err := loadChain()
	if err != nil {
		return 0, err
	}
	return c.hash, nil
}

// scratchSet is one evaluation of the chain over a slice: a Memory table
// per view, named with a random token, dropped by drop.
type scratchSet struct {
	ident, token string
	tables       []string
}

func (s *scratchSet) name(view string) string { return s.ident + ".acct_" + s.token + "_" + view }

// evaluate creates the scratch tables of the chain over slice sl in
// database ident. The caller drops them (drop), also on failure.
func evaluate(ctx context.Context, x report.Execer, ident string, sl Slice) (*scratchSet, error) {
	c, err := loadChain()
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 6)
	if _, err := rand.Read(tok); err != nil {
		return nil, fmt.Errorf("accountability: token: %w", err)
	}
	set := &scratchSet{ident: ident, token: hex.EncodeToString(tok)}
	refRE := refPattern(c.ident)
	evaluated := map[string]bool{}
	for _, name := range c.order {
		evaluated[name] = true
	}
	create := func(view, sql string) error {
		set.tables = append(set.tables, set.name(view))
		if err := x.Exec(ctx, "CREATE TABLE "+set.name(view)+" ENGINE = Memory AS\n"+sql); err != nil {
			return fmt.Errorf("accountability: evaluate %s over the weeks from %s: %w", view, msDate(sl.First), err)
		}
		return nil
	}
	pred := sl.predicate()
	days := fmt.Sprintf("day >= toDate(%s) AND day <= toDate(%s)", chsql.String(msDate(sl.AiringLo-dayMS)), chsql.String(msDate(sl.AiringHi+dayMS)))
	rewrite := func(name string) (string, error) {
		body := refRE.ReplaceAllStringFunc(c.bodies[name], func(m string) string {
			sub := refRE.FindStringSubmatch(m)
			ref, final, all := sub[1], sub[2], sub[3]
			switch {
			case ref == "events" && all != "":
				return ident + ".events" + final
			case ref == "events":
				return ident + ".events" + final + sliceMarker
			case ref == report.TableMeasures:
				return ident + "." + ref + final + daysMarker
			case evaluated[ref] || isLeaf(ref):
				return set.name(ref) + final + all
			default:
				return ident + "." + ref + final + all
			}
		})
		body, err := restrict(body, sliceMarker, pred)
		if err == nil {
			body, err = restrict(body, daysMarker, days)
		}
		if err != nil {
			return "", fmt.Errorf("accountability: view %s: %w", name, err)
		}
		return body, nil
	}
	for _, l := range leaves {
		from := ident + "." + l.view
		if l.fromBody {
			body, err := rewrite(l.view)
			if err != nil {
				return set, err
			}
			from = "(\n" + body + "\n)"
		}
		if err := create(l.view, "SELECT * FROM "+from+" WHERE "+l.filter(sl, set.name)); err != nil {
			return set, err
		}
	}
	for _, name := range c.order {
		body, err := rewrite(name)
		if err != nil {
			return set, err
		}
		if err := create(name, body); err != nil {
			return set, err
		}
	}
	return set, nil
}

// sliceMarker and daysMarker mark, while a view is rewritten, a read of
// events that restrict narrows to the slice, and a read of the airing
// projection's measures it narrows to the slice's days.
const (
	sliceMarker = " /* slice */"
	daysMarker  = " /* slice days */"
)

var whereRE = regexp.MustCompile(`^\s*WHERE\s`)

// clauseEndRE finds what ends a WHERE condition at its own depth.
var clauseEndRE = regexp.MustCompile(`^\s(GROUP BY|ORDER BY|HAVING|LIMIT|UNION ALL|SETTINGS)\s`)

// restrict adds pred to the WHERE clause that follows each read marked by
// marker: WHERE c becomes WHERE (pred) AND (c). Putting the predicate into
// the view's own WHERE rather than reading a filtered subquery keeps
// ClickHouse's use of the sorting key (events: kind, occurred_at) and its
// reading of only the columns the view needs, FINAL included.
func restrict(body, marker, pred string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(body, marker)
		if i < 0 {
			b.WriteString(body)
			return b.String(), nil
		}
		b.WriteString(body[:i])
		rest := body[i+len(marker):]
		loc := whereRE.FindStringIndex(rest)
		if loc == nil {
			return "", errors.New("a restricted read without a WHERE clause")
		}
		b.WriteString(rest[:loc[1]])
		cond := rest[loc[1]:]
		end := conditionEnd(cond)
		b.WriteString("(" + pred + ") AND (" + cond[:end] + ")")
		body = cond[end:]
	}
}

// conditionEnd is the length of the condition that starts cond: up to the
// closing parenthesis of the query around it, a clause after it, or the
// end.
func conditionEnd(cond string) int {
	depth := 0
	for i := 0; i < len(cond); i++ {
		switch c := cond[i]; {
		case c == '\'':
			for i++; i < len(cond) && cond[i] != '\''; i++ {
				if cond[i] == '\\' {
					i++
				}
			}
		case c == '(':
			depth++
		case c == ')':
			if depth == 0 {
				return len(strings.TrimRight(cond[:i], " \n"))
			}
			depth--
		case depth == 0 && clauseEndRE.MatchString(cond[i:]):
			return len(strings.TrimRight(cond[:i], " \n"))
		}
	}
	return len(strings.TrimRight(cond, " \n;"))
}

// drop drops the scratch tables (with a context of its own: it also runs
// after the caller's was cancelled).
func (s *scratchSet) drop(ctx context.Context, x report.Execer) error {
	var first error
	for _, t := range s.tables {
		if err := x.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+t); err != nil && first == nil {
			first = fmt.Errorf("accountability: drop %s: %w", t, err)
		}
	}
	return first
}

// weekCond is the condition on aired_at of the airings of weeks
// first..last.
func weekCond(first, last int64) string {
	return fmt.Sprintf("aired_at >= toDateTime(%d, 'UTC') AND aired_at < toDateTime(%d, 'UTC')", first/1000, (last+weekMS)/1000)
}

func msDate(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.DateOnly) }

// DropStaleScratch drops the scratch tables of database that are more than
// an hour old: left by a computation that was killed, or by a ClickHouse
// that went down before they could be dropped (a computation takes
// seconds).
func DropStaleScratch(ctx context.Context, db DB, database string) error {
	rows, err := db.Query(ctx, "SELECT name FROM system.tables WHERE database = "+chsql.String(database)+
		" AND engine = 'Memory' AND match(name, '^acct_[0-9a-f]{12}_') AND metadata_modification_time < now() - INTERVAL 1 HOUR")
	if err != nil {
		return fmt.Errorf("accountability: list scratch tables: %w", err)
	}
	ident, err := chsql.Ident(database)
	if err != nil {
		return fmt.Errorf("accountability: database: %w", err)
	}
	for _, r := range rows {
		name, _ := r["name"].(string)
		t, err := chsql.Ident(name)
		if err != nil {
			continue
		}
		if err := db.Exec(ctx, "DROP TABLE IF EXISTS "+ident+"."+t); err != nil {
			return fmt.Errorf("accountability: drop %s: %w", name, err)
		}
	}
	return nil
}
