package dashboards

import (
	"slices"
	"testing"
	"time"

	"github.com/airtally/airtally/internal/grafanasql"
)

// selection chooses each variable's value for a run of a dashboard's
// queries: names map to the values selected; a multi-value variable not
// named is on All; a single-value variable not named takes its default.
type selection map[string][]string

// variables returns the dashboard's variables as the browser holds them
// with sel, the options of query variables being opts.
func variables(t *testing.T, d Dashboard, sel selection, opts map[string][]string) []grafanasql.Variable {
	t.Helper()
	var vars []grafanasql.Variable
	for _, v := range d.Templating.List {
		gv := grafanasql.Variable{Name: v.Name, Multi: v.Multi, Options: opts[v.Name]}
		if v.Type == "custom" {
			gv.Options = nil
			for _, o := range v.Options {
				if o.Value != "$__all" {
					gv.Options = append(gv.Options, o.Value)
				}
			}
		}
		chosen, named := sel[v.Name]
		switch {
		case named:
			gv.Value = chosen
		case v.Multi:
			gv.All = true
		case v.Type == "custom":
			gv.Value = []string{v.Current.Value.(string)}
		default:
			t.Fatalf("%s: single-value variable %s needs a value in the selection", d.UID, v.Name)
		}
		vars = append(vars, gv)
	}
	return vars
}

// render is the SQL ClickHouse receives for qu.
func render(t *testing.T, d Dashboard, qu Query, sel selection, opts map[string][]string, from, to time.Time) string {
	t.Helper()
	sql, err := grafanasql.Render(qu.SQL, variables(t, d, sel, opts), grafanasql.Query{From: from, To: to, Interval: time.Minute})
	if err != nil {
		t.Fatalf("%s %s: %v", d.UID, qu.Where, err)
	}
	return sql
}

// runAll runs every query of the dashboards uids (all when none is named)
// on e with sel (variables' options from their own queries, run first) and
// checks the columns; it returns the results by dashboard uid and query.
func runAll(t *testing.T, e engine, sel selection, from, to time.Time, uids ...string) map[string]map[string]result {
	t.Helper()
	out := map[string]map[string]result{}
	for _, b := range All() {
		d := b.Dashboard
		if len(uids) > 0 && !slices.Contains(uids, d.UID) {
			continue
		}
		out[d.UID] = map[string]result{}
		opts := map[string][]string{}
		for _, qu := range b.Queries {
			res, err := e.run(t, render(t, d, qu, sel, opts, from, to))
			if err != nil {
				t.Errorf("%s: %s %s: %v\nSQL:\n%s", e.name(), d.UID, qu.Where, err, render(t, d, qu, sel, opts, from, to))
				continue
			}
			if !slices.Equal(res.columns, qu.Columns) {
				t.Errorf("%s: %s %s returns columns %v, want %v", e.name(), d.UID, qu.Where, res.columns, qu.Columns)
			}
			if name, ok := cutPrefix(qu.Where, "variable "); ok {
				for _, r := range res.rows {
					opts[name] = append(opts[name], str(r, qu.Columns[0]))
				}
			}
			out[d.UID][qu.Where] = res
		}
	}
	return out
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return "", false
}
