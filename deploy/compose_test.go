package deploy

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/airtally/airtally/dashboards"
	aircli "github.com/airtally/airtally/internal/cli"
)

// repo is the repository root, where docker-compose.yml is.
const repo = ".."

func loadCompose(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(repo, "docker-compose.yml")},
		cli.WithWorkingDirectory(repo), cli.WithProfiles(profiles), cli.WithEnv([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

var (
	// airtallyServices run the airtally image; restart "no" marks one-shot
	// services.
	airtallyServices = []string{"migrate", "loader", "gateway", "detector", "demo"}
	oneShot          = []string{"secrets", "migrate", "demo"}
	// versionTag is a pinned version: digits, dots, an optional suffix.
	versionTag = regexp.MustCompile(`^v?\d+(\.\d+)+(-[a-z0-9.]+)?$`)
)

// TestComposeStack loads docker-compose.yml as Docker Compose does
// (compose-go) and checks the stack: its services, images pinned by version,
// a healthcheck on every long-running service, start order by health,
// named volumes for every piece of state, secrets mounted read-only one
// folder per service, ports on 127.0.0.1 only, and every airtally command
// line accepted by the airtally binary.
func TestComposeStack(t *testing.T) {
	p := loadCompose(t, "demo")
	var names []string
	for n := range p.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{"clickhouse", "demo", "detector", "gateway", "grafana", "loader", "migrate", "nats", "secrets"}
	if !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	if _, ok := loadCompose(t).Services["demo"]; ok {
		t.Error("the demo producer runs without --profile demo; it must be optional")
	}

	for name, s := range p.Services {
		t.Run(name, func(t *testing.T) {
			checkImage(t, name, s)
			long := !slices.Contains(oneShot, name)
			if long && (s.HealthCheck == nil || len(s.HealthCheck.Test) < 2 || s.HealthCheck.Disable) {
				t.Errorf("no healthcheck")
			}
			if long != (s.Restart != "no") || (long && s.Restart != "unless-stopped") {
				t.Errorf("restart %q: long-running services restart unless stopped, one-shot ones never", s.Restart)
			}
			for dep, d := range s.DependsOn {
				wantCond := types.ServiceConditionHealthy
				if slices.Contains(oneShot, dep) {
					wantCond = types.ServiceConditionCompletedSuccessfully
				}
				if d.Condition != wantCond {
					t.Errorf("depends on %s with %q, want %q", dep, d.Condition, wantCond)
				}
			}
			for _, port := range s.Ports {
				if port.HostIP != "127.0.0.1" {
					t.Errorf("port %s published on %q, want 127.0.0.1 only", port.Published, port.HostIP)
				}
			}
			checkVolumes(t, p, name, s)
		})
	}

	deps := map[string][]string{
		"clickhouse": {"secrets"},
		"migrate":    {"clickhouse"},
		"loader":     {"clickhouse", "migrate", "nats"},
		"gateway":    {"nats", "secrets"},
		"detector":   {"loader", "nats"},
		"grafana":    {"clickhouse", "migrate"},
		"demo":       {"detector", "gateway", "loader"},
	}
	for name, want := range deps {
		var got []string
		for d := range p.Services[name].DependsOn {
			got = append(got, d)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s starts after %v, want %v", name, got, want)
		}
	}

	checkCommands(t, p)
	checkGrafanaService(t, p.Services["grafana"])
	if cmd := strings.Join(p.Services["nats"].Command, " "); cmd != "-c /etc/nats/nats.conf" {
		t.Errorf("nats runs %q, want its config file", cmd)
	}
	loader := strings.Join(p.Services["loader"].Command, " ")
	if !strings.Contains(loader, "--migrate=false") || !strings.Contains(loader, "--clickhouse-user airtally_loader") {
		t.Errorf("the loader must connect as airtally_loader and not migrate: %s", loader)
	}
	if m := strings.Join(p.Services["migrate"].Command, " "); !strings.Contains(m, "--clickhouse-user airtally_admin") {
		t.Errorf("migrations must run as airtally_admin: %s", m)
	}
}

func checkImage(t *testing.T, name string, s types.ServiceConfig) {
	t.Helper()
	repoName, tag, ok := strings.Cut(s.Image, ":")
	if !ok || tag == "" || tag == "latest" || strings.Contains(s.Image, "@") && tag == "" {
		t.Fatalf("image %q is not pinned by a tag", s.Image)
	}
	if slices.Contains(airtallyServices, name) {
		if s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" || s.Image != "airtally/airtally:local" {
			t.Errorf("airtally services build airtally/airtally:local from deploy/Dockerfile: %+v", s.Build)
		}
		return
	}
	if s.Build != nil {
		t.Errorf("%s builds an image; only airtally's is built", name)
	}
	if !versionTag.MatchString(tag) {
		t.Errorf("image %s is not pinned to a version (tag %q)", repoName, tag)
	}
	if repoName == "clickhouse/clickhouse-server" && !strings.HasPrefix(tag, "26.3.") {
		t.Errorf("ClickHouse %s is not of the current LTS line (26.3)", tag)
	}
}

// stateMounts are the folders that hold each service's state: they must
// be named volumes, so that the state survives containers.
var stateMounts = map[string]string{
	"nats":       "/data",
	"clickhouse": "/var/lib/clickhouse",
	"grafana":    "/var/lib/grafana",
	"gateway":    "/var/lib/airtally/spool",
	"detector":   "/var/lib/airtally/spool",
}

// secretFolder is the folder of the secrets volume each service mounts.
var secretFolder = map[string]string{
	"clickhouse": "clickhouse", "migrate": "admin", "loader": "loader", "gateway": "gateway", "grafana": "grafana", "demo": "demo",
}

func checkVolumes(t *testing.T, p *types.Project, name string, s types.ServiceConfig) {
	t.Helper()
	var state, secrets bool
	for _, v := range s.Volumes {
		switch v.Type {
		case types.VolumeTypeVolume:
			if _, declared := p.Volumes[v.Source]; !declared {
				t.Errorf("volume %s is not declared", v.Source)
			}
			if v.Target == stateMounts[name] {
				state = true
			}
			if v.Source == "secrets" && name != "secrets" {
				secrets = true
				if !v.ReadOnly || v.Volume == nil || v.Volume.Subpath != secretFolder[name] || v.Target != "/run/airtally" {
					t.Errorf("secrets mounted as %+v, want read-only, folder %q only, at /run/airtally", v, secretFolder[name])
				}
			}
		case types.VolumeTypeBind:
			if !v.ReadOnly {
				t.Errorf("bind mount %s is writable", v.Source)
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("bind mount source %s is missing from the repository: %v", v.Source, err)
			}
			if v.Target == stateMounts[name] {
				t.Errorf("state at %s is a bind mount; use a named volume", v.Target)
			}
		default:
			t.Errorf("mount type %s", v.Type)
		}
	}
	if stateMounts[name] != "" && !state {
		t.Errorf("state folder %s is not a named volume", stateMounts[name])
	}
	if secretFolder[name] != "" && !secrets {
		t.Errorf("does not mount its secrets folder %s", secretFolder[name])
	}
	if secretFolder[name] == "" && name != "secrets" && slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Source == "secrets" }) {
		t.Errorf("mounts secrets it does not need")
	}
}

