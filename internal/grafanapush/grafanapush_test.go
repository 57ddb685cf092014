package grafanapush

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/airtally/airtally/dashboards"
)

func actions(res Result) []Action {
	var as []Action
	for _, it := range res.Items {
		as = append(as, it.Action)
	}
	return as
}

func repeat(a Action, n int) []Action {
	as := make([]Action, n)
	for i := range as {
		as[i] = a
	}
	return as
}

// TestPushCreatesThenChangesNothing: on an empty Grafana the push creates
// the folder, the data source (with its password) and every dashboard;
// pushed again it writes nothing; with a password given it updates only
// the data source.
func TestPushCreatesThenChangesNothing(t *testing.T) {
	f := newFake(t)
	ctx := context.Background()
	res, err := Push(ctx, f.config())
	if err != nil {
		t.Fatal(err)
	}
	n := len(dashboards.All())
	if want := repeat(Created, 2+n); !reflect.DeepEqual(actions(res), want) {
		t.Fatalf("first push: %v, want %v", actions(res), want)
	}
	if res.GrafanaVersion != "12.4.0" {
		t.Errorf("Grafana version %q", res.GrafanaVersion)
	}
	if f.folders[dashboards.FolderUID] != dashboards.FolderTitle {
		t.Errorf("folders %v", f.folders)
	}
	ds := f.sources[dashboards.DatasourceUID]
	jd := ds["jsonData"].(map[string]any)
	if jd["host"] != "ch.internal" || jd["port"] != float64(9440) || jd["secure"] != true || jd["protocol"] != "native" ||
		jd["username"] != "grafana" || jd["defaultDatabase"] != "airtally" || f.password[dashboards.DatasourceUID] != "s3cret" {
		t.Errorf("data source %v, password %q", ds, f.password[dashboards.DatasourceUID])
	}
	for _, b := range dashboards.All() {
		d, ok := f.dashes[b.Dashboard.UID]
		if !ok {
			t.Fatalf("dashboard %s not in Grafana", b.Dashboard.UID)
		}
		want, err := model(b.Dashboard)
		if err != nil {
			t.Fatal(err)
		}
		if d.folderUID != dashboards.FolderUID || !sameDashboard(d.model, want) {
			t.Errorf("dashboard %s stored in folder %q differs from the one defined", b.Dashboard.UID, d.folderUID)
		}
	}

	f.reset()
	cfg := f.config()
	cfg.Datasource.Password = ""
	res, err = Push(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := repeat(Unchanged, 2+n); !reflect.DeepEqual(actions(res), want) {
		t.Fatalf("second push: %v, want %v", actions(res), want)
	}
	if w := f.writes(); len(w) != 0 {
		t.Errorf("second push wrote %v", w)
	}

	f.reset()
	if res, err = Push(ctx, f.config()); err != nil {
		t.Fatal(err)
	}
	want := append([]Action{Unchanged, Updated}, repeat(Unchanged, n)...)
	if !reflect.DeepEqual(actions(res), want) {
		t.Fatalf("push with a password: %v, want %v", actions(res), want)
	}
	if w := f.writes(); !reflect.DeepEqual(w, []string{"PUT /api/datasources/uid/" + dashboards.DatasourceUID}) {
		t.Errorf("push with a password wrote %v", w)
	}
}

// TestPushUpdatesWhatDiffers: a dashboard edited in Grafana (another title,
// another folder, version 7) is saved over version 7; a renamed folder gets
// its title back.
func TestPushUpdatesWhatDiffers(t *testing.T) {
	f := newFake(t)
	if _, err := Push(context.Background(), f.config()); err != nil {
		t.Fatal(err)
	}
	f.folders[dashboards.FolderUID] = "renamed"
	d := f.dashes[dashboards.UIDScorecard]
	d.model["title"], d.version, d.folderUID = "Edited in the UI", 7, "elsewhere"
	f.reset()
	res, err := Push(context.Background(), f.config())
	if err != nil {
		t.Fatal(err)
	}
	if res.Items[0].Action != Updated || f.folders[dashboards.FolderUID] != dashboards.FolderTitle {
		t.Errorf("folder: %v, title %q", res.Items[0].Action, f.folders[dashboards.FolderUID])
	}
	if got := res.Items[2]; got.UID != dashboards.UIDScorecard || got.Action != Updated {
		t.Errorf("scorecard: %+v, want updated", got)
	}
	if d.model["title"] != "Airing scorecard" || d.folderUID != dashboards.FolderUID || d.version != 8 {
		t.Errorf("scorecard now %q in %q at version %d", d.model["title"], d.folderUID, d.version)
	}
	for _, it := range res.Items[3:] {
		if it.Action != Unchanged {
			t.Errorf("%s: %s, want unchanged", it.What, it.Action)
		}
	}
}

// TestPushVersionConflict: a dashboard saved by someone else between the
// push's read and its save (412 version-mismatch) is read again and saved
// over the new version; when it keeps changing, the push stops with
// ErrConflict.
func TestPushVersionConflict(t *testing.T) {
	for _, tt := range []struct {
		name      string
		conflicts int
		wantErr   error
	}{
		{"once: read again and saved", 1, nil},
		{"every time: conflict", 99, ErrConflict},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			if _, err := Push(context.Background(), f.config()); err != nil {
				t.Fatal(err)
			}
			f.dashes[dashboards.UIDScorecard].model["title"] = "Edited"
			f.conflicts = tt.conflicts
			f.reset()
			res, err := Push(context.Background(), f.config())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil {
				if res.Items[2].Action != Updated || f.dashes[dashboards.UIDScorecard].model["title"] != "Airing scorecard" {
					t.Errorf("scorecard %v, title %v", res.Items[2].Action, f.dashes[dashboards.UIDScorecard].model["title"])
				}
				saves := strings.Count(strings.Join(f.writes(), "\n"), "POST /api/dashboards/db")
				if saves != 2 {
					t.Errorf("%d saves, want 2 (one refused, one over the new version)", saves)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Status != http.StatusPreconditionFailed || !strings.Contains(pe.Message, "Airing scorecard") {
				t.Errorf("error %+v", pe)
			}
		})
	}
}

// TestPushFailuresArePolite: each refusal stops the push with its sentinel
// and a sentence for the user that holds neither the token nor Grafana's
// text.
func TestPushFailuresArePolite(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(f *fakeGrafana, cfg *Config)
		want    error
		mention string
	}{
		{"wrong token", func(_ *fakeGrafana, c *Config) { c.Token = "glsa_wrong" }, ErrAuth, "401"},
		{"no right to create data sources", func(f *fakeGrafana, _ *Config) { f.forced["POST /api/datasources"] = 403 }, ErrForbidden, "Admin"},
		{"no right to read folders", func(f *fakeGrafana, _ *Config) { f.forced["GET /api/folders/airtally"] = 403 }, ErrForbidden, "403"},
		{"not Grafana", func(f *fakeGrafana, _ *Config) { f.forced["GET /api/health"] = 404 }, ErrNoGrafana, "404"},
		{"plugin missing", func(f *fakeGrafana, _ *Config) { f.plugin = false }, ErrPluginMissing, dashboards.DatasourceType},
		{"no password for a new data source", func(_ *fakeGrafana, c *Config) { c.Datasource.Password = "" }, ErrPassword, "password"},
		{"title taken in the folder", func(f *fakeGrafana, _ *Config) {
			f.dashes["someone-elses"] = &storedDashboard{model: map[string]any{"uid": "someone-elses", "title": "Airing scorecard"}, id: 99, version: 1, folderUID: dashboards.FolderUID}
		}, ErrNameTaken, "Airing scorecard"},
		{"server error", func(f *fakeGrafana, _ *Config) { f.forced["POST /api/folders"] = 500 }, ErrGrafana, "500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			cfg := f.config()
			tt.setup(f, &cfg)
			_, err := Push(context.Background(), cfg)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			var pe *Error
			if !errors.As(err, &pe) || !strings.Contains(pe.Message, tt.mention) {
				t.Fatalf("message %q does not mention %q", pe.Message, tt.mention)
			}
			for _, leak := range []string{token, "glsa_wrong", "invalid API key", "forced", "Plugin not found"} {
				if strings.Contains(pe.Message, leak) {
					t.Errorf("message %q holds %q", pe.Message, leak)
				}
				if strings.Contains(err.Error(), token) {
					t.Errorf("error %q holds the token", err)
				}
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		_, err := Push(context.Background(), Config{URL: url, Token: token, Datasource: Datasource{Password: "x"}})
		var pe *Error
		if !errors.Is(err, ErrUnreachable) || !errors.As(err, &pe) || !strings.Contains(pe.Message, url) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestPushLeavesProvisioned: a data source or dashboard provisioned from
// files in this Grafana cannot be changed through the API; the push leaves
// it and says so.
func TestPushLeavesProvisioned(t *testing.T) {
	f := newFake(t)
	if _, err := Push(context.Background(), f.config()); err != nil {
		t.Fatal(err)
	}
	f.sources[dashboards.DatasourceUID]["readOnly"] = true
	d := f.dashes[dashboards.UIDDetail]
	d.provisioned = true
	d.model["title"] = "From a file"
	res, err := Push(context.Background(), f.config())
	if err != nil {
		t.Fatal(err)
	}
	if res.Items[1].Action != Provisioned || res.Items[3].UID != dashboards.UIDDetail || res.Items[3].Action != Provisioned {
		t.Errorf("items %+v", res.Items)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{URL: "http://grafana:3000", Token: "t"}
	tests := []struct {
		name   string
		change func(*Config)
	}{
		{"no URL", func(c *Config) { c.URL = "" }},
		{"not http", func(c *Config) { c.URL = "grafana:3000" }},
		{"no token", func(c *Config) { c.Token = "" }},
		{"token with a line break", func(c *Config) { c.Token = "t\n" }},
		{"protocol", func(c *Config) { c.Datasource.Protocol = "grpc" }},
		{"port", func(c *Config) { c.Datasource.Port = 70000 }},
		{"dashboard without uid", func(c *Config) { c.Dashboards = []dashboards.Dashboard{{Title: "x"}} }},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.change(&c)
			if c.Validate() == nil {
				t.Fatal("Validate accepted it")
			}
		})
	}
}
