package dashboards

// The subset of Grafana's dashboard JSON model (schema version 39) that the
// dashboards use. Field names follow Grafana's JSON; maps are used only
// where Grafana's own model is open-ended (panel options, custom field
// config), and encoding/json writes their keys sorted, so the generated
// files are stable.

// SchemaVersion is the dashboard schema version the files are written in;
// newer Grafana versions migrate it on load.
const SchemaVersion = 39

// Dashboard is one Grafana dashboard.
type Dashboard struct {
	UID           string      `json:"uid"`
	Title         string      `json:"title"`
	Description   string      `json:"description,omitempty"`
	Tags          []string    `json:"tags"`
	Timezone      string      `json:"timezone"`
	Editable      bool        `json:"editable"`
	GraphTooltip  int         `json:"graphTooltip"`
	Refresh       string      `json:"refresh,omitempty"`
	SchemaVersion int         `json:"schemaVersion"`
	Time          TimeRange   `json:"time"`
	Templating    Templating  `json:"templating"`
	Annotations   Annotations `json:"annotations"`
	Links         []DashLink  `json:"links"`
	Panels        []Panel     `json:"panels"`
}

// TimeRange is the default time range, in Grafana's relative syntax.
type TimeRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Templating holds the dashboard's variables.
type Templating struct {
	List []Variable `json:"list"`
}

// Variable is a template variable: a query (SQL on the ClickHouse data
// source) or a custom list of values.
type Variable struct {
	Name        string         `json:"name"`
	Label       string         `json:"label"`
	Description string         `json:"description,omitempty"`
	Type        string         `json:"type"` // "query" or "custom"
	Datasource  *DataSourceRef `json:"datasource,omitempty"`
	// Query is the SQL of a query variable (the ClickHouse plugin takes a
	// plain string), or the comma-separated values of a custom one.
	Query      string   `json:"query"`
	Definition string   `json:"definition,omitempty"`
	Multi      bool     `json:"multi"`
	IncludeAll bool     `json:"includeAll"`
	Refresh    int      `json:"refresh,omitempty"` // 2: on time range change
	Sort       int      `json:"sort,omitempty"`    // 1: alphabetical
	Current    Current  `json:"current"`
	Options    []Option `json:"options"`
	Hide       int      `json:"hide"`
}

// Current is a variable's selection when the dashboard opens.
type Current struct {
	Text  any `json:"text"`
	Value any `json:"value"`
}

// Option is one value of a custom variable.
type Option struct {
	Text     string `json:"text"`
	Value    string `json:"value"`
	Selected bool   `json:"selected"`
}

// Annotations holds the dashboard's annotation queries.
type Annotations struct {
	List []Annotation `json:"list"`
}

// Annotation is an annotation query: its rows (time, timeEnd, text, tags)
// are drawn on every time series panel.
type Annotation struct {
	Name       string         `json:"name"`
	Datasource *DataSourceRef `json:"datasource"`
	Enable     bool           `json:"enable"`
	Hide       bool           `json:"hide"`
	IconColor  string         `json:"iconColor"`
	BuiltIn    int            `json:"builtIn,omitempty"`
	Type       string         `json:"type,omitempty"`
	Target     *Target        `json:"target,omitempty"`
}

// DashLink is a link in the dashboard's header.
type DashLink struct {
	Title       string   `json:"title"`
	Type        string   `json:"type"` // "dashboards" or "link"
	Tags        []string `json:"tags"`
	AsDropdown  bool     `json:"asDropdown"`
	IncludeVars bool     `json:"includeVars"`
	KeepTime    bool     `json:"keepTime"`
	URL         string   `json:"url,omitempty"`
}

// DataSourceRef names a data source by type and uid.
type DataSourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Panel is one panel, or a row (Type "row").
type Panel struct {
	ID              int              `json:"id"`
	Type            string           `json:"type"`
	Title           string           `json:"title"`
	Description     string           `json:"description,omitempty"`
	GridPos         GridPos          `json:"gridPos"`
	Datasource      *DataSourceRef   `json:"datasource,omitempty"`
	Targets         []Target         `json:"targets,omitempty"`
	FieldConfig     *FieldConfig     `json:"fieldConfig,omitempty"`
	Options         map[string]any   `json:"options,omitempty"`
	Transformations []Transformation `json:"transformations,omitempty"`
	Collapsed       *bool            `json:"collapsed,omitempty"`
	Panels          []Panel          `json:"panels,omitempty"`
}

// GridPos places a panel on the 24-column grid.
type GridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

// Target is a query of the ClickHouse data source plugin (v4) in its SQL
// editor.
type Target struct {
	RefID         string         `json:"refId"`
	Datasource    *DataSourceRef `json:"datasource"`
	EditorType    string         `json:"editorType"` // "sql"
	QueryType     string         `json:"queryType"`  // "table" or "timeseries"
	Format        int            `json:"format"`     // FormatTable or FormatTimeSeries
	PluginVersion string         `json:"pluginVersion"`
	RawSQL        string         `json:"rawSql"`
}

// Query formats of the plugin (and of its backend, sqlutil).
const (
	FormatTimeSeries = 0
	FormatTable      = 1
)

// FieldConfig is how fields are displayed.
type FieldConfig struct {
	Defaults  FieldDefaults `json:"defaults"`
	Overrides []Override    `json:"overrides"`
}

// FieldDefaults apply to every field of a panel.
type FieldDefaults struct {
	Unit       string         `json:"unit,omitempty"`
	Decimals   *int           `json:"decimals,omitempty"`
	Min        *float64       `json:"min,omitempty"`
	Max        *float64       `json:"max,omitempty"`
	NoValue    string         `json:"noValue,omitempty"`
	Color      map[string]any `json:"color,omitempty"`
	Thresholds *Thresholds    `json:"thresholds,omitempty"`
	Mappings   []ValueMapping `json:"mappings"`
	Custom     map[string]any `json:"custom,omitempty"`
	Links      []DataLink     `json:"links,omitempty"`
}

// Thresholds colour values by steps; the first step's value is nil (from
// minus infinity).
type Thresholds struct {
	Mode  string `json:"mode"` // "absolute" or "percentage"
	Steps []Step `json:"steps"`
}

// Step is one threshold step.
type Step struct {
	Color string   `json:"color"`
	Value *float64 `json:"value"`
}

// ValueMapping maps values to text and colour.
type ValueMapping struct {
	Type    string         `json:"type"` // "value", "range", "special"
	Options map[string]any `json:"options"`
}

// Override changes the config of the fields a matcher selects.
type Override struct {
	Matcher    Matcher    `json:"matcher"`
	Properties []Property `json:"properties"`
}

// Matcher selects fields, e.g. by name.
type Matcher struct {
	ID      string `json:"id"`
	Options any    `json:"options"`
}

// Property is one overridden field setting.
type Property struct {
	ID    string `json:"id"`
	Value any    `json:"value"`
}

// DataLink is a link from a field's values; its URL may use
// ${__data.fields.<column>} and ${__url_time_range}.
type DataLink struct {
	Title string `json:"title"`
	URL   string `json:"url"`
}

// Transformation is a panel transformation (e.g. organize).
type Transformation struct {
	ID      string         `json:"id"`
	Options map[string]any `json:"options"`
}
