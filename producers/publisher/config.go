package publisher

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/airtally/airtally/internal/streams"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults and limits of Config.
const (
	DefaultSpoolMaxBytes  = 1 << 30
	DefaultPublishTimeout = 5 * time.Second
	// MinSpoolMaxBytes is the smallest spool accepted: room for the largest
	// event several times over.
	MinSpoolMaxBytes = 64 << 10
	// MinANIKeyBytes is the shortest caller-number HMAC key accepted.
	MinANIKeyBytes = 16
)

// Config configures a Publisher.
type Config struct {
	// Streams is the JetStream layout; only SubjectPrefix (default
	// "drtv.v1") and EventsStream (default "DRTV", expected on every ack)
	// are used.
	Streams streams.Config
	// SpoolDir is where events are spooled while JetStream cannot take
	// them (subfolder "events") and where the per-source sequence state
	// is kept (subfolder "sequences"). Required; one Publisher per folder.
	SpoolDir string
	// SpoolMaxBytes bounds the spool; default 1 GiB, at least 64 KiB.
	SpoolMaxBytes int64
	// ANIKey is the key of the caller-number HMAC (event.SealANI).
	// Required, at least 16 bytes; use 32 random bytes kept secret.
	ANIKey []byte
	// PublishTimeout is how long to wait for a JetStream ack before the
	// event is spooled instead; default 5s.
	PublishTimeout time.Duration
	// Logger receives operational logs; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil means no metrics.
	Registerer prometheus.Registerer
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	c.Streams = c.Streams.WithDefaults()
	if c.SpoolMaxBytes == 0 {
		c.SpoolMaxBytes = DefaultSpoolMaxBytes
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first field that is wrong.
func (c Config) Validate() error {
	if err := c.Streams.Validate(); err != nil {
		return fmt.Errorf("publisher: streams: %w", err)
	}
	c = c.WithDefaults()
	switch {
	case c.SpoolDir == "":
		return errors.New("publisher: spool dir is required")
	case len(c.ANIKey) == 0:
		return errors.New("publisher: ANI key is required")
	case len(c.ANIKey) < MinANIKeyBytes:
		return fmt.Errorf("publisher: ANI key must be at least %d bytes, got %d", MinANIKeyBytes, len(c.ANIKey))
	case c.SpoolMaxBytes < MinSpoolMaxBytes:
		return fmt.Errorf("publisher: spool max bytes must be at least %d, got %d", MinSpoolMaxBytes, c.SpoolMaxBytes)
	case c.PublishTimeout < 0:
		return errors.New("publisher: publish timeout must not be negative")
	}
	return nil
}
