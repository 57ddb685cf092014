package detector

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/streams"
)

// Defaults of Config.
const (
	DefaultConsumer         = "detector"
	DefaultInstance         = "main"
	DefaultStateBucket      = "AIRTALLY_DETECTOR"
	DefaultToleranceFactor  = 1.0
	DefaultToleranceGrace   = 30 * time.Second
	DefaultDelayTolerance   = 30 * time.Second
	DefaultMaxClockSkew     = 15 * time.Minute
	DefaultClockWindow      = time.Hour
	DefaultGapGrace         = 10 * time.Second
	DefaultSilentCalls      = 12.0
	DefaultCheckInterval    = time.Second
	DefaultLiveMargin       = 2 * time.Second
	DefaultSnapshotInterval = time.Second
	DefaultSnapshotEvents   = 2000
	DefaultAckWait          = 5 * time.Minute
	DefaultLoaderTolerance  = time.Minute
	DefaultLoaderCheck      = 15 * time.Second
	DefaultAlertSubject     = "airtally.alerts"
	DefaultAlertMaxAge      = 15 * time.Minute
	DefaultWebhookTimeout   = 5 * time.Second
)

var (
	consumerRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	nameRe     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	bucketRe   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	subjectRe  = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
)

// Config configures a Detector. The zero value of every field means its
// default.
type Config struct {
	// Streams is the JetStream layout; zero fields take the defaults of
	// package streams.
	Streams streams.Config
	// Consumer is the detector's durable consumer; default "detector". One
	// detector runs per consumer (it keeps state).
	Consumer string
	// Instance is the detector's source instance (its events' source is
	// "detector.<Instance>"); default "main".
	Instance string
	// StateBucket is the JetStream key-value bucket holding the detector's
	// state snapshots (key: the consumer name); default
	// "AIRTALLY_DETECTOR".
	StateBucket string

	// Tolerances. A source that announced a heartbeat interval may stay
	// silent ToleranceFactor × interval + ToleranceGrace (defaults 1 and
	// 30s: one missed heartbeat is an outage). SourceTolerance overrides that for a source
	// ("system.instance"); a source that never sent a heartbeat (a batch
	// job such as the schedule importer) is watched for downtime only if
	// SourceTolerance names it.
	ToleranceFactor float64
	ToleranceGrace  time.Duration
	SourceTolerance map[string]time.Duration
	// DelayTolerance is how late an event may arrive (after clock-skew
	// correction) before it counts as delayed; default 30s.
	DelayTolerance time.Duration
	// MaxClockSkew is the largest producer clock error the detector
	// corrects; a larger lag is delay (default 15m).
	MaxClockSkew time.Duration
	// ClockWindow is how far back the skew estimate looks; default 1h.
	ClockWindow time.Duration
	// GapGrace is how long a hole in a source's sequence numbers may stay
	// before it is recorded (events reordered in flight fill it first);
	// default 10s of stream time.
	GapGrace time.Duration
	// SilentCalls is how many calls a number must have been expected to
	// take, without taking one, during an airing's response window, before
	// it is flagged silent (e^-12: a steady stream of calls is that silent by
	// chance once in 160,000 calls); default 12. A number at one call
	// source is judged against its other sources with the same odds.
	SilentCalls float64

	// CheckInterval is how often a caught-up detector checks for silent
	// sources by the clock (between events); default 1s. Negative: only
	// events advance time (simulations and replays).
	CheckInterval time.Duration
	// LiveMargin is subtracted from the estimated server time in those
	// checks, to leave events in flight time to arrive; default 2s.
	LiveMargin time.Duration
	// SnapshotInterval and SnapshotEvents: the state is saved (and the
	// events acknowledged) at least this often; defaults 1s and 2000.
	SnapshotInterval time.Duration
	SnapshotEvents   int
	// AckWait of the consumer; default 5m.
	AckWait time.Duration

	// LoaderConsumer is the loader's durable consumer, watched for lag: a
	// loader more than LoaderTolerance (default 1m) behind is reported as
	// delayed data (never downtime). Default loader.DefaultConsumer; "-"
	// turns it off. Checked every LoaderCheck (default 15s).
	LoaderConsumer  string
	LoaderTolerance time.Duration
	LoaderCheck     time.Duration

	// Alerts configures where alerts go.
	Alerts AlertConfig

	// ReceivedAt gives a message's received time; nil means the time
	// JetStream stored it (the server clock). Simulations that replay a
	// recorded day set it.
	ReceivedAt func(jetstream.Msg) (time.Time, error)
	// Now is the local clock; nil means time.Now.
	Now func() time.Time
	// Logger receives the detector's logs; nil means slog.Default(). Event
	// payloads are never logged.
	Logger *slog.Logger
	// Registerer receives the detector's metrics; nil means none.
	Registerer prometheus.Registerer
}

