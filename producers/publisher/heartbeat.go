package publisher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/airtally/airtally/producers/event"
)

// Heartbeat defaults.
const (
	// DefaultHeartbeatInterval is how often a heartbeat is sent when none
	// is given.
	DefaultHeartbeatInterval = time.Minute
	// MinHeartbeatInterval is the shortest interval accepted: heartbeats
	// carry whole seconds, except in tests.
	MinHeartbeatInterval = 10 * time.Millisecond
)

// ErrHeartbeatInterval is returned for an interval below
// MinHeartbeatInterval.
var ErrHeartbeatInterval = errors.New("publisher: heartbeat interval too short")

// StartHeartbeats sends a heartbeat of src now and then every interval
// (default DefaultHeartbeatInterval) until ctx ends or stop is called; stop
// waits for the sender to finish. Each heartbeat says, in
// interval_seconds, when the next one is due (at least 1): a detector flags
// the source once it has been silent for longer than its tolerance (see
// docs/accountability.md).
//
// Heartbeats go the way of every event: acked, or spooled while JetStream
// cannot take them and forwarded in order later, so that a source cut off
// from the event store is seen as delayed, not down, once its spool is
// delivered. A heartbeat that can be neither published nor spooled within
// one interval is dropped (and logged): the next one supersedes it.
func (p *Publisher) StartHeartbeats(ctx context.Context, src event.Source, interval time.Duration) (stop func(), err error) {
	if interval == 0 {
		interval = DefaultHeartbeatInterval
	}
	if interval < MinHeartbeatInterval {
		return nil, fmt.Errorf("%w: %s (at least %s)", ErrHeartbeatInterval, interval, MinHeartbeatInterval)
	}
	if err := checkSource(src); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			p.beat(ctx, src, interval)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }, nil
}

// beat publishes one heartbeat of src.
func (p *Publisher) beat(ctx context.Context, src event.Source, interval time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, interval)
	defer cancel()
	hb := event.New(event.Heartbeat, event.Source{System: src.System, Instance: src.Instance}, time.Now())
	hb.IntervalSeconds = max(1, int64((interval+time.Second-1)/time.Second))
	if _, err := p.Publish(ctx, hb); err != nil && !errors.Is(err, ErrClosed) && ctx.Err() == nil {
		p.log.Warn("publisher: heartbeat not sent", "source", src.Key(), "err", err)
	}
}

// checkSource validates a source's names with the event rules.
func checkSource(src event.Source) error {
	probe := event.New(event.Heartbeat, event.Source{System: src.System, Instance: src.Instance, Seq: 1}, time.Now())
	probe.IntervalSeconds = 1
	if err := probe.Validate(); err != nil {
		return fmt.Errorf("publisher: heartbeat source: %w", err)
	}
	return nil
}

// RelayConfig configures a Relay.
type RelayConfig struct {
	// Interval is how often a heartbeat is sent for each active source;
	// default DefaultHeartbeatInterval.
	Interval time.Duration
	// Active is how long after a source's last event the relay keeps
	// sending heartbeats for it; default 2 × Interval. Keep it short: a
	// client that dies is masked for at most this long.
	Active time.Duration
	// Now is the clock; nil means time.Now (tests set it).
	Now func() time.Time
}

// WithDefaults returns c with every unset field at its default.
func (c RelayConfig) WithDefaults() RelayConfig {
	if c.Interval == 0 {
		c.Interval = DefaultHeartbeatInterval
	}
	if c.Active == 0 {
		c.Active = 2 * c.Interval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports the first field that is wrong.
func (c RelayConfig) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Interval < MinHeartbeatInterval:
		return fmt.Errorf("%w: interval %s (at least %s)", ErrHeartbeatInterval, c.Interval, MinHeartbeatInterval)
	case c.Active < c.Interval:
		return fmt.Errorf("publisher: relay active period %s must be at least the interval %s", c.Active, c.Interval)
	}
	return nil
}

// Relay publishes batches through a Publisher and sends heartbeats on
// behalf of every source that published recently: the HTTP gateway uses it
// for its clients. It has the gateway's Publisher interface (PublishBatch,
// Ready) and is safe for concurrent use. The detector's own source is
// never relayed.
type Relay struct {
	pub *Publisher
	cfg RelayConfig

	mu   sync.Mutex
	seen map[event.Source]time.Time // source (seq 0) → last event
}

// NewRelay returns a relay over pub; call Run to send the heartbeats.
func NewRelay(pub *Publisher, cfg RelayConfig) (*Relay, error) {
	if pub == nil {
		return nil, errors.New("publisher: relay needs a publisher")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Relay{pub: pub, cfg: cfg.WithDefaults(), seen: map[event.Source]time.Time{}}, nil
}

// PublishBatch publishes evs (see Publisher.PublishBatch) and notes the
// source of every event stored that the publisher numbered (sent without
// source.seq). A source that numbers its own events is not relayed: a
// heartbeat would take one of its numbers, so it sends its own heartbeats.
func (r *Relay) PublishBatch(ctx context.Context, evs []*event.Event) []Result {
	numbered := make([]bool, len(evs))
	for i, ev := range evs {
		numbered[i] = ev != nil && ev.Source.Seq == 0 && ev.Source.System != event.DetectorSystem
	}
	res := r.pub.PublishBatch(ctx, evs)
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, ev := range evs {
		if i < len(res) && res[i].Err == nil && numbered[i] {
			r.seen[event.Source{System: ev.Source.System, Instance: ev.Source.Instance}] = now
		}
	}
	return res
}

// Ready reports whether the publisher accepts events now.
func (r *Relay) Ready() bool { return r.pub.Ready() }

// Sources is Publisher.Sources.
func (r *Relay) Sources() int { return r.pub.Sources() }

// HasSource is Publisher.HasSource.
func (r *Relay) HasSource(src event.Source) bool { return r.pub.HasSource(src) }

// Active returns the sources heartbeats are sent for now, forgetting those
// silent for longer than RelayConfig.Active.
func (r *Relay) Active() []event.Source {
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []event.Source
	for src, at := range r.seen {
		if now.Sub(at) > r.cfg.Active {
			delete(r.seen, src)
			continue
		}
		out = append(out, src)
	}
	return out
}

// Run sends a heartbeat every Interval for each active source until ctx
// ends; it returns nil then.
func (r *Relay) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for _, src := range r.Active() {
			r.pub.beat(ctx, src, r.cfg.Interval)
		}
	}
}
