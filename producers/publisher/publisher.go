package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/spool"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Status says where an accepted event is.
type Status string

// Statuses of a Receipt.
const (
	// StatusAcked: JetStream stored the event.
	StatusAcked Status = "acked"
	// StatusSpooled: the event is in the local spool (fsync'd) and will be
	// forwarded in order when JetStream answers.
	StatusSpooled Status = "spooled"
	// StatusDuplicate: JetStream already had this event id (a retry).
	StatusDuplicate Status = "duplicate"
)

// Receipt tells what became of one accepted event.
type Receipt struct {
	EventID uuid.UUID `json:"event_id"`
	// Seq is the event's source sequence number (source.seq).
	Seq    uint64 `json:"seq"`
	Status Status `json:"status"`
}

// Result is the outcome of one event of a batch: a Receipt, or Err.
type Result struct {
	Receipt Receipt
	Err     error
}

// Errors.
var (
	// ErrUnavailable is wrapped when an event could be neither published
	// nor spooled before its context ended (or the spool failed).
	ErrUnavailable = errors.New("publisher: neither JetStream nor the spool can take the event")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("publisher: closed")
)

var errNilEvent = errors.New("publisher: nil event")

// Tuning of the forwarder and the async publisher.
const (
	forwardBatch    = 256
	minBackoff      = 50 * time.Millisecond
	maxBackoff      = 2 * time.Second
	statusPoll      = 100 * time.Millisecond
	idlePoll        = time.Second
	failureLogEvery = time.Minute
	asyncMaxPending = 4096
)

// Publisher publishes events to JetStream, spooling them locally while it
// cannot. It is safe for concurrent use.
type Publisher struct {
	cfg   Config
	nc    *nats.Conn
	js    jetstream.JetStream
	spool *spool.Spool
	// denied holds spooled events that the server refused to take
	// (permissions), set aside so that they neither block the spool nor
	// are retried in a loop; see RetryDenied.
	denied *spool.Spool
	// retryDenied is how many events of denied the forwarder still tries
	// again (set at start and by RetryDenied).
	retryDenied atomic.Int64
	watch       *watcher
	seqs        *sequences
	// recent remembers the numbers given to events that came without one,
	// so that their resends get the same number (see recentSeqs).
	recent *recentSeqs
	locks  sourceLocks
	log    *slog.Logger
	m      *metrics

	life    context.Context // ends when Close gives up waiting
	cancel  context.CancelFunc
	stop    chan struct{} // closed to stop the forwarder
	wake    chan struct{} // wakes the idle forwarder (RetryDenied)
	fwdDone chan struct{}

	closeMu  sync.RWMutex
	closed   bool
	inflight sync.WaitGroup

	degraded atomic.Bool // JetStream failed and the spool is in use
}

// New opens the spool and the sequence state in cfg.SpoolDir (recovering
// them after a crash; damage is logged and in Recovery), and starts the
// forwarder. It does not need JetStream to be up. nc is not owned: closing
// the Publisher leaves it open. Use a connection with unlimited reconnects
// (nats.MaxReconnects(-1)) and, for strict order across disconnects,
// nats.ReconnectBufSize(-1).
func New(ctx context.Context, nc *nats.Conn, cfg Config) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if nc == nil {
		return nil, errors.New("publisher: a NATS connection is required")
	}
	cfg = cfg.WithDefaults()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout), jetstream.WithPublishAsyncMaxPending(asyncMaxPending))
	if err != nil {
		return nil, fmt.Errorf("publisher: jetstream: %w", err)
	}
	sp, err := spool.Open(ctx, filepath.Join(cfg.SpoolDir, "events"), spool.Options{MaxBytes: cfg.SpoolMaxBytes, MaxFrameBytes: maxRecordBytes, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("publisher: open spool: %w", err)
	}
	denied, err := spool.Open(ctx, filepath.Join(cfg.SpoolDir, "denied"), spool.Options{MaxBytes: cfg.SpoolMaxBytes, MaxFrameBytes: maxRecordBytes, Logger: cfg.Logger})
	if err != nil {
		_ = sp.Close()
		return nil, fmt.Errorf("publisher: open spool of refused events: %w", err)
	}
	p := &Publisher{cfg: cfg, nc: nc, js: js, spool: sp, denied: denied, log: cfg.Logger, stop: make(chan struct{}), wake: make(chan struct{}, 1), fwdDone: make(chan struct{})}
	if err := p.restoreSequences(ctx); err != nil {
		_ = sp.Close()
		_ = denied.Close()
		return nil, err
	}
	if p.m, err = newMetrics(cfg.Registerer, sp.Depth, denied.Depth); err != nil {
		_ = p.seqs.close()
		_ = sp.Close()
		_ = denied.Close()
		return nil, err
	}
	p.life, p.cancel = context.WithCancel(context.Background())
	if n, b := sp.Depth(); n > 0 {
		p.degraded.Store(true)
		p.log.Info("publisher: spool holds events from an earlier run; forwarding them first", "events", n, "bytes", b)
	}
	if n, _ := denied.Depth(); n > 0 {
		p.retryDenied.Store(n)
		p.log.Error("publisher: events refused by NATS (permissions) in an earlier run are set aside; trying each once more after the spool drained",
			"events", n, "dir", denied.Dir())
	}
	p.watch = watch(nc, p.log)
	go p.forward()
	return p, nil
}

