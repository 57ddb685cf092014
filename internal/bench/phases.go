package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/connect"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
)

// Polling of the end-to-end phase and the grace given to the last events of
// the latency phase.
const (
	countPoll    = 20 * time.Millisecond
	ackTimeout   = 30 * time.Second
	drainTimeout = 60 * time.Second
)

// rawPublish publishes Events encoded events asynchronously, at most Window
// awaiting their ack, and waits for every ack: JetStream's publish rate
// alone. Encoding happens before the clock starts.
func (st *stage) rawPublish(ctx context.Context, p *phase) (Throughput, error) {
	return st.fill(ctx, p, "raw")
}

// rawInsert inserts Events rows into the events table in batches of
// InsertBatch, one after the other: ClickHouse's insert rate alone. The rows
// are built before the clock starts.
func (st *stage) rawInsert(ctx context.Context, p *phase) (Throughput, error) {
	return st.rawInsertBatches(ctx, p, st.cfg.InsertBatch)
}

// rawInsertReplayBatch is rawInsert in batches of ReplayBatch rows, the
// replay's.
func (st *stage) rawInsertReplayBatch(ctx context.Context, p *phase) (Throughput, error) {
	return st.rawInsertBatches(ctx, p, st.cfg.ReplayBatch)
}

func (st *stage) rawInsertBatches(ctx context.Context, p *phase, size int) (Throughput, error) {
	ins, err := loader.NewDirectInserter(ctx, st.conn, p.db)
	if err != nil {
		return Throughput{}, fmt.Errorf("bench: %w", err)
	}
	now := time.Now()
	rows, err := ins.Rows(newEventMix("raw", now).completed(st.cfg.Events, st.aniKey), 1, now)
	if err != nil {
		return Throughput{}, fmt.Errorf("bench: %w", err)
	}
	tm := st.startTimer()
	for first := 0; first < len(rows); first += size {
		if err := ins.Insert(ctx, rows[first:min(first+size, len(rows))]); err != nil {
			return Throughput{}, fmt.Errorf("bench: %w", err)
		}
	}
	tp, err := tm.stop(len(rows))
	if err != nil {
		return Throughput{}, err
	}
	n, err := st.count(ctx, p.db, false)
	if err != nil {
		return Throughput{}, err
	}
	if n != uint64(len(rows)) {
		return Throughput{}, fmt.Errorf("bench: %d rows in %s.events after inserting %d", n, p.db, len(rows))
	}
	return tp, nil
}

// count is the number of the run's events in db.events, read with FINAL
// (each event once) or without (every row inserted).
func (st *stage) count(ctx context.Context, db string, final bool) (uint64, error) {
	ident, err := chsql.Ident(db)
	if err != nil {
		return 0, fmt.Errorf("bench: database: %w", err)
	}
	q := "SELECT count() FROM " + ident + ".events"
	if final {
		q += " FINAL"
	}
	q += " WHERE source_system = " + chsql.String(benchSystem)
	var n uint64
	if err := st.conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("bench: count %s.events: %w", db, err)
	}
	return n, nil
}

// pipeline is the real path: a loader running against the phase's stream
// and database, with its own NATS and ClickHouse connections (as its own
// process would have).
type pipeline struct {
	cancel context.CancelFunc
	done   chan error
	nc     *nats.Conn
	conn   driver.Conn
	reg    *prometheus.Registry
}

