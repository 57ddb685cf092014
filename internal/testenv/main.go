package testenv

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

// Option asks Main to start something for the whole test binary.
type Option func(*options)

type options struct {
	clickhouse, chdb bool
}

// WithClickHouse starts one clickhouse-server process (chlocal, in a
// temporary folder) for the test binary. See ClickHouse, NewDatabase, Open.
func WithClickHouse() Option { return func(o *options) { o.clickhouse = true } }

// WithCHDB opens one chDB session for the test binary (chDB allows one
// engine per process). The library is $CHDB_LIB_PATH, else
// <module root>/.cache/chdb/libchdb.so. See ChDB.
func WithCHDB() Option { return func(o *options) { o.chdb = true } }

// Main is the body of a TestMain: it starts what the options ask for, runs
// the tests, stops everything and exits with the tests' status. If
// something cannot be started (a binary or library is missing) it prints
// why and exits 1.
//
// Fuzzing worker processes (go test -fuzz starts several) start nothing:
// fuzz targets must not need the servers; the seed corpus still runs in the
// main process, with them.
func Main(m *testing.M, opts ...Option) {
	os.Exit(run(m, opts))
}

func run(m *testing.M, opts []Option) int {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		return m.Run()
	}
	var stops []func() error
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			if err := stops[i](); err != nil {
				fmt.Fprintf(os.Stderr, "testenv: teardown: %v\n", err)
			}
		}
	}()
	if o.clickhouse {
		stop, err := startClickHouse()
		if err != nil {
			fmt.Fprintf(os.Stderr, "testenv: clickhouse: %v\n", err)
			return 1
		}
		stops = append(stops, stop)
	}
	if o.chdb {
		stop, err := startCHDB()
		if err != nil {
			fmt.Fprintf(os.Stderr, "testenv: chdb: %v\n", err)
			return 1
		}
		stops = append(stops, stop)
	}
	return m.Run()
}

// moduleRoot is the nearest folder at or above the working directory that
// holds a go.mod (go test runs in the package's folder).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}

var (
	dbSeq      atomic.Int64
	nonIdentRE = regexp.MustCompile(`[^A-Za-z0-9_]+`)
)

// dbName returns a fresh database name derived from the test's name.
func dbName(t testing.TB) string {
	base := strings.ToLower(nonIdentRE.ReplaceAllString(t.Name(), "_"))
	if len(base) > 40 {
		base = base[:40]
	}
	return fmt.Sprintf("t_%s_%d_%d", base, os.Getpid(), dbSeq.Add(1))
}