// AlertConfig says where alerts go. Every alert is logged.
type AlertConfig struct {
	// Subject is the NATS subject alerts are published on (JSON, see
	// Alert); default "airtally.alerts"; "-" turns it off.
	Subject string
	// WebhookURL, when set, receives every alert as an HTTP POST of
	// {"text": "..."}, the body chat tools' incoming webhooks accept.
	WebhookURL string
	// WebhookTimeout bounds one webhook attempt; default 5s. A failed
	// attempt is retried twice.
	WebhookTimeout time.Duration
	// MaxAge: an incident detected more than this long after it began (a
	// replay, a backlog) is recorded but not alerted; default 15m.
	MaxAge time.Duration
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	c.Streams = c.Streams.WithDefaults()
	c.Consumer = cmp.Or(c.Consumer, DefaultConsumer)
	c.Instance = cmp.Or(c.Instance, DefaultInstance)
	c.StateBucket = cmp.Or(c.StateBucket, DefaultStateBucket)
	c.ToleranceFactor = cmp.Or(c.ToleranceFactor, DefaultToleranceFactor)
	c.ToleranceGrace = cmp.Or(c.ToleranceGrace, DefaultToleranceGrace)
	c.DelayTolerance = cmp.Or(c.DelayTolerance, DefaultDelayTolerance)
	c.MaxClockSkew = cmp.Or(c.MaxClockSkew, DefaultMaxClockSkew)
	c.ClockWindow = cmp.Or(c.ClockWindow, DefaultClockWindow)
	c.GapGrace = cmp.Or(c.GapGrace, DefaultGapGrace)
	c.SilentCalls = cmp.Or(c.SilentCalls, DefaultSilentCalls)
	c.CheckInterval = cmp.Or(c.CheckInterval, DefaultCheckInterval)
	c.LiveMargin = cmp.Or(c.LiveMargin, DefaultLiveMargin)
	c.SnapshotInterval = cmp.Or(c.SnapshotInterval, DefaultSnapshotInterval)
	c.SnapshotEvents = cmp.Or(c.SnapshotEvents, DefaultSnapshotEvents)
	c.AckWait = cmp.Or(c.AckWait, DefaultAckWait)
	c.LoaderConsumer = cmp.Or(c.LoaderConsumer, loader.DefaultConsumer)
	c.LoaderTolerance = cmp.Or(c.LoaderTolerance, DefaultLoaderTolerance)
	c.LoaderCheck = cmp.Or(c.LoaderCheck, DefaultLoaderCheck)
	c.Alerts.Subject = cmp.Or(c.Alerts.Subject, DefaultAlertSubject)
	c.Alerts.WebhookTimeout = cmp.Or(c.Alerts.WebhookTimeout, DefaultWebhookTimeout)
	c.Alerts.MaxAge = cmp.Or(c.Alerts.MaxAge, DefaultAlertMaxAge)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first field that is wrong.
func (c Config) Validate() error {
	if err := c.Streams.Validate(); err != nil {
		return fmt.Errorf("detector: streams: %w", err)
	}
	c = c.WithDefaults()
	switch {
	case !consumerRe.MatchString(c.Consumer):
		return fmt.Errorf("detector: consumer %q must be 1-128 letters, digits, '_' or '-'", c.Consumer)
	case !nameRe.MatchString(c.Instance):
		return fmt.Errorf("detector: instance %q must be 1-64 characters of a-z, 0-9, '_' or '-'", c.Instance)
	case !bucketRe.MatchString(c.StateBucket):
		return fmt.Errorf("detector: state bucket %q must be 1-64 letters, digits, '_' or '-'", c.StateBucket)
	case c.ToleranceFactor < 1:
		return fmt.Errorf("detector: tolerance factor must be at least 1, got %g", c.ToleranceFactor)
	case c.ToleranceGrace < 0:
		return errors.New("detector: tolerance grace must not be negative")
	case c.DelayTolerance < time.Millisecond:
		return fmt.Errorf("detector: delay tolerance must be at least 1ms, got %s", c.DelayTolerance)
	case c.MaxClockSkew < 0:
		return errors.New("detector: max clock skew must not be negative")
	case c.ClockWindow < time.Second:
		return fmt.Errorf("detector: clock window must be at least 1s, got %s", c.ClockWindow)
	case c.GapGrace < 0:
		return errors.New("detector: gap grace must not be negative")
	case c.SilentCalls < 1:
		return fmt.Errorf("detector: silent calls must be at least 1, got %g", c.SilentCalls)
	case c.LiveMargin < 0:
		return errors.New("detector: live margin must not be negative")
	case c.SnapshotInterval < time.Millisecond || c.SnapshotEvents < 1:
		return errors.New("detector: snapshot interval and events must be positive")
	case c.AckWait < time.Second:
		return fmt.Errorf("detector: ack wait must be at least 1s, got %s", c.AckWait)
	case c.AckWait <= 2*c.SnapshotInterval:
		return fmt.Errorf("detector: ack wait (%s) must exceed twice the snapshot interval (%s)", c.AckWait, c.SnapshotInterval)
	case c.LoaderConsumer != "-" && !consumerRe.MatchString(c.LoaderConsumer):
		return fmt.Errorf("detector: loader consumer %q must be 1-128 letters, digits, '_' or '-' (or \"-\" for none)", c.LoaderConsumer)
	case c.LoaderTolerance < time.Second || c.LoaderCheck < 10*time.Millisecond:
		return errors.New("detector: loader tolerance must be at least 1s and loader check at least 10ms")
	case c.Alerts.Subject != "-" && !subjectRe.MatchString(c.Alerts.Subject):
		return fmt.Errorf("detector: alert subject %q is not a NATS subject without wildcards (or \"-\" for none)", c.Alerts.Subject)
	case c.Alerts.WebhookTimeout < time.Millisecond || c.Alerts.MaxAge < 0:
		return errors.New("detector: webhook timeout must be positive and alert max age not negative")
	}
	for k, d := range c.SourceTolerance {
		if d < time.Millisecond {
			return fmt.Errorf("detector: tolerance of source %q must be at least 1ms, got %s", k, d)
		}
	}
	if c.Alerts.WebhookURL != "" {
		u, err := url.Parse(c.Alerts.WebhookURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return errors.New("detector: webhook URL must be an http or https URL")
		}
	}
	return nil
}

// tolerance is the silence a source may keep, in milliseconds, given the
// heartbeat interval it announced (0 if none); 0 means the source is not
// watched for downtime.
func (c Config) tolerance(key string, intervalMS int64) int64 {
	if d, ok := c.SourceTolerance[key]; ok {
		return d.Milliseconds()
	}
	if intervalMS <= 0 {
		return 0
	}
	return int64(c.ToleranceFactor*float64(intervalMS)) + c.ToleranceGrace.Milliseconds()
}
