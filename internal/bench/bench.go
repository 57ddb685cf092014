package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/chlocal"
	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/connect"
	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/schema"
)

// runner is one run: its configuration, folder, ClickHouse server and key.
type runner struct {
	cfg    Config
	dir    string
	log    *slog.Logger
	ch     *chlocal.Server
	conn   driver.Conn // admin, raw inserts and polls
	aniKey []byte
	// resetOK stays true while every peak reset took.
	resetOK bool
}

// Run starts one local ClickHouse server, then for each sync setting an
// embedded NATS server on a fresh store, and measures, in this order: the
// raw JetStream publish rate, the raw JetStream fetch rate, the raw
// ClickHouse insert rate, the end-to-end throughput, the replay rate and
// the latency at the paced rate (see the package
// documentation). Every server it started is stopped, and a temporary
// folder removed, before it returns.
func Run(ctx context.Context, cfg Config) (rep Report, err error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	cfg = cfg.WithDefaults()
	r := &runner{cfg: cfg, log: cfg.Logger, resetOK: true}
	if r.dir, err = runDir(cfg.Dir); err != nil {
		return Report{}, err
	}
	if cfg.Dir == "" {
		defer func() {
			if rmErr := os.RemoveAll(r.dir); rmErr != nil {
				err = errors.Join(err, fmt.Errorf("bench: remove %s: %w", r.dir, rmErr))
			}
		}()
	}
	r.aniKey = make([]byte, 32)
	if _, err := rand.Read(r.aniKey); err != nil {
		return Report{}, fmt.Errorf("bench: ANI key: %w", err)
	}

	cfg.Progress("starting ClickHouse")
	r.ch, err = chlocal.Start(ctx, chlocal.Config{Binary: cfg.ClickHouseBinary, Dir: filepath.Join(r.dir, "clickhouse"), Logger: r.log})
	if err != nil {
		return Report{}, fmt.Errorf("bench: start clickhouse: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if stopErr := r.ch.Stop(sctx); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("bench: stop clickhouse: %w", stopErr))
		}
	}()
	r.conn, err = r.openClickHouse(ctx)
	if err != nil {
		return Report{}, err
	}
	defer r.conn.Close()

	rep = Report{Started: time.Now().UTC(), Params: params(cfg), Machine: r.machine()}
	for _, s := range cfg.Syncs {
		res, err := r.setting(ctx, s)
		if err != nil {
			return Report{}, fmt.Errorf("bench: sync %s: %w", s, err)
		}
		rep.Results = append(rep.Results, res)
	}
	rep.PeaksPerPhase = r.resetOK
	rep.Seconds = time.Since(rep.Started).Seconds()
	return rep, nil
}

// runDir makes the run's folder: a temporary one when dir is empty, else a
// fresh "bench-*" folder inside dir.
func runDir(dir string) (string, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return "", fmt.Errorf("bench: create %s: %w", dir, err)
		}
	}
	pattern := "bench-"
	if dir == "" {
		pattern = "airtally-bench-"
	}
	d, err := os.MkdirTemp(dir, pattern)
	if err != nil {
		return "", fmt.Errorf("bench: create run folder: %w", err)
	}
	return filepath.Abs(d)
}

func params(cfg Config) Params {
	return Params{
		Events: cfg.Events, Rate: cfg.Rate, DurationSeconds: cfg.Duration.Seconds(),
		FlushMillis: millis(cfg.FlushInterval), PollMillis: millis(cfg.PollInterval),
		Window: cfg.Window, InsertBatch: cfg.InsertBatch, PublishBatch: cfg.PublishBatch, Sources: cfg.Sources,
		LoaderBatch: loader.DefaultBatchSize, ReplayBatch: cfg.ReplayBatch,
	}
}

func (r *runner) openClickHouse(ctx context.Context) (driver.Conn, error) {
	conn, err := connect.OpenClickHouse(ctx, connect.ClickHouse{Addrs: []string{r.ch.Addr()}})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return conn, nil
}

