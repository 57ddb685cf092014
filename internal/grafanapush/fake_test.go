package grafanapush

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/airtally/airtally/dashboards"
)

const token = "glsa_test-token-0123456789"

// storedDashboard is a dashboard the fake holds.
type storedDashboard struct {
	model       map[string]any // without id and version
	id, version int
	folderUID   string
	provisioned bool
}

// fakeGrafana answers the requests of a push as Grafana's HTTP API does,
// and checks each request's method, path, auth header and body. Its state
// (folders, data sources, dashboards) persists across pushes.
type fakeGrafana struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	plugin   bool
	folders  map[string]string // uid → title
	sources  map[string]map[string]any
	password map[string]string // data source uid → password
	dashes   map[string]*storedDashboard
	nextID   int
	requests []string // "METHOD /path", in order
	// forced answers: "METHOD /path" → status.
	forced map[string]int
	// conflicts is how many saves of an existing dashboard are answered
	// 412 version-mismatch (someone saved it meanwhile).
	conflicts int
}

func newFake(t *testing.T) *fakeGrafana {
	t.Helper()
	f := &fakeGrafana{
		t: t, plugin: true, folders: map[string]string{}, sources: map[string]map[string]any{},
		password: map[string]string{}, dashes: map[string]*storedDashboard{}, nextID: 1, forced: map[string]int{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeGrafana) config() Config {
	return Config{URL: f.srv.URL, Token: token, Datasource: Datasource{Password: "s3cret", Host: "ch.internal", Port: 9440, Secure: true}}
}

// writes are the requests that change something.
func (f *fakeGrafana) writes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var w []string
	for _, r := range f.requests {
		if !strings.HasPrefix(r, "GET ") {
			w = append(w, r)
		}
	}
	return w
}

func (f *fakeGrafana) reset() {
	f.mu.Lock()
	f.requests = nil
	f.mu.Unlock()
}

func answer(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func msg(m string) map[string]any { return map[string]any{"message": m} }

func (f *fakeGrafana) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := r.Method + " " + r.URL.Path
	f.requests = append(f.requests, key)
	if s, ok := f.forced[key]; ok {
		answer(w, s, msg("forced"))
		return
	}
	if r.URL.Path != "/api/health" && r.Header.Get("Authorization") != "Bearer "+token {
		answer(w, http.StatusUnauthorized, msg("invalid API key"))
		return
	}
	var body map[string]any
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			f.t.Errorf("%s: Content-Type %q", key, ct)
		}
		data, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(data, &body); err != nil {
			f.t.Errorf("%s: body is not a JSON object: %v", key, err)
			answer(w, http.StatusBadRequest, msg("bad request data"))
			return
		}
	}
	path := r.URL.Path
	switch {
	case key == "GET /api/health":
		answer(w, 200, map[string]any{"commit": "abc", "database": "ok", "version": "12.4.0"})
	case key == "GET /api/plugins/"+dashboards.DatasourceType+"/settings":
		if !f.plugin {
			answer(w, 404, msg("Plugin not found, no installed plugin with that id"))
			return
		}
		answer(w, 200, map[string]any{"id": dashboards.DatasourceType, "type": "datasource", "enabled": true})
	case r.Method == "GET" && strings.HasPrefix(path, "/api/folders/"):
		uid := strings.TrimPrefix(path, "/api/folders/")
		title, ok := f.folders[uid]
		if !ok {
			answer(w, 404, msg("folder not found"))
			return
		}
		answer(w, 200, map[string]any{"id": 1, "uid": uid, "title": title, "url": "/dashboards/f/" + uid})
	case key == "POST /api/folders":
		uid, _ := body["uid"].(string)
		title, _ := body["title"].(string)
		if uid != dashboards.FolderUID || title == "" {
			f.t.Errorf("create folder: body %v", body)
		}
		if _, exists := f.folders[uid]; exists {
			answer(w, 409, msg("a folder with the same uid already exists"))
			return
		}
		f.folders[uid] = title
		answer(w, 200, map[string]any{"id": 1, "uid": uid, "title": title})
	case r.Method == "PUT" && strings.HasPrefix(path, "/api/folders/"):
		uid := strings.TrimPrefix(path, "/api/folders/")
		if body["overwrite"] != true || body["title"] == "" {
			f.t.Errorf("rename folder: body %v", body)
		}
		f.folders[uid] = body["title"].(string)
		answer(w, 200, map[string]any{"id": 1, "uid": uid, "title": body["title"]})
	case r.Method == "GET" && strings.HasPrefix(path, "/api/datasources/uid/"):
		ds, ok := f.sources[strings.TrimPrefix(path, "/api/datasources/uid/")]
		if !ok {
			answer(w, 404, msg("Data source not found"))
			return
		}
		answer(w, 200, ds)
	case key == "POST /api/datasources":
		f.checkDatasource(body, true)
		uid := body["uid"].(string)
		if _, exists := f.sources[uid]; exists {
			answer(w, 409, msg("data source with the same uid already exists"))
			return
		}
		f.storeDatasource(uid, body, f.nextID, 1)
		f.nextID++
		answer(w, 200, map[string]any{"id": f.sources[uid]["id"], "message": "Datasource added", "name": body["name"]})
	case r.Method == "PUT" && strings.HasPrefix(path, "/api/datasources/uid/"):
		uid := strings.TrimPrefix(path, "/api/datasources/uid/")
		have, ok := f.sources[uid]
		if !ok {
			answer(w, 404, msg("Data source not found"))
			return
		}
		if have["readOnly"] == true {
			answer(w, 403, msg("Cannot update read-only data source"))
			return
		}
		f.checkDatasource(body, false)
		f.storeDatasource(uid, body, int(have["id"].(float64)), int(have["version"].(float64))+1)
		answer(w, 200, map[string]any{"message": "Datasource updated"})
	case r.Method == "GET" && strings.HasPrefix(path, "/api/dashboards/uid/"):
		d, ok := f.dashes[strings.TrimPrefix(path, "/api/dashboards/uid/")]
		if !ok {
			answer(w, 404, msg("Dashboard not found"))
			return
		}
		m := map[string]any{}
		for k, v := range d.model {
			m[k] = v
		}
		m["id"], m["version"] = d.id, d.version
		answer(w, 200, map[string]any{"dashboard": m, "meta": map[string]any{
			"folderUid": d.folderUID, "provisioned": d.provisioned, "slug": "x", "url": "/d/" + m["uid"].(string) + "/x",
		}})
	case key == "POST /api/dashboards/db":
		f.saveDashboard(w, body)
	default:
		f.t.Errorf("unexpected request %s", key)
		answer(w, 404, msg("Not found"))
	}
}

