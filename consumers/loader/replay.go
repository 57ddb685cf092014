package loader

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/schema"
)

// Defaults of ReplayConfig.
const (
	// DefaultReplayBatchSize is four times the loader's: a replay has no
	// latency to keep, and ClickHouse inserts a wide row faster in batches
	// of tens of thousands (fewer, larger parts). Larger batches gained
	// nothing measurable here and cost memory (about 1 KiB per row, three
	// batches in the pipeline) and overlap (the last batch's insert is not
	// overlapped with anything).
	DefaultReplayBatchSize  = 20_000
	DefaultReplayBatchBytes = 16 << 20
	// DefaultReplayPullMessages is how many messages the ordered consumer
	// asks JetStream for at once (nats.go's default is 500).
	DefaultReplayPullMessages = 5000
	DefaultProgressInterval   = time.Second
)

// ReplayConfig configures Replay. Zero fields but Database take defaults.
type ReplayConfig struct {
	// Database to rebuild; required. Replay migrates it, and never touches
	// any other database. When it already holds events, Replay resumes
	// after the highest stream sequence loaded (see Replay) unless
	// FromStart is set.
	Database string
	// FromStart replays the whole stream even into a database that holds
	// events already (the copies collapse); default false: resume.
	FromStart bool
	// Cluster, when not empty, migrates Database in the schema's cluster
	// mode (ON CLUSTER, replicated tables; see schema.MigrateCluster).
	Cluster string
	// Streams is the JetStream layout; zero fields take the defaults of
	// package streams.
	Streams streams.Config
	// BatchSize and BatchBytes bound one insert; defaults 20000 messages
	// and 16 MiB of payload. Memory holds up to three batches: one being
	// read, one being decoded, one being inserted.
	BatchSize  int
	BatchBytes int
	// PullMessages is how many messages one pull request of the ordered
	// consumer asks for; default 5000.
	PullMessages int
	// InsertTimeout bounds one insert attempt; default 30s.
	InsertTimeout time.Duration
	// BackoffMin and BackoffMax bound the pause between insert attempts;
	// defaults 100ms and 30s.
	BackoffMin, BackoffMax time.Duration
	// Progress, if set, is called from Replay's goroutine about every
	// ProgressInterval (default 1s) while it runs, after each batch at
	// most, and once at the end with Final set. It must not block long.
	Progress         func(ReplayProgress)
	ProgressInterval time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c ReplayConfig) withDefaults() ReplayConfig {
	c.BatchSize = cmp.Or(c.BatchSize, DefaultReplayBatchSize)
	c.BatchBytes = cmp.Or(c.BatchBytes, DefaultReplayBatchBytes)
	c.PullMessages = cmp.Or(c.PullMessages, DefaultReplayPullMessages)
	c.ProgressInterval = cmp.Or(c.ProgressInterval, DefaultProgressInterval)
	return c
}

// loaderConfig is the part of Config that replay shares, with defaults.
func (c ReplayConfig) loaderConfig() Config {
	c = c.withDefaults()
	return Config{
		Database:      c.Database,
		Streams:       c.Streams,
		BatchSize:     c.BatchSize,
		BatchBytes:    c.BatchBytes,
		InsertTimeout: c.InsertTimeout,
		BackoffMin:    c.BackoffMin,
		BackoffMax:    c.BackoffMax,
		Logger:        c.Logger,
		// Replay has no durable consumer: give it room so that Validate
		// judges only the fields above.
		MaxAckPending: max(DefaultMaxAckPending, 2*c.BatchSize),
	}.WithDefaults()
}

// Validate reports the first field that is wrong.
func (c ReplayConfig) Validate() error {
	if c.PullMessages < 0 || c.ProgressInterval < 0 {
		return errors.New("loader: replay: pull messages and progress interval must not be negative")
	}
	return c.loaderConfig().Validate()
}

