package dashboards

// Names shared by the dashboards, the provisioning files under
// deploy/grafana and `airtally dashboards push`.
const (
	// DatasourceType is the official ClickHouse data source plugin.
	DatasourceType = "grafana-clickhouse-datasource"
	// PluginVersion is the plugin version the dashboards are written for
	// (the one docker-compose.yml installs).
	PluginVersion = "4.20.0"
	// DatasourceUID is the uid every target uses: the provisioned (or
	// pushed) data source, connected as ClickHouse's read-only user.
	DatasourceUID = "airtally-clickhouse"
	// DatasourceName is the data source's name in Grafana.
	DatasourceName = "airtally ClickHouse"
	// FolderUID and FolderTitle name the folder the dashboards live in.
	FolderUID   = "airtally"
	FolderTitle = "airtally"
	// Tag is on every dashboard; the header links list the dashboards
	// with it.
	Tag = "airtally"
)

// Dashboard uids: stable, so links and bookmarks keep working.
const (
	UIDScorecard    = "airtally-airing-scorecard"
	UIDDetail       = "airtally-airing-detail"
	UIDMedia        = "airtally-media-performance"
	UIDCompleteness = "airtally-data-completeness"
)

// All returns the four dashboards with the queries they run, in a fixed
// order: airing scorecard, airing detail, media performance, data
// completeness.
func All() []Built {
	return []Built{scorecard(), detail(), media(), completeness()}
}
