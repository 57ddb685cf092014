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
// them from the stream at sequences firstSeq, firstSeq+1, … stored (and
// loaded) at at.
func (d *DirectInserter) Rows(evs []*event.Event, firstSeq uint64, at time.Time) ([][]any, error) {
	rows := make([][]any, len(evs))
	for i, ev := range evs {
		row, err := eventRow(d.table.cols, ev, meta{streamSeq: firstSeq + uint64(i), storedAt: at})
		if err != nil {
			return nil, fmt.Errorf("loader: event %s: %w", ev.EventID, err)
		}
		setLoadedAt(row, d.table.loaded, at.UTC())
		rows[i] = row
	}
	return rows, nil
}

// Insert sends rows (from Rows) with one batch insert.
func (d *DirectInserter) Insert(ctx context.Context, rows [][]any) error {
	return insertRows(ctx, d.conn, d.table.query, rows, nil)
}
