package cli

import (
	"context"
	"errors"
	"flag"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/consumers/projector"
	"github.com/airtally/airtally/internal/connect"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/waitfor"
	"github.com/airtally/airtally/producers/gateway"
	"github.com/airtally/airtally/producers/publisher"
)

func init() {
	register(command{name: "gateway", summary: "run the HTTP gateway (POST /v1/events) for systems that cannot speak NATS", run: runGateway})
	register(command{name: "loader", summary: "run the ClickHouse loader (JetStream → ClickHouse, exactly once)", run: runLoader})
	register(command{name: "replay", summary: "rebuild the ClickHouse tables from the stream into a fresh database", run: runReplay})
	register(command{name: "projector", summary: "keep the airing and accountability projections (the figures reports and dashboards read) up to date", run: runProjector})
}

// jetStream connects to NATS and, if ensure is set, creates or updates the
// streams.
func jetStream(ctx context.Context, env *Env, nf natsFlags, sf streamFlags, name string, ensure bool) (*nats.Conn, jetstream.JetStream, error) {
	cfg := nf.cfg
	cfg.Name = name
	nc, err := connect.ConnectNATS(cfg, env.Log)
	if err != nil {
		return nil, nil, userErr(err, "could not connect to NATS (check --nats-url and the credentials)")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, userErr(err, "could not use JetStream on the NATS connection")
	}
	if ensure {
		ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := streams.Ensure(ectx, js, sf.cfg); err != nil {
			nc.Close()
			return nil, nil, userErr(err, "could not create or update the JetStream streams (is JetStream enabled, and may this user manage streams?)")
		}
	}
	return nc, js, nil
}

// gatewayFlags are the gateway's own flags.
type gatewayFlags struct {
	listen, tokensFile, spoolDir, aniKeyFile, tlsCert, tlsKey string
	spoolMaxBytes, maxBodyBytes                               int64
	maxEvents, rateBurst, maxSources                          int
	ratePerSecond                                             float64
	ensureStreams                                             bool
}

func (g *gatewayFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.listen, "listen", ":8080", "address to serve HTTP on")
	fs.StringVar(&g.tokensFile, "tokens-file", "", "file of bearer tokens: one 'token system instance name' per line (required)")
	fs.StringVar(&g.spoolDir, "spool-dir", "spool/gateway", "folder of the local spool used while NATS is unreachable")
	fs.Int64Var(&g.spoolMaxBytes, "spool-max-bytes", 1<<30, "spool size limit; when full, requests get 503 (never dropped)")
	fs.StringVar(&g.aniKeyFile, "ani-key-file", "", "file holding the key that hashes callers' numbers (required)")
	fs.StringVar(&g.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (with --tls-key)")
	fs.StringVar(&g.tlsKey, "tls-key", "", "key of --tls-cert")
	fs.Int64Var(&g.maxBodyBytes, "max-body-bytes", gateway.DefaultMaxBodyBytes, "largest request body (413 beyond)")
	fs.IntVar(&g.maxEvents, "max-events", gateway.DefaultMaxEvents, "most events in one request (413 beyond)")
	fs.Float64Var(&g.ratePerSecond, "rate-per-second", 0, "events each token may send per second (0: unlimited); beyond it the gateway answers 429 with Retry-After")
	fs.IntVar(&g.rateBurst, "rate-burst", 0, "most events a token may send at once under --rate-per-second (default: --max-events)")
	fs.IntVar(&g.maxSources, "max-sources", gateway.DefaultMaxSources, "most sources (system, instance) the gateway keeps sequence numbers for; events of a new source beyond it are rejected")
	fs.BoolVar(&g.ensureStreams, "ensure-streams", true, "create or update the JetStream streams at start-up")
}

