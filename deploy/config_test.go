package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v4"

	"github.com/airtally/airtally/dashboards"
	"github.com/airtally/airtally/producers/gateway"
)

// dashboardsPath is where the compose file mounts the generated dashboards
// and where the provider reads them.
const dashboardsPath = "/etc/airtally/dashboards"

// TestNATSConfig: nats-server reads deploy/nats/nats.conf with JetStream
// and sync_interval always, and a server started from it serves the
// healthcheck's URL.
func TestNATSConfig(t *testing.T) {
	opts, err := server.ProcessConfigFile("nats/nats.conf")
	if err != nil {
		t.Fatalf("nats-server rejects nats.conf: %v", err)
	}
	if !opts.JetStream || !opts.SyncAlways || opts.StoreDir != "/data" {
		t.Fatalf("JetStream %v, sync always %v, store %q: want JetStream on /data, fsync before every ack", opts.JetStream, opts.SyncAlways, opts.StoreDir)
	}
	if opts.Port != 4222 || opts.HTTPPort != 8222 {
		t.Errorf("ports %d and %d, want 4222 and 8222 (the compose file's)", opts.Port, opts.HTTPPort)
	}
	opts.StoreDir, opts.Port, opts.HTTPPort, opts.Host, opts.HTTPHost = t.TempDir(), -1, -1, "127.0.0.1", "127.0.0.1"
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(10*time.Second) || !s.JetStreamEnabled() {
		t.Fatal("a server from nats.conf is not ready with JetStream")
	}
	addr := s.MonitorAddr()
	resp, err := http.Get(fmt.Sprintf("http://%s/healthz?js-enabled-only=true", addr))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthcheck URL answered %d", resp.StatusCode)
	}
}

type chUsers struct {
	Profiles struct {
		List []chProfile `xml:",any"`
	} `xml:"profiles"`
	Users struct {
		List []chUser `xml:",any"`
	} `xml:"users"`
	Quotas struct {
		List []struct {
			XMLName xml.Name
		} `xml:",any"`
	} `xml:"quotas"`
}

type chProfile struct {
	XMLName          xml.Name
	Readonly         string `xml:"readonly"`
	MaxExecutionTime string `xml:"max_execution_time"`
	MaxMemoryUsage   string `xml:"max_memory_usage"`
	Constraints      struct {
		List []struct {
			XMLName xml.Name
			Max     string `xml:"max"`
		} `xml:",any"`
	} `xml:"constraints"`
}

type chUser struct {
	XMLName  xml.Name
	Password *struct{} `xml:"password"`
	Hash     struct {
		FromEnv string `xml:"from_env,attr"`
	} `xml:"password_sha256_hex"`
	Profile string   `xml:"profile"`
	Quota   string   `xml:"quota"`
	Grants  []string `xml:"grants>query"`
}

