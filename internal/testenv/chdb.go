package testenv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/airtally/airtally/internal/chsql"
)

// CHDB is the test binary's chDB session: current ClickHouse running in
// this process. Its methods are safe for concurrent use (queries run one at
// a time).
type CHDB struct {
	mu   sync.Mutex
	lib  *chdbLib
	conn *chdbConnection
}

var sharedCHDB *CHDB

// chdbLibPath is $CHDB_LIB_PATH, else <module root>/.cache/chdb/libchdb.so.
func chdbLibPath() (string, error) {
	if p := os.Getenv("CHDB_LIB_PATH"); p != "" {
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".cache", "chdb", "libchdb.so"), nil
}

func startCHDB() (stop func() error, err error) {
	path, err := chdbLibPath()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("libchdb.so not found (%w): set CHDB_LIB_PATH or run scripts/deps.sh", err)
	}
	lib, err := loadCHDB(path)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "airtally-chdb-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	conn, err := lib.open(dir)
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	sharedCHDB = &CHDB{lib: lib, conn: conn}
	return func() error {
		sharedCHDB.mu.Lock()
		defer sharedCHDB.mu.Unlock()
		lib.closeConn(conn)
		sharedCHDB.conn = nil
		return os.RemoveAll(dir)
	}, nil
}

// ChDB returns the shared chDB session and the name of a fresh database
// created in it, dropped when the test ends.
func ChDB(t testing.TB) (*CHDB, string) {
	t.Helper()
	if sharedCHDB == nil {
		t.Fatal("testenv: no chDB session: TestMain must call testenv.Main(m, testenv.WithCHDB())")
	}
	db := dbName(t)
	ident, err := chsql.Ident(db)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := sharedCHDB.Exec("CREATE DATABASE " + ident); err != nil {
		t.Fatalf("testenv: chdb: create database %s: %v", db, err)
	}
	t.Cleanup(func() {
		if err := sharedCHDB.Exec("DROP DATABASE IF EXISTS " + ident); err != nil {
			t.Errorf("testenv: chdb: drop database %s: %v", db, err)
		}
	})
	return sharedCHDB, db
}

// Exec runs one statement and discards its result.
func (c *CHDB) Exec(sql string) error {
	_, err := c.query(sql, "TabSeparated")
	return err
}

// QueryJSON runs a query and returns its rows decoded from JSONEachRow,
// numbers as json.Number. (ClickHouse writes 64-bit integers as JSON
// strings by default.)
func (c *CHDB) QueryJSON(sql string) ([]map[string]any, error) {
	out, err := c.query(sql, "JSONEachRow")
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	var rows []map[string]any
	for {
		var row map[string]any
		if err := dec.Decode(&row); errors.Is(err, io.EOF) {
			return rows, nil
		} else if err != nil {
			return nil, fmt.Errorf("chdb: decode JSONEachRow: %w", err)
		}
		rows = append(rows, row)
	}
}

func (c *CHDB) query(sql, format string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil, errors.New("chdb: session closed")
	}
	out, err := c.lib.query(c.conn, sql, format)
	if err != nil {
		return nil, fmt.Errorf("chdb: %w", err)
	}
	return out, nil
}

// chdbLib is the part of libchdb's C API we use, bound with purego at run
// time: chdb-go binds the library in a package init and panics when it is
// missing, which would break every test binary that imports testenv.
type chdbLib struct {
	connect      func(argc int, argv []*byte) *chdbConnection
	closeConn    func(conn *chdbConnection)
	rawQuery     func(conn unsafe.Pointer, query, format string) *chdbResult
	resultBuffer func(res *chdbResult) *byte
	resultLength func(res *chdbResult) uintptr
	resultError  func(res *chdbResult) string
	destroy      func(res *chdbResult)
}

// chdbConnection mirrors C's struct chdb_connection_ (chdb.h).
type chdbConnection struct{ internal unsafe.Pointer }

// chdbResult mirrors C's struct chdb_result_ (chdb.h).
type chdbResult struct{ internal unsafe.Pointer }

func loadCHDB(path string) (lib *chdbLib, err error) {
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	defer func() {
		// RegisterLibFunc panics on a missing symbol (an incompatible library).
		if r := recover(); r != nil {
			lib, err = nil, fmt.Errorf("bind %s: %v", path, r)
		}
	}()
	lib = &chdbLib{}
	purego.RegisterLibFunc(&lib.connect, h, "chdb_connect")
	purego.RegisterLibFunc(&lib.closeConn, h, "chdb_close_conn")
	purego.RegisterLibFunc(&lib.rawQuery, h, "chdb_query")
	purego.RegisterLibFunc(&lib.resultBuffer, h, "chdb_result_buffer")
	purego.RegisterLibFunc(&lib.resultLength, h, "chdb_result_length")
	purego.RegisterLibFunc(&lib.resultError, h, "chdb_result_error")
	purego.RegisterLibFunc(&lib.destroy, h, "chdb_destroy_query_result")
	return lib, nil
}

// open starts the engine with its data in dir.
func (l *chdbLib) open(dir string) (*chdbConnection, error) {
	args := []string{"clickhouse", "--path=" + dir}
	argv := make([]*byte, len(args))
	for i, a := range args {
		b := append([]byte(a), 0)
		argv[i] = &b[0]
	}
	conn := l.connect(len(argv), argv)
	if conn == nil || conn.internal == nil {
		return nil, fmt.Errorf("chdb_connect --path=%s failed", dir)
	}
	return conn, nil
}

// query runs sql and returns a copy of its output in format.
func (l *chdbLib) query(conn *chdbConnection, sql, format string) ([]byte, error) {
	if strings.IndexByte(sql, 0) >= 0 {
		return nil, errors.New("query holds a NUL byte (chDB takes C strings)")
	}
	res := l.rawQuery(conn.internal, sql, format)
	if res == nil {
		return nil, nil
	}
	defer l.destroy(res)
	if msg := l.resultError(res); msg != "" {
		return nil, errors.New(msg)
	}
	n := int(l.resultLength(res))
	buf := l.resultBuffer(res)
	if n == 0 || buf == nil {
		return nil, nil
	}
	return bytes.Clone(unsafe.Slice(buf, n)), nil
}
