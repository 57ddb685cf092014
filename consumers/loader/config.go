package loader

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airtally/airtally/internal/streams"
)

// Defaults of Config.
const (
	DefaultConsumer = "clickhouse-loader"
	// DefaultBatchSize: ClickHouse 18.16 spends 30 to 60 ms of processor
	// time on every insert into the events table, whatever its size, and
	// about 1.5 µs a row: 20,000-row inserts cost it a third of 5,000-row
	// ones per row, and a loader draining a backlog loads about twice as
	// fast (docs/durability.md, "Where the time goes"). Below the batch size a batch is
	// cut by FlushInterval, so latency at ordinary rates is unchanged.
	DefaultBatchSize       = 20000
	DefaultBatchBytes      = 16 << 20
	DefaultFlushInterval   = time.Second
	DefaultAckWait         = 2 * time.Minute
	DefaultMaxAckPending   = 100000 // (2 × 2 loaders + 1) × DefaultBatchSize
	DefaultInsertTimeout   = 30 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	DefaultBackoffMin      = 100 * time.Millisecond
	DefaultBackoffMax      = 30 * time.Second
	DefaultLagInterval     = 15 * time.Second
)

var (
	databaseRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	consumerRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
)

// Config configures a Loader. The zero value of every field but Database
// means its default.
type Config struct {
	// Database is the ClickHouse database holding the events and
	// dead_letters tables (see package schema). Required.
	Database string
	// Streams is the JetStream layout; zero fields take the defaults of
	// package streams.
	Streams streams.Config
	// Consumer is the durable consumer's name, shared by every loader
	// instance; default "clickhouse-loader".
	Consumer string
	// BatchSize is the most messages in one insert; default 20000.
	BatchSize int
	// BatchBytes is the most payload bytes in one batch; default 16 MiB.
	BatchBytes int
	// FlushInterval is how long a batch waits for more messages after its
	// first one; default 1s.
	FlushInterval time.Duration
	// AckWait is how long JetStream waits for an ack before redelivering;
	// default 2m. A batch being inserted or retried is kept alive with
	// InProgress every AckWait/4, so AckWait only needs to exceed the worst
	// pause between two of those (a slow flush, a GC pause, a slow network).
	AckWait time.Duration
	// MaxAckPending is the most messages delivered and not yet acknowledged
	// across all loader instances; default 100000. Each instance holds up to
	// two batches (one being inserted, the next one fetched meanwhile), so
	// give it at least (2 × instances + 1) × BatchSize: when it is reached
	// JetStream silently stops delivering. Validate requires two batches.
	MaxAckPending int
	// InsertTimeout bounds one insert attempt; default 30s.
	InsertTimeout time.Duration
	// ShutdownTimeout is how long the batch in flight may still take to be
	// inserted and acknowledged after Run's context is cancelled; default
	// 10s. Past it the batch is abandoned unacknowledged.
	ShutdownTimeout time.Duration
	// BackoffMin and BackoffMax bound the pause between two attempts at a
	// failing insert or publish; the pause doubles from BackoffMin up to
	// BackoffMax, with jitter. Defaults 100ms and 30s.
	BackoffMin, BackoffMax time.Duration
	// LagInterval is how often the consumer's pending count is polled for
	// the lag metric; default 15s.
	LagInterval time.Duration
	// Logger receives the loader's logs; nil means slog.Default(). Payloads
	// and field values are never logged.
	Logger *slog.Logger
	// Registerer receives the loader's metrics; nil means none.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	c.Consumer = cmp.Or(c.Consumer, DefaultConsumer)
	c.BatchSize = cmp.Or(c.BatchSize, DefaultBatchSize)
	c.BatchBytes = cmp.Or(c.BatchBytes, DefaultBatchBytes)
	c.FlushInterval = cmp.Or(c.FlushInterval, DefaultFlushInterval)
	c.AckWait = cmp.Or(c.AckWait, DefaultAckWait)
	c.MaxAckPending = cmp.Or(c.MaxAckPending, DefaultMaxAckPending)
	c.InsertTimeout = cmp.Or(c.InsertTimeout, DefaultInsertTimeout)
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, DefaultShutdownTimeout)
	c.BackoffMin = cmp.Or(c.BackoffMin, DefaultBackoffMin)
	c.BackoffMax = cmp.Or(c.BackoffMax, DefaultBackoffMax)
	c.LagInterval = cmp.Or(c.LagInterval, DefaultLagInterval)
	c.Streams = c.Streams.WithDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	c.setDefaults()
	return c
}

// Validate reports the first field that is wrong.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.Database == "":
		return errors.New("loader: database is required")
	case !databaseRe.MatchString(c.Database):
		return fmt.Errorf("loader: database %q must be letters, digits and '_', not starting with a digit", c.Database)
	case !consumerRe.MatchString(c.Consumer):
		return fmt.Errorf("loader: consumer %q must be 1-128 letters, digits, '_' or '-'", c.Consumer)
	case c.BatchSize < 1 || c.BatchSize > 1_000_000:
		return fmt.Errorf("loader: batch size must be 1 to 1000000, got %d", c.BatchSize)
	case c.BatchBytes < 1<<10:
		return fmt.Errorf("loader: batch bytes must be at least 1 KiB, got %d", c.BatchBytes)
	case c.FlushInterval < time.Millisecond:
		return fmt.Errorf("loader: flush interval must be at least 1ms, got %s", c.FlushInterval)
	case c.AckWait < time.Second:
		return fmt.Errorf("loader: ack wait must be at least 1s, got %s", c.AckWait)
	case c.AckWait <= 2*c.FlushInterval:
		return fmt.Errorf("loader: ack wait (%s) must exceed twice the flush interval (%s)", c.AckWait, c.FlushInterval)
	case c.MaxAckPending < 2*c.BatchSize:
		return fmt.Errorf("loader: max ack pending (%d) must hold at least two batches (%d)", c.MaxAckPending, 2*c.BatchSize)
	case c.InsertTimeout < 0:
		return errors.New("loader: insert timeout must not be negative")
	case c.ShutdownTimeout < 0:
		return errors.New("loader: shutdown timeout must not be negative")
	case c.BackoffMin < 0 || c.BackoffMax < c.BackoffMin:
		return fmt.Errorf("loader: backoff must satisfy 0 <= min (%s) <= max (%s)", c.BackoffMin, c.BackoffMax)
	case c.LagInterval < 0:
		return errors.New("loader: lag interval must not be negative")
	}
	if err := c.Streams.Validate(); err != nil {
		return fmt.Errorf("loader: streams: %w", err)
	}
	return nil
}