// TestClickHouseUsers checks the users of deploy/clickhouse/users.d: the
// loader may read and insert, nothing more; Grafana's and the analysts'
// users are read-only with query limits they cannot raise; passwords are
// only hashes from the environment the entrypoint sets.
func TestClickHouseUsers(t *testing.T) {
	data, err := os.ReadFile("clickhouse/users.d/airtally.xml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg chUsers
	if err := xml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("users.d/airtally.xml: %v", err)
	}
	profiles := map[string]chProfile{}
	for _, p := range cfg.Profiles.List {
		profiles[p.XMLName.Local] = p
	}
	quotas := map[string]bool{"default": true}
	for _, q := range cfg.Quotas.List {
		quotas[q.XMLName.Local] = true
	}
	users := map[string]chUser{}
	for _, u := range cfg.Users.List {
		users[u.XMLName.Local] = u
	}
	entry, err := os.ReadFile("clickhouse/entrypoint.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"airtally_admin", "airtally_loader", "grafana", "analyst"} {
		u, ok := users[name]
		if !ok {
			t.Fatalf("no user %s", name)
		}
		if u.Password != nil || u.Hash.FromEnv == "" {
			t.Errorf("%s: the password must be a SHA-256 hash from the environment, never in the file", name)
		}
		short := strings.TrimPrefix(name, "airtally_")
		if want := "AIRTALLY_CH_" + strings.ToUpper(short) + "_SHA256"; u.Hash.FromEnv != want || !strings.Contains(string(entry), "for user in admin loader grafana analyst") {
			t.Errorf("%s: hash from %s, the entrypoint sets %s", name, u.Hash.FromEnv, want)
		}
		if _, ok := profiles[u.Profile]; !ok && u.Profile != "default" {
			t.Errorf("%s: profile %q is not defined", name, u.Profile)
		}
		if !quotas[u.Quota] {
			t.Errorf("%s: quota %q is not defined", name, u.Quota)
		}
		for _, g := range u.Grants {
			if name != "airtally_admin" && regexp.MustCompile(`(?i)\b(ALL|DROP|TRUNCATE|ALTER|DELETE|CREATE|OPTIMIZE|SYSTEM|KILL)\b`).MatchString(g) {
				t.Errorf("%s may %q", name, g)
			}
		}
	}
	if g := users["airtally_loader"].Grants; !slices.Equal(g, []string{"GRANT SELECT, INSERT ON airtally.*"}) {
		t.Errorf("the loader's grants %q, want SELECT and INSERT on airtally only", g)
	}
	for _, name := range []string{"grafana", "analyst"} {
		u := users[name]
		if !slices.Equal(u.Grants, []string{"GRANT SELECT ON airtally.*"}) {
			t.Errorf("%s grants %q, want SELECT on airtally only", name, u.Grants)
		}
		p := profiles[u.Profile]
		if p.Readonly != "1" && p.Readonly != "2" || p.MaxExecutionTime == "" || p.MaxMemoryUsage == "" {
			t.Errorf("%s's profile %s: readonly %q, limits %q %q: want read-only with limits", name, u.Profile, p.Readonly, p.MaxExecutionTime, p.MaxMemoryUsage)
		}
		capped := map[string]bool{}
		for _, c := range p.Constraints.List {
			capped[c.XMLName.Local] = c.Max != ""
		}
		if !capped["max_execution_time"] || !capped["max_memory_usage"] {
			t.Errorf("%s could raise its own limits (readonly 2 lets a client set settings): constraints %v", name, capped)
		}
		if u.Quota == "default" {
			t.Errorf("%s has no quota of its own", name)
		}
	}
	var server struct {
		ListenHost string `xml:"listen_host"`
	}
	if data, err := os.ReadFile("clickhouse/config.d/airtally.xml"); err != nil {
		t.Fatal(err)
	} else if err := xml.Unmarshal(data, &server); err != nil || server.ListenHost != "0.0.0.0" {
		t.Errorf("config.d/airtally.xml: %v, listen_host %q", err, server.ListenHost)
	}
}

