package backup

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/airtally/airtally/internal/streams"
)

// Defaults of Config.
const (
	DefaultAPIPrefix      = "$JS.API"
	DefaultChunkSize      = 128 << 10
	DefaultBatchSize      = 10000
	DefaultRequestTimeout = 30 * time.Second
)

var databaseRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// Config configures Backup and Restore. Zero fields but Dir and Database
// take their defaults.
type Config struct {
	// Dir is the backup folder. Backup creates it (it must not hold a
	// backup already); Restore reads it. Required.
	Dir string
	// Database is the ClickHouse database backed up, or restored into.
	// Restore migrates it and refuses one whose tables hold rows. Required.
	Database string
	// Cluster, when not empty, makes Restore migrate Database in the
	// schema's cluster mode (schema.MigrateCluster): restore on one replica,
	// and the replicated tables copy the rows to the others.
	Cluster string
	// Streams names the events and dead-letter streams; zero fields take
	// the defaults of package streams ("DRTV", "DRTV_DLQ").
	Streams streams.Config
	// APIPrefix is the JetStream API prefix; default "$JS.API".
	APIPrefix string
	// ChunkSize is the snapshot chunk size in bytes, between 1 KiB and
	// 1 MiB; default 128 KiB.
	ChunkSize int
	// BatchSize is the most rows in one insert on restore; default 10000.
	BatchSize int
	// RequestTimeout bounds each JetStream request and the wait for each
	// snapshot chunk; default 30s.
	RequestTimeout time.Duration
	// SkipConsumers leaves the streams' durable consumers (the loader's and
	// the detector's positions) out of the snapshot; default false: they
	// are kept.
	SkipConsumers bool
	// SkipStreams and SkipTables make Restore leave out the streams (e.g.
	// to restore the tables next to an intact stream, then replay) or the
	// tables (to restore a lost stream only). Backup always writes both.
	SkipStreams, SkipTables bool
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.Streams = c.Streams.WithDefaults()
	if c.APIPrefix == "" {
		c.APIPrefix = DefaultAPIPrefix
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first field that is wrong (after defaults).
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Dir == "":
		return errors.New("backup: config: Dir is required")
	case !databaseRe.MatchString(c.Database):
		return fmt.Errorf("backup: config: Database %q must be letters, digits and underscores, not starting with a digit", c.Database)
	case c.ChunkSize < 1<<10 || c.ChunkSize > 1<<20:
		return fmt.Errorf("backup: config: ChunkSize %d must be between 1 KiB and 1 MiB", c.ChunkSize)
	case c.BatchSize < 1:
		return fmt.Errorf("backup: config: BatchSize %d must be positive", c.BatchSize)
	case c.SkipStreams && c.SkipTables:
		return errors.New("backup: config: SkipStreams and SkipTables together leave nothing to restore")
	case c.RequestTimeout < 0:
		return fmt.Errorf("backup: config: RequestTimeout %v must not be negative", c.RequestTimeout)
	}
	if err := c.Streams.Validate(); err != nil {
		return fmt.Errorf("backup: config: streams: %w", err)
	}
	return nil
}
