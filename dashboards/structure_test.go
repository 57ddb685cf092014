package dashboards

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airtally/airtally/internal/grafanasql"
)

// TestStructure checks what Grafana needs from the dashboards without
// running them: stable unique uids, unique panel ids, every query on the
// provisioned ClickHouse data source, every $variable defined, formats
// right for each panel type, panels on the grid, and every column that an
// override or a link names returned by the panel's query.
func TestStructure(t *testing.T) {
	all := All()
	wantUIDs := []string{UIDScorecard, UIDDetail, UIDMedia, UIDCompleteness}
	var uids []string
	for _, b := range all {
		uids = append(uids, b.Dashboard.UID)
	}
	if !slices.Equal(uids, wantUIDs) {
		t.Fatalf("dashboard uids %v, want %v (stable: links and bookmarks use them)", uids, wantUIDs)
	}
	for _, b := range all {
		d := b.Dashboard
		t.Run(d.UID, func(t *testing.T) {
			checkPanels(t, d)
			checkDatasources(t, d)
			checkVariables(t, b)
			checkFormats(t, b)
			checkFields(t, b)
			if !slices.Contains(d.Tags, Tag) {
				t.Errorf("tags %v lack %q (the header links find the dashboards by it)", d.Tags, Tag)
			}
		})
	}
}