func (r *runner) machine() Machine {
	m := Machine{
		Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), CPU: cpuModel(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, GoVersion: runtime.Version(),
		NATSVersion: server.VERSION, ClickHouseVersion: "?", Dir: r.dir, LoadAverage: loadAverage(),
	}
	if v, err := r.conn.ServerVersion(); err == nil {
		m.ClickHouseVersion = fmt.Sprintf("%d.%d.%d", v.Version.Major, v.Version.Minor, v.Version.Patch)
	}
	return m
}

// loadAverage is the first three fields of /proc/loadavg, or "".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// cpuModel is the first "model name" of /proc/cpuinfo, or "".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// setting measures one sync setting on a fresh NATS store.
func (r *runner) setting(ctx context.Context, s Sync) (Result, error) {
	res := Result{Sync: s, Description: s.Describe()}
	dir := filepath.Join(r.dir, string(s))
	ns, err := natsembed.Start(natsembed.Config{Dir: filepath.Join(dir, "nats"), SyncAlways: s == SyncAlways, ServerName: "airtally-bench"})
	if err != nil {
		return res, err
	}
	defer ns.Stop()
	st := &stage{runner: r, sync: s, dir: dir, url: ns.ClientURL()}

	r.cfg.Progress(fmt.Sprintf("%s: raw JetStream publish, %d events", s.Describe(), r.cfg.Events))
	if res.RawPublish, err = measure(ctx, st, "raw-publish", st.rawPublish); err != nil {
		return res, fmt.Errorf("raw publish: %w", err)
	}
	r.cfg.Progress(fmt.Sprintf("%s: raw JetStream fetch, %d messages", s.Describe(), r.cfg.Events))
	if res.RawFetch, err = measure(ctx, st, "raw-fetch", st.rawFetch); err != nil {
		return res, fmt.Errorf("raw fetch: %w", err)
	}
	r.cfg.Progress(fmt.Sprintf("%s: raw ClickHouse insert, %d rows", s.Describe(), r.cfg.Events))
	if res.RawInsert, err = measure(ctx, st, "raw-insert", st.rawInsert); err != nil {
		return res, fmt.Errorf("raw insert: %w", err)
	}
	res.RawInsertReplayBatch = res.RawInsert
	if r.cfg.ReplayBatch != r.cfg.InsertBatch {
		r.cfg.Progress(fmt.Sprintf("%s: raw ClickHouse insert, %d rows in batches of %d", s.Describe(), r.cfg.Events, r.cfg.ReplayBatch))
		if res.RawInsertReplayBatch, err = measure(ctx, st, "raw-insert-replay-batch", st.rawInsertReplayBatch); err != nil {
			return res, fmt.Errorf("raw insert: %w", err)
		}
	}
	r.cfg.Progress(fmt.Sprintf("%s: end to end, %d events", s.Describe(), r.cfg.Events))
	if res.EndToEnd, err = measure(ctx, st, "end-to-end", st.endToEnd); err != nil {
		return res, fmt.Errorf("end to end: %w", err)
	}
	res.EndToEnd.Ratio, res.EndToEnd.Limit = res.EndToEnd.PerSecond/res.RawPublish.PerSecond, "publish"
	if res.RawInsert.PerSecond < res.RawPublish.PerSecond {
		res.EndToEnd.Ratio, res.EndToEnd.Limit = res.EndToEnd.PerSecond/res.RawInsert.PerSecond, "insert"
	}
	res.EndToEnd.TargetMet = res.EndToEnd.Ratio >= TargetRatio
	res.EndToEnd.CostBound = costBound(runtime.NumCPU(), res.RawPublish, res.RawFetch, res.RawInsert)
	r.cfg.Progress(fmt.Sprintf("%s: replay, %d events in the stream", s.Describe(), r.cfg.Events))
	if res.Replay, err = measure(ctx, st, "replay", st.replay); err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	res.Replay.Ratio = res.Replay.PerSecond / res.RawFetch.PerSecond
	res.Replay.TargetMet = res.Replay.Ratio >= ReplayTargetRatio
	res.Replay.CostBound = costBound(runtime.NumCPU(), res.RawFetch, res.RawInsertReplayBatch)
	r.cfg.Progress(fmt.Sprintf("%s: latency at %d events/s for %s", s.Describe(), r.cfg.Rate, r.cfg.Duration))
	if res.Latency, err = measure(ctx, st, "latency", st.latency); err != nil {
		return res, fmt.Errorf("latency: %w", err)
	}
	res.Peak = res.EndToEnd.Peak.max(res.Latency.Peak)
	return res, nil
}

