// Package streams defines airtally's JetStream layout (the events stream,
// the dead-letter stream and their subjects) and creates or updates it
// idempotently at start-up.
package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of Config.
const (
	DefaultEventsStream    = "DRTV"
	DefaultDLQStream       = "DRTV_DLQ"
	DefaultSubjectPrefix   = "drtv.v1"
	DefaultDLQPrefix       = "drtv.dlq"
	DefaultDuplicateWindow = 2 * time.Hour
	DefaultMaxAge          = 400 * 24 * time.Hour
)

// Headers set on dead letters.
const (
	HeaderDLQReason    = "Airtally-Dlq-Reason"
	HeaderDLQStreamSeq = "Airtally-Dlq-Stream-Seq"
	HeaderDLQSubject   = "Airtally-Dlq-Subject"
)

// Config is the JetStream layout.
type Config struct {
	// EventsStream is the stream that records every event; default "DRTV".
	EventsStream string
	// DLQStream receives events that failed at consume time; default
	// "DRTV_DLQ".
	DLQStream string
	// SubjectPrefix of events; default "drtv.v1". Events are published on
	// "<prefix>.<kind token>.<system>.<instance>".
	SubjectPrefix string
	// DLQPrefix of dead letters; default "drtv.dlq".
	DLQPrefix string
	// Replicas of each stream: 1 locally (default), 3 in a production cluster.
	Replicas int
	// MaxAge keeps events this long; default 400 days (a broadcast year and
	// then some, so the tables can be rebuilt by replay).
	MaxAge time.Duration
	// MaxBytes bounds each stream; 0 (default) means unlimited. When the
	// limit is reached the stream refuses new events rather than deleting
	// old ones (DiscardNew): an event is never silently lost.
	MaxBytes int64
	// DuplicateWindow is how long JetStream remembers event ids to drop a
	// retried publish; default 2 hours. Retries later than that are
	// deduplicated by ClickHouse (see docs/design.md).
	DuplicateWindow time.Duration
}

func (c *Config) setDefaults() {
	if c.EventsStream == "" {
		c.EventsStream = DefaultEventsStream
	}
	if c.DLQStream == "" {
		c.DLQStream = DefaultDLQStream
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultSubjectPrefix
	}
	if c.DLQPrefix == "" {
		c.DLQPrefix = DefaultDLQPrefix
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
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
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("streams: replicas must be 1 to 5, got %d", c.Replicas)
	case c.MaxAge < 0:
		return errors.New("streams: max age must not be negative")
	case c.MaxBytes < 0:
		return errors.New("streams: max bytes must not be negative")
	case c.DuplicateWindow < 0 || c.DuplicateWindow > c.MaxAge:
		return errors.New("streams: duplicate window must be between 0 and max age")
	case c.EventsStream == c.DLQStream:
		return errors.New("streams: events and dead-letter streams must differ")
	}
	return nil
}

// EventSubjects is the wildcard that covers every event.
func (c Config) EventSubjects() string { return c.WithDefaults().SubjectPrefix + ".>" }

// DLQSubject is where the dead letter of a message on subject goes.
func (c Config) DLQSubject(subject string) string {
	c.setDefaults()
	return c.DLQPrefix + "." + subject
}

// SourceSubjects is the wildcard of every subject one source publishes on.
func (c Config) SourceSubjects(system, instance string) string {
	return c.WithDefaults().SubjectPrefix + ".*." + system + "." + instance
}

// EventsStreamConfig is the JetStream configuration of the events stream.
func (c Config) EventsStreamConfig() jetstream.StreamConfig {
	c.setDefaults()
	return jetstream.StreamConfig{
		Name:        c.EventsStream,
		Description: "airtally: every call, order and heartbeat event (source of truth)",
		Subjects:    []string{c.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		Replicas:    c.Replicas,
		MaxAge:      c.MaxAge,
		MaxBytes:    nonZero(c.MaxBytes),
		Duplicates:  c.DuplicateWindow,
		MaxMsgs:     -1,
	}
}

// DLQStreamConfig is the JetStream configuration of the dead-letter stream.
func (c Config) DLQStreamConfig() jetstream.StreamConfig {
	c.setDefaults()
	return jetstream.StreamConfig{
		Name:        c.DLQStream,
		Description: "airtally: events that failed at consume time, reason in headers",
		Subjects:    []string{c.DLQPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		Replicas:    c.Replicas,
		MaxAge:      c.MaxAge,
		MaxBytes:    nonZero(c.MaxBytes),
		Duplicates:  c.DuplicateWindow,
		MaxMsgs:     -1,
	}
}

func nonZero(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

// Ensure creates the events and dead-letter streams, or updates them to
// this configuration. It is safe to call at every start-up and from several
// processes at once.
func Ensure(ctx context.Context, js jetstream.JetStream, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	for _, sc := range []jetstream.StreamConfig{c.EventsStreamConfig(), c.DLQStreamConfig()} {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("streams: create or update %s: %w", sc.Name, err)
		}
	}
	return nil
}