func runGateway(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "gateway")
	var sv serviceFlags
	var gf gatewayFlags
	sv.register(fs, ":9464")
	gf.register(fs)
	var tokens map[string]gateway.Grant
	var aniKey []byte
	reg, st, stopMetrics, err := sv.start(env, fs, args, func() error {
		if gf.tokensFile == "" {
			return &flagError{msg: "--tokens-file is required"}
		}
		if (gf.tlsCert == "") != (gf.tlsKey == "") {
			return &flagError{msg: "--tls-cert and --tls-key go together"}
		}
		var err error
		if tokens, err = gateway.LoadTokens(gf.tokensFile); err != nil {
			return userErr(err, "the tokens file could not be used")
		}
		aniKey, err = readKeyFile(gf.aniKeyFile, "--ani-key-file")
		return err
	}, false, waitfor.NATS)
	if err != nil {
		return err
	}
	defer stopMetrics()
	nf, sf := sv.nats, sv.streams
	// The gateway serves at once, NATS or not: while NATS is unreachable
	// its publisher spools. Its connection connects in the background.
	cfg := nf.cfg
	cfg.Name = "airtally-gateway"
	nc, err := connect.ConnectNATS(cfg, env.Log)
	if err != nil {
		return userErr(err, "could not use the NATS connection settings (check --nats-url and the credentials files)")
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return userErr(err, "could not use JetStream on the NATS connection")
	}
	pub, err := publisher.New(ctx, nc, publisher.Config{
		Streams: sf.cfg, SpoolDir: gf.spoolDir, SpoolMaxBytes: gf.spoolMaxBytes, ANIKey: aniKey,
		Logger: env.Log, Registerer: reg,
	})
	if err != nil {
		return userErr(err, "could not open the spool in %s", gf.spoolDir)
	}
	defer closePublisher(env, pub)
	// The relay sends heartbeats on behalf of the clients that posted
	// recently, so that the detector sees them as up.
	relay, err := publisher.NewRelay(pub, publisher.RelayConfig{})
	if err != nil {
		return userErr(err, "the heartbeat relay configuration is not valid")
	}
	go relay.Run(ctx)
	gw, err := gateway.New(gateway.Config{
		Tokens: tokens, MaxBodyBytes: gf.maxBodyBytes, MaxEvents: gf.maxEvents, MaxSources: gf.maxSources, RatePerSecond: gf.ratePerSecond, RateBurst: gf.rateBurst,
		Logger: env.Log, Registerer: reg,
	}, relay)
	if err != nil {
		return userErr(err, "the gateway configuration is not valid")
	}
	// Meanwhile, wait for NATS (saying so once), ensure the streams, and
	// keep the dependency's status; a configuration error (credentials,
	// permissions) ends the gateway with its reason.
	fatal := make(chan error, 1)
	go func() {
		if err := gatewayStartNATS(ctx, st, nf, nc, js, sf, gf.ensureStreams); err != nil {
			if ctx.Err() == nil {
				fatal <- err
			}
			return
		}
		st.watch(ctx, nc, nil)
	}()
	return serveHTTP(ctx, env, gf.listen, gf.tlsCert, gf.tlsKey, gw.Handler(), fatal)
}

// gatewayStartNATS waits until NATS accepts the gateway's credentials (a
// connection of its own, closed at once: the gateway's connection retries
// by itself, and cannot tell an outage from refused credentials), then
// ensures the streams.
func gatewayStartNATS(ctx context.Context, st *starter, nf natsFlags, nc *nats.Conn, js jetstream.JetStream, sf streamFlags, ensure bool) error {
	probe, _, err := st.nats(ctx, nf, "airtally-gateway-probe")
	if err != nil {
		return err
	}
	probe.Close()
	// The gateway's own connection reconnects every 250 ms or so: let it
	// catch up before the streams are ensured through it.
	for i := 0; i < 200 && nc.Status() != nats.CONNECTED && ctx.Err() == nil; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if ensure {
		return st.ensureStreams(ctx, nc, js, sf)
	}
	return nil
}

// closePublisher closes a publisher, giving it a few seconds to settle.
func closePublisher(env *Env, pub *publisher.Publisher) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pub.Close(ctx); err != nil {
		env.Log.Warn("publisher close", "err", err)
	}
}

// serveHTTP serves h until ctx ends or an error arrives on fatal, then
// shuts down gracefully (returning that error).
func serveHTTP(ctx context.Context, env *Env, addr, certFile, keyFile string, h http.Handler, fatal <-chan error) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return userErr(err, "could not listen on %s (is the port in use?)", addr)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	errc := make(chan error, 1)
	go func() {
		if certFile != "" || keyFile != "" {
			errc <- srv.ServeTLS(ln, certFile, keyFile)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	env.Log.Info("gateway listening", "addr", ln.Addr().String(), "tls", certFile != "")
	var failed error
	select {
	case err := <-errc:
		return userErr(err, "the HTTP server stopped")
	case failed = <-fatal:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		env.Log.Warn("http shutdown", "err", err)
	}
	return failed
}

// loaderFlags are the loader's own flags.
type loaderFlags struct {
	consumer      string
	batchSize     int
	flush         time.Duration
	migrate       bool
	maxAckPending int
	ackWait       time.Duration
	backoffMax    time.Duration
	projector     bool
}

func (l *loaderFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&l.projector, "projector", true, "also keep the airing and accountability projections in this process (as airtally projector does); one per database is enough, more are safe")
	fs.StringVar(&l.consumer, "consumer", loader.DefaultConsumer, "durable consumer shared by all loader instances")
	fs.IntVar(&l.batchSize, "batch-size", loader.DefaultBatchSize, "most events in one insert")
	fs.DurationVar(&l.flush, "flush-interval", loader.DefaultFlushInterval, "how long a batch waits for more events")
	fs.IntVar(&l.maxAckPending, "max-ack-pending", loader.DefaultMaxAckPending, "most unacknowledged events across all loaders (≥ (2 × loaders + 1) × batch size)")
	fs.BoolVar(&l.migrate, "migrate", true, "apply the schema migrations at start-up")
	fs.DurationVar(&l.ackWait, "ack-wait", loader.DefaultAckWait, "how long JetStream waits for an ack before redelivering to another loader (same on every instance: it is the shared consumer's)")
	fs.DurationVar(&l.backoffMax, "backoff-max", loader.DefaultBackoffMax, "longest pause between two attempts at a failing insert")
}

