package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runCLI runs the command line in-process and returns its exit code and
// output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// totalLine is the "total" row of the local mode's printout.
var totalLine = regexp.MustCompile(`(?m)^\s*total\s.*$`)

// TestLocalModeTwiceCountsNothingTwice runs the main job twice on one data
// folder: both runs load the whole demo day, print it read back from
// ClickHouse, and the second run's totals equal the first's.
func TestLocalModeTwiceCountsNothingTwice(t *testing.T) {
	dir := t.TempDir()
	args := []string{"local", "--data-dir", dir, "--nats-port", "-1", "--clickhouse-port", "0", "--clickhouse-http-port", "0",
		"--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--demo-date", "2026-11-02", "--log-file", filepath.Join(dir, "log")}
	var totals []string
	for run := 1; run <= 2; run++ {
		code, out, errOut := runCLI(t, args...)
		if code != 0 {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Fatalf("run %d: exit %d\nstdout:\n%s\nstderr:\n%s\nlog:\n%s", run, code, out, errOut, log)
		}
		for _, want := range []string{"read back from ClickHouse", "acd.tampa-01", "shop.web-1", "0 dead letters"} {
			if !strings.Contains(out, want) {
				t.Fatalf("run %d: output lacks %q:\n%s", run, want, out)
			}
		}
		checkDemoStory(t, run, out)
		totals = append(totals, strings.Join(strings.Fields(totalLine.FindString(out)), " "))
	}
	if totals[0] == "" || totals[0] != totals[1] {
		t.Fatalf("totals differ between runs:\n%s\n%s", totals[0], totals[1])
	}
}

