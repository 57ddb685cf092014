package grafanapush

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"time"

	gapi "github.com/grafana/grafana-api-golang-client"

	"github.com/airtally/airtally/dashboards"
)

// Sentinel errors; every *Error wraps one of them.
var (
	// ErrUnreachable: no HTTP answer from the URL.
	ErrUnreachable = errors.New("grafanapush: Grafana unreachable")
	// ErrNoGrafana: the URL answers, but /api/health is not found.
	ErrNoGrafana = errors.New("grafanapush: no Grafana API at the URL")
	// ErrAuth: Grafana refused the token (401).
	ErrAuth = errors.New("grafanapush: token refused")
	// ErrForbidden: the token's service account lacks a permission (403).
	ErrForbidden = errors.New("grafanapush: permission denied")
	// ErrPluginMissing: the ClickHouse data source plugin is not installed.
	ErrPluginMissing = errors.New("grafanapush: ClickHouse plugin not installed")
	// ErrConflict: a dashboard kept changing in Grafana while it was saved
	// (version mismatch twice).
	ErrConflict = errors.New("grafanapush: version conflict")
	// ErrNameTaken: another dashboard of the same title is in the folder.
	ErrNameTaken = errors.New("grafanapush: dashboard title taken")
	// ErrPassword: the data source does not exist and no password was given
	// to create it with.
	ErrPassword = errors.New("grafanapush: data source password needed")
	// ErrGrafana: any other refusal.
	ErrGrafana = errors.New("grafanapush: Grafana refused a request")
)