// checkDatasource checks a data source body as the push must send it.
func (f *fakeGrafana) checkDatasource(body map[string]any, create bool) {
	f.t.Helper()
	jd, _ := body["jsonData"].(map[string]any)
	if body["uid"] != dashboards.DatasourceUID || body["type"] != dashboards.DatasourceType ||
		body["name"] != dashboards.DatasourceName || body["access"] != "proxy" || jd == nil {
		f.t.Errorf("data source body %v", body)
		return
	}
	for _, k := range []string{"host", "port", "protocol", "username", "defaultDatabase", "secure"} {
		if _, ok := jd[k]; !ok {
			f.t.Errorf("data source jsonData lacks %s: %v", k, jd)
		}
	}
	if sj, _ := body["secureJsonData"].(map[string]any); create && (sj == nil || sj["password"] == "") {
		f.t.Errorf("a new data source needs secureJsonData.password: %v", body)
	}
}

func (f *fakeGrafana) storeDatasource(uid string, body map[string]any, id, version int) {
	stored := map[string]any{
		"id": float64(id), "uid": uid, "name": body["name"], "type": body["type"], "access": body["access"],
		"jsonData": body["jsonData"], "readOnly": false, "version": float64(version),
		"secureJsonFields": map[string]any{"password": true},
	}
	if sj, _ := body["secureJsonData"].(map[string]any); sj != nil {
		f.password[uid] = sj["password"].(string)
	}
	f.sources[uid] = stored
}

// saveDashboard is POST /api/dashboards/db: a new uid is created; an
// existing one is saved only over its current version (overwrite false);
// a provisioned one is refused.
func (f *fakeGrafana) saveDashboard(w http.ResponseWriter, body map[string]any) {
	model, _ := body["dashboard"].(map[string]any)
	folder, _ := body["folderUid"].(string)
	if model == nil || folder != dashboards.FolderUID || body["overwrite"] == true || body["message"] == "" {
		f.t.Errorf("save dashboard: body %v", body)
		answer(w, 400, msg("bad request"))
		return
	}
	uid, _ := model["uid"].(string)
	have, exists := f.dashes[uid]
	if exists && have.provisioned {
		answer(w, 400, msg("Cannot save provisioned dashboard"))
		return
	}
	if exists {
		if f.conflicts > 0 {
			f.conflicts--
			have.version++ // someone else saved it meanwhile
		}
		if v, _ := model["version"].(float64); int(v) != have.version {
			answer(w, 412, map[string]any{"message": "The dashboard has been changed by someone else", "status": "version-mismatch"})
			return
		}
	} else {
		if _, hasID := model["id"]; hasID && model["id"] != nil {
			f.t.Errorf("a new dashboard was sent with an id: %v", model["id"])
		}
		for u, d := range f.dashes {
			if u != uid && d.folderUID == folder && d.model["title"] == model["title"] {
				answer(w, 412, map[string]any{"message": "A dashboard with the same name in the folder already exists", "status": "name-exists"})
				return
			}
		}
		have = &storedDashboard{id: f.nextID}
		f.nextID++
		f.dashes[uid] = have
	}
	stored := map[string]any{}
	for k, v := range model {
		if k != "id" && k != "version" {
			stored[k] = v
		}
	}
	have.model, have.folderUID = stored, folder
	have.version++
	answer(w, 200, map[string]any{"id": have.id, "uid": uid, "status": "success", "version": have.version, "url": fmt.Sprintf("/d/%s/x", uid), "slug": "x"})
}
