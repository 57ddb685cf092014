package cli

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airtally/airtally/consumers/detector"
	"github.com/airtally/airtally/consumers/detector/accountability"
	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/connect"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/waitfor"
	"github.com/airtally/airtally/producers/publisher"
)

func init() {
	register(command{name: "detector", summary: "run the detector: source downtime, lost events, silent lines, late data; alerts", run: runDetector})
	register(command{name: "accountability", summary: "print every airing's accountability: status, coverage, estimated missing calls, adjusted cost per order", run: runAccountability})
}

// detectorFlags are the detector's own flags.
type detectorFlags struct {
	cfg             detector.Config
	spoolDir        string
	sourceTolerance string
	webhookFile     string
	ensureStreams   bool
}

func (d *detectorFlags) register(fs *flag.FlagSet) {
	c := &d.cfg
	fs.StringVar(&c.Consumer, "consumer", detector.DefaultConsumer, "the detector's durable consumer (one detector per name)")
	fs.StringVar(&c.Instance, "instance", detector.DefaultInstance, "the detector's source instance (its events come from detector.<instance>)")
	fs.StringVar(&c.StateBucket, "state-bucket", detector.DefaultStateBucket, "JetStream key-value bucket of the detector's state")
	fs.StringVar(&d.spoolDir, "spool-dir", filepath.Join("spool", "detector"), "folder of the spool for detection events while NATS is unreachable")
	fs.Float64Var(&c.ToleranceFactor, "tolerance-factor", detector.DefaultToleranceFactor, "a source may stay silent this many heartbeat intervals...")
	fs.DurationVar(&c.ToleranceGrace, "tolerance-grace", detector.DefaultToleranceGrace, "...plus this grace")
	fs.StringVar(&d.sourceTolerance, "source-tolerance", "", "tolerances of given sources, e.g. 'acd.tampa-01=3m,schedule.agency=26h' (a source that sends no heartbeats is watched only if named here)")
	fs.DurationVar(&c.DelayTolerance, "delay-tolerance", detector.DefaultDelayTolerance, "an event this much later than its source's quickest delivery is late")
	fs.DurationVar(&c.MaxClockSkew, "max-clock-skew", detector.DefaultMaxClockSkew, "the largest producer clock error corrected (a larger lag is delay)")
	fs.DurationVar(&c.GapGrace, "gap-grace", detector.DefaultGapGrace, "how long a hole in a source's sequence numbers may stay before it is recorded")
	fs.Float64Var(&c.SilentCalls, "silent-calls", detector.DefaultSilentCalls, "calls a number must have been expected to take, without one, to be flagged silent")
	fs.DurationVar(&c.CheckInterval, "check-interval", detector.DefaultCheckInterval, "how often silent sources are checked by the clock")
	fs.StringVar(&c.LoaderConsumer, "loader-consumer", loader.DefaultConsumer, "the loader's durable consumer, watched for lag (\"-\": not watched)")
	fs.DurationVar(&c.LoaderTolerance, "loader-tolerance", detector.DefaultLoaderTolerance, "a loader this far behind is reported (late data, not lost)")
	fs.StringVar(&c.Alerts.Subject, "alert-subject", detector.DefaultAlertSubject, "NATS subject of alerts (JSON; \"-\": none)")
	fs.StringVar(&c.Alerts.WebhookURL, "webhook-url", "", "post alerts as {\"text\": ...} to this chat webhook (prefer --webhook-url-file: the URL is a secret)")
	fs.StringVar(&d.webhookFile, "webhook-url-file", "", "file holding the chat webhook URL")
	fs.BoolVar(&d.ensureStreams, "ensure-streams", true, "create or update the JetStream streams at start-up")
}

// config completes the configuration from the flags that need parsing.
func (d *detectorFlags) config() (detector.Config, error) {
	cfg := d.cfg
	if d.sourceTolerance != "" {
		cfg.SourceTolerance = map[string]time.Duration{}
		for _, part := range strings.Split(d.sourceTolerance, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			dur, err := time.ParseDuration(v)
			if !ok || err != nil || k == "" {
				return cfg, &flagError{msg: "--source-tolerance must be 'system.instance=duration,...', e.g. 'acd.tampa-01=3m'"}
			}
			cfg.SourceTolerance[k] = dur
		}
	}
	if d.webhookFile != "" {
		b, err := os.ReadFile(d.webhookFile)
		if err != nil {
			return cfg, userErr(err, "could not read the webhook URL file given by --webhook-url-file")
		}
		cfg.Alerts.WebhookURL = strings.TrimSpace(string(b))
	}
	if err := cfg.Validate(); err != nil {
		return cfg, &flagError{msg: err.Error()}
	}
	return cfg, nil
}

