package dashboards

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestFilesAreGenerated fails when the JSON files Grafana provisions
// (dashboards/json) differ from the dashboards defined in this package, or
// when a file there is not one of them. Regenerate with
// go generate ./dashboards.
func TestFilesAreGenerated(t *testing.T) {
	want, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(Dir)
	if err != nil {
		t.Fatalf("read %s: %v (run go generate ./dashboards)", Dir, err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		seen[e.Name()] = true
		if _, ok := want[e.Name()]; !ok {
			t.Errorf("%s/%s is not a dashboard defined in package dashboards: remove it, or run go generate ./dashboards", Dir, e.Name())
		}
	}
	for name, data := range want {
		if !bytes.Equal(data, again[name]) {
			t.Errorf("%s: two generations differ; the output must be stable", name)
		}
		got, err := os.ReadFile(filepath.Join(Dir, name))
		if err != nil {
			t.Errorf("%s/%s is missing: run go generate ./dashboards", Dir, name)
			continue
		}
		if !bytes.Equal(got, data) {
			t.Errorf("%s/%s differs from the dashboard defined in package dashboards: run go generate ./dashboards", Dir, name)
		}
		var d Dashboard
		if err := json.Unmarshal(got, &d); err != nil || FileName(d) != name {
			t.Errorf("%s/%s does not decode to its dashboard (uid %q): %v", Dir, name, d.UID, err)
		}
	}
}
