package loader

import (
	"context"
	"errors"
	"fmt"
	"github.com/airtally/airtally/internal/airings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// appendError is a row that the driver refused to append. Its driver error
// is kept out of the message, which might otherwise repeat a value.
type appendError struct {
	index int
	err   error
}

func (e *appendError) Error() string {
	return fmt.Sprintf("loader: append row %d: the driver refused the row", e.index)
}

func (e *appendError) Unwrap() error { return e.err }

// insertRows sends rows with one batch insert (query names the columns),
// then, unless check is nil, reads them back (see storedCheck): nil means
// the table holds them. It prepares a fresh batch on every call and always
// releases it; a batch is never reused after Send, nor after a failed
// Append.
func insertRows(ctx context.Context, conn driver.Conn, query string, rows [][]any, check *storedCheck) (err error) {
	if len(rows) == 0 {
		return nil
	}
	batch, err := conn.PrepareBatch(ctx, query)
	if err != nil {
		return fmt.Errorf("loader: prepare batch: %w", err)
	}
	defer func() {
		if !batch.IsSent() {
			_ = batch.Abort()
		}
	}()
	for i, row := range rows {
		if err := batch.Append(row...); err != nil {
			return &appendError{index: i, err: err}
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("loader: send batch of %d rows: %w", len(rows), err)
	}
	if check == nil {
		return nil
	}
	return check.run(ctx, conn)
}

// errorText is an insert error for logs, without the driver's text where
// that could repeat a value.
func errorText(err error) string {
	var ae *appendError
	if errors.As(err, &ae) {
		return ae.Error()
	}
	return err.Error()
}

// insertProjections inserts the projection rows of airing and offer
// events, one batch insert per table.
func insertProjections(ctx context.Context, conn driver.Conn, db string, projs []*projRow) error {
	byTable := map[string][][]any{}
	for _, p := range projs {
		byTable[p.table] = append(byTable[p.table], p.row)
	}
	for _, table := range []string{airings.AiringsTable, airings.OffersTable} {
		rows := byTable[table]
		if len(rows) == 0 {
			continue
		}
		cols, keys := airings.AiringColumns, []string{"airing_id"}
		if table == airings.OffersTable {
			cols, keys = airings.OfferColumns, []string{"offer", "media_type"}
		}
		check := versionedCheck(db, table, cols, keys, rows)
		if err := insertRows(ctx, conn, insertQuery(db, table, cols), rows, check); err != nil {
			return fmt.Errorf("loader: insert into %s: %w", table, err)
		}
	}
	return nil
}

// ErrSchema means the events table is missing or does not have the columns
// and types the loader writes: the database is not migrated, or not to a
// schema this loader knows.
var ErrSchema = errors.New("loader: the events table does not match the loader")

// eventsTable is the events table of one database as the loader fills it.
type eventsTable struct {
	cols     []column
	loaded   int // index of loaded_at in cols
	occurred int // index of occurred_at in cols
	kind     int // index of kind in cols
	eventID  int // index of event_id in cols
	// indexes of occurred_at_ms, order_id, window_start_ms and
	// window_end_ms in cols (projection marks; -1: no such column)
	occurredMS, orderID, windowStartMS, windowEndMS int
	query                                           string   // INSERT INTO db.events (cols…)
	missing                                         []string // known columns the table does not have
}

// readEventsTable reads the columns of db.events and keeps the known ones
// it has. Every base column is required, and each column must have the type
// the loader writes: an Append can then only fail on a bug, never on a
// value, so a valid event is never refused.
func readEventsTable(ctx context.Context, conn driver.Conn, db string) (*eventsTable, error) {
	rows, err := conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = ? AND table = 'events'", db)
	if err != nil {
		return nil, fmt.Errorf("loader: read columns of %s.events: %w", db, err)
	}
	defer rows.Close()
	have := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("loader: read columns of %s.events: %w", db, err)
		}
		have[name] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loader: read columns of %s.events: %w", db, err)
	}
	for _, name := range baseColumns {
		if _, ok := have[name]; !ok {
			return nil, fmt.Errorf("%w: %s.events has no column %s (not migrated?)", ErrSchema, db, name)
		}
	}
	t := &eventsTable{windowStartMS: -1, windowEndMS: -1}
	names := make([]string, 0, len(knownColumns))
	for _, c := range knownColumns {
		typ, ok := have[c.name]
		if !ok {
			t.missing = append(t.missing, c.name)
			continue
		}
		if typ != c.typ {
			return nil, fmt.Errorf("%w: %s.events column %s is %s, the loader writes %s", ErrSchema, db, c.name, typ, c.typ)
		}
		switch c.name {
		case "loaded_at":
			t.loaded = len(t.cols)
		case "occurred_at":
			t.occurred = len(t.cols)
		case "kind":
			t.kind = len(t.cols)
		case "event_id":
			t.eventID = len(t.cols)
		case "occurred_at_ms":
			t.occurredMS = len(t.cols)
		case "order_id":
			t.orderID = len(t.cols)
		case "window_start_ms":
			t.windowStartMS = len(t.cols)
		case "window_end_ms":
			t.windowEndMS = len(t.cols)
		}
		t.cols = append(t.cols, c)
		names = append(names, c.name)
	}
	t.query = insertQuery(db, "events", names)
	return t, nil
}
