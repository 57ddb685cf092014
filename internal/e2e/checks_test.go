package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
)

// table is db.name, quoted.
func (s *stack) table(name string) string {
	return quoted(s.t, s.db) + "." + quoted(s.t, name)
}

func quoted(t testing.TB, name string) string {
	q, err := chsql.Ident(name)
	if err != nil {
		t.Fatalf("identifier: %v", err)
	}
	return q
}

// count is the number of rows of events, read through FINAL.
func (s *stack) count() (uint64, error) {
	return s.countQuery("SELECT count() FROM " + s.table("events") + " FINAL")
}

// rawCount is the number of rows of events as stored, copies included.
func (s *stack) rawCount() (uint64, error) {
	return s.countQuery("SELECT count() FROM " + s.table("events"))
}

func (s *stack) countQuery(q string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n uint64
	err := s.ch.QueryRow(ctx, q).Scan(&n)
	return n, err
}

// consumerInfo is the loaders' durable consumer, or an error.
func (s *stack) consumerInfo() (*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := s.js.Consumer(ctx, streams.DefaultEventsStream, loader.DefaultConsumer)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// waitRows waits until events holds want rows (FINAL) and the durable
// consumer has nothing left to deliver or to be acknowledged, then checks
// that the count is still want: with everything acknowledged, no copy can
// come any more.
func (s *stack) waitRows(want uint64) {
	s.t.Helper()
	var (
		got  uint64
		err  error
		info *jetstream.ConsumerInfo
	)
	testenv.Eventually(s.t, wait, func() bool {
		got, err = s.count()
		if err != nil || got != want {
			return false
		}
		info, err = s.consumerInfo()
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, "events holds %v rows, want %d; last error %v; consumer %v", lazy(func() string { return fmt.Sprint(got) }), want,
		lazy(func() string { return fmt.Sprint(err) }),
		lazy(func() string {
			if info == nil {
				return "?"
			}
			return fmt.Sprintf("pending %d, ack pending %d", info.NumPending, info.NumAckPending)
		}))
	if got, err := s.count(); err != nil || got != want {
		s.t.Fatalf("after the consumer settled: events holds %d rows (err %v), want %d", got, err, want)
	}
}

// checkIDs requires the event ids in events (FINAL) to be exactly want,
// each once.
func (s *stack) checkIDs(want []uuid.UUID) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := s.ch.Query(ctx, "SELECT event_id FROM "+s.table("events")+" FINAL")
	if err != nil {
		s.t.Fatalf("read event ids: %v", err)
	}
	defer rows.Close()
	got := map[uuid.UUID]int{}
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			s.t.Fatalf("scan event id: %v", err)
		}
		got[id]++
	}
	if err := rows.Err(); err != nil {
		s.t.Fatalf("read event ids: %v", err)
	}
	wantSet := map[uuid.UUID]bool{}
	for _, id := range want {
		if wantSet[id] {
			s.t.Fatalf("test bug: event id %s expected twice", id)
		}
		wantSet[id] = true
	}
	var missing, extra, twice []string
	for id := range wantSet {
		if got[id] == 0 {
			missing = append(missing, id.String())
		}
	}
	for id, n := range got {
		if !wantSet[id] {
			extra = append(extra, id.String())
		}
		if n > 1 {
			twice = append(twice, id.String())
		}
	}
	if len(missing)+len(extra)+len(twice) > 0 {
		s.t.Fatalf("event ids in ClickHouse differ from those sent (%d sent, %d distinct stored): missing %d %v, unexpected %d %v, more than once %d %v",
			len(wantSet), len(got), len(missing), head(missing), len(extra), head(extra), len(twice), head(twice))
	}
}

func head(ss []string) []string {
	slices.Sort(ss)
	return ss[:min(len(ss), 5)]
}

// sourceRow is one row's place in its source's sequence and in the stream.
type sourceRow struct {
	source              string
	sourceSeq, streamSq uint64
}

// sourceRows returns (source, source_seq, stream_seq) of every row,
// ordered by source and source_seq.
func (s *stack) sourceRows() []sourceRow {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := s.ch.Query(ctx, "SELECT concat(source_system, '.', source_instance) AS src, source_seq, stream_seq FROM "+
		s.table("events")+" FINAL ORDER BY src, source_seq")
	if err != nil {
		s.t.Fatalf("read source sequences: %v", err)
	}
	defer rows.Close()
	var out []sourceRow
	for rows.Next() {
		var r sourceRow
		if err := rows.Scan(&r.source, &r.sourceSeq, &r.streamSq); err != nil {
			s.t.Fatalf("scan: %v", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		s.t.Fatalf("read source sequences: %v", err)
	}
	return out
}

// checkSourceOrder requires each source's rows to have the sequence
// numbers want[source] (1..n when nil) and the stream to hold them in
// that order (stream_seq increasing with source_seq).
func (s *stack) checkSourceOrder(counts map[string]int, want map[string][]uint64) {
	s.t.Helper()
	bySource := map[string][]sourceRow{}
	for _, r := range s.sourceRows() {
		bySource[r.source] = append(bySource[r.source], r)
	}
	if len(bySource) != len(counts) {
		s.t.Errorf("rows of %d sources, want %d", len(bySource), len(counts))
	}
	for src, n := range counts {
		rows := bySource[src]
		seqs := want[src]
		if seqs == nil {
			for i := 1; i <= n; i++ {
				seqs = append(seqs, uint64(i))
			}
		}
		if len(rows) != len(seqs) {
			s.t.Errorf("source %s: %d rows, want %d", src, len(rows), len(seqs))
			continue
		}
		for i, r := range rows {
			if r.sourceSeq != seqs[i] {
				s.t.Errorf("source %s: row %d has source_seq %d, want %d", src, i, r.sourceSeq, seqs[i])
				break
			}
			if i > 0 && r.streamSq <= rows[i-1].streamSq {
				s.t.Errorf("source %s: source_seq %d is at stream_seq %d, before source_seq %d at stream_seq %d (out of order)",
					src, r.sourceSeq, r.streamSq, rows[i-1].sourceSeq, rows[i-1].streamSq)
				break
			}
		}
	}
}

// Streams.

// streamMessages returns every message still in a stream, in order.
func (s *stack) streamMessages(name string) []*jetstream.RawStreamMsg {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, name)
	if err != nil {
		s.t.Fatalf("stream %s: %v", name, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		s.t.Fatalf("stream %s info: %v", name, err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted
		}
		if err != nil {
			s.t.Fatalf("stream %s seq %d: %v", name, seq, err)
		}
		out = append(out, m)
	}
	return out
}

// streamCount is the number of messages in a stream (-1 if unreadable).
func (s *stack) streamCount(name string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, name)
	if err != nil {
		return -1
	}
	info, err := st.Info(ctx)
	if err != nil {
		return -1
	}
	return int(info.State.Msgs)
}

// putRaw puts a message straight on the events stream, bypassing the
// producers, and returns its stream sequence.
func (s *stack) putRaw(subject string, data []byte) uint64 {
	s.t.Helper()
	ack, err := s.js.PublishMsg(s.ctx(), &nats.Msg{Subject: subject, Data: data}, jetstream.WithExpectStream(streams.DefaultEventsStream))
	if err != nil {
		s.t.Fatalf("put raw message on %s: %v", subject, err)
	}
	return ack.Sequence
}
