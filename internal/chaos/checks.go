package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/producers/event"
)

// inspector reads what the chain stored: rows in ClickHouse, the stream
// and the loaders' consumer in JetStream.
type inspector struct {
	ch     driver.Conn
	js     jetstream.JetStream
	events string // the events table, db.name quoted
}

func newInspector(ch driver.Conn, js jetstream.JetStream, db string) (*inspector, error) {
	qdb, err := chsql.Ident(db)
	if err != nil {
		return nil, fmt.Errorf("chaos: database name: %w", err)
	}
	return &inspector{ch: ch, js: js, events: qdb + ".events"}, nil
}

// notDetector leaves out the detector's own events: no producer of the
// run acknowledged them, so they are outside the account.
var notDetector = " WHERE source_system != " + chsql.String(event.DetectorSystem)

// detectorCount is the number of the detector's events in events (FINAL).
func (in *inspector) detectorCount(ctx context.Context) (uint64, error) {
	return in.countQuery(ctx, "SELECT count() FROM "+in.events+" FINAL WHERE source_system = "+chsql.String(event.DetectorSystem))
}

// count is the number of rows of events through FINAL; rawCount as
// stored, copies not yet merged away included.
func (in *inspector) count(ctx context.Context) (uint64, error) {
	return in.countQuery(ctx, "SELECT count() FROM "+in.events+" FINAL"+notDetector)
}

func (in *inspector) rawCount(ctx context.Context) (uint64, error) {
	return in.countQuery(ctx, "SELECT count() FROM "+in.events+notDetector)
}

func (in *inspector) countQuery(ctx context.Context, q string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var n uint64
	if err := in.ch.QueryRow(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("chaos: %s: %w", q, err)
	}
	return n, nil
}

// consumerInfo is the loaders' durable consumer.
func (in *inspector) consumerInfo(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := in.js.Consumer(ctx, streams.DefaultEventsStream, loader.DefaultConsumer)
	if err != nil {
		return nil, fmt.Errorf("chaos: consumer: %w", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("chaos: consumer info: %w", err)
	}
	return info, nil
}

// replicasCurrent reports whether the events stream and the loaders'
// consumer each have a leader and all their other nodes current, and
// describes them.
func (in *inspector) replicasCurrent(ctx context.Context, nodes int) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := in.js.Stream(ctx, streams.DefaultEventsStream)
	if err != nil {
		return false, "stream: " + err.Error()
	}
	si, err := st.Info(ctx)
	if err != nil {
		return false, "stream info: " + err.Error()
	}
	ci, err := in.consumerInfo(ctx)
	if err != nil {
		return false, err.Error()
	}
	ok := allCurrent(si.Cluster, nodes) && allCurrent(ci.Cluster, nodes)
	return ok, describe("stream", si.Cluster) + "; " + describe("consumer", ci.Cluster)
}

func allCurrent(c *jetstream.ClusterInfo, nodes int) bool {
	if c == nil || c.Leader == "" || len(c.Replicas) != nodes-1 {
		return false
	}
	for _, p := range c.Replicas {
		if !p.Current || p.Offline {
			return false
		}
	}
	return true
}

func describe(what string, c *jetstream.ClusterInfo) string {
	if c == nil {
		return what + ": no cluster info"
	}
	s := what + " leader " + c.Leader
	for _, p := range c.Replicas {
		s += fmt.Sprintf(", %s current=%t offline=%t lag=%d", p.Name, p.Current, p.Offline, p.Lag)
	}
	return s
}

// idCounts is SELECT event_id, count() FROM events<final> GROUP BY event_id.
func (in *inspector) idCounts(ctx context.Context, final string) (map[uuid.UUID]uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	rows, err := in.ch.Query(ctx, "SELECT event_id, count() FROM "+in.events+final+notDetector+" GROUP BY event_id")
	if err != nil {
		return nil, fmt.Errorf("chaos: read event ids%s: %w", final, err)
	}
	defer rows.Close()
	out := map[uuid.UUID]uint64{}
	for rows.Next() {
		var (
			id uuid.UUID
			n  uint64
		)
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("chaos: scan event id count: %w", err)
		}
		out[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chaos: read event ids%s: %w", final, err)
	}
	return out, nil
}

// sourceRow is one row's place in its source's sequence and in the stream.
type sourceRow struct {
	source              string
	sourceSeq, streamSq uint64
}

// sourceRows returns (source, source_seq, stream_seq) of every row
// through FINAL, ordered by source and source_seq.
func (in *inspector) sourceRows(ctx context.Context) ([]sourceRow, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	rows, err := in.ch.Query(ctx, "SELECT concat(source_system, '.', source_instance) AS src, source_seq, stream_seq FROM "+
		in.events+" FINAL"+notDetector+" ORDER BY src, source_seq")
	if err != nil {
		return nil, fmt.Errorf("chaos: read source sequences: %w", err)
	}
	defer rows.Close()
	var out []sourceRow
	for rows.Next() {
		var r sourceRow
		if err := rows.Scan(&r.source, &r.sourceSeq, &r.streamSq); err != nil {
			return nil, fmt.Errorf("chaos: scan source sequence: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("chaos: read source sequences: %w", err)
	}
	return out, nil
}