// restoreSequences loads the sequence journal and raises each source's
// number to the highest one in the spool, then compacts the journal.
func (p *Publisher) restoreSequences(ctx context.Context) error {
	seqs, err := openSequences(ctx, filepath.Join(p.cfg.SpoolDir, "sequences"), p.log)
	if err != nil {
		return err
	}
	inSpool := map[string]uint64{}
	err = p.spool.Scan(ctx, func(f spool.Frame) error {
		if r, err := decodeRecord(f.Payload); err == nil {
			k := sourceKey(r.subject)
			inSpool[k] = max(inSpool[k], r.seq)
		}
		return nil
	})
	if err == nil {
		seqs.merge(inSpool)
		err = seqs.snapshot(ctx)
	}
	if err != nil {
		_ = seqs.close()
		return fmt.Errorf("publisher: restore sequences: %w", err)
	}
	p.seqs = seqs
	p.recent = newRecentSeqs()
	return nil
}

// Recovery reports what opening the spool found and repaired.
func (p *Publisher) Recovery() spool.Recovery { return p.spool.Recovery() }

// SpoolDepth returns the events waiting in the spool and their bytes.
func (p *Publisher) SpoolDepth() (events int64, bytes int64) { return p.spool.Depth() }

// Sources returns how many sources the publisher keeps sequence numbers
// for (persisted in its spool folder, for ever).
func (p *Publisher) Sources() int { return p.seqs.count() }

// HasSource reports whether the publisher keeps a sequence number for src
// (an event of src was numbered or stored before).
func (p *Publisher) HasSource(src event.Source) bool { return p.seqs.peek(src.Key()) > 0 }

// DeniedDepth returns the events set aside because NATS refused their
// subject while they were forwarded from the spool, and their bytes.
func (p *Publisher) DeniedDepth() (events int64, bytes int64) { return p.denied.Depth() }

// RetryDenied makes the forwarder try every event set aside as refused
// (DeniedDepth) once more, in order, once the spool is drained: call it
// after the permissions or credentials were fixed. Events refused again
// stay set aside. A new Publisher on the same SpoolDir does the same at
// start.
func (p *Publisher) RetryDenied() {
	n, _ := p.denied.Depth()
	p.retryDenied.Store(n)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Ready reports whether an event would be accepted now without waiting:
// JetStream is reachable and nothing is spooled, or the spool has room.
func (p *Publisher) Ready() bool {
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		return false
	}
	return (p.spool.Empty() && p.connected()) || p.spool.HasRoom(maxRecordBytes)
}

func (p *Publisher) connected() bool { return p.nc.Status() == nats.CONNECTED }

// enter registers an in-flight call; false once closed.
func (p *Publisher) enter() bool {
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		return false
	}
	p.inflight.Add(1)
	return true
}

// bind returns ctx that also ends when Close gives up waiting.
func (p *Publisher) bind(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(p.life, func() { cancel(ErrClosed) })
	return ctx, func() { stop(); cancel(nil) }
}

