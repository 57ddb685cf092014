package cli

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDashboardsPushCommand runs `airtally dashboards push` against a
// server that refuses every token: the user gets one polite sentence and
// an error id, never the token; without a token the command says how to
// give one.
func TestDashboardsPushCommand(t *testing.T) {
	const secret = "glsa_never-shown-0123456789"
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, r.Header.Get("Authorization"))
		if r.URL.Path == "/api/health" {
			w.Write([]byte(`{"database":"ok","version":"12.4.0"}`))
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"message":"invalid API key"}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "log")

	t.Run("token refused", func(t *testing.T) {
		code, out, errOut := runCLI(t, "dashboards", "push", "--grafana-url", srv.URL, "--grafana-token-file", tokenFile, "--log-file", logFile)
		if code != 1 || out != "" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		if !regexp.MustCompile(`^airtally dashboards: sorry, Grafana refused the token \(401 Unauthorized\).*\(error id [0-9a-f-]{36}; the details are in the log\)\.\n$`).MatchString(errOut) {
			t.Fatalf("stderr is not one polite line: %q", errOut)
		}
		if strings.Contains(errOut, secret) {
			t.Fatal("stderr shows the token")
		}
		if log, _ := os.ReadFile(logFile); strings.Contains(string(log), secret) {
			t.Fatal("the log holds the token")
		}
		if len(auth) < 2 || auth[len(auth)-1] != "Bearer "+secret {
			t.Fatalf("requests carried %q", auth)
		}
	})
	t.Run("token from the environment", func(t *testing.T) {
		t.Setenv(grafanaTokenEnv, secret)
		auth = nil
		code, _, _ := runCLI(t, "dashboards", "push", "--grafana-url", srv.URL, "--log-file", logFile)
		if code != 1 || auth[len(auth)-1] != "Bearer "+secret {
			t.Fatalf("exit %d, requests carried %q", code, auth)
		}
	})
	t.Run("no token", func(t *testing.T) {
		t.Setenv(grafanaTokenEnv, "")
		code, _, errOut := runCLI(t, "dashboards", "push", "--grafana-url", srv.URL, "--log-file", logFile)
		if code != 2 || !strings.Contains(errOut, "--grafana-token-file") || !strings.Contains(errOut, grafanaTokenEnv) {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("no such subcommand", func(t *testing.T) {
		code, _, errOut := runCLI(t, "dashboards", "pull")
		if code != 2 || !strings.Contains(errOut, "push") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
	})
}
