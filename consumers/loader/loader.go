package loader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"
)

// Loader loads events from the events stream into ClickHouse. Several
// loaders (in one process or many) may share one durable consumer.
type Loader struct {
	js   jetstream.JetStream
	conn driver.Conn
	cfg  Config
	log  *slog.Logger
	m    *metrics

	// fetchDelay is the pause after the next failed fetch (used by the
	// collecting goroutine only, once Run started it).
	fetchDelay time.Duration

	// afterInsert, when set (tests only), runs after a batch insert returned
	// and before anything of the batch is acknowledged. A non-nil error makes
	// Run return it at once and leave the batch as a crash there would:
	// unacknowledged, redelivered after AckWait.
	afterInsert func() error
}

// New returns a loader that reads with js and inserts with conn. Nothing is
// contacted until Run.
func New(js jetstream.JetStream, conn driver.Conn, cfg Config) (*Loader, error) {
	if js == nil || conn == nil {
		return nil, errors.New("loader: a JetStream and a ClickHouse connection are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Loader{
		js:   js,
		conn: conn,
		cfg:  cfg,
		log:  cfg.Logger.With("component", "loader", "consumer", cfg.Consumer),
		m:    m,
	}, nil
}

// ConsumerConfig is the durable consumer the loader creates or updates.
func (c Config) ConsumerConfig() jetstream.ConsumerConfig {
	c.setDefaults()
	return jetstream.ConsumerConfig{
		Durable:       c.Consumer,
		Description:   "airtally: ClickHouse loader",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: c.MaxAckPending,
		FilterSubject: c.Streams.EventSubjects(),
	}
}

// Run loads until ctx is cancelled, then lets the batch in flight finish
// within Config.ShutdownTimeout and returns nil. It checks the events table
// first (ErrSchema if it is missing or differs) and creates or updates the
// durable consumer; it waits, retrying with back-off, while NATS or
// ClickHouse is unreachable, at start as later. Run is not to be called
// concurrently on one Loader: run several Loaders instead.
func (l *Loader) Run(ctx context.Context) error {
	var (
		table  *eventsTable
		cons   jetstream.Consumer
		stream jetstream.Stream
	)
	var schemaErr error
	err := l.retry(ctx, "start", func(ctx context.Context) (err error) {
		if table == nil {
			if table, err = readEventsTable(ctx, l.conn, l.cfg.Database); err != nil {
				if errors.Is(err, ErrSchema) {
					schemaErr = err
					return nil // not worth retrying
				}
				return err
			}
		}
		stream, cons, err = l.ensureConsumer(ctx)
		return err
	})
	if schemaErr != nil {
		return schemaErr
	}
	if err != nil {
		return nilIfDone(ctx, err)
	}
	if len(table.missing) > 0 {
		l.log.Warn("loader: the events table lacks columns; those fields are not loaded", "columns", table.missing)
	}
	l.log.Info("loader: started", "database", l.cfg.Database, "stream", l.cfg.Streams.EventsStream)
	defer l.log.Info("loader: stopped")
	defer l.flushAcks()

	l.fetchDelay = l.cfg.BackoffMin
	if l.m != nil && l.cfg.LagInterval > 0 {
		lagCtx, stopLag := context.WithCancel(ctx)
		lagDone := make(chan struct{})
		go func() {
			defer close(lagDone)
			l.pollLag(lagCtx, cons)
		}()
		defer func() {
			stopLag()
			<-lagDone
		}()
	}
	// Fetching and decoding the next batch overlaps with inserting this
	// one. The channel is unbuffered: besides the batch being inserted, the
	// collector holds at most one finished batch, kept alive like it.
	collectCtx, stopCollect := context.WithCancel(ctx)
	batches := make(chan *batch)
	go func() {
		defer close(batches)
		for collectCtx.Err() == nil {
			b, fetchErr := l.collect(collectCtx, table, cons)
			if errors.Is(fetchErr, jetstream.ErrConsumerDeleted) || errors.Is(fetchErr, jetstream.ErrConsumerNotFound) {
				// Deleted under us: create it again.
				if s, c, err := l.ensureConsumer(collectCtx); err == nil {
					stream, cons = s, c
				} else if collectCtx.Err() == nil {
					l.log.Warn("loader: create or update consumer", "error", err)
				}
			}
			if len(b.items) == 0 {
				continue
			}
			b.stream = stream
			b.stopKeepAlive = l.keepAlive(b)
			batches <- b // Run flushes every batch it is handed, after cancellation too
		}
	}()
	defer stopCollect()
	for b := range batches {
		if err := l.flush(ctx, table, b); err != nil {
			// The test hook's simulated crash: leave everything unacknowledged.
			stopCollect()
			for b := range batches {
				b.stopKeepAlive()
			}
			return err
		}
	}
	return nil
}

// ensureConsumer creates or updates the durable consumer.
func (l *Loader) ensureConsumer(ctx context.Context) (jetstream.Stream, jetstream.Consumer, error) {
	stream, err := l.js.Stream(ctx, l.cfg.Streams.EventsStream)
	if err != nil {
		return nil, nil, fmt.Errorf("loader: stream %s: %w", l.cfg.Streams.EventsStream, err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, l.cfg.ConsumerConfig())
	if err != nil {
		return nil, nil, fmt.Errorf("loader: create or update consumer %s: %w", l.cfg.Consumer, err)
	}
	return stream, cons, nil
}

func nilIfDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// flushAcks pushes the acks still buffered in the NATS connection.
func (l *Loader) flushAcks() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.js.Conn().FlushWithContext(ctx); err != nil {
		l.log.Warn("loader: flush acks", "error", err)
	}
}

// item is one message of a batch: a row or a dead letter.
type item struct {
	msg  jetstream.Msg
	seq  uint64
	meta meta
	row  *Row
	proj *projRow // the airing or offer projection row, if any
	dead *deadLetter
	done bool // acknowledged or terminated
}

// batch is the messages of one insert. Its state records what is already
// done, so that a retry does only the rest.
type batch struct {
	stream jetstream.Stream // where the messages are (secure deletes)
	// stopKeepAlive stops the InProgress ticker started when the batch was
	// collected.
	stopKeepAlive func()
	items         []*item
	bytes         int
	inserted      bool // the events rows
	projected     bool // the projection rows (airings, offers)
	marked        bool // the airing projection's dirty days
	recorded      bool // the dead_letters rows
}

func (b *batch) add(it *item, size int) {
	b.items = append(b.items, it)
	b.bytes += size
}

// collect fetches one batch: up to BatchSize messages or BatchBytes bytes,
// waiting at most FlushInterval after the first message. It returns early
// (maybe empty) when ctx is cancelled, and returns the last fetch error.
// A fetch is never cut short by ctx: a pull request abandoned halfway would
// strand its messages until AckWait.
func (l *Loader) collect(ctx context.Context, t *eventsTable, cons jetstream.Consumer) (b *batch, fetchErr error) {
	b = &batch{}
	var deadline time.Time
	for ctx.Err() == nil && len(b.items) < l.cfg.BatchSize && b.bytes < l.cfg.BatchBytes {
		wait := l.cfg.FlushInterval
		opts := []jetstream.FetchOpt{}
		if !deadline.IsZero() {
			if wait = time.Until(deadline); wait < 5*time.Millisecond {
				break
			}
			opts = append(opts, jetstream.FetchMaxBytes(l.cfg.BatchBytes-b.bytes))
		}
		opts = append(opts, jetstream.FetchMaxWait(wait))
		mb, err := cons.Fetch(l.cfg.BatchSize-len(b.items), opts...)
		if err == nil {
			for msg := range mb.Messages() {
				if deadline.IsZero() {
					deadline = time.Now().Add(l.cfg.FlushInterval)
				}
				if it := l.item(msg); it != nil {
					b.add(it, len(msg.Data()))
				}
			}
			err = mb.Error()
		}
		if err != nil {
			pause := jitter(l.fetchDelay)
			l.log.Warn("loader: fetch failed", "error", err, "retry_in", pause.String())
			sleep(ctx, pause)
			l.fetchDelay = min(2*l.fetchDelay, l.cfg.BackoffMax)
			fetchErr = err
			if len(b.items) == 0 {
				return b, err
			}
			continue
		}
		l.fetchDelay = l.cfg.BackoffMin
	}
	l.decode(t, b.items)
	return b, fetchErr
}

// item makes the item of one message, not decoded yet; nil if the message
// has no JetStream metadata (it is negatively acknowledged and comes back).
func (l *Loader) item(msg jetstream.Msg) *item {
	md, err := msg.Metadata()
	if err != nil {
		l.log.Error("loader: message without metadata", "error", err)
		_ = msg.Nak()
		return nil
	}
	if md.NumDelivered > 1 {
		l.m.redelivered()
	}
	return &item{msg: msg, seq: md.Sequence.Stream, meta: meta{streamSeq: md.Sequence.Stream, storedAt: md.Timestamp}}
}

// decode turns each item into a row or a dead letter, on every core.
func (l *Loader) decode(t *eventsTable, items []*item) {
	parallel(len(items), func(i int) {
		it := items[i]
		it.row, it.proj, it.dead = decodeMessage(t.cols, l.cfg.Streams.SubjectPrefix, it.msg.Subject(), it.msg.Data(), it.meta)
	})
}

// flush inserts a batch, acknowledges its rows, and dead-letters the rest.
// Failures are retried until they succeed or, once ctx is cancelled, until
// ShutdownTimeout has passed; then the unfinished messages are abandoned
// (negatively acknowledged), never acknowledged. Its error is only ever
// the test hook's.
func (l *Loader) flush(ctx context.Context, t *eventsTable, b *batch) error {
	fctx, cancel := graceContext(ctx, l.cfg.ShutdownTimeout)
	defer cancel()
	defer b.stopKeepAlive()
	stream := b.stream

	start := time.Now()
	if err := l.retry(fctx, "insert events", func(ctx context.Context) error { return l.insertEvents(ctx, t, b) }); err != nil {
		l.abandon(b, err)
		return nil
	}
	if l.afterInsert != nil {
		if err := l.afterInsert(); err != nil {
			return err
		}
	}
	rows, failed := 0, 0
	var ackErr error
	for _, it := range b.items {
		if it.row != nil {
			rows++
			if err := l.settle(it, it.msg.Ack); err != nil {
				failed, ackErr = failed+1, err
			}
		}
	}
	if failed > 0 {
		// Those messages come back and are loaded again; the copies collapse.
		l.log.Warn("loader: acks failed", "messages", failed, "error", ackErr)
	}
	dead := len(b.items) - rows
	if dead > 0 {
		if err := l.retry(fctx, "dead-letter", func(ctx context.Context) error { return l.deadLetter(ctx, stream, b) }); err != nil {
			l.abandon(b, err)
			return nil
		}
	}
	l.log.Debug("loader: batch done", "rows", rows, "dead_letters", dead,
		"first_seq", b.items[0].seq, "last_seq", b.items[len(b.items)-1].seq, "duration", time.Since(start))
	return nil
}

// settle acknowledges or terminates it, once.
func (l *Loader) settle(it *item, ack func() error) error {
	if it.done {
		return nil
	}
	it.done = true
	return ack()
}

// abandon leaves the unsettled messages of b to be redelivered.
func (l *Loader) abandon(b *batch, cause error) {
	n := 0
	for _, it := range b.items {
		if !it.done {
			it.done = true
			_ = it.msg.Nak()
			n++
		}
	}
	l.log.Warn("loader: shutting down with a batch not loaded; it will be redelivered", "messages", n, "error", cause)
}

// insertEvents inserts the rows of b, once.
func (l *Loader) insertEvents(ctx context.Context, t *eventsTable, b *batch) error {
	if b.inserted {
		return l.insertProjections(ctx, t, b)
	}
	rows := make([]*Row, 0, len(b.items))
	for _, it := range b.items {
		if it.row != nil {
			rows = append(rows, it.row)
		}
	}
	if len(rows) == 0 {
		b.inserted = true
		return l.insertProjections(ctx, t, b)
	}
	ictx, cancel := context.WithTimeout(ctx, l.cfg.InsertTimeout)
	defer cancel()
	start := time.Now()
	err := t.insert(ictx, l.conn, rows, time.Now().UTC(), eventsCheck(l.cfg.Database, rows))
	l.m.insertAttempt(time.Since(start).Seconds(), err)
	if err != nil {
		return err
	}
	b.inserted = true
	l.m.batchLoaded(len(rows))
	return l.insertProjections(ctx, t, b)
}

// insertProjections inserts the projection rows of b, once, after its
// events rows, then marks the airing projection's days they may change.
func (l *Loader) insertProjections(ctx context.Context, t *eventsTable, b *batch) error {
	var projs []*projRow
	rows := make([]*Row, 0, len(b.items))
	for _, it := range b.items {
		if it.proj != nil {
			projs = append(projs, it.proj)
		}
		if it.row != nil {
			rows = append(rows, it.row)
		}
	}
	ictx, cancel := context.WithTimeout(ctx, l.cfg.InsertTimeout)
	defer cancel()
	if !b.projected && len(projs) > 0 {
		if err := insertProjections(ictx, l.conn, l.cfg.Database, projs); err != nil {
			return err
		}
	}
	b.projected = true
	if !b.marked {
		if err := markProjection(ictx, l.conn, l.cfg.Database, rows); err != nil {
			return err
		}
		b.marked = true
	}
	return nil
}

// deadLetter publishes the dead letters of b to the dead-letter stream,
// records them in dead_letters, securely deletes the originals that held a
// card number, and terminates them. Each step is done once across retries.
func (l *Loader) deadLetter(ctx context.Context, stream jetstream.Stream, b *batch) error {
	var dead []*item
	for _, it := range b.items {
		if it.dead != nil && !it.done {
			dead = append(dead, it)
		}
	}
	for _, it := range dead {
		if err := l.publishDeadLetter(ctx, it.dead); err != nil {
			return err
		}
	}
	if !b.recorded {
		rows := make([][]any, len(dead))
		now := time.Now().UTC()
		for i, it := range dead {
			rows[i] = it.dead.values(now)
		}
		ictx, cancel := context.WithTimeout(ctx, l.cfg.InsertTimeout)
		err := insertRows(ictx, l.conn, insertQuery(l.cfg.Database, "dead_letters", deadLetterColumns), rows, deadLettersCheck(l.cfg.Database, rows))
		cancel()
		if err != nil {
			return err
		}
		b.recorded = true
	}
	for _, it := range dead {
		if it.dead.card {
			if err := secureDelete(ctx, stream, it.seq); err != nil {
				return err
			}
		}
		err := l.settle(it, func() error { return it.msg.TermWithReason("dead-lettered: " + it.dead.class) })
		if err != nil {
			// It comes back and is dead-lettered again (the DLQ drops the
			// copy within its duplicate window).
			l.log.Warn("loader: terminate failed", "stream_seq", it.seq, "error", err)
		}
		l.m.deadLetter(it.dead.class)
		l.log.Warn("loader: dead-lettered", "stream_seq", it.seq, "subject", it.dead.subject,
			"class", it.dead.class, "reason", it.dead.reason)
	}
	return nil
}

// keepAlive sends InProgress for every message of b every AckWait/4 until
// the returned function is called.
func (l *Loader) keepAlive(b *batch) (stop func()) {
	msgs := make([]jetstream.Msg, len(b.items))
	for i, it := range b.items {
		msgs[i] = it.msg
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(l.cfg.AckWait / 4)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				for _, m := range msgs {
					// ErrMsgAlreadyAckd for the ones settled meanwhile.
					_ = m.InProgress()
				}
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

// pollLag records the consumer's pending counts every LagInterval.
func (l *Loader) pollLag(ctx context.Context, cons jetstream.Consumer) {
	tick := time.NewTicker(l.cfg.LagInterval)
	defer tick.Stop()
	for {
		ictx, cancel := context.WithTimeout(ctx, l.cfg.LagInterval)
		info, err := cons.Info(ictx)
		cancel()
		if err == nil {
			l.m.lag(int(info.NumPending), info.NumAckPending)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