// startLoader starts a loader (defaults but FlushInterval) and waits until
// its durable consumer exists.
func (st *stage) startLoader(ctx context.Context, p *phase) (*pipeline, error) {
	nc, err := connect.ConnectNATS(connect.NATS{URL: st.url, Name: "airtally-bench-loader"}, st.log)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bench: jetstream: %w", err)
	}
	conn, err := st.openClickHouse(ctx)
	if err != nil {
		nc.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	lcfg := loader.Config{Database: p.db, FlushInterval: st.cfg.FlushInterval, Logger: st.log, Registerer: reg}
	l, err := loader.New(js, conn, lcfg)
	if err != nil {
		nc.Close()
		conn.Close()
		return nil, fmt.Errorf("bench: loader: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	pl := &pipeline{cancel: cancel, done: make(chan error, 1), nc: nc, conn: conn, reg: reg}
	go func() { pl.done <- l.Run(lctx) }()
	sc := streams.Config{}.WithDefaults()
	err = poll(ctx, countPoll, func() (bool, error) {
		select {
		case err := <-pl.done:
			pl.done <- err
			return false, fmt.Errorf("bench: the loader stopped at start: %w", err)
		default:
		}
		_, err := p.js.Consumer(ctx, sc.EventsStream, lcfg.WithDefaults().Consumer)
		return err == nil, nil
	})
	if err != nil {
		pl.stop()
		return nil, err
	}
	return pl, nil
}

// failed returns the loader's error if it stopped.
func (pl *pipeline) failed() error {
	select {
	case err := <-pl.done:
		pl.done <- err
		return fmt.Errorf("bench: the loader stopped: %w", err)
	default:
		return nil
	}
}

// stop stops the loader and closes its connections. It can be called
// more than once.
func (pl *pipeline) stop() {
	if pl.cancel == nil {
		return
	}
	pl.cancel()
	pl.cancel = nil
	<-pl.done
	pl.nc.Close()
	pl.conn.Close()
}

// stats reads the loader's metrics.
func (pl *pipeline) stats() (LoaderStats, error) {
	families, err := pl.reg.Gather()
	if err != nil {
		return LoaderStats{}, fmt.Errorf("bench: loader metrics: %w", err)
	}
	var s LoaderStats
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case "airtally_loader_batches_total":
				s.Batches += int(m.GetCounter().GetValue())
			case "airtally_loader_events_loaded_total":
				s.Rows += int(m.GetCounter().GetValue())
			case "airtally_loader_redeliveries_total":
				s.Redelivered += int(m.GetCounter().GetValue())
			case "airtally_loader_insert_seconds":
				s.InsertSeconds += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return s, nil
}

// newPublisher opens a publisher with its own NATS connection and spool.
func (st *stage) newPublisher(ctx context.Context, p *phase, name string) (*publisher.Publisher, func(), error) {
	nc, err := connect.ConnectNATS(connect.NATS{URL: st.url, Name: "airtally-bench-" + name}, st.log)
	if err != nil {
		return nil, nil, err
	}
	pub, err := publisher.New(ctx, nc, publisher.Config{SpoolDir: filepath.Join(p.dir, "spool-"+name), ANIKey: st.aniKey, Logger: st.log})
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("bench: publisher %s: %w", name, err)
	}
	return pub, func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pub.Close(cctx); err != nil {
			st.log.Warn("bench: close publisher", "publisher", name, "err", err)
		}
		nc.Close()
	}, nil
}

