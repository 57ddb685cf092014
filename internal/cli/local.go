package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/airtally/airtally/consumers/projector"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/consumers/detector"
	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/chlocal"
	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/connect"
	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/producers/gateway"
	"github.com/airtally/airtally/producers/publisher"
)

func init() {
	register(command{name: "local", summary: "local mode: embedded NATS, a local ClickHouse, loader, gateway and a demo broadcast day", run: runLocal})
}

type localFlags struct {
	dataDir     string
	natsPort    int
	chPort      int
	chHTTPPort  int
	httpAddr    string
	syncAlways  bool
	serve       bool
	demo        bool
	demoDate    string
	seed        uint64
	waitTimeout time.Duration
	database    string
}

func runLocal(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "local")
	var lf localFlags
	var logs logFlags
	var mf metricsFlags
	var wf waitFlags
	wf.register(fs)
	fs.StringVar(&lf.dataDir, "data-dir", ".airtally", "folder for NATS, ClickHouse, spools, keys and logs")
	fs.IntVar(&lf.natsPort, "nats-port", 4222, "port of the embedded NATS server (127.0.0.1)")
	fs.IntVar(&lf.chPort, "clickhouse-port", 19000, "native port of the local ClickHouse server (127.0.0.1)")
	fs.IntVar(&lf.chHTTPPort, "clickhouse-http-port", 18123, "HTTP port of the local ClickHouse server (127.0.0.1)")
	fs.StringVar(&lf.httpAddr, "http-addr", "127.0.0.1:8080", "address of the HTTP gateway")
	fs.BoolVar(&lf.syncAlways, "sync-always", true, "make JetStream fsync every write before it acks (sync_interval: always); --sync-always=false syncs every 2 minutes (faster, but an OS crash can lose acknowledged events)")
	fs.BoolVar(&lf.serve, "serve", false, "keep running after the demo until Ctrl-C")
	fs.BoolVar(&lf.demo, "demo", true, "play the demo broadcast day")
	fs.StringVar(&lf.demoDate, "demo-date", "", "the demo broadcast day, YYYY-MM-DD (default: the day before yesterday, UTC, so that every response window has closed)")
	fs.Uint64Var(&lf.seed, "seed", 1, "seed of the demo day")
	fs.DurationVar(&lf.waitTimeout, "wait", 2*time.Minute, "how long to wait for the demo day to be loaded")
	fs.StringVar(&lf.database, "clickhouse-database", "airtally", "ClickHouse database")
	logs.register(fs, filepath.Join(".airtally", "airtally.log"))
	mf.register(fs, "127.0.0.1:9464")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := logs.setup(env); err != nil {
		return err
	}
	// The broadcast day runs into the next morning (US time), so the day
	// before yesterday is the latest whose every response window has closed.
	day := time.Now().UTC().AddDate(0, 0, -2)
	if lf.demoDate != "" {
		d, err := time.Parse("2006-01-02", lf.demoDate)
		if err != nil {
			return &flagError{msg: "--demo-date must be YYYY-MM-DD"}
		}
		day = d
	}
	out := env.Stdout
	step := func(format string, args ...any) { fmt.Fprintf(out, "• "+format+"\n", args...) }

	binary, err := chlocal.FindBinary()
	if err != nil {
		return userErr(err, "no ClickHouse server is installed. Install it with 'apt-get install clickhouse-server' (Debian), or run 'make demo', which installs it")
	}
	if err := os.MkdirAll(lf.dataDir, 0o750); err != nil {
		return userErr(err, "could not create the data folder %s", lf.dataDir)
	}
	aniKey, err := localSecret(filepath.Join(lf.dataDir, "ani.key"))
	if err != nil {
		return userErr(err, "could not create the caller-number hashing key in %s", lf.dataDir)
	}
	token, err := localSecret(filepath.Join(lf.dataDir, "gateway.token"))
	if err != nil {
		return userErr(err, "could not create the gateway token in %s", lf.dataDir)
	}

	reg, stopMetrics, err := mf.serve(env)
	if err != nil {
		return err
	}
	defer stopMetrics()

	// NATS with JetStream.
	ns, err := natsembed.Start(natsembed.Config{Dir: filepath.Join(lf.dataDir, "nats"), Port: lf.natsPort, SyncAlways: lf.syncAlways})
	if err != nil {
		return userErr(err, "could not start the embedded NATS server on port %d (is it in use? set --nats-port)", lf.natsPort)
	}
	defer ns.Stop()
	step("NATS with JetStream on %s (data in %s, sync %s)", ns.ClientURL(), filepath.Join(lf.dataDir, "nats"), syncName(lf.syncAlways))
	nc, js, err := jetStream(ctx, env, natsFlags{cfg: connect.NATS{URL: ns.ClientURL()}}, streamFlags{}, "airtally-local", true)
	if err != nil {
		return err
	}
	defer nc.Close()

	// ClickHouse.
	chDir, _ := filepath.Abs(filepath.Join(lf.dataDir, "clickhouse"))
	chs, err := chlocal.Start(ctx, chlocal.Config{Binary: binary, Dir: chDir, TCPPort: lf.chPort, HTTPPort: lf.chHTTPPort, Logger: env.Log})
	if err != nil {
		return userErr(err, "could not start the local ClickHouse server on port %d (is it in use? set --clickhouse-port)", lf.chPort)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := chs.Stop(sctx); err != nil {
			env.Log.Warn("clickhouse stop", "err", err)
		}
	}()
	// Wait for the server (it may still be starting), then migrate.
	st := newStarter(env, wf, nil)
	conn, err := st.clickHouse(ctx, connect.ClickHouse{Addrs: []string{chs.Addr()}, Database: lf.database})
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := st.migrate(ctx, conn, []string{chs.Addr()}, lf.database, ""); err != nil {
		return err
	}
	step("ClickHouse %s on %s (data in %s), schema migrated", serverVersion(ctx, conn), chs.Addr(), chDir)

	// Loader.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	l, err := loader.New(js, conn, loader.Config{Database: lf.database, Logger: env.Log, Registerer: reg, FlushInterval: 200 * time.Millisecond})
	if err != nil {
		return userErr(err, "the loader configuration is not valid")
	}
	var wg sync.WaitGroup
	loaderErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		loaderErr <- l.Run(runCtx)
	}()
	// Projector: the airing figures reports and dashboards read.
	proj, err := projector.New(projector.Native(conn), projector.Config{Database: lf.database, Log: env.Log})
	if err != nil {
		return userErr(err, "the projector configuration is not valid")
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = proj.Run(runCtx)
	}()
	// Shut down in order: stop taking requests, stop the components and
	// wait for them, then close the publishers they publish through.
	var (
		srv           *http.Server
		detPub, gwPub *publisher.Publisher
	)
	defer func() {
		if srv != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := srv.Shutdown(sctx); err != nil {
				env.Log.Warn("gateway shutdown", "err", err)
			}
			cancel()
		}
		stopRun()
		wg.Wait()
		for _, p := range []*publisher.Publisher{gwPub, detPub} {
			if p != nil {
				closePublisher(env, p)
			}
		}
	}()

	// Detector: downtime, lost events, silent lines, late data.
	detPub, err = publisher.New(ctx, nc, publisher.Config{SpoolDir: filepath.Join(lf.dataDir, "spool", "detector"), ANIKey: aniKey, Logger: env.Log})
	if err != nil {
		return userErr(err, "could not open the detector's spool")
	}
	var demo *demoDay
	detCfg := detector.Config{Logger: env.Log}
	if lf.demo {
		demo = newDemoDay(day, lf.seed)
		detCfg = demo.detectorConfig(detCfg)
	}
	det := &localDetector{js: js, pub: detPub, env: env, wg: &wg}
	if err := det.start(runCtx, detCfg); err != nil {
		return err
	}

	// Gateway.
	gwPub, err = publisher.New(ctx, nc, publisher.Config{SpoolDir: filepath.Join(lf.dataDir, "spool", "gateway"), ANIKey: aniKey, Logger: env.Log, Registerer: reg})
	if err != nil {
		return userErr(err, "could not open the gateway's spool")
	}
	relay, err := publisher.NewRelay(gwPub, publisher.RelayConfig{})
	if err != nil {
		return userErr(err, "the heartbeat relay configuration is not valid")
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = relay.Run(runCtx)
	}()
	gw, err := gateway.New(gateway.Config{
		Tokens: map[string]gateway.Grant{string(token): {Name: "local", System: gateway.Any, Instance: gateway.Any}},
		Logger: env.Log, Registerer: reg,
	}, relay)
	if err != nil {
		return userErr(err, "the gateway configuration is not valid")
	}
	ln, err := net.Listen("tcp", lf.httpAddr)
	if err != nil {
		return userErr(err, "could not listen on %s (is it in use? set --http-addr)", lf.httpAddr)
	}
	srv = &http.Server{Handler: gw.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	gwURL := "http://" + ln.Addr().String()
	step("HTTP gateway on %s (token in %s), loader running, metrics on http://%s/metrics", gwURL, filepath.Join(lf.dataDir, "gateway.token"), mf.addr)

	if lf.demo {
		err := runDemo(ctx, demoRun{env: env, step: step, nc: nc, js: js, conn: conn, db: lf.database, aniKey: aniKey,
			spoolDir: filepath.Join(lf.dataDir, "spool", "demo"), gwURL: gwURL, token: string(token), wait: lf.waitTimeout,
			loaderErr: loaderErr, det: det.det, proj: proj}, demo)
		if err != nil {
			return err
		}
		if lf.serve {
			// Live from here on: the detector carries on from its state.
			if err := det.restart(runCtx, detector.Config{Logger: env.Log}); err != nil {
				return err
			}
		}
	}
	if lf.serve {
		step("serving until Ctrl-C")
		select {
		case <-ctx.Done():
		case err := <-loaderErr:
			if err != nil && !errors.Is(err, context.Canceled) {
				return userErr(err, "the loader stopped")
			}
		}
	}
	step("shutting down")
	return nil
}