// ReplayStats is what a replay did.
type ReplayStats struct {
	// LastSeq is the events stream's last sequence when the replay started;
	// messages up to it were replayed.
	LastSeq uint64
	// ResumedAfter is the highest stream sequence the database held when
	// the replay started (0: it held no events, or FromStart): the replay
	// read the stream from the next sequence on.
	ResumedAfter uint64
	// Messages read, Loaded as rows, Invalid skipped (they are in the
	// dead-letter stream already), in Batches inserts.
	Messages, Loaded, Invalid uint64
	Batches                   int
	// Parts is the number of parts the events inserts created: one per
	// month (the table's partition) present in each batch.
	Parts int
	// Elapsed is the replay's time, migration and set-up included;
	// InsertSeconds the part of it spent waiting for inserts.
	Elapsed       time.Duration
	InsertSeconds float64
}

// ReplayProgress is where a replay stands.
type ReplayProgress struct {
	// Done messages of Total: the messages to read when the replay started
	// (after ResumedAfter, up to ReplayStats.LastSeq), an estimate while
	// the stream changes.
	Done, Total uint64
	// ResumedAfter is ReplayStats.ResumedAfter.
	ResumedAfter    uint64
	Loaded, Invalid uint64
	Batches         int
	// Elapsed since the replay started reading; Rate is Done over it, in
	// messages per second; Remaining is the time left at that rate (0 when
	// unknown).
	Elapsed   time.Duration
	Rate      float64
	Remaining time.Duration
	// Final is set on the last call, when the replay ended (done, failed or
	// stopped).
	Final bool
}

// replayMsg is one message of a replay batch.
type replayMsg struct {
	subject string
	data    []byte
	meta    meta
}

// replayBatch is the messages of one insert, in stream order, and once
// decoded their rows.
type replayBatch struct {
	msgs     []replayMsg // released once decoded
	messages int         // len(msgs)
	bytes    int
	rows     []*Row
	values   []any        // the rows' values, a column at a time (block)
	check    *storedCheck // reads the rows back (eventsCheck)
	projs    []*projRow
	invalid  int
	parts    int
}