// endToEnd publishes Events events through the real publisher (Sources
// sources at once, PublishBatch events per call) to the real loader, and
// times the first publish to the poll that counts every event in
// ClickHouse. Building the events (not encoding them) is timed too, as
// each producer builds its own.
func (st *stage) endToEnd(ctx context.Context, p *phase) (EndToEnd, error) {
	pl, err := st.startLoader(ctx, p)
	if err != nil {
		return EndToEnd{}, err
	}
	defer pl.stop()
	type source struct {
		pub *publisher.Publisher
		mix *eventMix
		n   int
	}
	srcs := make([]source, st.cfg.Sources)
	now := time.Now()
	for i := range srcs {
		name := fmt.Sprintf("e2e-%d", i+1)
		pub, closePub, err := st.newPublisher(ctx, p, name)
		if err != nil {
			return EndToEnd{}, err
		}
		defer closePub()
		n := st.cfg.Events / st.cfg.Sources
		if i < st.cfg.Events%st.cfg.Sources {
			n++
		}
		srcs[i] = source{pub: pub, mix: newEventMix(name, now), n: n}
	}

	// Each source builds its events batch by batch, as a producer would,
	// so that memory holds no more than the batches in flight.
	var spooled atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(srcs))
	tm := st.startTimer()
	start := tm.start
	for _, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([]*event.Event, 0, st.cfg.PublishBatch)
			for first := 0; first < s.n; first += st.cfg.PublishBatch {
				batch = batch[:0]
				for range min(st.cfg.PublishBatch, s.n-first) {
					batch = append(batch, s.mix.next())
				}
				for i, r := range s.pub.PublishBatch(ctx, batch) {
					if r.Err != nil {
						errs <- fmt.Errorf("bench: publish event %d of %s: %w", first+i, batch[i].Source.Instance, r.Err)
						return
					}
					if r.Receipt.Status == publisher.StatusSpooled {
						spooled.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	published := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return EndToEnd{}, err
	}
	want := uint64(st.cfg.Events)
	err = poll(ctx, countPoll, func() (bool, error) {
		if err := pl.failed(); err != nil {
			return false, err
		}
		n, err := st.count(ctx, p.db, false)
		return n >= want, err
	})
	if err != nil {
		return EndToEnd{}, err
	}
	tp, err := tm.stop(st.cfg.Events)
	if err != nil {
		return EndToEnd{}, err
	}
	loaded, err := st.count(ctx, p.db, true)
	if err != nil {
		return EndToEnd{}, err
	}
	if loaded != want {
		return EndToEnd{}, fmt.Errorf("bench: %d events in %s.events (FINAL), want %d", loaded, p.db, want)
	}
	pl.stop()
	stats, err := pl.stats()
	if err != nil {
		return EndToEnd{}, err
	}
	return EndToEnd{
		Throughput:     tp,
		PublishSeconds: published.Seconds(),
		Loaded:         loaded,
		Spooled:        int(spooled.Load()),
		Loader:         stats,
	}, nil
}

// pacerTick is how often the latency phase publishes what is due.
const pacerTick = 10 * time.Millisecond

// latency publishes at Rate for Duration through the publisher (one source,
// a small batch every 10 ms) while a poller reads max(source_seq) every
// PollInterval; an event's latency is from the PublishBatch call that
// carried it to the return of the first poll that saw its sequence number.
// One source and one loader keep the stream, and so the inserts, in
// sequence order: max(source_seq) = s means every event up to s is
// queryable.
func (st *stage) latency(ctx context.Context, p *phase) (Latency, error) {
	pl, err := st.startLoader(ctx, p)
	if err != nil {
		return Latency{}, err
	}
	defer pl.stop()
	const instance = "paced"
	pub, closePub, err := st.newPublisher(ctx, p, instance)
	if err != nil {
		return Latency{}, err
	}
	defer closePub()

	total := int(int64(st.cfg.Rate) * int64(st.cfg.Duration) / int64(time.Second))
	sent := make([]time.Time, total+1)    // by source seq
	visible := make([]time.Time, total+1) // by source seq
	pctx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	pollDone := make(chan error, 1)
	var polls int
	go func() { pollDone <- st.pollVisible(pctx, p.db, instance, visible, &polls) }()

	start, published, err := st.pace(ctx, pub, instance, total, sent)
	if err != nil {
		stopPoll()
		<-pollDone
		return Latency{}, err
	}
	// Wait for the poller to see the last event.
	select {
	case err = <-pollDone:
	case <-time.After(drainTimeout):
		stopPoll()
		<-pollDone
		err = fmt.Errorf("bench: not every paced event was queryable %s after the last publish", drainTimeout)
	}
	if err != nil {
		return Latency{}, errors.Join(err, pl.failed())
	}
	lat := make([]time.Duration, 0, total)
	for seq := 1; seq <= total; seq++ {
		if sent[seq].IsZero() || visible[seq].IsZero() {
			return Latency{}, fmt.Errorf("bench: paced event %d was not both published and seen", seq)
		}
		lat = append(lat, visible[seq].Sub(sent[seq]))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	out := Latency{
		Rate: st.cfg.Rate, Events: total, PublishSeconds: published.Sub(start).Seconds(),
		P50Millis: millis(quantile(lat, 0.50)), P99Millis: millis(quantile(lat, 0.99)),
		MaxMillis: millis(lat[len(lat)-1]), MeanMillis: millis(sum / time.Duration(len(lat))), Polls: polls,
	}
	out.AchievedRate = float64(total) / out.PublishSeconds
	pl.stop()
	if out.Loader, err = pl.stats(); err != nil {
		return Latency{}, err
	}
	out.TargetMet = st.cfg.Rate >= TargetRate && out.AchievedRate >= 0.95*float64(st.cfg.Rate) && quantile(lat, 0.99) < TargetP99
	return out, nil
}

// pace publishes total events at the configured rate: at once, then every
// pacerTick, the events due by then (at most PublishBatch) in one
// PublishBatch call; a tick missed while a call runs is caught up at the
// next. It records in sent, by source sequence number, the time of the
// call that carried each event, and returns the times of the first call
// and of the last call's return.
func (st *stage) pace(ctx context.Context, pub *publisher.Publisher, instance string, total int, sent []time.Time) (start, end time.Time, err error) {
	mix := newEventMix(instance, time.Now())
	tick := time.NewTicker(pacerTick)
	defer tick.Stop()
	start = time.Now()
	for done := 0; done < total; {
		due := min(total, int(time.Since(start).Seconds()*float64(st.cfg.Rate))+1)
		if n := min(due-done, st.cfg.PublishBatch); n > 0 {
			batch := make([]*event.Event, n)
			for i := range batch {
				batch[i] = mix.next()
				batch[i].OccurredAt = time.Now().UTC().Truncate(time.Millisecond)
			}
			at := time.Now()
			for i, r := range pub.PublishBatch(ctx, batch) {
				if r.Err != nil {
					return start, end, fmt.Errorf("bench: publish paced event %d: %w", done+i, r.Err)
				}
				seq := r.Receipt.Seq
				if seq < 1 || seq > uint64(total) {
					return start, end, fmt.Errorf("bench: paced event got sequence %d, want 1 to %d", seq, total)
				}
				sent[seq] = at
			}
			done += n
			end = time.Now()
			if done == total {
				break
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return start, end, ctx.Err()
		}
	}
	return start, end, nil
}

// pollVisible reads max(source_seq) of instance every PollInterval and
// notes, for each sequence number up to it not seen before, the time the
// query returned. It returns once every one of len(visible)-1 events was
// seen, or with ctx's error.
func (st *stage) pollVisible(ctx context.Context, db, instance string, visible []time.Time, polls *int) error {
	ident, err := chsql.Ident(db)
	if err != nil {
		return fmt.Errorf("bench: database: %w", err)
	}
	q := "SELECT max(source_seq) FROM " + ident + ".events WHERE source_system = " + chsql.String(benchSystem) +
		" AND source_instance = " + chsql.String(instance)
	total := uint64(len(visible) - 1)
	var seen uint64
	tick := time.NewTicker(st.cfg.PollInterval)
	defer tick.Stop()
	for {
		var m uint64
		if err := st.conn.QueryRow(ctx, q).Scan(&m); err != nil {
			return fmt.Errorf("bench: poll %s.events: %w", db, err)
		}
		*polls++
		now := time.Now()
		for ; seen < min(m, total); seen++ {
			visible[seen+1] = now
		}
		if seen == total {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// quantile is the q-quantile of sorted (nearest rank: the smallest value
// with at least q of the values at or below it).
func quantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank-1, 0), len(sorted)-1)]
}

// poll calls cond every interval until it returns true or an error, or
// ctx ends.
func poll(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