// TestGrafanaProvisioning: the provisioned data source is the one every
// dashboard uses, connected as the read-only user, and the dashboard
// provider reads the generated files into the dashboards' folder.
func TestGrafanaProvisioning(t *testing.T) {
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, Access string
			Editable                bool
			JSONData                map[string]any    `yaml:"jsonData"`
			SecureJSONData          map[string]string `yaml:"secureJsonData"`
		}
	}
	readYAML(t, "grafana/provisioning/datasources/airtally.yaml", &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
		t.Fatalf("datasources file: %+v", ds)
	}
	d := ds.Datasources[0]
	if d.UID != dashboards.DatasourceUID || d.Type != dashboards.DatasourceType || d.Name != dashboards.DatasourceName || d.Editable {
		t.Errorf("data source %s %s %q editable %v, want %s %s %q read-only", d.UID, d.Type, d.Name, d.Editable,
			dashboards.DatasourceUID, dashboards.DatasourceType, dashboards.DatasourceName)
	}
	if d.JSONData["username"] != "grafana" || d.JSONData["defaultDatabase"] != "airtally" || d.JSONData["host"] != "clickhouse" || d.JSONData["protocol"] != "native" {
		t.Errorf("jsonData %v: want the read-only user grafana on clickhouse, database airtally", d.JSONData)
	}
	if d.SecureJSONData["password"] != "$__file{/run/airtally/clickhouse_password}" {
		t.Errorf("the password must come from the grafana secrets folder: %q", d.SecureJSONData["password"])
	}

	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name, Folder, Type string
			FolderUID          string `yaml:"folderUid"`
			AllowUIUpdates     bool   `yaml:"allowUiUpdates"`
			Options            struct{ Path string }
		}
	}
	readYAML(t, "grafana/provisioning/dashboards/airtally.yaml", &prov)
	if len(prov.Providers) != 1 {
		t.Fatalf("providers %+v", prov)
	}
	pr := prov.Providers[0]
	if pr.Type != "file" || pr.Options.Path != dashboardsPath || pr.FolderUID != dashboards.FolderUID || pr.Folder != dashboards.FolderTitle || pr.AllowUIUpdates {
		t.Errorf("provider %+v: want the files at %s into folder %s, no saving over them from the UI", pr, dashboardsPath, dashboards.FolderUID)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestInitSecrets runs deploy/init-secrets.sh (as the secrets service does,
// into a temporary folder): every file a service reads is there, in that
// service's folder; the ClickHouse hashes are the passwords' SHA-256; the
// gateway accepts the token file; running it again keeps every secret.
func TestInitSecrets(t *testing.T) {
	dir := t.TempDir()
	run := func() {
		cmd := exec.Command("sh", "init-secrets.sh")
		cmd.Env = append(os.Environ(), "SECRETS_DIR="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("init-secrets.sh: %v\n%s", err, out)
		}
	}
	run()
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatalf("secret %s: %v", p, err)
		}
		return string(b)
	}
	first := map[string]string{}
	for _, p := range []string{
		"admin/clickhouse_password", "loader/clickhouse_password", "grafana/clickhouse_password", "analyst/clickhouse_password",
		"grafana/admin_password", "gateway/ani_key", "gateway/tokens", "demo/gateway_token",
	} {
		first[p] = read(p)
		info, err := os.Stat(filepath.Join(dir, p))
		if err != nil || info.Mode().Perm() != 0o444 {
			t.Errorf("%s: mode %v", p, info.Mode())
		}
	}
	for _, user := range []string{"admin", "loader", "grafana", "analyst"} {
		pw := read(user + "/clickhouse_password")
		sum := sha256.Sum256([]byte(pw))
		if len(pw) < 24 || strings.ContainsAny(pw, "\n ") || read("clickhouse/"+user+".sha256") != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: password %d characters; hash file does not hold its SHA-256", user, len(pw))
		}
	}
	if len(read("gateway/ani_key")) < 16 {
		t.Error("the ANI key is shorter than the gateway accepts")
	}
	tokens, err := gateway.LoadTokens(filepath.Join(dir, "gateway/tokens"))
	if err != nil {
		t.Fatalf("the gateway rejects the token file: %v", err)
	}
	if _, ok := tokens[read("demo/gateway_token")]; !ok || len(tokens) != 1 {
		t.Errorf("the token file does not grant the demo producer's token")
	}
	run()
	for p, v := range first {
		if read(p) != v {
			t.Errorf("%s changed on the second run", p)
		}
	}
	// Every secret a compose service reads is in its own folder.
	p := loadCompose(t, "demo")
	fileRef := regexp.MustCompile(`/run/airtally/([A-Za-z0-9_.]+)`)
	for name, s := range p.Services {
		folder := secretFolder[name]
		var refs []string
		for _, a := range append(append([]string{}, s.Command...), s.Entrypoint...) {
			refs = append(refs, a)
		}
		for _, v := range s.Environment {
			if v != nil {
				refs = append(refs, *v)
			}
		}
		if name == "grafana" {
			refs = append(refs, "/run/airtally/clickhouse_password") // read by the provisioned data source
		}
		if name == "clickhouse" {
			for _, u := range []string{"admin", "loader", "grafana", "analyst"} {
				refs = append(refs, "/run/airtally/"+u+".sha256") // read by its entrypoint
			}
		}
		for _, r := range refs {
			for _, m := range fileRef.FindAllStringSubmatch(r, -1) {
				if _, err := os.Stat(filepath.Join(dir, folder, m[1])); err != nil {
					t.Errorf("%s reads /run/airtally/%s, which is not in its secrets folder %q", name, m[1], folder)
				}
			}
		}
	}
}

// TestDockerfile: base images pinned by version, both binaries built
// static from packages that exist.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	from := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(string(data), -1)
	if len(from) != 2 {
		t.Fatalf("want a build stage and a runtime stage, got %v", from)
	}
	for _, f := range from {
		_, tag, _ := strings.Cut(f[1], ":")
		if !regexp.MustCompile(`^\d+(\.\d+)+`).MatchString(tag) {
			t.Errorf("base image %s is not pinned to a version", f[1])
		}
	}
	if !strings.Contains(string(data), "CGO_ENABLED=0") {
		t.Error("the binaries must be static (CGO_ENABLED=0)")
	}
	for _, pkg := range regexp.MustCompile(`-o /out/\S+ (\./\S+)`).FindAllStringSubmatch(string(data), -1) {
		if _, err := os.Stat(filepath.Join(repo, pkg[1], "main.go")); err != nil {
			t.Errorf("the Dockerfile builds %s, which has no main.go", pkg[1])
		}
	}
}
