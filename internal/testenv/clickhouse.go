package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/internal/chlocal"
	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/schema"
)

// shared ClickHouse state of the test binary.
var (
	chServer *chlocal.Server
	chAdmin  driver.Conn
)

func startClickHouse() (stop func() error, err error) {
	dir, err := os.MkdirTemp("", "airtally-clickhouse-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := chlocal.Start(ctx, chlocal.Config{Dir: dir})
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	admin, err := srv.Open("")
	if err != nil {
		return nil, errors.Join(err, srv.Stop(ctx), os.RemoveAll(dir))
	}
	chServer, chAdmin = srv, admin
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return errors.Join(admin.Close(), srv.Stop(ctx), os.RemoveAll(dir))
	}, nil
}

// ClickHouse returns the test binary's shared server, e.g. to Stop, Kill
// or Restart it in fault tests (a test that stops it must restart it). It
// panics when TestMain did not ask for WithClickHouse.
func ClickHouse() *chlocal.Server {
	if chServer == nil {
		panic("testenv: no ClickHouse server: TestMain must call testenv.Main(m, testenv.WithClickHouse())")
	}
	return chServer
}

// NewDatabase creates a fresh, uniquely named database on the shared
// server, migrated to the current schema when migrate is true, and returns
// a connection whose default database it is, and its name. The connection
// is closed and the database dropped when the test ends.
func NewDatabase(t testing.TB, migrate bool) (driver.Conn, string) {
	t.Helper()
	srv := requireClickHouse(t)
	db := dbName(t)
	ident, err := chsql.Ident(db)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := chAdmin.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		t.Fatalf("testenv: create database %s on %s: %v", db, srv.Addr(), err)
	}
	t.Cleanup(func() { dropDatabase(t, ident) })
	conn := Open(t, db)
	if migrate {
		if _, err := schema.Migrate(ctx, conn, db); err != nil {
			t.Fatalf("testenv: migrate %s: %v", db, err)
		}
	}
	return conn, db
}

// dropDatabase drops a test database, polling for a while in case a fault
// test has just restarted the server. A database of many parts (the chaos
// test's) takes 18.16 a while to drop on a loaded machine.
func dropDatabase(t testing.TB, ident string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	for ctx.Err() == nil {
		if err = chAdmin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident); err == nil {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Errorf("testenv: drop database %s (was the shared server left stopped?): %v", ident, err)
}

// Open returns another native connection (LZ4) to the shared server with
// default database db ("" for the server's default). It is closed when the
// test ends.
func Open(t testing.TB, db string) driver.Conn {
	t.Helper()
	srv := requireClickHouse(t)
	conn, err := srv.Open(db)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func requireClickHouse(t testing.TB) *chlocal.Server {
	t.Helper()
	if chServer == nil {
		t.Fatal("testenv: no ClickHouse server: TestMain must call testenv.Main(m, testenv.WithClickHouse())")
	}
	return chServer
}
