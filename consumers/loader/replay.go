package loader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/schema"
)

// ReplayConfig configures Replay. Zero fields but Database take defaults.
type ReplayConfig struct {
	// Database to rebuild; required. It should be a fresh one: Replay
	// migrates it, and never touches any other database. Replaying into a
	// database that already holds events is harmless (the copies collapse).
	Database string
	// Cluster, when not empty, migrates Database in the schema's cluster
	// mode (ON CLUSTER, replicated tables; see schema.MigrateCluster).
	Cluster string
	// Streams is the JetStream layout; zero fields take the defaults of
	// package streams.
	Streams streams.Config
	// BatchSize and BatchBytes bound one insert; defaults 5000 and 8 MiB.
	BatchSize  int
	BatchBytes int
	// InsertTimeout bounds one insert attempt; default 30s.
	InsertTimeout time.Duration
	// BackoffMin and BackoffMax bound the pause between insert attempts;
	// defaults 100ms and 30s.
	BackoffMin, BackoffMax time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// loaderConfig is the part of Config that replay shares, with defaults.
func (c ReplayConfig) loaderConfig() Config {
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
func (c ReplayConfig) Validate() error { return c.loaderConfig().Validate() }

// ReplayStats is what a replay did.
type ReplayStats struct {
	// LastSeq is the events stream's last sequence when the replay started;
	// messages up to it were replayed.
	LastSeq uint64
	// Messages read, Loaded as rows, Invalid skipped (they are in the
	// dead-letter stream already), in Batches inserts.
	Messages, Loaded, Invalid uint64
	Batches                   int
}

// Replay rebuilds the events table of cfg.Database from the events stream:
// it migrates the database, then reads the stream from its first message up
// to the last one at the start, with an ordered (ephemeral) consumer, and
// inserts the rows in batches with the very same decoding and insert code
// as the loader. Invalid messages are counted and skipped (they are in the
// dead-letter stream; dead_letters is not rebuilt). A failing insert is
// retried with back-off until it succeeds or ctx ends. It does not touch
// the durable consumer or any other database.
func Replay(ctx context.Context, js jetstream.JetStream, conn driver.Conn, cfg ReplayConfig) (ReplayStats, error) {
	var stats ReplayStats
	if js == nil || conn == nil {
		return stats, errors.New("loader: replay: a JetStream and a ClickHouse connection are required")
	}
	if err := cfg.Validate(); err != nil {
		return stats, err
	}
	lc := cfg.loaderConfig()
	log := lc.Logger.With("component", "replay", "database", lc.Database)

	if _, err := schema.MigrateCluster(ctx, conn, lc.Database, cfg.Cluster); err != nil {
		return stats, fmt.Errorf("loader: replay: migrate %s: %w", lc.Database, err)
	}
	table, err := readEventsTable(ctx, conn, lc.Database)
	if err != nil {
		return stats, err
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
	if info.State.Msgs == 0 {
		return stats, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{lc.Streams.EventSubjects()},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return stats, fmt.Errorf("loader: replay: ordered consumer: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return stats, fmt.Errorf("loader: replay: read stream: %w", err)
	}
	defer it.Stop()

	// raw is the batch being gathered, decoded on every core at flush.
	type rawMsg struct {
		subject string
		data    []byte
		meta    meta
		row     []any
		proj    *projRow
	}
	var (
		raw   []rawMsg
		bytes int
	)
	flush := func() error {
		if len(raw) == 0 {
			return nil
		}
		parallel(len(raw), func(i int) {
			raw[i].row, raw[i].proj, _ = decodeMessage(table.cols, lc.Streams.SubjectPrefix, raw[i].subject, raw[i].data, raw[i].meta)
		})
		now := time.Now().UTC()
		rows := make([][]any, 0, len(raw))
		var projs []*projRow
		for _, r := range raw {
			if r.row == nil {
				stats.Invalid++
				continue
			}
			setLoadedAt(r.row, table.loaded, now)
			rows = append(rows, r.row)
			if r.proj != nil {
				projs = append(projs, r.proj)
			}
		}
		inserted := false
		err := retry(ctx, log, lc.BackoffMin, lc.BackoffMax, "replay insert", func(ctx context.Context) error {
			ictx, cancel := context.WithTimeout(ctx, lc.InsertTimeout)
			defer cancel()
			if !inserted {
				if err := insertRows(ictx, conn, table.query, rows); err != nil {
					return err
				}
				inserted = true
			}
			return insertProjections(ictx, conn, lc.Database, projs)
		})
		if err != nil {
			return fmt.Errorf("loader: replay: insert: %w", err)
		}
		stats.Loaded += uint64(len(rows))
		if len(rows) > 0 {
			stats.Batches++
		}
		raw, bytes = raw[:0], 0
		return nil
	}

	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return stats, ctx.Err()
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return stats, fmt.Errorf("loader: replay: read stream: %w", err)
			}
			log.Warn("loader: replay: read stream, retrying", "error", err)
			sleep(ctx, lc.BackoffMin)
			continue
		}
		md, err := msg.Metadata()
		if err != nil {
			return stats, fmt.Errorf("loader: replay: message metadata: %w", err)
		}
		seq := md.Sequence.Stream
		if seq > stats.LastSeq {
			break // stored after the start (the messages before it were deleted)
		}
		stats.Messages++
		raw = append(raw, rawMsg{subject: msg.Subject(), data: msg.Data(), meta: meta{streamSeq: seq, storedAt: md.Timestamp}})
		bytes += len(msg.Data())
		if len(raw) >= lc.BatchSize || bytes >= lc.BatchBytes {
			if err := flush(); err != nil {
				return stats, err
			}
		}
		if seq >= stats.LastSeq || md.NumPending == 0 {
			break
		}
	}
	if err := flush(); err != nil {
		return stats, err
	}
	log.Info("loader: replay done", "last_seq", stats.LastSeq, "loaded", stats.Loaded, "invalid", stats.Invalid, "batches", stats.Batches)
	return stats, nil
}
