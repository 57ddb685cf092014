package dashboards

import (
	"strconv"
	"strings"
)

// query is a SQL query of the ClickHouse data source and the columns it
// returns, in order. The columns are not part of Grafana's JSON: the tests
// check that ClickHouse returns exactly them, and that every column a
// panel's overrides and links name is one of them.
type query struct {
	sql     string
	columns []string
}

// q builds a query; its SQL is trimmed of the blank lines a Go raw string
// starts and ends with.
func q(sql string, columns ...string) query {
	return query{sql: strings.TrimSpace(sql), columns: columns}
}

// Query is one query a dashboard runs: a panel's target, a variable's or an
// annotation's query.
type Query struct {
	// Where names it for people: "panel 3 (Airings)", "variable offer".
	Where string
	// PanelType is the panel's type ("" for variables and annotations).
	PanelType string
	// Format is the target's format (FormatTable or FormatTimeSeries).
	Format int
	// SQL is the query as stored in the dashboard.
	SQL string
	// Columns are the columns it returns, in order.
	Columns []string
	// FieldNames are the columns the panel's field overrides and data links
	// refer to (each must be one of Columns).
	FieldNames []string
}

// Built is a dashboard and every query it runs.
type Built struct {
	Dashboard Dashboard
	Queries   []Query
}

// builder assembles one dashboard.
type builder struct {
	b Built
}

func newBuilder(d Dashboard) *builder {
	d.SchemaVersion = SchemaVersion
	d.Editable = true
	d.GraphTooltip = 1 // shared crosshair
	d.Timezone = "browser"
	d.Tags = append([]string{Tag}, d.Tags...)
	d.Links = []DashLink{{Title: "airtally", Type: "dashboards", Tags: []string{Tag}, AsDropdown: true, KeepTime: true}}
	d.Templating.List = []Variable{}
	d.Annotations.List = []Annotation{{
		Name: "Annotations & Alerts", BuiltIn: 1, Type: "dashboard", Enable: true, Hide: true,
		IconColor:  "rgba(0, 211, 255, 1)",
		Datasource: &DataSourceRef{Type: "grafana", UID: "-- Grafana --"},
	}}
	return &builder{b: Built{Dashboard: d}}
}

func ds() *DataSourceRef { return &DataSourceRef{Type: DatasourceType, UID: DatasourceUID} }

func target(ref string, format int, qu query) Target {
	qt := "table"
	if format == FormatTimeSeries {
		qt = "timeseries"
	}
	return Target{
		RefID: ref, Datasource: ds(), EditorType: "sql", QueryType: qt, Format: format,
		PluginVersion: PluginVersion, RawSQL: qu.sql,
	}
}

// queryVariable adds a variable whose options come from SQL: the first
// column is the value, the second (if any) the text shown.
func (b *builder) queryVariable(name, label, desc string, multi bool, qu query) {
	v := Variable{
		Name: name, Label: label, Description: desc, Type: "query", Datasource: ds(),
		Query: qu.sql, Definition: qu.sql, Multi: multi, IncludeAll: multi,
		Refresh: 2, Sort: 0, Options: []Option{},
	}
	if multi {
		v.Current = Current{Text: []string{"All"}, Value: []string{"$__all"}}
	} else {
		v.Current = Current{Text: "", Value: ""}
	}
	b.b.Dashboard.Templating.List = append(b.b.Dashboard.Templating.List, v)
	b.b.Queries = append(b.b.Queries, Query{Where: "variable " + name, Format: FormatTable, SQL: qu.sql, Columns: qu.columns})
}

