package detector

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
)

// Publisher publishes detection events durably: *publisher.Publisher
// satisfies it. Publish returns once the event is acked by JetStream or
// spooled locally (both durable), keeps the event's id, and fails only when
// ctx ends, when closed, or for an invalid event.
type Publisher interface {
	Publish(ctx context.Context, ev *event.Event) (publisher.Receipt, error)
}

// Detector reads the events stream through its own durable consumer, keeps
// per-source state, publishes detection events and sends alerts.
type Detector struct {
	js     jetstream.JetStream
	pub    Publisher
	cfg    Config
	log    *slog.Logger
	m      *metrics
	alerts *alerter
	core   *core

	caughtUp bool
	applied  atomic.Uint64
	// offsets are recent (local receipt − stored) times, for the server
	// clock estimate of live checks.
	offsets []time.Duration
}

const (
	fetchBatch     = 256
	offsetSamples  = 64
	alertedMemory  = 7 * 24 * 60 * minute
	maxStateBytes  = 900 << 10
	stateKeyPrefix = "state."
	minBackoff     = 100 * time.Millisecond
	maxBackoff     = 10 * time.Second
)

// New returns a detector reading with js and publishing with pub. Nothing
// is contacted until Run.
func New(js jetstream.JetStream, pub Publisher, cfg Config) (*Detector, error) {
	if js == nil || pub == nil {
		return nil, errors.New("detector: a JetStream and a publisher are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "detector", "consumer", cfg.Consumer)
	cfg.Logger = log
	return &Detector{js: js, pub: pub, cfg: cfg, log: log, m: m, alerts: newAlerter(js.Conn(), cfg.Alerts, log, m)}, nil
}

// Applied returns the stream sequence of the last event applied and whose
// detections are published (0 before the first).
func (d *Detector) Applied() uint64 { return d.applied.Load() }

// live reports whether the detector checks by the clock between events.
func (d *Detector) live() bool { return d.cfg.CheckInterval > 0 }

// Run detects until ctx is cancelled, then saves its state and returns
// nil. It restores the state saved by the previous run and repositions its
// consumer just after the last event that state reflects, so that nothing
// is skipped and nothing applied twice; a detection derived again after a
// crash has the same id and is dropped as a duplicate. It waits, retrying,
// while NATS is unreachable. Run must not be called concurrently, and one
// detector runs per consumer name.
func (d *Detector) Run(ctx context.Context) error {
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.alerts.close(cctx)
	}()
	var (
		kv     jetstream.KeyValue
		stream jetstream.Stream
		cons   jetstream.Consumer
	)
	err := d.retry(ctx, "start", func(ctx context.Context) (err error) {
		if kv == nil {
			if kv, err = d.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: d.cfg.StateBucket, History: 1, Description: "airtally: detector state snapshots",
			}); err != nil {
				return fmt.Errorf("detector: state bucket %s: %w", d.cfg.StateBucket, err)
			}
		}
		if d.core == nil {
			st, err := d.load(ctx, kv)
			if err != nil {
				return err
			}
			d.core = newCore(d.cfg, st)
		}
		stream, cons, err = d.consumer(ctx)
		return err
	})
	if err != nil {
		return nilIfDone(ctx, err)
	}
	d.applied.Store(d.core.st.LastSeq)
	d.log.Info("detector: started", "stream", d.cfg.Streams.EventsStream, "after", d.core.st.LastSeq, "sources", len(d.core.st.Sources))
	defer d.log.Info("detector: stopped")

	var (
		last       jetstream.Msg // the last message applied and not yet acknowledged
		unsaved    int
		saved      = time.Now()
		loaderDue  time.Time
		delay      = minBackoff
		publishErr error
	)
	save := func(ctx context.Context) {
		if unsaved == 0 || publishErr != nil {
			return
		}
		if err := d.save(ctx, kv); err != nil {
			d.log.Warn("detector: state not saved; will retry", "err", err)
			return
		}
		if last != nil {
			if err := last.Ack(); err != nil {
				d.log.Warn("detector: ack", "err", err)
			}
		}
		last, unsaved, saved = nil, 0, time.Now()
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		save(sctx)
		if err := d.js.Conn().FlushWithContext(sctx); err != nil {
			d.log.Warn("detector: flush acks", "err", err)
		}
	}()
	for ctx.Err() == nil {
		wait := time.Second
		if d.live() {
			wait = d.cfg.CheckInterval
		}
		batch, err := cons.Fetch(fetchBatch, jetstream.FetchMaxWait(max(wait, 10*time.Millisecond)))
		if err != nil {
			d.log.Warn("detector: fetch", "err", err)
			if !sleep(ctx, delay) {
				break
			}
			delay = min(2*delay, maxBackoff)
			continue
		}
		delay = minBackoff
		n := 0
		for msg := range batch.Messages() {
			n++
			applied, err := d.handle(ctx, msg)
			if err != nil {
				publishErr = err
				break
			}
			if applied {
				last = msg
				unsaved++
			}
		}
		if publishErr != nil {
			return nilIfDone(ctx, publishErr)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) {
			d.log.Debug("detector: fetch ended", "err", err)
		}
		if n == 0 && batch.Error() == nil {
			d.caughtUp = true
		}
		if d.live() && d.caughtUp {
			d.core.advance(ms(d.serverNow().Add(-d.cfg.LiveMargin)))
			dets := d.core.take()
			if err := d.publish(ctx, dets); err != nil {
				publishErr = err
				return nilIfDone(ctx, err)
			}
			if len(dets) > 0 {
				unsaved++ // save what the checks found (and the alerts sent)
			}
		}
		if d.live() && d.cfg.LoaderConsumer != "-" && time.Now().After(loaderDue) {
			loaderDue = time.Now().Add(d.cfg.LoaderCheck)
			if err := d.checkLoader(ctx, stream); err != nil {
				publishErr = err
				return nilIfDone(ctx, err)
			}
		}
		if unsaved >= d.cfg.SnapshotEvents || (unsaved > 0 && time.Since(saved) >= d.cfg.SnapshotInterval) {
			save(ctx)
		}
	}
	return nil
}

func nilIfDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// retry runs op until it succeeds or ctx ends, backing off between tries.
func (d *Detector) retry(ctx context.Context, what string, op func(context.Context) error) error {
	delay := minBackoff
	for {
		err := op(ctx)
		if err == nil {
			return nil
		}
		d.log.Warn("detector: "+what+" failed; retrying", "err", err, "in", delay)
		if !sleep(ctx, delay) {
			return err
		}
		delay = min(2*delay, maxBackoff)
	}
}

// consumer (re)creates the durable consumer so that it delivers the events
// after the last one the restored state reflects, in stream order, with
// cumulative acks.
func (d *Detector) consumer(ctx context.Context) (jetstream.Stream, jetstream.Consumer, error) {
	stream, err := d.js.Stream(ctx, d.cfg.Streams.EventsStream)
	if err != nil {
		return nil, nil, fmt.Errorf("detector: stream %s: %w", d.cfg.Streams.EventsStream, err)
	}
	if err := stream.DeleteConsumer(ctx, d.cfg.Consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, nil, fmt.Errorf("detector: reset consumer %s: %w", d.cfg.Consumer, err)
	}
	cc := jetstream.ConsumerConfig{
		Durable:       d.cfg.Consumer,
		Description:   "airtally: detector (downtime, gaps, silent lines, delays)",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       d.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: max(4*d.cfg.SnapshotEvents, 4*fetchBatch),
		FilterSubject: d.cfg.Streams.EventSubjects(),
	}
	if last := d.core.st.LastSeq; last > 0 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, last+1
	}
	cons, err := stream.CreateConsumer(ctx, cc)
	if err != nil {
		return nil, nil, fmt.Errorf("detector: create consumer %s: %w", d.cfg.Consumer, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("detector: consumer %s info: %w", d.cfg.Consumer, err)
	}
	d.caughtUp = info.NumPending == 0
	return stream, cons, nil
}