func runDetector(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "detector")
	var sv serviceFlags
	var df detectorFlags
	sv.register(fs, ":9466")
	df.register(fs)
	var cfg detector.Config
	reg, st, stopMetrics, err := sv.start(env, fs, args, func() (err error) {
		cfg, err = df.config()
		return err
	}, true, waitfor.NATS)
	if err != nil {
		return err
	}
	defer stopMetrics()
	nf, sf := sv.nats, sv.streams
	nc, js, err := st.nats(ctx, nf, "airtally-detector")
	if err != nil {
		return orStopped(ctx, err)
	}
	defer nc.Close()
	if df.ensureStreams {
		if err := st.ensureStreams(ctx, nc, js, sf); err != nil {
			return orStopped(ctx, err)
		}
	}
	// From here on the detector rides out outages by itself; /readyz follows.
	st.watch(ctx, nc, nil)
	// Detection events carry no caller numbers: the key the publisher
	// requires hashes nothing, so a random one is enough.
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return userErr(err, "could not make a key")
	}
	pub, err := publisher.New(ctx, nc, publisher.Config{Streams: sf.cfg, SpoolDir: df.spoolDir, ANIKey: key, Logger: env.Log, Registerer: reg})
	if err != nil {
		return userErr(err, "could not open the detector's spool in %s", df.spoolDir)
	}
	defer closePublisher(env, pub)
	cfg.Streams, cfg.Logger, cfg.Registerer = sf.cfg, env.Log, reg
	d, err := detector.New(js, pub, cfg)
	if err != nil {
		return userErr(err, "the detector configuration is not valid")
	}
	if err := d.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return userErr(err, "the detector stopped")
	}
	return nil
}

func runAccountability(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "accountability")
	var (
		logs             logFlags
		ch               chFlags
		from, to, format string
		source           string
	)
	fs.StringVar(&from, "from", "", "first broadcast day (YYYY-MM-DD) or an exact start (RFC 3339); required")
	fs.StringVar(&to, "to", "", "last broadcast day, included (YYYY-MM-DD), or an exact end, excluded (RFC 3339); default: --from")
	fs.StringVar(&format, "format", "text", "text or json")
	fs.StringVar(&source, "source", "auto", "auto: the accountability projection for the weeks it holds up to date (a week still airing: computed by the projector within the last minute), each other week computed on read;"+
		" slices: every week computed on read; on-read: the on-read view over all history (to audit the projection; slow on a long history)")
	logs.register(fs, filepath.Join(".airtally", "airtally.log"))
	ch.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := logs.setup(env); err != nil {
		return err
	}
	if format != "text" && format != "json" {
		return &flagError{msg: "--format must be text or json"}
	}
	src := accountability.Source(source)
	switch src {
	case "auto":
		src = accountability.SourceAuto
	case accountability.SourceSlices, accountability.SourceOnRead:
	default:
		return &flagError{msg: "--source must be auto, slices or on-read"}
	}
	f, t, err := rangeFlags(report.DefaultConfig(), from, to)
	if err != nil {
		return &flagError{msg: err.Error()}
	}
	cfg := ch.config()
	conn, err := connect.OpenClickHouse(ctx, cfg)
	if err != nil {
		return userErr(err, "could not reach ClickHouse at %v", cfg.WithDefaults().Addrs)
	}
	defer conn.Close()
	rows, err := accountability.QueryFrom(ctx, report.Native(conn), cfg.WithDefaults().Database, f, t, src)
	if err != nil {
		return userErr(err, "the accountability could not be read (is the schema migrated? run 'airtally migrate')")
	}
	if format == "json" {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(env.Stdout, "no airing in that range")
		return nil
	}
	return accountability.Write(env.Stdout, rows)
}