// customVariable adds a variable with fixed values; the first value of
// selected is selected (all of them for a multi-value variable).
func (b *builder) customVariable(name, label, desc string, multi bool, values []string, texts []string, selected string) {
	v := Variable{
		Name: name, Label: label, Description: desc, Type: "custom", Query: strings.Join(values, ","),
		Multi: multi, IncludeAll: multi, Options: []Option{},
	}
	for i, val := range values {
		text := val
		if texts != nil {
			text = texts[i]
			v.Query = joinCustom(values, texts)
		}
		v.Options = append(v.Options, Option{Text: text, Value: val, Selected: !multi && val == selected})
		if !multi && val == selected {
			v.Current = Current{Text: text, Value: val}
		}
	}
	if multi {
		all := Option{Text: "All", Value: "$__all", Selected: true}
		v.Options = append([]Option{all}, v.Options...)
		v.Current = Current{Text: []string{"All"}, Value: []string{"$__all"}}
	}
	b.b.Dashboard.Templating.List = append(b.b.Dashboard.Templating.List, v)
}

// joinCustom writes a custom variable's values with texts, "text : value".
func joinCustom(values, texts []string) string {
	parts := make([]string, len(values))
	for i := range values {
		parts[i] = texts[i] + " : " + values[i]
	}
	return strings.Join(parts, ",")
}

// annotation adds an annotation query: its rows' time (and timeEnd, for a
// region), text and tags are drawn on the time series panels.
func (b *builder) annotation(name, color string, qu query) {
	t := target("Anno", FormatTable, qu)
	b.b.Dashboard.Annotations.List = append(b.b.Dashboard.Annotations.List, Annotation{
		Name: name, Datasource: ds(), Enable: true, IconColor: color, Target: &t,
	})
	b.b.Queries = append(b.b.Queries, Query{Where: "annotation " + name, Format: FormatTable, SQL: qu.sql, Columns: qu.columns})
}

// row adds a row header.
func (b *builder) row(id int, title string, y int) {
	collapsed := false
	b.b.Dashboard.Panels = append(b.b.Dashboard.Panels, Panel{
		ID: id, Type: "row", Title: title, GridPos: GridPos{H: 1, W: 24, X: 0, Y: y}, Collapsed: &collapsed, Panels: []Panel{},
	})
}

// panel adds a panel that runs qu; its format follows its type.
func (b *builder) panel(p Panel, qu query) {
	format := FormatTable
	if p.Type == "timeseries" {
		format = FormatTimeSeries
	}
	p.Datasource = ds()
	p.Targets = []Target{target("A", format, qu)}
	if p.FieldConfig == nil {
		p.FieldConfig = &FieldConfig{}
	}
	if p.FieldConfig.Defaults.Mappings == nil {
		p.FieldConfig.Defaults.Mappings = []ValueMapping{}
	}
	if p.FieldConfig.Overrides == nil {
		p.FieldConfig.Overrides = []Override{}
	}
	b.b.Dashboard.Panels = append(b.b.Dashboard.Panels, p)
	b.b.Queries = append(b.b.Queries, Query{
		Where: "panel " + strconv.Itoa(p.ID) + " (" + p.Title + ")", PanelType: p.Type, Format: format,
		SQL: qu.sql, Columns: qu.columns, FieldNames: fieldNames(p),
	})
}

// fieldNames are the columns a panel's overrides and data links name.
func fieldNames(p Panel) []string {
	var names []string
	for _, o := range p.FieldConfig.Overrides {
		if o.Matcher.ID == "byName" {
			names = append(names, o.Matcher.Options.(string))
		}
		for _, pr := range o.Properties {
			if pr.ID == "links" {
				for _, l := range pr.Value.([]DataLink) {
					names = append(names, linkFields(l.URL)...)
				}
			}
		}
	}
	for _, l := range p.FieldConfig.Defaults.Links {
		names = append(names, linkFields(l.URL)...)
	}
	return names
}

// linkFields are the ${__data.fields.<name>} a link uses.
func linkFields(url string) []string {
	const prefix = "${__data.fields."
	var names []string
	for {
		i := strings.Index(url, prefix)
		if i < 0 {
			return names
		}
		url = url[i+len(prefix):]
		end := strings.IndexAny(url, ":}")
		if end < 0 {
			return names
		}
		names = append(names, url[:end])
	}
}

func (b *builder) done() Built { return b.b }

// Panel constructors. Positions are on Grafana's 24-column grid.

func pos(x, y, w, h int) GridPos { return GridPos{H: h, W: w, X: x, Y: y} }