func checkPanels(t *testing.T, d Dashboard) {
	t.Helper()
	ids := map[int]string{}
	type cellKey struct{ x, y int }
	cells := map[cellKey]string{}
	for _, p := range d.Panels {
		if other, dup := ids[p.ID]; dup || p.ID <= 0 {
			t.Errorf("panel %q has id %d, also %q's (ids must be unique and positive)", p.Title, p.ID, other)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.X < 0 || g.W <= 0 || g.X+g.W > 24 || g.H <= 0 || g.Y < 0 {
			t.Errorf("panel %q is off the 24-column grid: %+v", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, taken := cells[cellKey{x, y}]; taken {
					t.Fatalf("panels %q and %q overlap at (%d, %d)", other, p.Title, x, y)
				}
				cells[cellKey{x, y}] = p.Title
			}
		}
		if p.Type != "row" && (len(p.Targets) != 1 || p.Title == "" || p.Description == "") {
			t.Errorf("panel %q: want one query, a title and a description", p.Title)
		}
	}
}

func isOurs(ref *DataSourceRef) bool {
	return ref != nil && ref.UID == DatasourceUID && ref.Type == DatasourceType
}

func checkDatasources(t *testing.T, d Dashboard) {
	t.Helper()
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if !isOurs(p.Datasource) {
			t.Errorf("panel %q is on data source %+v, want %s %s", p.Title, p.Datasource, DatasourceType, DatasourceUID)
		}
		for _, tg := range p.Targets {
			if !isOurs(tg.Datasource) || tg.EditorType != "sql" || tg.RawSQL == "" || tg.PluginVersion != PluginVersion {
				t.Errorf("panel %q target %s: %+v, want SQL on %s", p.Title, tg.RefID, tg.Datasource, DatasourceUID)
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" && !isOurs(v.Datasource) {
			t.Errorf("variable %s is on data source %+v", v.Name, v.Datasource)
		}
	}
	for _, a := range d.Annotations.List {
		if a.BuiltIn == 1 {
			continue
		}
		if !isOurs(a.Datasource) || a.Target == nil || !isOurs(a.Target.Datasource) {
			t.Errorf("annotation %q is not on %s", a.Name, DatasourceUID)
		}
	}
}

// conditionalRef is how a multi-value variable may be used: inside
// $__conditionalAll, quoted by sqlstring, with the bare $var as the second
// argument.
var conditionalRef = regexp.MustCompile(`\$__conditionalAll\([^$]*\(\$\{(\w+):sqlstring\}\), \$(\w+)\)`)

func checkVariables(t *testing.T, b Built) {
	t.Helper()
	d := b.Dashboard
	defined := map[string]Variable{}
	var order []string
	for _, v := range d.Templating.List {
		if _, dup := defined[v.Name]; dup {
			t.Errorf("variable %s defined twice", v.Name)
		}
		defined[v.Name] = v
		order = append(order, v.Name)
	}
	for _, qu := range b.Queries {
		for _, name := range grafanasql.References(qu.SQL) {
			v, ok := defined[name]
			if !ok {
				t.Errorf("%s uses $%s, which is not defined", qu.Where, name)
				continue
			}
			if self, isVar := strings.CutPrefix(qu.Where, "variable "); isVar && slices.Index(order, name) >= slices.Index(order, self) {
				t.Errorf("variable %s uses $%s, defined after it", self, name)
			}
			if v.Multi {
				checkMultiUse(t, qu, name)
			}
		}
		for _, m := range grafanasql.Macros(qu.SQL) {
			if !slices.Contains([]string{"conditionalAll", "timeFilter", "fromTime", "toTime", "interval_s"}, m) {
				t.Errorf("%s uses $__%s; the dashboards keep to $__conditionalAll, $__timeFilter, $__fromTime, $__toTime and $__interval_s", qu.Where, m)
			}
		}
		// Renders, with every macro the plugin expands on 18.16, for any
		// selection (no server needed).
		for _, all := range []bool{true, false} {
			var vars []grafanasql.Variable
			for _, v := range d.Templating.List {
				vars = append(vars, grafanasql.Variable{Name: v.Name, Multi: v.Multi, All: all && v.Multi, Value: []string{"x"}, Options: []string{"x", "y"}})
			}
			if _, err := grafanasql.Render(qu.SQL, vars, grafanasql.Query{From: time.Unix(0, 0), To: time.Unix(3600, 0), Interval: time.Minute}); err != nil {
				t.Errorf("%s does not render: %v", qu.Where, err)
			}
		}
	}
	for _, p := range d.Panels {
		if p.FieldConfig == nil {
			continue
		}
		for _, o := range p.FieldConfig.Overrides {
			for _, pr := range o.Properties {
				if ls, ok := pr.Value.([]DataLink); ok {
					for _, l := range ls {
						checkLink(t, p.Title, l)
					}
				}
			}
		}
	}
}

// checkMultiUse: a multi-value variable appears only as
// $__conditionalAll(col IN (${var:sqlstring}), $var).
func checkMultiUse(t *testing.T, qu Query, name string) {
	t.Helper()
	uses := strings.Count(qu.SQL, "$"+name) + strings.Count(qu.SQL, "${"+name)
	wrapped := 0
	for _, m := range conditionalRef.FindAllStringSubmatch(qu.SQL, -1) {
		if m[1] == name && m[2] == name {
			wrapped += 2
		}
	}
	if uses != wrapped {
		t.Errorf("%s uses multi-value $%s %d times, %d of them as $__conditionalAll(col IN (${%s:sqlstring}), $%s)", qu.Where, name, uses, wrapped, name, name)
	}
}

// checkLink: a link to a dashboard names one that exists, and sets only
// its variables.
func checkLink(t *testing.T, panel string, l DataLink) {
	t.Helper()
	rest, ok := strings.CutPrefix(l.URL, "/d/")
	if !ok {
		t.Errorf("panel %q link %q is not to a dashboard", panel, l.URL)
		return
	}
	uid, query, _ := strings.Cut(rest, "?")
	uid, _, _ = strings.Cut(uid, "/")
	var target *Dashboard
	for _, b := range All() {
		if b.Dashboard.UID == uid {
			target = &b.Dashboard
		}
	}
	if target == nil {
		t.Errorf("panel %q links to dashboard %s, which does not exist", panel, uid)
		return
	}
	for _, kv := range strings.Split(query, "&") {
		k, _, _ := strings.Cut(kv, "=")
		if name, isVar := strings.CutPrefix(k, "var-"); isVar && !slices.ContainsFunc(target.Templating.List, func(v Variable) bool { return v.Name == name }) {
			t.Errorf("panel %q link sets $%s, which %s does not have", panel, name, uid)
		}
	}
}

func checkFormats(t *testing.T, b Built) {
	t.Helper()
	for _, p := range b.Dashboard.Panels {
		for _, tg := range p.Targets {
			want, wantType := FormatTable, "table"
			if p.Type == "timeseries" {
				want, wantType = FormatTimeSeries, "timeseries"
			}
			if tg.Format != want || tg.QueryType != wantType {
				t.Errorf("panel %q (%s) has format %d/%s, want %d/%s", p.Title, p.Type, tg.Format, tg.QueryType, want, wantType)
			}
		}
	}
	for _, qu := range b.Queries {
		switch {
		case qu.PanelType == "timeseries":
			if len(qu.Columns) < 2 || qu.Columns[0] != "time" {
				t.Errorf("%s: a time series returns time first, then values; it returns %v", qu.Where, qu.Columns)
			}
		case strings.HasPrefix(qu.Where, "annotation "):
			if !slices.Contains(qu.Columns, "time") || !slices.Contains(qu.Columns, "text") {
				t.Errorf("%s: an annotation returns time and text, it returns %v", qu.Where, qu.Columns)
			}
		case strings.HasPrefix(qu.Where, "variable "):
			if len(qu.Columns) < 1 || len(qu.Columns) > 2 {
				t.Errorf("%s: a variable returns a value (and a text), it returns %v", qu.Where, qu.Columns)
			}
		}
	}
}

func checkFields(t *testing.T, b Built) {
	t.Helper()
	for _, qu := range b.Queries {
		seen := map[string]bool{}
		for _, c := range qu.Columns {
			if seen[c] {
				t.Errorf("%s returns column %s twice", qu.Where, c)
			}
			seen[c] = true
		}
		for _, n := range qu.FieldNames {
			if !seen[n] {
				t.Errorf("%s: an override or link names column %q, which its query does not return (%v)", qu.Where, n, qu.Columns)
			}
		}
		if qu.PanelType == "table" || qu.PanelType == "stat" {
			named := map[string]bool{}
			for _, n := range qu.FieldNames {
				named[n] = true
			}
			for _, c := range qu.Columns {
				if !named[c] {
					t.Errorf("%s: column %s has no display settings (a title at least)", qu.Where, c)
				}
			}
		}
	}
}