// Replay rebuilds the tables of cfg.Database from the events stream: it
// migrates the database, then reads the stream up to the last message at
// the start with an ordered (ephemeral) consumer, and inserts the rows in
// batches with the very same decoding and insert code as the loader.
// Reading and decoding the next batches overlap with inserting this one;
// batches are inserted strictly in stream order, one at a time, and the
// airing and offer projection rows of a batch before its events rows.
//
// So the highest stream sequence in the events table marks how far a
// replay got: into a database that already holds events, Replay resumes
// after it (ReplayStats.ResumedAfter) unless cfg.FromStart is set, and a
// replay stopped anywhere (ctx cancelled, the process killed) and started
// again loads every event once: the projection rows of a batch whose
// events insert did not happen are inserted again and collapse. Invalid
// messages are counted and skipped (they are in the dead-letter stream;
// dead_letters is not rebuilt). A failing insert is retried with back-off
// until it succeeds or ctx ends; then Replay returns ctx's error with the
// stats so far. It does not touch the durable consumer or any other
// database.
func Replay(ctx context.Context, js jetstream.JetStream, conn driver.Conn, cfg ReplayConfig) (stats ReplayStats, err error) {
	started := time.Now()
	defer func() { stats.Elapsed = time.Since(started) }()
	if js == nil || conn == nil {
		return stats, errors.New("loader: replay: a JetStream and a ClickHouse connection are required")
	}
	if err := cfg.Validate(); err != nil {
		return stats, err
	}
	cfg = cfg.withDefaults()
	lc := cfg.loaderConfig()
	log := lc.Logger.With("component", "replay", "database", lc.Database)

	if _, err := schema.MigrateCluster(ctx, conn, lc.Database, cfg.Cluster); err != nil {
		return stats, fmt.Errorf("loader: replay: migrate %s: %w", lc.Database, err)
	}
	table, err := readEventsTable(ctx, conn, lc.Database)
	if err != nil {
		return stats, err
	}
	if !cfg.FromStart {
		if stats.ResumedAfter, err = maxStreamSeq(ctx, conn, lc.Database); err != nil {
			return stats, err
		}
	}
	stream, err := js.Stream(ctx, lc.Streams.EventsStream)
	if err != nil {
		return stats, fmt.Errorf("loader: replay: stream %s: %w", lc.Streams.EventsStream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return stats, fmt.Errorf("loader: replay: stream info: %w", err)
	}
	stats.LastSeq = info.State.LastSeq
	if info.State.Msgs == 0 || stats.ResumedAfter >= stats.LastSeq {
		return stats, nil
	}
	occ := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{lc.Streams.EventSubjects()},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if stats.ResumedAfter > 0 {
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, stats.ResumedAfter+1
		log.Info("loader: replay: the database holds events already; resuming", "after_seq", stats.ResumedAfter)
	}
	cons, err := stream.OrderedConsumer(ctx, occ)
	if err != nil {
		return stats, fmt.Errorf("loader: replay: ordered consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(cfg.PullMessages))
	if err != nil {
		return stats, fmt.Errorf("loader: replay: read stream: %w", err)
	}
	defer it.Stop()

	p := &replayRun{cfg: cfg, lc: lc, log: log, table: table, conn: conn, stats: &stats}
	return stats, p.run(ctx, it)
}

// maxStreamSeq is the highest stream sequence in db.events, 0 if empty.
func maxStreamSeq(ctx context.Context, conn driver.Conn, db string) (uint64, error) {
	ident, err := chsql.Ident(db)
	if err != nil {
		return 0, fmt.Errorf("loader: replay: database: %w", err)
	}
	var seq uint64
	if err := conn.QueryRow(ctx, "SELECT max(stream_seq) FROM "+ident+".events").Scan(&seq); err != nil {
		return 0, fmt.Errorf("loader: replay: read the highest stream sequence of %s.events: %w", db, err)
	}
	return seq, nil
}

// replayRun is one replay's pipeline: a reader goroutine gathers batches, a
// decoder goroutine decodes them (on every core), and run inserts them in
// order. The channels are unbuffered, so at most one batch waits at each
// stage.
type replayRun struct {
	cfg   ReplayConfig
	lc    Config
	log   *slog.Logger
	table *eventsTable
	conn  driver.Conn
	stats *ReplayStats

	total       atomic.Uint64 // messages to read, from the first one's pending count
	readStarted time.Time
	lastReport  time.Time
}

func (p *replayRun) run(ctx context.Context, it jetstream.MessagesContext) error {
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		wg       sync.WaitGroup
		readErr  error
		toDecode = make(chan *replayBatch)
		toInsert = make(chan *replayBatch)
	)
	p.readStarted = time.Now()
	setTotal := func(n uint64) { p.total.CompareAndSwap(0, n) }
	wg.Go(func() {
		defer close(toDecode)
		readErr = p.read(rctx, it, toDecode, setTotal)
	})
	wg.Go(func() {
		defer close(toInsert)
		for b := range toDecode {
			p.decode(b)
			select {
			case toInsert <- b:
			case <-rctx.Done():
				return
			}
		}
	})
	err := p.insertAll(ctx, toInsert)
	stop()
	for range toInsert {
	}
	wg.Wait()
	if err == nil {
		err = readErr
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	p.report(true)
	s := p.stats
	if err != nil {
		p.log.Warn("loader: replay stopped", "last_seq", s.LastSeq, "messages", s.Messages, "loaded", s.Loaded, "error", err)
		return err
	}
	p.log.Info("loader: replay done", "last_seq", s.LastSeq, "resumed_after", s.ResumedAfter, "loaded", s.Loaded,
		"invalid", s.Invalid, "batches", s.Batches, "parts", s.Parts, "elapsed", time.Since(p.readStarted).String())
	return nil
}

// read gathers the messages up to LastSeq into batches of BatchSize
// messages or BatchBytes bytes and hands them on in order.
func (p *replayRun) read(ctx context.Context, it jetstream.MessagesContext, out chan<- *replayBatch, setTotal func(uint64)) error {
	b := &replayBatch{}
	send := func() bool {
		n := len(b.msgs)
		if n == 0 {
			return true
		}
		select {
		case out <- b: // the decoder owns b now
			b = &replayBatch{msgs: make([]replayMsg, 0, n)}
			return true
		case <-ctx.Done():
			return false
		}
	}
	last := p.stats.LastSeq
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil // the caller reports ctx's error
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return fmt.Errorf("loader: replay: read stream: %w", err)
			}
			p.log.Warn("loader: replay: read stream, retrying", "error", err)
			sleep(ctx, p.lc.BackoffMin)
			continue
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("loader: replay: message metadata: %w", err)
		}
		seq := md.Sequence.Stream
		if seq > last {
			break // stored after the start (the messages before it were deleted)
		}
		setTotal(1 + md.NumPending)
		b.msgs = append(b.msgs, replayMsg{subject: msg.Subject(), data: msg.Data(), meta: meta{streamSeq: seq, storedAt: md.Timestamp}})
		b.bytes += len(msg.Data())
		if len(b.msgs) >= p.lc.BatchSize || b.bytes >= p.lc.BatchBytes {
			if !send() {
				return nil
			}
		}
		if seq >= last || md.NumPending == 0 {
			break
		}
	}
	send()
	return nil
}