// handle applies one message; it reports whether the message was new.
func (d *Detector) handle(ctx context.Context, msg jetstream.Msg) (bool, error) {
	meta, err := msg.Metadata()
	if err != nil {
		d.log.Warn("detector: message without metadata", "err", err)
		return false, nil
	}
	seq := meta.Sequence.Stream
	if seq <= d.core.st.LastSeq {
		return false, nil // a redelivery of an event already applied
	}
	recv := meta.Timestamp
	if d.cfg.ReceivedAt != nil {
		if t, err := d.cfg.ReceivedAt(msg); err == nil {
			recv = t
		} else {
			d.log.Warn("detector: received time", "stream_seq", seq, "err", err)
		}
	} else {
		d.noteClock(meta.Timestamp)
	}
	d.caughtUp = meta.NumPending == 0
	ev, err := event.Decode(msg.Data())
	if err == nil && ev.Subject(d.cfg.Streams.SubjectPrefix) != msg.Subject() {
		err = errors.New("subject does not match the event")
	}
	if err != nil {
		// The loader dead-letters it; time still passes.
		d.log.Debug("detector: event skipped", "stream_seq", seq, "reason", "invalid")
		d.core.advance(ms(recv))
	} else {
		d.core.apply(ev, ms(recv))
	}
	d.core.st.LastSeq = seq
	d.m.event()
	err = d.publish(ctx, d.core.take())
	if err == nil {
		d.applied.Store(seq)
	}
	return true, err
}

// noteClock records how far the local clock is from the server's stored
// time (delivery latency included).
func (d *Detector) noteClock(stored time.Time) {
	d.offsets = append(d.offsets, d.cfg.Now().Sub(stored))
	if len(d.offsets) > offsetSamples {
		d.offsets = d.offsets[1:]
	}
}

// serverNow estimates the server's clock: the local clock less the
// smallest recent (receipt − stored) difference.
func (d *Detector) serverNow() time.Time {
	now := d.cfg.Now()
	if len(d.offsets) == 0 {
		return now
	}
	off := d.offsets[0]
	for _, o := range d.offsets[1:] {
		off = min(off, o)
	}
	return now.Add(-off)
}

// publish publishes detections in order, then alerts. It fails only when
// ctx ends or the publisher is closed: the state must then not be saved
// past them.
func (d *Detector) publish(ctx context.Context, dets []detection) error {
	for _, det := range dets {
		ev := det.Event
		delay := minBackoff
		for {
			_, err := d.pub.Publish(ctx, ev)
			if err == nil {
				break
			}
			var ve *event.ValidationError
			if errors.As(err, &ve) {
				d.log.Error("detector: detection event refused (a bug)", "kind", ev.Kind, "event_id", ev.EventID, "err", err)
				break
			}
			if ctx.Err() != nil || errors.Is(err, publisher.ErrClosed) {
				return fmt.Errorf("detector: publish %s %s: %w", ev.Kind, ev.EventID, err)
			}
			d.log.Warn("detector: publish failed; retrying", "kind", ev.Kind, "event_id", ev.EventID, "err", err)
			if !sleep(ctx, delay) {
				return fmt.Errorf("detector: publish %s %s: %w", ev.Kind, ev.EventID, ctx.Err())
			}
			delay = min(2*delay, maxBackoff)
		}
		d.m.detection(string(ev.Kind))
		d.log.Info("detector: detection", "kind", ev.Kind, "event_id", ev.EventID, "source", ev.MonitoredKey(),
			"dnis", ev.DNIS, "window_start", ev.WindowStart, "window_end", ev.WindowEnd, "outcome", ev.Outcome,
			"seq_from", ev.SeqFrom, "seq_to", ev.SeqTo)
		d.alert(det)
	}
	return nil
}

// alert sends the alert of an incident that touches a live airing, and
// the resolution of an incident alerted. A detector catching up (a replay,
// a backlog) records incidents without alerting.
func (d *Detector) alert(det detection) {
	alerted := d.core.st.Alerted
	switch {
	case det.Opens:
		if !d.live() || !d.caughtUp || len(det.Airings) == 0 || d.serverNow().Sub(det.Event.WindowStart) > d.cfg.Alerts.MaxAge {
			return
		}
		if _, dup := alerted[det.Incident]; dup {
			return
		}
		alerted[det.Incident] = ms(d.cfg.Now())
		d.alerts.send(alertFor(det, AlertIncident))
	case det.Resolves:
		if _, ok := alerted[det.Incident]; !ok {
			return
		}
		delete(alerted, det.Incident)
		d.alerts.send(alertFor(det, AlertResolved))
	}
}

