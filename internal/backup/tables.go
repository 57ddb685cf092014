package backup

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/consumers/detector/accountability"
	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/report"
)

// migrationsTable is written by the migrator, never restored.
const migrationsTable = "schema_migrations"

// Column is one stored column of a backed-up table.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// tableHeader is the first line of a table's file.
type tableHeader struct {
	Table   string   `json:"table"`
	Columns []Column `json:"columns"`
}

// listTables returns the database's tables (not views), by name.
//
// The tables of the airing and accountability projections are left out:
// they are derived, and a restored database computes them again from the
// restored events (the projector starts from scratch; until it has,
// reports compute on read), so that they can never disagree with the
// events restored beside them. So are Memory tables (an accountability
// computation's scratch tables).
func listTables(ctx context.Context, conn driver.Conn, db string) ([]string, error) {
	derived := []string{report.TableMeasures, report.TableDays, report.TableMarks,
		accountability.TableAirings, accountability.TableCoverage, accountability.TableShapes, accountability.TableWeeks, accountability.TableMarks}
	for i, t := range derived {
		derived[i] = chsql.String(t)
	}
	q := "SELECT name FROM system.tables WHERE database = " + chsql.String(db) +
		" AND engine NOT LIKE '%View' AND engine != 'Memory' AND name NOT IN (" + strings.Join(derived, ", ") + ") ORDER BY name"
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", db, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list tables of %s: scan: %w", db, err)
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", db, err)
	}
	return out, nil
}