// Publish completes ev in place (id, schema version, sealed ANI, sequence
// number), validates it and publishes it, returning after JetStream acked
// it (StatusAcked or StatusDuplicate) or it is fsync'd in the spool
// (StatusSpooled). An invalid event returns an error wrapping
// *event.ValidationError and consumes no sequence number. When the spool
// is full Publish waits; if ctx ends first the error wraps ErrUnavailable
// (and spool.ErrFull), and ev keeps its id and number for a retry. When
// the NATS server refuses ev's subject to this connection's user, the
// error wraps *PermissionError (ErrPermissionDenied): ev was neither
// stored nor spooled, keeps its id and number, and is refused again until
// the permissions or the source are fixed (see the package doc).
func (p *Publisher) Publish(ctx context.Context, ev *event.Event) (Receipt, error) {
	if ev == nil {
		return Receipt{}, errNilEvent
	}
	if !p.enter() {
		return Receipt{}, ErrClosed
	}
	defer p.inflight.Done()
	ctx, done := p.bind(ctx)
	defer done()

	key, err := p.prepare(ev)
	if err != nil {
		p.m.event(statusRejected)
		return Receipt{}, err
	}
	if err := ctx.Err(); err != nil {
		return Receipt{}, fmt.Errorf("publisher: event %s: %w", ev.EventID, context.Cause(ctx))
	}
	unlock, err := p.locks.lock(ctx, []string{key})
	if err != nil {
		p.m.event(statusUnavailable)
		return Receipt{EventID: ev.EventID}, fmt.Errorf("publisher: event %s: %w: waiting for the source: %w", ev.EventID, ErrUnavailable, err)
	}
	var wasted []record
	defer func() { p.fill(ctx, wasted) }() // after unlock: fill publishes
	defer unlock()

	last := p.seqs.peek(key)
	orig := ev.Source.Seq
	rec, err := p.encode(ev, last)
	if err != nil {
		p.m.event(statusRejected)
		return Receipt{}, err
	}
	if rec.seq > last {
		if err := p.seqs.commit(ctx, map[string]uint64{key: rec.seq}); err != nil {
			ev.Source.Seq = orig
			p.m.event(statusUnavailable)
			return Receipt{EventID: ev.EventID}, fmt.Errorf("publisher: event %s: %w: %w", ev.EventID, ErrUnavailable, err)
		}
	}
	if orig == 0 {
		p.recent.put(rec.id, rec.seq)
	}
	receipt := Receipt{EventID: rec.id, Seq: rec.seq}
	if p.spool.Empty() && p.connected() {
		ack, err := p.publishSync(ctx, rec)
		if err == nil {
			receipt.Status = ackStatus(ack)
			p.m.event(receipt.Status)
			if ack.Duplicate && rec.fresh {
				wasted = append(wasted, rec)
			}
			return receipt, nil
		}
		p.m.errors.WithLabelValues(stagePublish).Inc()
		var perr *PermissionError
		if errors.As(err, &perr) {
			p.m.event(statusDenied)
			return receipt, fmt.Errorf("publisher: event %s: %w", rec.id, perr)
		}
		p.noteFailure(err, 1)
	} else if perr := p.watch.refused(rec.subject); perr != nil {
		p.m.event(statusDenied)
		return receipt, fmt.Errorf("publisher: event %s: %w", rec.id, perr)
	}
	if err := p.spool.Append(ctx, rec.encode()); err != nil {
		p.m.event(statusUnavailable)
		return receipt, fmt.Errorf("publisher: event %s: %w: %w", rec.id, ErrUnavailable, err)
	}
	receipt.Status = StatusSpooled
	p.m.event(StatusSpooled)
	return receipt, nil
}