// checkLoader watches the loader's consumer: a loader more than
// LoaderTolerance behind makes data late, not lost. It publishes a
// data.delayed event (outcome loader) when the loader has caught up.
func (d *Detector) checkLoader(ctx context.Context, stream jetstream.Stream) error {
	cons, err := stream.Consumer(ctx, d.cfg.LoaderConsumer)
	if err != nil {
		if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			d.log.Debug("detector: loader consumer", "err", err)
		}
		return nil
	}
	info, err := cons.Info(ctx)
	if err != nil {
		d.log.Debug("detector: loader consumer info", "err", err)
		return nil
	}
	now := d.serverNow()
	pending := info.NumPending + uint64(info.NumAckPending)
	var behind time.Duration
	var oldest time.Time
	if pending > 0 {
		m, err := stream.GetMsg(ctx, info.AckFloor.Stream+1)
		if err != nil {
			return nil // deleted (a dead letter's original) or gone: look again later
		}
		oldest, behind = m.Time, now.Sub(m.Time)
	}
	inst := loaderInstance(d.cfg.LoaderConsumer)
	ep := d.core.st.Loader
	if behind > d.cfg.LoaderTolerance {
		if ep == nil {
			start := ms(oldest)
			ep = &loaderEpisode{Start: start, ID: detectionID(event.DataDelayed, start, "loader."+inst, itoa(start), event.OutcomeLoader).String()}
			d.core.st.Loader = ep
		}
		ep.Max, ep.Pending = max(ep.Max, behind.Milliseconds()), max(ep.Pending, pending)
		if !ep.Alerted {
			ep.Alerted = true
			ev := d.loaderEvent(ep, inst, now)
			d.alerts.send(alertFor(detection{Event: ev, Incident: ep.ID}, AlertIncident))
		}
		return nil
	}
	if ep == nil {
		return nil
	}
	d.core.st.Loader = nil
	ev := d.loaderEvent(ep, inst, now)
	if err := d.publish(ctx, []detection{{Event: ev, Incident: ep.ID}}); err != nil {
		return err
	}
	if ep.Alerted {
		d.alerts.send(alertFor(detection{Event: ev, Incident: ep.ID}, AlertResolved))
	}
	return nil
}

func (d *Detector) loaderEvent(ep *loaderEpisode, inst string, now time.Time) *event.Event {
	ev := d.core.newEvent(event.DataDelayed, ep.Start, "loader."+inst, itoa(ep.Start), event.OutcomeLoader)
	ev.MonitoredSystem, ev.MonitoredInstance = "loader", inst
	ev.WindowStart, ev.WindowEnd = at(ep.Start), at(max(ep.Start, ms(now)))
	ev.DelayMS, ev.EventCount, ev.Outcome = max(1, ep.Max), int64(max(1, ep.Pending)), event.OutcomeLoader
	return ev
}

// loaderInstance makes a consumer name a source instance name.
func loaderInstance(consumer string) string {
	b := []byte(strings.ToLower(consumer))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	if b[0] == '_' || b[0] == '-' {
		b[0] = 'x'
	}
	return string(b)
}

// load restores the saved state, or starts afresh.
func (d *Detector) load(ctx context.Context, kv jetstream.KeyValue) (*state, error) {
	entry, err := kv.Get(ctx, stateKeyPrefix+d.cfg.Consumer)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return newState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("detector: load state: %w", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(entry.Value()))
	if err != nil {
		return nil, fmt.Errorf("detector: load state: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("detector: load state: %w", err)
	}
	st := newState()
	if err := json.Unmarshal(raw, st); err != nil {
		return nil, fmt.Errorf("detector: load state: %w", err)
	}
	if st.Version != stateVersion {
		d.log.Warn("detector: saved state of another version; starting afresh from the stream's start", "version", st.Version)
		return newState(), nil
	}
	st.fill()
	return st, nil
}

// save stores the state; the events it reflects may then be acknowledged.
func (d *Detector) save(ctx context.Context, kv jetstream.KeyValue) error {
	st := d.core.st
	now := ms(d.cfg.Now())
	down := 0
	for _, s := range st.Sources {
		if s.Down != nil {
			down++
		}
	}
	d.m.sourcesDown(down)
	for id, t := range st.Alerted {
		if t < now-alertedMemory {
			delete(st.Alerted, id)
		}
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("detector: encode state: %w", err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(raw); err != nil {
		return fmt.Errorf("detector: compress state: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("detector: compress state: %w", err)
	}
	if buf.Len() > maxStateBytes {
		return fmt.Errorf("detector: state of %d bytes is over the %d a snapshot may hold", buf.Len(), maxStateBytes)
	}
	if _, err := kv.Put(ctx, stateKeyPrefix+d.cfg.Consumer, buf.Bytes()); err != nil {
		return fmt.Errorf("detector: save state: %w", err)
	}
	d.m.snapshot()
	return nil
}
