package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

//go:generate go run ./gen -out json

// Dir is the folder, relative to this package, that holds the generated
// dashboard files Grafana provisions (docker-compose.yml mounts it).
const Dir = "json"

// FileName is the file a dashboard is written to: its uid without the
// "airtally-" prefix, e.g. airing-scorecard.json.
func FileName(d Dashboard) string {
	return strings.TrimPrefix(d.UID, "airtally-") + ".json"
}

// JSON is a dashboard as Grafana provisions it: indented, HTML characters
// not escaped, ending with a newline. The same dashboard always gives the
// same bytes.
func JSON(d Dashboard) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("dashboards: encode %s: %w", d.UID, err)
	}
	return buf.Bytes(), nil
}

// Files returns every dashboard's file name and contents.
func Files() (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, b := range All() {
		data, err := JSON(b.Dashboard)
		if err != nil {
			return nil, err
		}
		files[FileName(b.Dashboard)] = data
	}
	return files, nil
}

// WriteFiles writes every dashboard's file into dir (created if needed) and
// removes other .json files there, so the folder holds exactly the
// dashboards defined here.
func WriteFiles(dir string) error {
	files, err := Files()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("dashboards: create %s: %w", dir, err)
	}
	old, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return fmt.Errorf("dashboards: list %s: %w", dir, err)
	}
	for _, f := range old {
		if _, keep := files[filepath.Base(f)]; !keep {
			if err := os.Remove(f); err != nil {
				return fmt.Errorf("dashboards: remove stale %s: %w", f, err)
			}
		}
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("dashboards: write %s: %w", name, err)
		}
	}
	return nil
}