func runLoader(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "loader")
	var sv serviceFlags
	var cf chFlags
	var lf loaderFlags
	sv.register(fs, ":9465")
	cf.register(fs)
	lf.register(fs)
	reg, st, stopMetrics, err := sv.start(env, fs, args, nil, true, waitfor.ClickHouse, waitfor.NATS)
	if err != nil {
		return err
	}
	defer stopMetrics()
	nf, sf := sv.nats, sv.streams
	chCfg := cf.config().WithDefaults()
	// Start in any order: wait for ClickHouse, migrate, wait for NATS.
	conn, err := st.clickHouse(ctx, chCfg)
	if err != nil {
		return orStopped(ctx, err)
	}
	defer conn.Close()
	if lf.migrate {
		if _, err := st.migrate(ctx, conn, chCfg.Addrs, chCfg.Database, cf.cluster); err != nil {
			return orStopped(ctx, err)
		}
	}
	nc, js, err := st.nats(ctx, nf, "airtally-loader")
	if err != nil {
		return orStopped(ctx, err)
	}
	defer nc.Close()
	if err := st.ensureStreams(ctx, nc, js, sf); err != nil {
		return orStopped(ctx, err)
	}
	// From here on the loader rides out outages by itself; /readyz follows.
	st.watch(ctx, nc, conn)
	l, err := loader.New(js, conn, loader.Config{
		Database: chCfg.Database, Streams: sf.cfg, Consumer: lf.consumer, BatchSize: lf.batchSize,
		FlushInterval: lf.flush, MaxAckPending: lf.maxAckPending, AckWait: lf.ackWait, BackoffMax: lf.backoffMax,
		Logger: env.Log, Registerer: reg,
	})
	if err != nil {
		return userErr(err, "the loader configuration is not valid")
	}
	if lf.projector {
		p, err := projector.New(projector.Native(conn), projector.Config{Database: chCfg.Database, Log: env.Log})
		if err != nil {
			return userErr(err, "the projector configuration is not valid")
		}
		pctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = p.Run(pctx)
		}()
		defer func() { stop(); <-done }()
	}
	if err := l.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return userErr(err, "the loader stopped")
	}
	return nil
}

// runProjector keeps the airing and accountability projections of one
// database up to date (consumers/projector).
func runProjector(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "projector")
	var logs logFlags
	var cf chFlags
	interval := fs.Duration("interval", 2*time.Second, "pause between passes that found nothing to compute")
	logs.register(fs, "-")
	cf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := logs.setup(env); err != nil {
		return err
	}
	chCfg := cf.config().WithDefaults()
	conn, err := connect.OpenClickHouse(ctx, chCfg)
	if err != nil {
		return userErr(err, "could not reach ClickHouse at %v", chCfg.Addrs)
	}
	defer conn.Close()
	p, err := projector.New(projector.Native(conn), projector.Config{Database: chCfg.Database, Interval: *interval, Log: env.Log})
	if err != nil {
		return userErr(err, "the projector configuration is not valid")
	}
	return p.Run(ctx)
}

func runReplay(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "replay")
	var logs logFlags
	var nf natsFlags
	var sf streamFlags
	var cf chFlags
	var into string
	var rf replayFlags
	logs.register(fs, "-")
	nf.register(fs)
	sf.register(fs)
	cf.register(fs)
	rf.register(fs)
	fs.StringVar(&into, "into", "", "fresh database to rebuild the tables in, or one a stopped replay left, to resume (required; never the live one)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := logs.setup(env); err != nil {
		return err
	}
	chCfg := cf.config().WithDefaults()
	if into == "" {
		return &flagError{msg: "--into is required: name a fresh database"}
	}
	if into == chCfg.Database {
		return &flagError{msg: "--into must differ from --clickhouse-database: replay rebuilds into a fresh database"}
	}
	conn, err := connect.OpenClickHouse(ctx, chCfg)
	if err != nil {
		return userErr(err, "could not reach ClickHouse at %v", chCfg.Addrs)
	}
	defer conn.Close()
	nc, js, err := jetStream(ctx, env, nf, sf, "airtally-replay", false)
	if err != nil {
		return err
	}
	defer nc.Close()
	rcfg, progress := rf.config(loader.ReplayConfig{Database: into, Cluster: cf.cluster, Streams: sf.cfg, Logger: env.Log}, env.Stderr)
	stats, err := loader.Replay(ctx, js, conn, rcfg)
	progress.done()
	if err != nil && stats.Batches == 0 && ctx.Err() == nil {
		return userErr(err, "the replay did not complete")
	}
	writeReplaySummary(ctx, env.Stdout, conn, sf.cfg.WithDefaults().EventsStream, into, stats, err)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return userErr(err, "the replay did not complete")
	}
	return nil
}
