package bench

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/airtally/airtally/consumers/loader"
)

// Sync is a JetStream file-store sync setting.
type Sync string

// The sync settings measured.
const (
	// SyncInterval is JetStream's default: the store is fsync'd every
	// sync_interval (2 minutes), so an OS crash can lose acknowledged events.
	SyncInterval Sync = "interval"
	// SyncAlways fsyncs every write before it is acknowledged
	// (sync_interval: always; natsembed.Config.SyncAlways).
	SyncAlways Sync = "always"
)

// Describe says what the setting does, for reports.
func (s Sync) Describe() string {
	switch s {
	case SyncInterval:
		return "sync_interval 2m (default)"
	case SyncAlways:
		return "sync_interval always"
	}
	return string(s)
}

// ParseSyncs parses a comma-separated list of sync settings ("interval",
// "always"); "both" means both.
func ParseSyncs(s string) ([]Sync, error) {
	var out []Sync
	seen := map[Sync]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		var add []Sync
		switch part {
		case "both":
			add = []Sync{SyncInterval, SyncAlways}
		case string(SyncInterval), string(SyncAlways):
			add = []Sync{Sync(part)}
		default:
			return nil, fmt.Errorf("bench: sync setting %q: want interval, always or both", part)
		}
		for _, a := range add {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out, nil
}

// Defaults of Config.
const (
	DefaultEvents        = 100_000
	DefaultRate          = 1000
	DefaultDuration      = 20 * time.Second
	DefaultFlushInterval = 100 * time.Millisecond
	DefaultPollInterval  = 10 * time.Millisecond
	DefaultWindow        = 4096
	DefaultInsertBatch   = loader.DefaultBatchSize
	DefaultPublishBatch  = 1000
	DefaultSources       = 4
	DefaultPhaseTimeout  = 5 * time.Minute
	DefaultReplayBatch   = loader.DefaultReplayBatchSize
)

// Config configures a benchmark run. The zero value of every field means
// its default.
type Config struct {
	// Events is the number of events of each throughput phase (raw publish,
	// raw insert, end to end); default 100000.
	Events int
	// Rate is the paced rate of the latency phase, in events per second;
	// default 1000.
	Rate int
	// Duration is how long the latency phase publishes at Rate; default 20s.
	Duration time.Duration
	// Syncs are the JetStream sync settings to measure, in this order;
	// default both (SyncInterval, then SyncAlways).
	Syncs []Sync
	// Dir holds the NATS stores, the ClickHouse server's data and the
	// publishers' spools, and so decides which disk the fsyncs hit. Empty
	// (default): a temporary folder, removed after the run. Otherwise a
	// fresh folder "bench-*" is made inside Dir and kept.
	Dir string
	// FlushInterval is the loader's flush interval in the end-to-end and
	// latency phases: how long a batch waits for more events after its
	// first; default 100ms (the loader's own default is 1s). Shorter means
	// lower latency at low rates but more, smaller inserts (more parts for
	// ClickHouse to merge); at high rates batches fill up first anyway.
	FlushInterval time.Duration
	// PollInterval is how often the latency phase reads max(source_seq)
	// from ClickHouse; default 10ms. It bounds the latency resolution.
	PollInterval time.Duration
	// Window is the most async publishes awaiting their ack in the raw
	// publish phase; default 4096 (the publisher's own window).
	Window int
	// InsertBatch is the rows per insert of the raw insert phase; default
	// the loader's default batch size (20000).
	InsertBatch int
	// PublishBatch is the events per Publisher.PublishBatch call in the
	// end-to-end phase; default 1000.
	PublishBatch int
	// Sources is the number of sources publishing at once in the
	// end-to-end phase (one goroutine each, as several ACDs would);
	// default 4.
	Sources int
	// ReplayBatch is the replay phase's batch size (messages per insert);
	// default loader.DefaultReplayBatchSize (20000).
	ReplayBatch int
	// PhaseTimeout bounds each phase; default 5m.
	PhaseTimeout time.Duration
	// ClickHouseBinary is the ClickHouse server executable; default
	// chlocal.FindBinary().
	ClickHouseBinary string
	// Logger receives the components' logs; nil discards them.
	Logger *slog.Logger
	// Progress, if set, is called with a short line as each phase starts.
	Progress func(string)
}

func (c *Config) setDefaults() {
	c.Events = cmp.Or(c.Events, DefaultEvents)
	c.Rate = cmp.Or(c.Rate, DefaultRate)
	c.Duration = cmp.Or(c.Duration, DefaultDuration)
	c.FlushInterval = cmp.Or(c.FlushInterval, DefaultFlushInterval)
	c.PollInterval = cmp.Or(c.PollInterval, DefaultPollInterval)
	c.Window = cmp.Or(c.Window, DefaultWindow)
	c.InsertBatch = cmp.Or(c.InsertBatch, DefaultInsertBatch)
	c.PublishBatch = cmp.Or(c.PublishBatch, DefaultPublishBatch)
	c.Sources = cmp.Or(c.Sources, DefaultSources)
	c.PhaseTimeout = cmp.Or(c.PhaseTimeout, DefaultPhaseTimeout)
	c.ReplayBatch = cmp.Or(c.ReplayBatch, DefaultReplayBatch)
	if len(c.Syncs) == 0 {
		c.Syncs = []Sync{SyncInterval, SyncAlways}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = func(string) {}
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
	case c.Events < 1 || c.Events > 10_000_000:
		return fmt.Errorf("bench: events must be 1 to 10000000, got %d", c.Events)
	case c.Rate < 1 || c.Rate > 1_000_000:
		return fmt.Errorf("bench: rate must be 1 to 1000000 events/s, got %d", c.Rate)
	case c.Duration < 100*time.Millisecond:
		return fmt.Errorf("bench: duration must be at least 100ms, got %s", c.Duration)
	case c.Duration*time.Duration(c.Rate) < time.Second:
		return errors.New("bench: the latency phase must publish at least one event (rate × duration)")
	case c.FlushInterval < time.Millisecond:
		return fmt.Errorf("bench: flush interval must be at least 1ms, got %s", c.FlushInterval)
	case c.PollInterval < time.Millisecond:
		return fmt.Errorf("bench: poll interval must be at least 1ms, got %s", c.PollInterval)
	case c.Window < 1:
		return fmt.Errorf("bench: window must be at least 1, got %d", c.Window)
	case c.InsertBatch < 1 || c.InsertBatch > 1_000_000:
		return fmt.Errorf("bench: insert batch must be 1 to 1000000, got %d", c.InsertBatch)
	case c.PublishBatch < 1 || c.PublishBatch > 100_000:
		return fmt.Errorf("bench: publish batch must be 1 to 100000, got %d", c.PublishBatch)
	case c.Sources < 1 || c.Sources > 64:
		return fmt.Errorf("bench: sources must be 1 to 64, got %d", c.Sources)
	case c.ReplayBatch < 1 || c.ReplayBatch > 1_000_000:
		return fmt.Errorf("bench: replay batch must be 1 to 1000000, got %d", c.ReplayBatch)
	case c.PhaseTimeout < time.Second:
		return fmt.Errorf("bench: phase timeout must be at least 1s, got %s", c.PhaseTimeout)
	}
	seen := map[Sync]bool{}
	for i, s := range c.Syncs {
		if s != SyncInterval && s != SyncAlways {
			return fmt.Errorf("bench: syncs[%d] %q: want %q or %q", i, s, SyncInterval, SyncAlways)
		}
		if seen[s] {
			return fmt.Errorf("bench: syncs[%d] %q is listed twice", i, s)
		}
		seen[s] = true
	}
	return nil
}
