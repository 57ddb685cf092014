package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/streams"
)

// fill publishes Events encoded events of the mix asynchronously, at most
// Window awaiting their ack, and waits for every ack: the stream a replay
// or a raw fetch reads. The throughput is the publishing's, the encoding
// before it left out.
func (st *stage) fill(ctx context.Context, p *phase, instance string) (Throughput, error) {
	cfg := streams.Config{}.WithDefaults()
	evs := newEventMix(instance, time.Now()).completed(st.cfg.Events, st.aniKey)
	msgs := make([]*nats.Msg, len(evs))
	for i, e := range evs {
		data, err := e.Encode()
		if err != nil {
			return Throughput{}, fmt.Errorf("bench: encode event %d: %w", i, err)
		}
		msgs[i] = &nats.Msg{Subject: e.Subject(cfg.SubjectPrefix), Data: data, Header: nats.Header{}}
		msgs[i].Header.Set(jetstream.MsgIDHeader, e.EventID.String())
	}
	evs = nil

	var acked, failed atomic.Int64
	var firstErr atomic.Value
	js, err := jetstream.New(p.nc,
		jetstream.WithPublishAsyncMaxPending(st.cfg.Window),
		jetstream.WithPublishAsyncTimeout(ackTimeout),
		jetstream.WithPublishAsyncAckHandler(func(jetstream.JetStream, *nats.Msg, *jetstream.PubAck) { acked.Add(1) }),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err)
		}))
	if err != nil {
		return Throughput{}, fmt.Errorf("bench: jetstream: %w", err)
	}
	tm := st.startTimer()
	for i, m := range msgs {
		if _, err := js.PublishMsgAsync(m, jetstream.WithExpectStream(cfg.EventsStream), jetstream.WithStallWait(ackTimeout)); err != nil {
			return Throughput{}, fmt.Errorf("bench: publish event %d: %w", i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return Throughput{}, fmt.Errorf("bench: waiting for acks (%d of %d): %w", acked.Load(), len(msgs), ctx.Err())
	}
	tp, err := tm.stop(len(msgs))
	if err != nil {
		return Throughput{}, err
	}
	if n := failed.Load(); n > 0 {
		return Throughput{}, fmt.Errorf("bench: %d of %d publishes failed, first: %v", n, len(msgs), firstErr.Load())
	}
	if n := acked.Load(); n != int64(len(msgs)) {
		return Throughput{}, fmt.Errorf("bench: %d acks for %d publishes", n, len(msgs))
	}
	return tp, nil
}

// rawFetch fills the stream with Events events, then reads them all with
// an ordered consumer (the consumer replay uses, with its pull size) and
// does nothing with them: JetStream's read rate alone.
func (st *stage) rawFetch(ctx context.Context, p *phase) (Throughput, error) {
	if _, err := st.fill(ctx, p, "fetch"); err != nil {
		return Throughput{}, err
	}
	cfg := streams.Config{}.WithDefaults()
	stream, err := p.js.Stream(ctx, cfg.EventsStream)
	if err != nil {
		return Throughput{}, fmt.Errorf("bench: stream: %w", err)
	}
	tm := st.startTimer()
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{cfg.EventSubjects()}})
	if err != nil {
		return Throughput{}, fmt.Errorf("bench: ordered consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(loader.DefaultReplayPullMessages))
	if err != nil {
		return Throughput{}, fmt.Errorf("bench: read stream: %w", err)
	}
	defer it.Stop()
	bytes := 0
	for i := range st.cfg.Events {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return Throughput{}, fmt.Errorf("bench: read message %d: %w", i+1, err)
		}
		bytes += len(msg.Data())
	}
	tp, err := tm.stop(st.cfg.Events)
	if err != nil {
		return Throughput{}, err
	}
	if bytes == 0 {
		return Throughput{}, fmt.Errorf("bench: read %d empty messages", st.cfg.Events)
	}
	return tp, nil
}

// replay fills the stream with Events events, then replays them into the
// phase's fresh database with loader.Replay (its defaults), and checks
// that every event is there once. It reads ClickHouse's merge counters
// before and after, and the parts left.
func (st *stage) replay(ctx context.Context, p *phase) (Replay, error) {
	if _, err := st.fill(ctx, p, "replay"); err != nil {
		return Replay{}, err
	}
	before, err := st.mergeCounters(ctx)
	if err != nil {
		return Replay{}, err
	}
	tm := st.startTimer()
	stats, err := loader.Replay(ctx, p.js, st.conn, loader.ReplayConfig{Database: p.db, BatchSize: st.cfg.ReplayBatch, Logger: st.log})
	if err != nil {
		return Replay{}, fmt.Errorf("bench: replay: %w", err)
	}
	tp, err := tm.stop(st.cfg.Events)
	if err != nil {
		return Replay{}, err
	}
	after, err := st.mergeCounters(ctx)
	if err != nil {
		return Replay{}, err
	}
	loaded, err := st.count(ctx, p.db, true)
	if err != nil {
		return Replay{}, err
	}
	if want := uint64(st.cfg.Events); loaded != want || stats.Loaded != want {
		return Replay{}, fmt.Errorf("bench: replay loaded %d, %d events in %s.events (FINAL), want %d", stats.Loaded, loaded, p.db, want)
	}
	active, err := st.activeParts(ctx, p.db)
	if err != nil {
		return Replay{}, err
	}
	return Replay{
		Throughput: tp, Loaded: loaded,
		Batches: stats.Batches, PartsCreated: stats.Parts, ActiveParts: active,
		InsertSeconds: stats.InsertSeconds, Merges: after.merges - before.merges, MergedRows: after.rows - before.rows,
	}, nil
}

// merges is ClickHouse's server-wide merge counters (system.events): the
// run's server does nothing else.
type merges struct{ merges, rows uint64 }

func (st *stage) mergeCounters(ctx context.Context) (merges, error) {
	var m merges
	rows, err := st.conn.Query(ctx, "SELECT event, value FROM system.events WHERE event IN ('Merge', 'MergedRows')")
	if err != nil {
		return m, fmt.Errorf("bench: read system.events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var v uint64
		if err := rows.Scan(&name, &v); err != nil {
			return m, fmt.Errorf("bench: read system.events: %w", err)
		}
		switch name {
		case "Merge":
			m.merges = v
		case "MergedRows":
			m.rows = v
		}
	}
	return m, rows.Err()
}

// activeParts counts the active parts of db.events.
func (st *stage) activeParts(ctx context.Context, db string) (int, error) {
	var n uint64
	q := "SELECT count() FROM system.parts WHERE database = " + chsql.String(db) + " AND table = 'events' AND active"
	if err := st.conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("bench: parts of %s.events: %w", db, err)
	}
	return int(n), nil
}