// checkCommands runs every airtally service's command line through the
// airtally binary's own flag parsing, with -h at the end: an unknown flag
// fails, a good line prints the help.
func checkCommands(t *testing.T, p *types.Project) {
	t.Helper()
	for _, name := range airtallyServices {
		s := p.Services[name]
		if len(s.Entrypoint) > 0 {
			continue // the demo producer
		}
		var out, errOut bytes.Buffer
		args := append(slices.Clone([]string(s.Command)), "-h")
		if code := aircli.Run(context.Background(), args, &out, &errOut); code != 0 {
			t.Errorf("%s: airtally %s is refused (exit %d): %s", name, strings.Join(s.Command, " "), code, errOut.String())
		}
	}
	demo := strings.Join(p.Services["demo"].Entrypoint, " ")
	if demo != "/usr/local/bin/airtally-demo" {
		t.Errorf("demo runs %q", demo)
	}
}

func checkGrafanaService(t *testing.T, s types.ServiceConfig) {
	t.Helper()
	want := dashboards.DatasourceType + "@" + dashboards.PluginVersion
	if got := s.Environment["GF_PLUGINS_PREINSTALL_SYNC"]; got == nil || *got != want {
		t.Errorf("Grafana installs plugin %v, want %s (the version the dashboards are written for)", got, want)
	}
	mounts := map[string]string{}
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind {
			rel, err := filepath.Rel(mustAbs(t, repo), v.Source)
			if err != nil {
				t.Fatal(err)
			}
			mounts[filepath.ToSlash(rel)] = v.Target
		}
	}
	if mounts["deploy/grafana/provisioning"] != "/etc/grafana/provisioning" {
		t.Errorf("provisioning is not mounted: %v", mounts)
	}
	if mounts["dashboards/"+dashboards.Dir] != dashboardsPath {
		t.Errorf("the generated dashboards are not mounted at the provider's path %s: %v", dashboardsPath, mounts)
	}
	home := s.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
	if home == nil || !strings.HasPrefix(*home, dashboardsPath+"/") {
		t.Errorf("home dashboard %v is not one of the provisioned files", home)
	} else if _, err := os.Stat(filepath.Join(repo, "dashboards", dashboards.Dir, strings.TrimPrefix(*home, dashboardsPath+"/"))); err != nil {
		t.Errorf("home dashboard %s does not exist: %v", *home, err)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