// Error is a failed step of a push.
type Error struct {
	// Op is the step, e.g. "create folder airtally".
	Op string
	// Status is the HTTP status Grafana answered (0 when none).
	Status int
	// Kind is the sentinel error.
	Kind error
	// Message is a sentence for the user: no server text, no token.
	Message string
	// Err is the detail, for the log.
	Err error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s: %s", e.Op, e.Kind)
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

// Datasource is how Grafana connects to ClickHouse: the read-only user.
type Datasource struct {
	// Host and Port of ClickHouse as Grafana reaches them; defaults
	// "clickhouse" and 9000 (native protocol).
	Host string
	Port int
	// Protocol is "native" (default) or "http".
	Protocol string
	// Secure connects with TLS.
	Secure bool
	// Username is the read-only user; default "grafana".
	Username string
	// Password is its password. Required to create the data source; when
	// empty, an existing data source keeps the password it has.
	Password string
	// Database is the default database the dashboards' unqualified table
	// names resolve in; default "airtally".
	Database string
}

// Config configures a push.
type Config struct {
	// URL is Grafana's base URL, e.g. https://grafana.example.com. Required.
	URL string
	// Token is a service account token (Admin: it manages data sources).
	// Required. It is sent as a bearer token and never logged.
	Token string
	// Datasource is the ClickHouse data source to create or update.
	Datasource Datasource
	// FolderTitle is the title of the dashboards' folder (uid
	// dashboards.FolderUID); default dashboards.FolderTitle.
	FolderTitle string
	// Dashboards to push; default every dashboard of package dashboards.
	Dashboards []dashboards.Dashboard
	// Message is the version message of saved dashboards; default
	// "airtally dashboards push".
	Message string
	// Timeout bounds each request; default 30s.
	Timeout time.Duration
	// Transport carries the requests; default http.DefaultTransport.
	Transport http.RoundTripper
	// Logger receives progress at debug level; nil means none.
	Logger *slog.Logger
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.Datasource.Host == "" {
		c.Datasource.Host = "clickhouse"
	}
	if c.Datasource.Port == 0 {
		c.Datasource.Port = 9000
	}
	if c.Datasource.Protocol == "" {
		c.Datasource.Protocol = "native"
	}
	if c.Datasource.Username == "" {
		c.Datasource.Username = "grafana"
	}
	if c.Datasource.Database == "" {
		c.Datasource.Database = "airtally"
	}
	if c.FolderTitle == "" {
		c.FolderTitle = dashboards.FolderTitle
	}
	if c.Dashboards == nil {
		for _, b := range dashboards.All() {
			c.Dashboards = append(c.Dashboards, b.Dashboard)
		}
	}
	if c.Message == "" {
		c.Message = "airtally dashboards push"
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Transport == nil {
		c.Transport = http.DefaultTransport
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first field that is wrong (defaults applied first).
func (c Config) Validate() error {
	c = c.WithDefaults()
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("grafanapush: URL %q must be an http or https URL", c.URL)
	case c.Token == "":
		return errors.New("grafanapush: a service account token is required")
	case strings.ContainsAny(c.Token, " \t\r\n"):
		return errors.New("grafanapush: the token holds white space (a stray line break in its file?)")
	case c.Datasource.Protocol != "native" && c.Datasource.Protocol != "http":
		return fmt.Errorf("grafanapush: data source protocol %q must be native or http", c.Datasource.Protocol)
	case c.Datasource.Port < 1 || c.Datasource.Port > 65535:
		return fmt.Errorf("grafanapush: data source port %d is not a port", c.Datasource.Port)
	case c.Timeout < 0:
		return errors.New("grafanapush: timeout must not be negative")
	}
	for _, d := range c.Dashboards {
		if d.UID == "" || d.Title == "" {
			return errors.New("grafanapush: every dashboard needs a uid and a title")
		}
	}
	return nil
}

// Action is what a push did to one thing.
type Action string

// Actions.
const (
	Created     Action = "created"
	Updated     Action = "updated"
	Unchanged   Action = "unchanged"
	Provisioned Action = "provisioned from files here, left as it is"
)

// Item is one thing a push handled and what it did.
type Item struct {
	What   string // e.g. `folder "airtally"`, `dashboard "Airing scorecard"`
	UID    string
	Action Action
}

// Result lists what a push did, in order: the folder, the data source,
// then each dashboard.
type Result struct {
	GrafanaVersion string
	Items          []Item
}

// pusher is one push in progress.
type pusher struct {
	cfg    Config
	client *gapi.Client
	http   *http.Client
	rec    *recorder
}

// Push creates or updates the folder, the data source and the dashboards
// in the Grafana at cfg.URL. It stops at the first failure, an *Error.
func Push(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.WithDefaults()
	rec := &recorder{ctx: ctx, base: cfg.Transport}
	hc := &http.Client{Transport: rec, Timeout: cfg.Timeout}
	client, err := gapi.New(cfg.URL, gapi.Config{APIKey: cfg.Token, Client: hc})
	if err != nil {
		return Result{}, fmt.Errorf("grafanapush: client: %w", err)
	}
	p := &pusher{cfg: cfg, client: client, http: hc, rec: rec}
	var res Result
	health, err := client.Health()
	if err != nil {
		return res, p.fail("reach Grafana", err)
	}
	res.GrafanaVersion = health.Version
	if err := p.checkPlugin(ctx); err != nil {
		return res, err
	}
	item, err := p.folder()
	if err != nil {
		return res, err
	}
	res.Items = append(res.Items, item)
	if item, err = p.datasource(); err != nil {
		return res, err
	}
	res.Items = append(res.Items, item)
	for _, d := range cfg.Dashboards {
		item, err := p.dashboard(d)
		if err != nil {
			return res, err
		}
		res.Items = append(res.Items, item)
	}
	return res, nil
}

// checkPlugin asks Grafana for the ClickHouse plugin's settings: 404 means
// it is not installed. (The API client has no call for it.)
func (p *pusher) checkPlugin(ctx context.Context) error {
	const op = "check the ClickHouse plugin"
	u, err := url.JoinPath(p.cfg.URL, "api", "plugins", dashboards.DatasourceType, "settings")
	if err != nil {
		return fmt.Errorf("grafanapush: plugin URL: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("grafanapush: plugin request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+p.cfg.Token)
	resp, err := p.http.Do(req)
	if err != nil {
		return p.fail(op, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)); err != nil {
		return p.fail(op, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return &Error{Op: op, Status: resp.StatusCode, Kind: ErrPluginMissing, Message: fmt.Sprintf(
			"the ClickHouse data source plugin (%s) is not installed in this Grafana: install it "+
				"(grafana cli plugins install %s, or GF_PLUGINS_PREINSTALL_SYNC=%s@%s) and push again",
			dashboards.DatasourceType, dashboards.DatasourceType, dashboards.DatasourceType, dashboards.PluginVersion)}
	case resp.StatusCode >= 400:
		return p.statusError(op, resp.StatusCode, nil, nil)
	}
	p.cfg.Logger.Debug("grafana: ClickHouse plugin installed")
	return nil
}

func (p *pusher) folder() (Item, error) {
	uid, title := dashboards.FolderUID, p.cfg.FolderTitle
	item := Item{What: fmt.Sprintf("folder %q", title), UID: uid}
	f, err := p.client.FolderByUID(uid)
	switch {
	case isNotFound(err):
		if _, err := p.client.NewFolder(title, uid); err != nil {
			return item, p.fail("create folder "+uid, err)
		}
		item.Action = Created
	case err != nil:
		return item, p.fail("read folder "+uid, err)
	case f.Title == title:
		item.Action = Unchanged
	default:
		if err := p.client.UpdateFolder(uid, title); err != nil {
			return item, p.fail("rename folder "+uid, err)
		}
		item.Action = Updated
	}
	p.cfg.Logger.Debug("grafana: folder", "uid", uid, "action", item.Action)
	return item, nil
}

// jsonData is the plugin's (v4) connection settings.
func (p *pusher) jsonData() map[string]any {
	d := p.cfg.Datasource
	return map[string]any{
		"host":            d.Host,
		"port":            float64(d.Port),
		"protocol":        d.Protocol,
		"secure":          d.Secure,
		"username":        d.Username,
		"defaultDatabase": d.Database,
	}
}

func (p *pusher) datasource() (Item, error) {
	uid := dashboards.DatasourceUID
	item := Item{What: fmt.Sprintf("data source %q", dashboards.DatasourceName), UID: uid}
	want := &gapi.DataSource{
		UID: uid, Name: dashboards.DatasourceName, Type: dashboards.DatasourceType, Access: "proxy",
		JSONData: p.jsonData(),
	}
	if p.cfg.Datasource.Password != "" {
		want.SecureJSONData = map[string]any{"password": p.cfg.Datasource.Password}
	}
	have, err := p.client.DataSourceByUID(uid)
	switch {
	case isNotFound(err):
		if p.cfg.Datasource.Password == "" {
			return item, &Error{Op: "create data source " + uid, Kind: ErrPassword,
				Message: "the data source does not exist in Grafana yet: give the read-only ClickHouse user's password to create it"}
		}
		if _, err := p.client.NewDataSource(want); err != nil {
			return item, p.fail("create data source "+uid, err)
		}
		item.Action = Created
	case err != nil:
		return item, p.fail("read data source "+uid, err)
	case have.ReadOnly:
		item.Action = Provisioned
	case p.cfg.Datasource.Password == "" && have.Name == want.Name && have.Type == want.Type && sameJSON(have.JSONData, want.JSONData):
		item.Action = Unchanged
	default:
		want.ID, want.Version = have.ID, have.Version
		if err := p.client.UpdateDataSourceByUID(want); err != nil {
			return item, p.fail("update data source "+uid, err)
		}
		item.Action = Updated
	}
	p.cfg.Logger.Debug("grafana: data source", "uid", uid, "action", item.Action)
	return item, nil
}

// sameJSON reports whether have holds every key of want with the same
// value (Grafana may add keys of its own).
func sameJSON(have, want map[string]any) bool {
	for k, v := range want {
		if !reflect.DeepEqual(normalizeJSON(have[k]), normalizeJSON(v)) {
			return false
		}
	}
	return true
}

// normalizeJSON round-trips v through JSON, so that values decoded by
// Grafana's client and values built here compare alike.
func normalizeJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return v
	}
	return out
}

// model is a dashboard as the API carries it.
func model(d dashboards.Dashboard) (map[string]any, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("grafanapush: encode dashboard %s: %w", d.UID, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("grafanapush: decode dashboard %s: %w", d.UID, err)
	}
	return m, nil
}

// sameDashboard compares a dashboard Grafana holds with the one to push,
// leaving out what Grafana sets itself (id, version).
func sameDashboard(have, want map[string]any) bool {
	h := map[string]any{}
	for k, v := range have {
		if k != "id" && k != "version" {
			h[k] = v
		}
	}
	return reflect.DeepEqual(normalizeJSON(h), normalizeJSON(want))
}

func (p *pusher) dashboard(d dashboards.Dashboard) (Item, error) {
	item := Item{What: fmt.Sprintf("dashboard %q", d.Title), UID: d.UID}
	want, err := model(d)
	if err != nil {
		return item, err
	}
	for attempt := 1; ; attempt++ {
		have, err := p.client.DashboardByUID(d.UID)
		save := gapi.Dashboard{Model: copyMap(want), FolderUID: dashboards.FolderUID, Message: p.cfg.Message}
		switch {
		case isNotFound(err):
			item.Action = Created
		case err != nil:
			return item, p.fail("read dashboard "+d.UID, err)
		case have.Meta.FolderUID == dashboards.FolderUID && sameDashboard(have.Model, want):
			item.Action = Unchanged
			p.cfg.Logger.Debug("grafana: dashboard", "uid", d.UID, "action", item.Action)
			return item, nil
		default:
			// Save over the version Grafana holds: if someone saves it in
			// between, Grafana answers 412 version-mismatch.
			save.Model["id"] = have.Model["id"]
			save.Model["version"] = have.Model["version"]
			item.Action = Updated
		}
		_, err = p.client.NewDashboard(save)
		if err == nil {
			p.cfg.Logger.Debug("grafana: dashboard", "uid", d.UID, "action", item.Action)
			return item, nil
		}
		status, body := p.rec.last()
		switch {
		case status == http.StatusPreconditionFailed && grafanaStatus(body) == "version-mismatch" && attempt < 2:
			continue
		case status == http.StatusPreconditionFailed && grafanaStatus(body) == "version-mismatch":
			return item, &Error{Op: "save dashboard " + d.UID, Status: status, Kind: ErrConflict, Err: err, Message: fmt.Sprintf(
				"dashboard %q kept changing in Grafana while it was being saved: push again when nobody is editing it", d.Title)}
		case status == http.StatusPreconditionFailed && grafanaStatus(body) == "name-exists":
			return item, &Error{Op: "save dashboard " + d.UID, Status: status, Kind: ErrNameTaken, Err: err, Message: fmt.Sprintf(
				"another dashboard titled %q is in folder %q: rename or delete it in Grafana, then push again", d.Title, p.cfg.FolderTitle)}
		case status == http.StatusBadRequest && strings.Contains(strings.ToLower(string(body)), "provisioned"):
			item.Action = Provisioned
			return item, nil
		default:
			return item, p.fail("save dashboard "+d.UID, err)
		}
	}
}

func copyMap(m map[string]any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// grafanaStatus is the "status" field of a Grafana error body
// ("version-mismatch", "name-exists", ...).
func grafanaStatus(body []byte) string {
	var b struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal(body, &b)
	return b.Status
}

func isNotFound(err error) bool {
	var nf gapi.ErrNotFound
	return errors.As(err, &nf)
}

// fail turns a failed request into an *Error, by the status Grafana
// answered (the recorder saw it) or by the lack of an answer.
func (p *pusher) fail(op string, err error) error {
	status, body := p.rec.last()
	if status == 0 {
		return &Error{Op: op, Kind: ErrUnreachable, Err: err, Message: fmt.Sprintf(
			"could not reach Grafana at %s (is it running, and is the URL right?)", p.cfg.URL)}
	}
	return p.statusError(op, status, body, err)
}

func (p *pusher) statusError(op string, status int, body []byte, err error) error {
	e := &Error{Op: op, Status: status, Err: err}
	switch {
	case status == http.StatusUnauthorized:
		e.Kind, e.Message = ErrAuth, "Grafana refused the token (401 Unauthorized): check that it is a valid, unexpired service account token of this Grafana"
	case status == http.StatusForbidden:
		e.Kind, e.Message = ErrForbidden, fmt.Sprintf("the service account may not %s (403 Forbidden): give it the Admin role (data sources need it), then push again", op)
	case status == http.StatusNotFound && op == "reach Grafana":
		e.Kind, e.Message = ErrNoGrafana, fmt.Sprintf("there is no Grafana API at %s (404 Not Found): check the URL (include any sub-path Grafana is served under)", p.cfg.URL)
	default:
		e.Kind, e.Message = ErrGrafana, fmt.Sprintf("Grafana refused to %s (HTTP %d); the details are in the log", op, status)
	}
	if body != nil && e.Err == nil {
		e.Err = fmt.Errorf("grafana answered %d", status)
	}
	return e
}

// recorder binds every request to the push's context (the API client has
// no context of its own) and remembers the last answer's status and body,
// which the client folds into a plain error.
type recorder struct {
	ctx  context.Context
	base http.RoundTripper

	mu     sync.Mutex
	status int
	body   []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.status, r.body = 0, nil
	r.mu.Unlock()
	// The request's own context (the client's timeout) and the push's
	// both end it; the body is read here, before either is released.
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	defer context.AfterFunc(r.ctx, cancel)()
	resp, err := r.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("grafanapush: read answer: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	r.status, r.body = resp.StatusCode, body
	r.mu.Unlock()
	return resp, nil
}

func (r *recorder) last() (int, []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, r.body
}