// decode makes the rows of b, on every core.
func (p *replayRun) decode(b *replayBatch) {
	rows := make([]*Row, len(b.msgs))
	projs := make([]*projRow, len(b.msgs))
	parallel(len(b.msgs), func(i int) {
		m := &b.msgs[i]
		rows[i], projs[i], _ = decodeMessage(p.table.cols, p.lc.Streams.SubjectPrefix, m.subject, m.data, m.meta)
	})
	months := map[int]bool{}
	b.rows = rows[:0]
	for i, r := range rows {
		if r == nil {
			b.invalid++
			continue
		}
		b.rows = append(b.rows, r)
		if projs[i] != nil {
			b.projs = append(b.projs, projs[i])
		}
		months[monthOf(r)] = true
	}
	b.parts = len(months)
	b.values = block(p.table.cols, b.rows, time.Now().UTC())
	b.check = eventsCheck(p.lc.Database, b.rows)
	b.messages, b.msgs = len(b.msgs), nil
}

// monthOf is the partition (toYYYYMM(occurred_at)) of an events row.
func monthOf(r *Row) int {
	at := r.ev.OccurredAt.UTC()
	return at.Year()*100 + int(at.Month())
}

// insertAll inserts the batches in order: a batch's projection rows, then
// its events rows, each retried until it succeeds or ctx ends.
func (p *replayRun) insertAll(ctx context.Context, in <-chan *replayBatch) error {
	s := p.stats
	for b := range in {
		projected, inserted := false, false
		start := time.Now()
		err := retry(ctx, p.log, p.lc.BackoffMin, p.lc.BackoffMax, "replay insert", func(ctx context.Context) error {
			ictx, cancel := context.WithTimeout(ctx, p.lc.InsertTimeout)
			defer cancel()
			if !projected {
				if err := insertProjections(ictx, p.conn, p.lc.Database, b.projs); err != nil {
					return err
				}
				projected = true
			}
			if !inserted {
				if err := insertBlock(ictx, p.conn, p.table.query, p.table.cols, b.values, len(b.rows), b.check); err != nil {
					return err
				}
				inserted = true
			}
			return markProjection(ictx, p.conn, p.lc.Database, b.rows)
		})
		s.InsertSeconds += time.Since(start).Seconds()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("loader: replay: insert: %w", err)
		}
		s.Messages += uint64(b.messages)
		s.Loaded += uint64(len(b.rows))
		s.Invalid += uint64(b.invalid)
		if len(b.rows) > 0 {
			s.Batches++
			s.Parts += b.parts
		}
		p.report(false)
	}
	return nil
}

// report calls cfg.Progress, at most every ProgressInterval unless final.
func (p *replayRun) report(final bool) {
	if p.cfg.Progress == nil {
		return
	}
	now := time.Now()
	if !final && now.Sub(p.lastReport) < p.cfg.ProgressInterval {
		return
	}
	p.lastReport = now
	s := p.stats
	pr := ReplayProgress{
		Done: s.Messages, Total: max(p.total.Load(), s.Messages), ResumedAfter: s.ResumedAfter,
		Loaded: s.Loaded, Invalid: s.Invalid, Batches: s.Batches,
		Elapsed: now.Sub(p.readStarted), Final: final,
	}
	if secs := pr.Elapsed.Seconds(); secs > 0 {
		pr.Rate = float64(pr.Done) / secs
	}
	if pr.Rate > 0 && pr.Total > pr.Done {
		pr.Remaining = time.Duration(float64(pr.Total-pr.Done) / pr.Rate * float64(time.Second))
	}
	p.cfg.Progress(pr)
}
