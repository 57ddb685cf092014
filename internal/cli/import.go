package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/airtally/airtally/internal/connect"
	"github.com/airtally/airtally/internal/schedule"
	"github.com/airtally/airtally/producers/publisher"
)

func init() {
	register(command{name: "import-schedule", summary: "import media schedules, post-logs and offer settings from CSV", run: runImportSchedule})
}

func runImportSchedule(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "import-schedule")
	var (
		logs                           logFlags
		nf                             natsFlags
		ch                             chFlags
		sf                             streamFlags
		file, offers, format, spoolDir string
		cfg                            schedule.Config
	)
	fs.StringVar(&file, "file", "", "schedule or post-log CSV file (see docs/airings.md and docs/examples/schedule.csv)")
	fs.StringVar(&offers, "offers", "", "offer settings CSV file: response window, target media ratio, currency (docs/examples/offers.csv)")
	fs.StringVar(&cfg.TimeZone, "tz", schedule.DefaultTimeZone, "time zone of times that do not name theirs")
	fs.StringVar(&cfg.Currency, "currency", schedule.DefaultCurrency, "currency of a spend given without one")
	fs.StringVar(&cfg.Instance, "instance", "import", "this importer's name in the events' source (schedule.<instance>)")
	fs.StringVar(&spoolDir, "spool-dir", filepath.Join(".airtally", "spool", "schedule"), "where events wait while NATS is unreachable (and this source's sequence numbers are kept); use the same folder every time")
	fs.StringVar(&format, "format", "text", "summary format: text or json")
	logs.register(fs, filepath.Join(".airtally", "airtally.log"))
	nf.register(fs)
	ch.register(fs)
	sf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := logs.setup(env); err != nil {
		return err
	}
	if file == "" && offers == "" {
		return &flagError{msg: "give --file (a schedule or post-log) and/or --offers (offer settings)"}
	}
	if format != "text" && format != "json" {
		return &flagError{msg: "--format must be text or json"}
	}
	cfg.Logger = env.Log
	if err := cfg.Validate(); err != nil {
		return &flagError{msg: err.Error()}
	}
	// Read the files first: a missing file should not wait on servers.
	// Offers go first, so that a new offer's settings precede its airings.
	type input struct {
		path, kind string
		body       []byte
	}
	var data []input
	for _, in := range []input{{path: offers, kind: "offers"}, {path: file, kind: "schedule"}} {
		if in.path == "" {
			continue
		}
		b, err := os.ReadFile(in.path)
		if err != nil {
			return userErr(err, "could not read %s", in.path)
		}
		in.body = b
		data = append(data, in)
	}

	chCfg := ch.config()
	conn, err := connect.OpenClickHouse(ctx, chCfg)
	if err != nil {
		return userErr(err, "could not reach ClickHouse at %v to read the current schedule", chCfg.WithDefaults().Addrs)
	}
	defer conn.Close()
	natsCfg := nf.cfg
	natsCfg.Name = "airtally-import-schedule"
	nc, err := connect.ConnectNATS(natsCfg, env.Log)
	if err != nil {
		return userErr(err, "could not connect to NATS (check --nats-url and the credentials)")
	}
	defer nc.Close()
	// Schedule events carry no caller number; the key only satisfies the
	// publisher.
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("import-schedule: key: %w", err)
	}
	pub, err := publisher.New(ctx, nc, publisher.Config{Streams: sf.cfg, SpoolDir: spoolDir, ANIKey: key, Logger: env.Log})
	if err != nil {
		return userErr(err, "could not open the spool in %s", spoolDir)
	}
	defer closePublisher(env, pub)
	im, err := schedule.New(cfg, pub, schedule.ClickHouseStore(conn, chCfg.WithDefaults().Database))
	if err != nil {
		return &flagError{msg: err.Error()}
	}

	type result struct {
		File    string           `json:"file"`
		Kind    string           `json:"kind"`
		Summary schedule.Summary `json:"summary"`
	}
	var results []result
	failed := false
	for _, d := range data {
		var sum schedule.Summary
		var err error
		if d.kind == "offers" {
			sum, err = im.Offers(ctx, bytes.NewReader(d.body))
		} else {
			sum, err = im.Schedule(ctx, bytes.NewReader(d.body))
		}
		if err != nil {
			return userErr(err, "could not import %s", d.path)
		}
		results = append(results, result{File: d.path, Kind: d.kind, Summary: sum})
		if !sum.Imported() || sum.Failed > 0 {
			failed = true
		}
	}
	if format == "json" {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			printSummary(env.Stdout, r.File, r.Kind, r.Summary)
		}
	}
	if failed {
		return userErr(nil, "a file could not be imported, or events could be neither published nor spooled (see the summary above)")
	}
	return nil
}

func printSummary(w io.Writer, path, kind string, s schedule.Summary) {
	rows := "rows"
	if s.Rows == 1 {
		rows = "row"
	}
	fmt.Fprintf(w, "%s (%s): %d %s: %d new, %d revised, %d unchanged, %d rejected", path, kind, s.Rows, rows, s.New, s.Revised, s.Unchanged, s.Rejected)
	if s.Failed > 0 {
		fmt.Fprintf(w, ", %d not published", s.Failed)
	}
	fmt.Fprintln(w)
	if s.Spooled > 0 {
		fmt.Fprintf(w, "  %d events wait in the spool: NATS did not take them now; they are sent the next time this command runs with the same --spool-dir and NATS is reachable\n", s.Spooled)
	}
	for _, p := range s.Problems {
		fmt.Fprintf(w, "  %s\n", p.Error())
	}
	for _, ig := range s.Ignored {
		fmt.Fprintf(w, "  column %s not read\n", ig)
	}
}