// PublishBatch publishes evs with asynchronous acks and returns one Result
// per event, in order. Events are completed in place as by Publish; an
// invalid event gets its error and does not stop the others. Events whose
// publish fails are spooled in their order. Per-source order: once a
// source's event could not be sent, its later events in the batch are
// spooled behind it. (An event whose ack fails while a later event of the
// same source, already sent, is acked leaves the stream holding the later
// one first; consumers order by source.seq.) An event whose subject the
// NATS server refuses gets an error wrapping *PermissionError and is not
// spooled, as with Publish.
func (p *Publisher) PublishBatch(ctx context.Context, evs []*event.Event) []Result {
	res := make([]Result, len(evs))
	if !p.enter() {
		for i := range res {
			res[i].Err = ErrClosed
		}
		return res
	}
	defer p.inflight.Done()
	ctx, done := p.bind(ctx)
	defer done()

	keys := make([]string, len(evs))
	var lockKeys []string
	for i, ev := range evs {
		if ev == nil {
			res[i].Err = errNilEvent
			p.m.event(statusRejected)
			continue
		}
		key, err := p.prepare(ev)
		if err != nil {
			res[i].Err = err
			p.m.event(statusRejected)
			continue
		}
		keys[i] = key
		lockKeys = append(lockKeys, key)
	}
	if len(lockKeys) == 0 {
		return res
	}
	if err := ctx.Err(); err != nil {
		for i, ev := range evs {
			if keys[i] != "" {
				res[i].Err = fmt.Errorf("publisher: event %s: %w", ev.EventID, context.Cause(ctx))
			}
		}
		return res
	}
	unlock, err := p.locks.lock(ctx, lockKeys)
	if err != nil {
		for i, ev := range evs {
			if keys[i] != "" {
				res[i] = Result{Receipt: Receipt{EventID: ev.EventID}, Err: fmt.Errorf("publisher: event %s: %w: waiting for the source: %w", ev.EventID, ErrUnavailable, err)}
				p.m.event(statusUnavailable)
			}
		}
		return res
	}
	var wasted []record
	defer func() { p.fill(ctx, wasted) }() // after unlock: fill publishes
	defer unlock()

	last := map[string]uint64{}
	reserve := map[string]uint64{}
	batchSeqs := map[uuid.UUID]uint64{}
	var items []item
	for i, ev := range evs {
		key := keys[i]
		if key == "" {
			continue
		}
		if _, ok := last[key]; !ok {
			last[key] = p.seqs.peek(key)
		}
		orig := ev.Source.Seq
		if seq, ok := batchSeqs[ev.EventID]; ok && orig == 0 {
			// The same event twice in one batch: one number for both.
			ev.Source.Seq = seq
		}
		rec, err := p.encode(ev, last[key])
		if err != nil {
			res[i].Err = err
			p.m.event(statusRejected)
			continue
		}
		if rec.seq > last[key] {
			last[key], reserve[key] = rec.seq, rec.seq
		}
		if orig == 0 {
			batchSeqs[rec.id] = rec.seq
		}
		items = append(items, item{i: i, key: key, rec: rec, orig: orig})
		res[i].Receipt = Receipt{EventID: rec.id, Seq: rec.seq}
	}
	if len(reserve) > 0 {
		if err := p.seqs.commit(ctx, reserve); err != nil {
			for _, it := range items {
				evs[it.i].Source.Seq = it.orig
				res[it.i].Receipt.Seq = it.orig
				res[it.i].Err = fmt.Errorf("publisher: event %s: %w: %w", it.rec.id, ErrUnavailable, err)
				p.m.event(statusUnavailable)
			}
			return res
		}
	}
	for _, it := range items {
		if it.orig == 0 {
			p.recent.put(it.rec.id, it.rec.seq)
		}
	}

	toSpool := items
	if p.spool.Empty() && p.connected() {
		toSpool, wasted = p.publishAsync(ctx, items, res)
	} else {
		toSpool = toSpool[:0:0]
		for _, it := range items {
			if perr := p.watch.refused(it.rec.subject); perr != nil {
				res[it.i].Err = fmt.Errorf("publisher: event %s: %w", it.rec.id, perr)
				p.m.event(statusDenied)
				continue
			}
			toSpool = append(toSpool, it)
		}
	}
	if len(toSpool) == 0 {
		return res
	}
	recs := make([][]byte, len(toSpool))
	for j, it := range toSpool {
		recs[j] = it.rec.encode()
	}
	n, err := p.spool.AppendBatch(ctx, recs)
	for j, it := range toSpool {
		if j < n {
			res[it.i].Receipt.Status = StatusSpooled
			p.m.event(StatusSpooled)
		} else {
			res[it.i].Err = fmt.Errorf("publisher: event %s: %w: %w", it.rec.id, ErrUnavailable, err)
			p.m.event(statusUnavailable)
		}
	}
	return res
}

// item is a valid event of a batch.
type item struct {
	i    int // index in the batch
	key  string
	rec  record
	orig uint64 // source.seq as the caller gave it
}

