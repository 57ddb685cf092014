package grafanasql

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"
)

// ErrMacro wraps every problem with a backend macro: one the plugin does
// not have, one whose expansion does not run on ClickHouse 18.16, a wrong
// argument.
var ErrMacro = errors.New("grafanasql: macro")

// Query is what the plugin's backend receives with a panel's SQL: the
// dashboard's time range and the panel's interval.
type Query struct {
	From, To time.Time
	// Interval is the panel's interval ($__interval_s); the plugin uses at
	// least one second.
	Interval time.Duration
}

// macro expands one backend macro as the plugin's pkg/macros does.
type macro struct {
	// args is the number of arguments it takes; -1 means it takes none
	// and is written without parentheses.
	args   int
	expand func(q Query, args []string) string
}

func dateTime(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
func date(t time.Time) string     { return fmt.Sprintf("toDate('%s')", t.UTC().Format("2006-01-02")) }

// macros are the plugin's macros whose expansion runs on ClickHouse 18.16.
var macros = map[string]macro{
	"fromTime": {-1, func(q Query, _ []string) string { return dateTime(q.From) }},
	"toTime":   {-1, func(q Query, _ []string) string { return dateTime(q.To) }},
	"timeFilter": {1, func(q Query, a []string) string {
		return fmt.Sprintf("%s >= %s AND %s <= %s", a[0], dateTime(q.From), a[0], dateTime(q.To))
	}},
	"dateFilter": {1, func(q Query, a []string) string {
		return fmt.Sprintf("%s >= %s AND %s <= %s", a[0], date(q.From), a[0], date(q.To))
	}},
	"dateTimeFilter": {2, dateTimeFilter},
	"dt":             {2, dateTimeFilter},
	"interval_s": {-1, func(q Query, _ []string) string {
		return fmt.Sprintf("%d", int(math.Max(q.Interval.Seconds(), 1)))
	}},
}

func dateTimeFilter(q Query, a []string) string {
	return fmt.Sprintf("(%s >= %s AND %s <= %s) AND (%s >= %s AND %s <= %s)",
		a[0], date(q.From), a[0], date(q.To), a[1], dateTime(q.From), a[1], dateTime(q.To))
}

// unsupported are the plugin's macros whose expansion fails on 18.16, with
// the reason.
var unsupported = map[string]string{
	"timeInterval":    "it expands to toStartOfInterval; bucket with toStartOfMinute/toStartOfFiveMinute/... or intDiv(toUInt32(t), $__interval_s) * $__interval_s",
	"timeInterval_ms": "it expands to toStartOfInterval and toDateTime64",
	"timeFilter_ms":   "it expands to fromUnixTimestamp64Milli",
	"fromTime_ms":     "it expands to fromUnixTimestamp64Milli",
	"toTime_ms":       "it expands to fromUnixTimestamp64Milli",
}

var (
	macroNameRE = regexp.MustCompile(`\$__(\w+)`)
	columnRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)
	leftoverRE  = regexp.MustCompile(`\$\w|\$\{|\[\[\w`)
)

// Macros returns the names of the $__ macros sql uses (without "$__"), in
// order of first appearance.
func Macros(sql string) []string {
	seen := map[string]bool{}
	var names []string
	for _, m := range macroNameRE.FindAllStringSubmatch(sql, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			names = append(names, m[1])
		}
	}
	return names
}

// ExpandMacros expands the backend macros of sql (after Interpolate) for
// q, the way the plugin's backend does: each occurrence of
// $__name(args) is replaced by the macro's SQL. It fails for a macro the
// plugin lacks or whose expansion does not run on ClickHouse 18.16, for
// an argument that is not a plain column name, and when anything that
// looks like a template variable is left over.
func ExpandMacros(sql string, q Query) (string, error) {
	names := Macros(sql)
	sort.Strings(names)
	for _, name := range names {
		if why, ok := unsupported[name]; ok {
			return "", fmt.Errorf("%w $__%s does not run on ClickHouse 18.16: %s", ErrMacro, name, why)
		}
		m, ok := macros[name]
		if !ok {
			return "", fmt.Errorf("%w $__%s: the ClickHouse plugin's backend has no such macro (an undefined variable?)", ErrMacro, name)
		}
		// The plugin's (sqlds) pattern for a macro: the name and an
		// optional, shortest, parenthesised argument list.
		re := regexp.MustCompile(`\$__` + regexp.QuoteMeta(name) + `(?:\((.*?)\))?`)
		for _, match := range re.FindAllStringSubmatch(sql, -1) {
			hasParens := strings.HasPrefix(match[0][len("$__"+name):], "(")
			var args []string
			if hasParens {
				for _, a := range strings.Split(match[1], ",") {
					args = append(args, strings.TrimSpace(a))
				}
			}
			if err := checkArgs(name, m, args, hasParens); err != nil {
				return "", err
			}
			sql = strings.ReplaceAll(sql, match[0], m.expand(q, args))
		}
	}
	if loc := leftoverRE.FindStringIndex(sql); loc != nil {
		end := min(loc[1]+20, len(sql))
		return "", fmt.Errorf("%w: %q is left after expansion (an undefined template variable?)", ErrMacro, sql[loc[0]:end])
	}
	return sql, nil
}

func checkArgs(name string, m macro, args []string, hasParens bool) error {
	if m.args < 0 {
		if hasParens {
			return fmt.Errorf("%w $__%s takes no arguments: write it without parentheses", ErrMacro, name)
		}
		return nil
	}
	if len(args) != m.args {
		return fmt.Errorf("%w $__%s takes %d argument(s), got %d", ErrMacro, name, m.args, len(args))
	}
	for _, a := range args {
		if !columnRE.MatchString(a) {
			return fmt.Errorf("%w $__%s(%s): each argument must be a plain column name, so that every plugin version expands it alike", ErrMacro, name, strings.Join(args, ", "))
		}
	}
	return nil
}

// Render is Interpolate followed by ExpandMacros: the SQL text ClickHouse
// receives for a panel's query.
func Render(sql string, vars []Variable, q Query) (string, error) {
	s, err := Interpolate(sql, vars)
	if err != nil {
		return "", err
	}
	return ExpandMacros(s, q)
}