func tablePanel(id int, title, desc string, gp GridPos, overrides ...Override) Panel {
	return Panel{
		ID: id, Type: "table", Title: title, Description: desc, GridPos: gp,
		FieldConfig: &FieldConfig{
			Defaults:  FieldDefaults{Custom: map[string]any{"align": "auto", "cellOptions": map[string]any{"type": "auto"}, "filterable": true}},
			Overrides: overrides,
		},
		Options: map[string]any{"showHeader": true, "cellHeight": "sm", "footer": map[string]any{"show": false, "reducer": []string{"sum"}, "fields": ""}},
	}
}

func timeseriesPanel(id int, title, desc string, gp GridPos, unit string, overrides ...Override) Panel {
	return Panel{
		ID: id, Type: "timeseries", Title: title, Description: desc, GridPos: gp,
		FieldConfig: &FieldConfig{
			Defaults: FieldDefaults{
				Unit:  unit,
				Color: map[string]any{"mode": "palette-classic"},
				Custom: map[string]any{
					"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
					"spanNulls": false, "lineInterpolation": "linear",
				},
			},
			Overrides: overrides,
		},
		Options: map[string]any{
			"legend":  map[string]any{"displayMode": "list", "placement": "bottom", "showLegend": true, "calcs": []string{}},
			"tooltip": map[string]any{"mode": "multi", "sort": "none"},
		},
	}
}

func statPanel(id int, title, desc string, gp GridPos, overrides ...Override) Panel {
	return Panel{
		ID: id, Type: "stat", Title: title, Description: desc, GridPos: gp,
		FieldConfig: &FieldConfig{
			Defaults:  FieldDefaults{Color: map[string]any{"mode": "thresholds"}, Thresholds: neutral()},
			Overrides: overrides,
		},
		Options: map[string]any{
			"reduceOptions": map[string]any{"calcs": []string{"lastNotNull"}, "fields": "", "values": false},
			"colorMode":     "value", "graphMode": "none", "justifyMode": "auto", "orientation": "horizontal",
			"textMode": "value_and_name", "wideLayout": true,
		},
	}
}

// Field overrides.

func byName(column string, props ...Property) Override {
	return Override{Matcher: Matcher{ID: "byName", Options: column}, Properties: props}
}

func title(s string) Property { return Property{ID: "displayName", Value: s} }
func unit(u string) Property  { return Property{ID: "unit", Value: u} }
func decimals(n int) Property { return Property{ID: "decimals", Value: n} }
func width(px int) Property   { return Property{ID: "custom.width", Value: px} }
func hidden() Property        { return Property{ID: "custom.hidden", Value: true} }
func cell(kind string) Property {
	return Property{ID: "custom.cellOptions", Value: map[string]any{"type": kind}}
}
func links(ls ...DataLink) Property {
	return Property{ID: "links", Value: ls}
}
func thresholds(t *Thresholds) Property { return Property{ID: "thresholds", Value: t} }
func mappings(ms ...ValueMapping) Property {
	return Property{ID: "mappings", Value: ms}
}
func color(mode string) Property { return Property{ID: "color", Value: map[string]any{"mode": mode}} }

func fp(v float64) *float64 { return &v }

// neutral is a single-colour threshold.
func neutral() *Thresholds {
	return &Thresholds{Mode: "absolute", Steps: []Step{{Color: "text", Value: nil}}}
}

// ratioToTarget colours a ratio to target: red below 90 %, orange below
// 100 %, green from 100 % (on target).
func ratioToTarget() *Thresholds {
	return &Thresholds{Mode: "absolute", Steps: []Step{
		{Color: "red", Value: nil}, {Color: "orange", Value: fp(0.9)}, {Color: "green", Value: fp(1)},
	}}
}

// valueColors maps text values to colours (and optional display texts).
func valueColors(pairs ...string) ValueMapping {
	opts := map[string]any{}
	for i := 0; i+1 < len(pairs); i += 2 {
		opts[pairs[i]] = map[string]any{"color": pairs[i+1], "index": i / 2}
	}
	return ValueMapping{Type: "value", Options: opts}
}