func syncName(always bool) string {
	if always {
		return "always"
	}
	return "every 2m (default)"
}

// localSecret returns the secret kept in path, creating a random one the
// first time (mode 0600).
func localSecret(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) >= 16 {
		return bytes.TrimSpace(b), nil
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	secret := []byte(hex.EncodeToString(raw))
	if err := os.WriteFile(path, append(secret, '\n'), 0o600); err != nil {
		return nil, err
	}
	return secret, nil
}

func serverVersion(ctx context.Context, conn driver.Conn) string {
	v, err := conn.ServerVersion()
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%d.%d.%d", v.Version.Major, v.Version.Minor, v.Version.Patch)
}

// waitLoaded polls ClickHouse until every event of the day is there.
func waitLoaded(ctx context.Context, conn driver.Conn, db string, d demoday.Day, timeout time.Duration, loaderErr <-chan error) error {
	dbq, err := chsql.Ident(db)
	if err != nil {
		return err
	}
	// One query per 4000 ids: the server's max_query_size is 256 KiB.
	var queries []string
	for start := 0; start < len(d.Events); start += 4000 {
		evs := d.Events[start:min(start+4000, len(d.Events))]
		ids := make([]string, len(evs))
		for i, e := range evs {
			ids[i] = e.EventID.String()
		}
		first, last := evs[0].OccurredAt, evs[len(evs)-1].OccurredAt
		queries = append(queries, "SELECT count() FROM "+dbq+".events FINAL WHERE occurred_at BETWEEN "+chsql.Time(first.Truncate(time.Second))+
			" AND "+chsql.Time(last)+" AND toString(event_id) IN (SELECT arrayJoin("+chsql.Strings(ids)+"))")
	}
	deadline := time.Now().Add(timeout)
	for {
		var n uint64
		for _, q := range queries {
			var part uint64
			if err := conn.QueryRow(ctx, q).Scan(&part); err != nil {
				return userErr(err, "could not count the loaded events")
			}
			n += part
		}
		if n >= uint64(len(d.Events)) {
			// The airings' projection is written right after their events.
			var projected uint64
			if err := conn.QueryRow(ctx, "SELECT uniqExact(airing_id) FROM "+dbq+".airings").Scan(&projected); err != nil {
				return userErr(err, "could not count the projected airings")
			}
			if projected >= uint64(airingsIn(d)) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return userErr(fmt.Errorf("%d of %d loaded", n, len(d.Events)), "the demo day was not fully loaded in time (%d of %d events); see the log", n, len(d.Events))
		}
		select {
		case err := <-loaderErr:
			return userErr(err, "the loader stopped before the demo day was loaded")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitDetected waits until the detector has seen the whole stream and its
// detections are loaded.
func waitDetected(ctx context.Context, js jetstream.JetStream, conn driver.Conn, db string, det *detector.Detector, timeout time.Duration) error {
	dbq, err := chsql.Ident(db)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		s, err := js.Stream(ctx, streams.DefaultEventsStream)
		if err != nil {
			return userErr(err, "could not read the events stream")
		}
		info, err := s.Info(ctx)
		if err != nil {
			return userErr(err, "could not read the events stream")
		}
		last := info.State.LastSeq
		var loaded uint64
		if err := conn.QueryRow(ctx, "SELECT max(stream_seq) FROM "+dbq+".events").Scan(&loaded); err != nil {
			return userErr(err, "could not read what was loaded")
		}
		// The detector publishes what it finds: wait until it has seen the
		// stream up to its end and everything is loaded.
		if det.Applied() >= last && loaded >= last {
			return nil
		}
		if time.Now().After(deadline) {
			return userErr(fmt.Errorf("detector at %d, loaded %d, stream at %d", det.Applied(), loaded, last), "the detector did not catch up in time; see the log")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// airingsIn counts the distinct airings of a day.
func airingsIn(d demoday.Day) int {
	ids := map[string]bool{}
	for _, e := range d.Events {
		if e.Kind.IsAiring() {
			ids[e.AiringID] = true
		}
	}
	return len(ids)
}

// printArrived prints what arrived, read back from ClickHouse.
func printArrived(ctx context.Context, w io.Writer, conn driver.Conn, db string, js jetstream.JetStream, from, to time.Time) error {
	dbq, err := chsql.Ident(db)
	if err != nil {
		return err
	}
	q := "SELECT concat(source_system, '.', source_instance) AS source, count() AS events, countIf(kind = 'call.received') AS calls, " +
		"countIf(kind = 'call.answered') AS answered, countIf(kind = 'call.abandoned') AS abandoned, countIf(kind = 'order.placed') AS orders, " +
		"countIf(kind = 'order.cancelled') AS cancelled, sumIf(amount_cents, kind = 'order.placed') AS revenue_cents, " +
		"countIf(kind = 'heartbeat') AS heartbeats, max(source_seq) AS last_seq FROM " + dbq + ".events FINAL WHERE occurred_at >= " +
		chsql.Time(from) + " AND occurred_at < " + chsql.Time(to) + " GROUP BY source ORDER BY source"
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("query arrived: %w", err)
	}
	defer rows.Close()
	fmt.Fprintf(w, "\nWhat arrived for the broadcast day %s to %s UTC, read back from ClickHouse (%s.events FINAL):\n\n",
		from.UTC().Format("2006-01-02 15:04"), to.UTC().Format("2006-01-02 15:04"), db)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "source\tevents\tcalls\tanswered\tabandoned\torders\tcancelled\trevenue\theartbeats\tlast seq\t")
	var total [8]uint64
	var revenue int64
	for rows.Next() {
		var src string
		var events, calls, answered, abandoned, orders, cancelled, heartbeats uint64
		var rev int64
		var lastSeq uint64
		if err := rows.Scan(&src, &events, &calls, &answered, &abandoned, &orders, &cancelled, &rev, &heartbeats, &lastSeq); err != nil {
			return fmt.Errorf("scan arrived: %w", err)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t\n", src, events, calls, answered, abandoned, orders, cancelled, dollars(rev), heartbeats, lastSeq)
		for i, v := range []uint64{events, calls, answered, abandoned, orders, cancelled, heartbeats} {
			total[i] += v
		}
		revenue += rev
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read arrived: %w", err)
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t\t\n", total[0], total[1], total[2], total[3], total[4], total[5], dollars(revenue), total[6])
	tw.Flush()
	var dead uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+dbq+".dead_letters FINAL").Scan(&dead); err != nil {
		return fmt.Errorf("count dead letters: %w", err)
	}
	if s, err := js.Stream(ctx, streams.DefaultEventsStream); err == nil {
		if info, err := s.Info(ctx); err == nil {
			fmt.Fprintf(w, "\nStream %s holds %d messages; %d dead letters.\n", streams.DefaultEventsStream, info.State.Msgs, dead)
		}
	}
	return nil
}

// dollars formats integer cents as dollars for display.
func dollars(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return sign + "$" + strconv.FormatInt(cents/100, 10) + "." + fmt.Sprintf("%02d", cents%100)
}