// publishAsync sends items without waiting, then collects the acks. It
// fills the receipts of the acked items and the errors of the items whose
// subject the server refused (permissions; not to be spooled), and returns
// the others, in order, and the records acked as duplicates although
// freshly numbered (to be filled). A lost connection ends the wait for every ack at
// once (those items are returned, to be spooled); ctx ending does not:
// the acks are awaited up to the publish timeout so that no event is
// spooled needlessly.
func (p *Publisher) publishAsync(ctx context.Context, items []item, res []Result) (failed []item, wasted []record) {
	futures := make([]jetstream.PubAckFuture, len(items))
	waits := make([]context.Context, len(items))
	unsent := map[string]bool{}
	var firstErr error
	for j, it := range items {
		if unsent[it.key] {
			continue
		}
		wctx, release := p.watch.await(context.WithoutCancel(ctx), p.nc, it.rec.subject)
		defer release()
		f, err := p.js.PublishMsgAsync(p.msg(it.rec), jetstream.WithMsgID(it.rec.id.String()),
			jetstream.WithExpectStream(p.cfg.Streams.EventsStream), jetstream.WithStallWait(p.cfg.PublishTimeout))
		if err != nil {
			unsent[it.key] = true
			firstErr = cmp(firstErr, err)
			continue
		}
		futures[j], waits[j] = f, wctx
	}
	// The async ack timeout resolves every future; this is a safety net.
	expired := make(chan struct{})
	t := time.AfterFunc(p.cfg.PublishTimeout+time.Second, func() { close(expired) })
	defer t.Stop()
	denied := 0
	for j, it := range items {
		f := futures[j]
		if f == nil {
			failed = append(failed, it)
			continue
		}
		ack, err := awaitAck(f, waits[j], expired)
		var perr *PermissionError
		switch {
		case errors.As(err, &perr):
			res[it.i].Err = fmt.Errorf("publisher: event %s: %w", it.rec.id, perr)
			p.m.event(statusDenied)
			denied++
		case err != nil:
			firstErr = cmp(firstErr, err)
			failed = append(failed, it)
		default:
			p.watch.allowed(it.rec.subject)
			res[it.i].Receipt.Status = ackStatus(ack)
			p.m.event(res[it.i].Receipt.Status)
			if ack.Duplicate && it.rec.fresh {
				wasted = append(wasted, it.rec)
			}
		}
	}
	if n := len(failed) + denied; n > 0 {
		p.m.errors.WithLabelValues(stagePublish).Add(float64(n))
	}
	if len(failed) > 0 {
		p.noteFailure(firstErr, len(failed))
	}
	return failed, wasted
}

func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// awaitAck waits for f's ack, or until wait ends (the server refused the
// subject, or the connection was lost: the error is the cause) or expired
// is closed.
func awaitAck(f jetstream.PubAckFuture, wait context.Context, expired <-chan struct{}) (*jetstream.PubAck, error) {
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	default:
	}
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	case <-wait.Done():
		return nil, context.Cause(wait)
	case <-expired:
		return nil, jetstream.ErrAsyncPublishTimeout
	}
}

// prepare completes ev (id, schema version, sealed ANI) and validates it
// with a placeholder sequence number, so that an invalid event is refused
// before any number or lock is taken. It returns the source key.
func (p *Publisher) prepare(ev *event.Event) (string, error) {
	if ev.EventID == uuid.Nil {
		id, err := uuid.NewV7()
		if err != nil {
			return "", fmt.Errorf("publisher: new event id: %w", err)
		}
		ev.EventID = id
	}
	if ev.SchemaVersion == 0 {
		ev.SchemaVersion = event.SchemaVersion
	}
	ev.SealANI(p.cfg.ANIKey)
	orig := ev.Source.Seq
	if orig == 0 {
		ev.Source.Seq = 1
	}
	err := ev.Validate()
	ev.Source.Seq = orig
	if err != nil {
		return "", fmt.Errorf("publisher: event %s: %w", ev.EventID, err)
	}
	return ev.Source.Key(), nil
}

// encode gives ev its sequence number (the source's next one after last,
// unless the caller set one or the event is a resend of one numbered
// recently) and encodes it. On error ev.Source.Seq is
// restored, so no number is consumed.
func (p *Publisher) encode(ev *event.Event, last uint64) (record, error) {
	orig := ev.Source.Seq
	fresh := false
	if orig == 0 {
		if seq, ok := p.recent.get(ev.EventID); ok {
			ev.Source.Seq = seq // a resend: the number it had
		} else {
			// The detector's numbering is watched by nobody, and a
			// detector re-deriving its detections resends them by design:
			// its wasted numbers are not filled.
			ev.Source.Seq, fresh = last+1, ev.Source.System != event.DetectorSystem
		}
	}
	data, err := ev.Encode()
	if err != nil {
		ev.Source.Seq = orig
		return record{}, fmt.Errorf("publisher: event %s: %w", ev.EventID, err)
	}
	return record{id: ev.EventID, seq: ev.Source.Seq, subject: ev.Subject(p.cfg.Streams.SubjectPrefix), data: data, fresh: fresh}, nil
}

