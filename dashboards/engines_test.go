package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.WithClickHouse(), testenv.WithCHDB())
}

// result is what a query returned: its columns in order and its rows by
// column name.
type result struct {
	columns []string
	rows    []map[string]any
}

// engine runs the SQL a panel sends, with the database chosen the way the
// data source chooses it (the connection's default database), so that
// unqualified table names resolve as they do in Grafana.
type engine interface {
	name() string
	run(t *testing.T, sql string) (result, error)
}

// server is ClickHouse 18.16 over the native protocol, the way the plugin
// connects (its default database set on the connection).
type server struct{ conn driver.Conn }

func (server) name() string { return "ClickHouse 18.16" }

func (s server) run(t *testing.T, sql string) (result, error) {
	t.Helper()
	rows, err := s.conn.Query(context.Background(), sql)
	if err != nil {
		return result{}, err
	}
	defer rows.Close()
	res := result{columns: rows.Columns()}
	types := rows.ColumnTypes()
	for rows.Next() {
		dest := make([]any, len(types))
		for i, c := range types {
			dest[i] = reflect.New(c.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return result{}, fmt.Errorf("scan: %w", err)
		}
		r := map[string]any{}
		for i, c := range res.columns {
			r[c] = normalize(reflect.ValueOf(dest[i]).Elem().Interface())
		}
		res.rows = append(res.rows, r)
	}
	return res, rows.Err()
}

// current is current ClickHouse through chDB; USE makes the database the
// session's default, as the data source's default database does.
type current struct {
	ch *testenv.CHDB
	db string
}

func (current) name() string { return "current ClickHouse (chDB)" }

func (c current) run(t *testing.T, sql string) (result, error) {
	t.Helper()
	ident, err := chsql.Ident(c.db)
	if err != nil {
		return result{}, err
	}
	if err := c.ch.Exec("USE " + ident); err != nil {
		return result{}, err
	}
	desc, err := c.ch.QueryJSON("DESCRIBE TABLE (" + sql + ")")
	if err != nil {
		return result{}, err
	}
	var res result
	for _, d := range desc {
		res.columns = append(res.columns, fmt.Sprint(d["name"]))
	}
	rows, err := c.ch.QueryJSON(sql)
	if err != nil {
		return result{}, err
	}
	for _, r := range rows {
		for k, v := range r {
			r[k] = normalize(v)
		}
	}
	res.rows = rows
	return res, nil
}

// normalize makes values of both engines comparable: numbers become
// float64, pointers their value or nil.
func normalize(v any) any {
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return nil
	}
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		return normalize(rv.Elem().Interface())
	}
	switch x := v.(type) {
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	case string:
		return x
	}
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(rv.Uint())
	case reflect.Float32, reflect.Float64:
		return rv.Float()
	}
	return v
}

// num reads a normalized number (nil stays nil).
func num(t *testing.T, row map[string]any, col string) *float64 {
	t.Helper()
	v, ok := row[col]
	if !ok {
		t.Fatalf("row has no column %s: %v", col, row)
	}
	if v == nil {
		return nil
	}
	switch x := v.(type) {
	case float64:
		return &x
	case string:
		// chDB writes 64-bit integers as strings in JSON.
		var f float64
		if _, err := fmt.Sscan(x, &f); err == nil {
			return &f
		}
	}
	t.Fatalf("column %s is not a number: %T %v", col, v, v)
	return nil
}

func str(row map[string]any, col string) string {
	return strings.TrimSpace(fmt.Sprint(row[col]))
}