// checkDemoStory: the printout names the demo day's faults on exactly the
// airings they touched (the outage, the lost range and the silent number
// make theirs partial, with calls and orders lost; the spool makes its
// airings' data late, none lost), and every other airing is neither
// flagged nor called late.
func checkDemoStory(t *testing.T, run int, out string) {
	t.Helper()
	_, story, ok := strings.Cut(out, "What they did to the airings:")
	if !ok {
		t.Fatalf("run %d: no story in the printout:\n%s", run, out)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(story, "\n") {
		if id, _, ok := strings.Cut(strings.TrimSpace(l), ": "); ok && !strings.Contains(id, " ") {
			lines[id] = l
		}
	}
	flagged := map[string][]string{
		"FR-0915-HGTV": {"acd.tampa-01 down 10 min inside the window", "calls and", "orders lost", "measured,", "adjusted: "},
		"BS-1400-CNBC": {"acd.phoenix-01 lost events", "min) inside the window", "calls and", "orders lost", "adjusted: "},
		"FR-1930-CNBC": {"8005550102 silent", "inside the window", "calls and", "orders lost", "late, none lost", "adjusted: "},
		"BS-2000-WFLA": {"recorded in full", "from acd.tampa-01 arrived up to 5 min late, none lost", "its number shared with BS-2000-KTVK"},
		"BS-2000-KTVK": {"recorded in full", "from acd.tampa-01 arrived up to 5 min late, none lost", "its number shared with BS-2000-WFLA"},
		// Overlapping windows on one number: told, not flagged.
		"BS-1420-HGTV": {"recorded in full", "its number shared with BS-1400-CNBC"},
	}
	for id, wants := range flagged {
		for _, w := range wants {
			if !strings.Contains(lines[id], w) {
				t.Errorf("run %d: %s's line lacks %q: %q", run, id, w, lines[id])
			}
		}
	}
	if len(lines) != len(flagged) {
		t.Errorf("run %d: %d airings flagged, want %d:\n%s", run, len(lines), len(flagged), story)
	}
	// In the accountability table, the untouched airings are accounted
	// with full coverage and nothing late (BS-1420-HGTV's reason adds that
	// it shares its number).
	_, table, _ := strings.Cut(out, "Every airing accounted for")
	table, _, _ = strings.Cut(table, "The day's faults")
	for _, id := range []string{"BS-0705-WFLA", "BS-0730-WLSR", "SW-1100-KTVK", "BS-1420-HGTV", "SW-1700-WFLA", "SW-2300-HGTV", "FR-0200-CNBC"} {
		row := regexp.MustCompile(`(?m)^` + id + `\s.*$`).FindString(table)
		if !strings.Contains(row, "accounted") || !strings.Contains(row, "  full coverage") || strings.Contains(row, "late") {
			t.Errorf("run %d: untouched airing %s: %q", run, id, row)
		}
	}
}

// TestFailureIsPoliteWithErrorID forces a failure (ClickHouse unreachable
// past --wait-for): the user sees one polite line when the wait begins and
// one when it gives up, each with an error id and no raw error; the log has
// the detail under the same ids.
func TestFailureIsPoliteWithErrorID(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "log")
	code, _, errOut := runCLI(t, "migrate", "--clickhouse-addr", "127.0.0.1:1", "--wait-for", "1s", "--log-file", logFile)
	if code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, errOut)
	}
	m := regexp.MustCompile(`^airtally migrate: ClickHouse at \[127\.0\.0\.1:1\] is not reachable yet; waiting for it, retrying with back-off \(error id ([0-9a-f-]{36}); the details are in the log\)\.\n` +
		`airtally migrate: sorry, could not reach ClickHouse at \[127\.0\.0\.1:1\] within 1s \(--wait-for\) \(error id ([0-9a-f-]{36}); the details are in the log\)\.\n$`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("stderr is not two polite lines with error ids: %q", errOut)
	}
	for _, raw := range []string{"dial", "connection refused", "connect:", "goroutine"} {
		if strings.Contains(errOut, raw) {
			t.Fatalf("stderr leaks %q: %q", raw, errOut)
		}
	}
	log, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), m[1]) || !strings.Contains(string(log), m[2]) || !strings.Contains(string(log), "connection refused") {
		t.Fatalf("the log lacks the error id or the detail:\n%s", log)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown flag", []string{"migrate", "--nope"}, 2, "flag provided but not defined: -nope"},
		{"gateway without tokens", []string{"gateway", "--log-file", os.DevNull}, 2, "--tokens-file is required"},
		{"replica-of without cluster", []string{"migrate", "--replica-of", "127.0.0.1:9000", "--log-file", os.DevNull}, 2, "--replica-of needs --clickhouse-cluster"},
		{"replay without target", []string{"replay", "--log-file", os.DevNull}, 2, "--into is required"},
		{"chaos with an unknown sync setting", []string{"chaos", "--sync", "sometimes", "--log-file", os.DevNull}, 2, "--sync must be default, always or both"},
		{"chaos without duration", []string{"chaos", "--duration", "0s", "--log-file", os.DevNull}, 2, "--duration must be positive"},
		{"nats-node without config", []string{"nats-node"}, 2, "--config is required"},
		{"help", []string{"help"}, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut+out, tc.want) {
				t.Fatalf("exit %d (want %d), output %q (want %q)", code, tc.code, errOut+out, tc.want)
			}
		})
	}
}

// The help lists the chaos command but not the hidden nats-node helper it
// starts.
func TestHelpHidesHelpers(t *testing.T) {
	code, out, _ := runCLI(t, "help")
	if code != 0 || !strings.Contains(out, "  chaos ") || strings.Contains(out, "nats-node") {
		t.Fatalf("exit %d, help:\n%s", code, out)
	}
}

func TestEnvironmentSetsFlags(t *testing.T) {
	t.Setenv("AIRTALLY_CLICKHOUSE_ADDR", "127.0.0.1:2")
	t.Setenv("AIRTALLY_WAIT_FOR", "100ms")
	code, _, errOut := runCLI(t, "migrate", "--log-file", os.DevNull)
	if code != 1 || !strings.Contains(errOut, "127.0.0.1:2") || !strings.Contains(errOut, "within 100ms") {
		t.Fatalf("AIRTALLY_CLICKHOUSE_ADDR was not used: exit %d, %q", code, errOut)
	}
	if EnvName("nats-url") != "AIRTALLY_NATS_URL" {
		t.Fatal(EnvName("nats-url"))
	}
}
