package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airtally/airtally/dashboards"
	"github.com/airtally/airtally/internal/grafanapush"
)

func init() {
	register(command{name: "dashboards", summary: "push the Grafana dashboards, their folder and data source to a running Grafana", run: runDashboards})
}

// grafanaTokenEnv holds the service account token when no token file is
// given. There is deliberately no flag for the token itself: a value on
// the command line shows in ps and in shell history.
const grafanaTokenEnv = "AIRTALLY_GRAFANA_TOKEN"

func runDashboards(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(env.Stdout, "Usage: airtally dashboards push [flags]   (airtally dashboards push -h for its flags)")
		fmt.Fprintln(env.Stdout, "\nCreates or updates, in a running Grafana, the airtally folder, the ClickHouse data source and every dashboard (docs/dashboards.md).")
		if len(args) == 0 {
			return &flagError{msg: "say what to do: airtally dashboards push"}
		}
		return nil
	}
	if args[0] != "push" {
		return &flagError{msg: fmt.Sprintf("unknown dashboards command %q: the one command is push", args[0])}
	}
	return runDashboardsPush(ctx, env, args[1:])
}

func runDashboardsPush(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "dashboards push")
	var (
		logs                    logFlags
		cfg                     grafanapush.Config
		tokenFile, passwordFile string
	)
	fs.StringVar(&cfg.URL, "grafana-url", "http://127.0.0.1:3000", "Grafana's base URL")
	fs.StringVar(&tokenFile, "grafana-token-file", "", "file holding a Grafana service account token with the Admin role (else $"+grafanaTokenEnv+")")
	fs.StringVar(&cfg.FolderTitle, "folder", dashboards.FolderTitle, "title of the folder the dashboards go in")
	fs.StringVar(&cfg.Datasource.Host, "datasource-host", "clickhouse", "ClickHouse host, as Grafana reaches it")
	fs.IntVar(&cfg.Datasource.Port, "datasource-port", 9000, "ClickHouse port, as Grafana reaches it (native 9000, TLS 9440; HTTP 8123)")
	fs.StringVar(&cfg.Datasource.Protocol, "datasource-protocol", "native", "native or http")
	fs.BoolVar(&cfg.Datasource.Secure, "datasource-secure", false, "connect to ClickHouse with TLS")
	fs.StringVar(&cfg.Datasource.Username, "datasource-user", "grafana", "ClickHouse's read-only user for Grafana")
	fs.StringVar(&passwordFile, "datasource-password-file", "", "file holding that user's password (required the first time; else the data source keeps its password)")
	fs.StringVar(&cfg.Datasource.Database, "datasource-database", "airtally", "ClickHouse database the dashboards read")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "how long each request to Grafana may take")
	logs.register(fs, filepath.Join(".airtally", "airtally.log"))
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := logs.setup(env); err != nil {
		return err
	}
	token, err := grafanaToken(tokenFile)
	if err != nil {
		return err
	}
	cfg.Token = token
	if passwordFile != "" {
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return userErr(err, "could not read the password file given by --datasource-password-file")
		}
		cfg.Datasource.Password = strings.TrimSpace(string(b))
	}
	cfg.Logger = env.Log
	if err := cfg.Validate(); err != nil {
		return &flagError{msg: strings.TrimPrefix(err.Error(), "grafanapush: ")}
	}
	res, err := grafanapush.Push(ctx, cfg)
	var pe *grafanapush.Error
	switch {
	case errors.As(err, &pe):
		if errors.Is(pe.Kind, grafanapush.ErrPassword) {
			return &flagError{msg: pe.Message + " (--datasource-password-file)"}
		}
		return userErr(err, "%s", pe.Message)
	case errors.Is(err, context.Canceled):
		return err
	case err != nil:
		return userErr(err, "the dashboards could not be pushed to %s", cfg.URL)
	}
	fmt.Fprintf(env.Stdout, "Grafana %s at %s:\n", res.GrafanaVersion, cfg.URL)
	for _, it := range res.Items {
		fmt.Fprintf(env.Stdout, "  %-40s %s\n", it.What, it.Action)
	}
	return nil
}

// grafanaToken reads the service account token from the file, else from
// $AIRTALLY_GRAFANA_TOKEN.
func grafanaToken(file string) (string, error) {
	if file == "" {
		if t := strings.TrimSpace(os.Getenv(grafanaTokenEnv)); t != "" {
			return t, nil
		}
		return "", &flagError{msg: "give a Grafana service account token: --grafana-token-file FILE, or $" + grafanaTokenEnv}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", userErr(err, "could not read the token file given by --grafana-token-file")
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", &flagError{msg: "the token file given by --grafana-token-file is empty"}
	}
	return t, nil
}