func (p *Publisher) msg(r record) *nats.Msg {
	return &nats.Msg{Subject: r.subject, Data: r.data, Header: nats.Header{}}
}

// publishSync publishes r and waits for its ack, at most PublishTimeout.
// The wait ends early when the server refuses r's subject (the error is a
// *PermissionError) or the connection is lost (errDisconnected): an ack
// can then no longer come, and the caller spools the event at once.
func (p *Publisher) publishSync(ctx context.Context, r record) (*jetstream.PubAck, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.PublishTimeout)
	defer cancel()
	ctx, release := p.watch.await(ctx, p.nc, r.subject)
	defer release()
	ack, err := p.js.PublishMsg(ctx, p.msg(r), jetstream.WithMsgID(r.id.String()), jetstream.WithExpectStream(p.cfg.Streams.EventsStream))
	if err != nil {
		if cause := waitCause(ctx); cause != nil {
			return nil, cause
		}
		return nil, err
	}
	p.watch.allowed(r.subject)
	return ack, nil
}

func ackStatus(ack *jetstream.PubAck) Status {
	if ack.Duplicate {
		return StatusDuplicate
	}
	return StatusAcked
}

// noteFailure logs the switch to spooling once, not for every event.
func (p *Publisher) noteFailure(err error, events int) {
	if p.degraded.CompareAndSwap(false, true) {
		p.log.Warn("publisher: JetStream did not take events; spooling until it does", "events", events, "err", err)
	}
}

// Close stops accepting events, waits for the calls in flight (each ends
// acked, spooled or with an error), stops the forwarder and closes the
// spool; what is spooled is forwarded by the next Publisher on the same
// SpoolDir. If ctx ends first, calls still waiting (for spool room) are
// cancelled: they return ErrUnavailable and were not accepted.
func (p *Publisher) Close(ctx context.Context) error {
	p.closeMu.Lock()
	if p.closed {
		p.closeMu.Unlock()
		return nil
	}
	p.closed = true
	p.closeMu.Unlock()

	var errs []error
	idle := make(chan struct{})
	go func() { p.inflight.Wait(); close(idle) }()
	select {
	case <-idle:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("publisher: close: cancelled calls in flight: %w", ctx.Err()))
		p.cancel()
		<-idle
	}
	close(p.stop)
	select {
	case <-p.fwdDone:
	case <-ctx.Done():
		p.cancel()
		<-p.fwdDone
	}
	p.cancel()
	p.watch.stop(p.nc)
	p.m.unregister()
	if err := p.seqs.close(); err != nil {
		errs = append(errs, fmt.Errorf("publisher: close sequence journal: %w", err))
	}
	if err := p.spool.Close(); err != nil {
		errs = append(errs, fmt.Errorf("publisher: close spool: %w", err))
	}
	if err := p.denied.Close(); err != nil {
		errs = append(errs, fmt.Errorf("publisher: close spool of refused events: %w", err))
	}
	return errors.Join(errs...)
}

// sourceLocks serialise the events of one source from numbering to ack or
// spool, so that a source's events reach the stream in sequence order.
type sourceLocks struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

// lock takes the locks of keys (in sorted order, so batches cannot
// deadlock) or fails when ctx ends; it returns the release function.
func (l *sourceLocks) lock(ctx context.Context, keys []string) (func(), error) {
	keys = append([]string(nil), keys...)
	sort.Strings(keys)
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]chan struct{}{}
	}
	var chans []chan struct{}
	for i, k := range keys {
		if i > 0 && k == keys[i-1] {
			continue
		}
		ch, ok := l.m[k]
		if !ok {
			ch = make(chan struct{}, 1)
			l.m[k] = ch
		}
		chans = append(chans, ch)
	}
	l.mu.Unlock()
	held := 0
	release := func() {
		for i := held - 1; i >= 0; i-- {
			<-chans[i]
		}
	}
	for _, ch := range chans {
		select {
		case ch <- struct{}{}:
			held++
		case <-ctx.Done():
			release()
			return nil, context.Cause(ctx)
		}
	}
	return release, nil
}