// storedColumns returns a table's columns that an INSERT can set (not
// MATERIALIZED or ALIAS), in table order.
func storedColumns(ctx context.Context, conn driver.Conn, db, table string) ([]Column, error) {
	q := "SELECT name, type FROM system.columns WHERE database = " + chsql.String(db) +
		" AND table = " + chsql.String(table) + " AND default_kind NOT IN ('MATERIALIZED', 'ALIAS')"
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("columns of %s.%s: %w", db, table, err)
	}
	defer rows.Close()
	var out []Column
	for rows.Next() {
		var c Column
		if err := rows.Scan(&c.Name, &c.Type); err != nil {
			return nil, fmt.Errorf("columns of %s.%s: scan: %w", db, table, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("columns of %s.%s: %w", db, table, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("columns of %s.%s: none found", db, table)
	}
	return out, nil
}

// columnList is "a, b, c" with every name quoted as an identifier.
func columnList(cols []Column) (string, error) {
	var s string
	for i, c := range cols {
		id, err := chsql.Ident(c.Name)
		if err != nil {
			return "", fmt.Errorf("column %q: %w", c.Name, err)
		}
		if i > 0 {
			s += ", "
		}
		s += id
	}
	return s, nil
}

// dumpTable writes every row of db.table to w as JSON lines and returns
// the columns and the number of rows.
func dumpTable(ctx context.Context, conn driver.Conn, db, table string, w io.Writer) ([]Column, int64, error) {
	cols, err := storedColumns(ctx, conn, db, table)
	if err != nil {
		return nil, 0, err
	}
	list, err := columnList(cols)
	if err != nil {
		return nil, 0, fmt.Errorf("dump %s: %w", table, err)
	}
	dbID, _ := chsql.Ident(db)
	tID, err := chsql.Ident(table)
	if err != nil {
		return nil, 0, fmt.Errorf("dump %s: %w", table, err)
	}
	enc := json.NewEncoder(w)
	if err := enc.Encode(tableHeader{Table: table, Columns: cols}); err != nil {
		return nil, 0, fmt.Errorf("dump %s: write header: %w", table, err)
	}
	rows, err := conn.Query(ctx, "SELECT "+list+" FROM "+dbID+"."+tID)
	if err != nil {
		return nil, 0, fmt.Errorf("dump %s: query: %w", table, err)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	dest := make([]any, len(types))
	for i, ct := range types {
		dest[i] = reflect.New(ct.ScanType()).Interface()
	}
	vals := make([]any, len(types))
	var n int64
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, 0, fmt.Errorf("dump %s: scan row %d: %w", table, n+1, err)
		}
		for i, d := range dest {
			vals[i] = reflect.ValueOf(d).Elem().Interface()
		}
		if err := enc.Encode(vals); err != nil {
			return nil, 0, fmt.Errorf("dump %s: encode row %d: %w", table, n+1, err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("dump %s: read: %w", table, err)
	}
	return cols, n, nil
}

// countRows returns the number of rows of db.table.
func countRows(ctx context.Context, conn driver.Conn, db, table string) (uint64, error) {
	dbID, _ := chsql.Ident(db)
	tID, err := chsql.Ident(table)
	if err != nil {
		return 0, err
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+dbID+"."+tID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count rows of %s: %w", table, err)
	}
	return n, nil
}

// loadTable inserts the rows of a table file read from r into db.table,
// in batches of batchSize, and returns how many it inserted. The columns
// of the file must exist in the table.
func loadTable(ctx context.Context, conn driver.Conn, db string, want TableFile, batchSize int, r io.Reader) (int64, error) {
	table := want.Table
	dec := json.NewDecoder(bufio.NewReader(r))
	var h tableHeader
	if err := dec.Decode(&h); err != nil {
		return 0, fmt.Errorf("load %s: read header: %w", table, err)
	}
	if h.Table != table || !slices.Equal(h.Columns, want.Columns) {
		return 0, fmt.Errorf("load %s: the file's header does not match the manifest", table)
	}
	have, err := storedColumns(ctx, conn, db, table)
	if err != nil {
		return 0, fmt.Errorf("load %s: %w", table, err)
	}
	for _, c := range h.Columns {
		if !slices.ContainsFunc(have, func(x Column) bool { return x.Name == c.Name && x.Type == c.Type }) {
			return 0, fmt.Errorf("load %s: column %s %s is not in the migrated table", table, c.Name, c.Type)
		}
	}
	list, err := columnList(h.Columns)
	if err != nil {
		return 0, fmt.Errorf("load %s: %w", table, err)
	}
	dbID, _ := chsql.Ident(db)
	tID, err := chsql.Ident(table)
	if err != nil {
		return 0, fmt.Errorf("load %s: %w", table, err)
	}
	types, err := scanTypes(ctx, conn, dbID+"."+tID, list)
	if err != nil {
		return 0, fmt.Errorf("load %s: %w", table, err)
	}
	insert := "INSERT INTO " + dbID + "." + tID + " (" + list + ")"
	var total int64
	for {
		rows, err := readRows(dec, types, batchSize)
		if err != nil {
			return total, fmt.Errorf("load %s: row %d: %w", table, total+int64(len(rows))+1, err)
		}
		if len(rows) == 0 {
			return total, nil
		}
		if err := insertBatch(ctx, conn, insert, rows); err != nil {
			return total, fmt.Errorf("load %s: insert rows %d to %d: %w", table, total+1, total+int64(len(rows)), err)
		}
		total += int64(len(rows))
	}
}

// scanTypes returns the Go types the driver scans the columns into, which
// are also the types its batches take.
func scanTypes(ctx context.Context, conn driver.Conn, table, list string) ([]reflect.Type, error) {
	rows, err := conn.Query(ctx, "SELECT "+list+" FROM "+table+" LIMIT 0")
	if err != nil {
		return nil, fmt.Errorf("column types: %w", err)
	}
	defer rows.Close()
	var out []reflect.Type
	for _, ct := range rows.ColumnTypes() {
		out = append(out, ct.ScanType())
	}
	return out, rows.Err()
}

// readRows decodes up to n rows; fewer at the end of the file.
func readRows(dec *json.Decoder, types []reflect.Type, n int) ([][]any, error) {
	var out [][]any
	for len(out) < n && dec.More() {
		var raw []json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return out, fmt.Errorf("decode: %w", err)
		}
		if len(raw) != len(types) {
			return out, fmt.Errorf("%d values, want %d", len(raw), len(types))
		}
		row := make([]any, len(types))
		for i, t := range types {
			v := reflect.New(t)
			if err := json.Unmarshal(raw[i], v.Interface()); err != nil {
				return out, fmt.Errorf("value %d: %w", i+1, err)
			}
			row[i] = v.Elem().Interface()
		}
		out = append(out, row)
	}
	return out, nil
}

// insertBatch inserts rows with one PrepareBatch naming the columns (the
// only insert that works on ClickHouse 18.16).
func insertBatch(ctx context.Context, conn driver.Conn, insert string, rows [][]any) error {
	b, err := conn.PrepareBatch(ctx, insert)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer b.Close() //nolint:errcheck // after Send it is a no-op
	for _, r := range rows {
		if err := b.Append(r...); err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}
