package loader

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/producers/event"
)

// DirectInserter writes events into a database's events table as the
// loader does (the same columns, values and batch insert), without
// JetStream, without the loader's read-back and without marking the
// airing projection's days (consumers/projector): for measuring ClickHouse's
// insert rate alone (airtally bench) with the loader's own rows, and for
// tests that fill a table.
type DirectInserter struct {
	conn  driver.Conn
	table *eventsTable
}

// NewDirectInserter reads the columns of db.events, as a loader does at
// start; the error wraps ErrSchema when the table does not match.
func NewDirectInserter(ctx context.Context, conn driver.Conn, db string) (*DirectInserter, error) {
	t, err := readEventsTable(ctx, conn, db)
	if err != nil {
		return nil, err
	}
	return &DirectInserter{conn: conn, table: t}, nil
}

// Rows are the rows of evs as the loader would make them after reading
// them from the stream at sequences firstSeq, firstSeq+1, … stored at at.
func (d *DirectInserter) Rows(evs []*event.Event, firstSeq uint64, at time.Time) ([]*Row, error) {
	rows := make([]*Row, len(evs))
	for i, ev := range evs {
		r, err := newRow(d.table.cols, ev, meta{streamSeq: firstSeq + uint64(i), storedAt: at})
		if err != nil {
			return nil, fmt.Errorf("loader: event %s: %w", ev.EventID, err)
		}
		rows[i] = r
	}
	return rows, nil
}

// Insert sends rows (from Rows) with one batch insert, as loaded now.
func (d *DirectInserter) Insert(ctx context.Context, rows []*Row) error {
	return d.table.insert(ctx, d.conn, rows, time.Now().UTC(), nil)
}