// withPeak is a phase result that records its peak memory.
type withPeak[T any] interface {
	*T
	setPeak(Memory)
}

// measure runs one phase within the phase timeout, with fresh streams and
// a fresh database, and records its peak memory.
func measure[T any, P withPeak[T]](ctx context.Context, st *stage, name string, run func(context.Context, *phase) (T, error)) (T, error) {
	var out T
	ctx, cancel := context.WithTimeout(ctx, st.cfg.PhaseTimeout)
	defer cancel()
	p, cleanup, err := st.prepare(ctx, name)
	if err != nil {
		return out, err
	}
	defer cleanup()
	pid := st.ch.PID()
	if !resetPeaks(pid) {
		st.resetOK = false
	}
	// Samples of a CPU profile (airtally bench --cpu-profile) carry the
	// phase's name.
	pprof.Do(ctx, pprof.Labels("phase", name), func(ctx context.Context) { out, err = run(ctx, p) })
	if err != nil {
		return out, err
	}
	peak, err := readPeaks(pid)
	if err != nil {
		return out, err
	}
	P(&out).setPeak(peak)
	return out, nil
}

// stage is one sync setting's NATS server.
type stage struct {
	*runner
	sync Sync
	dir  string
	url  string
}

// phase is what a phase runs with: a NATS connection with fresh streams and
// a fresh, migrated ClickHouse database.
type phase struct {
	name string
	dir  string
	db   string
	nc   *nats.Conn
	js   jetstream.JetStream
}

// prepare connects to NATS, creates the streams afresh, and creates and
// migrates the phase's database. cleanup deletes the streams, drops the
// database and closes the connection.
func (st *stage) prepare(ctx context.Context, name string) (*phase, func(), error) {
	p := &phase{name: name, dir: filepath.Join(st.dir, name), db: "bench_" + string(st.sync) + "_" + strings.ReplaceAll(name, "-", "_")}
	nc, err := connect.ConnectNATS(connect.NATS{URL: st.url, Name: "airtally-bench-" + name}, st.log)
	if err != nil {
		return nil, nil, err
	}
	p.nc = nc
	if p.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("bench: jetstream: %w", err)
	}
	cfg := streams.Config{}.WithDefaults()
	for _, name := range []string{cfg.EventsStream, cfg.DLQStream} {
		if err := p.js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			nc.Close()
			return nil, nil, fmt.Errorf("bench: delete stream %s: %w", name, err)
		}
	}
	if err := streams.Ensure(ctx, p.js, cfg); err != nil {
		nc.Close()
		return nil, nil, err
	}
	ident, err := chsql.Ident(p.db)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("bench: database: %w", err)
	}
	if err := st.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("bench: drop database %s: %w", p.db, err)
	}
	if _, err := schema.Migrate(ctx, st.conn, p.db); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("bench: migrate %s: %w", p.db, err)
	}
	cleanup := func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, name := range []string{cfg.EventsStream, cfg.DLQStream} {
			if err := p.js.DeleteStream(cctx, name); err != nil {
				st.log.Warn("bench: delete stream", "stream", name, "err", err)
			}
		}
		if err := st.conn.Exec(cctx, "DROP DATABASE IF EXISTS "+ident); err != nil {
			st.log.Warn("bench: drop database", "database", p.db, "err", err)
		}
		nc.Close()
	}
	return p, cleanup, nil
}
