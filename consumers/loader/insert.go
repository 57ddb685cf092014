package loader

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/internal/airings"
)

// appendError is a row or a column that the driver refused to append. Its
// driver error is kept out of the message, which might otherwise repeat a
// value.
type appendError struct {
	what string // "row 3", "column kind"
	err  error
}

func (e *appendError) Error() string {
	return fmt.Sprintf("loader: append %s: the driver refused it", e.what)
}

func (e *appendError) Unwrap() error { return e.err }

// insertRows sends rows with one batch insert (query names the columns),
// then, unless check is nil, reads them back (see storedCheck): nil means
// the table holds them. It prepares a fresh batch on every call and always
// releases it; a batch is never reused after Send, nor after a failed
// Append.
func insertRows(ctx context.Context, conn driver.Conn, query string, rows [][]any, check *storedCheck) error {
	return insertBatch(ctx, conn, query, len(rows), check, func(batch driver.Batch) error {
		for i, row := range rows {
			if err := batch.Append(row...); err != nil {
				return &appendError{what: fmt.Sprintf("row %d", i), err: err}
			}
		}
		return nil
	})
}

// insertBlock is insertRows for the events table: cols are the table's
// columns that query names and values their values (from block), appended
// a column at a time.
func insertBlock(ctx context.Context, conn driver.Conn, query string, cols []column, values []any, n int, check *storedCheck) error {
	return insertBatch(ctx, conn, query, n, check, func(batch driver.Batch) error {
		for i, v := range values {
			if err := batch.Column(i).Append(v); err != nil {
				return &appendError{what: "column " + cols[i].name, err: err}
			}
		}
		return nil
	})
}

// insertBatch prepares a fresh batch for query, lets fill append its n
// rows, sends it and runs check (nil: none). The batch is always
// released: aborted unless it was sent.
func insertBatch(ctx context.Context, conn driver.Conn, query string, n int, check *storedCheck, fill func(driver.Batch) error) error {
	if n == 0 {
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
	if err := fill(batch); err != nil {
		return err
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("loader: send batch of %d rows: %w", n, err)
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
	cols    []column
	query   string   // INSERT INTO db.events (cols…)
	missing []string // known columns the table does not have
}

// insert inserts rows with one batch insert, loaded at loadedAt, then runs
// check (nil: none).
func (t *eventsTable) insert(ctx context.Context, conn driver.Conn, rows []*Row, loadedAt time.Time, check *storedCheck) error {
	return insertBlock(ctx, conn, t.query, t.cols, block(t.cols, rows, loadedAt), len(rows), check)
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
	t := &eventsTable{}
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
		t.cols = append(t.cols, c)
		names = append(names, c.name)
	}
	t.query = insertQuery(db, "events", names)
	return t, nil
}
