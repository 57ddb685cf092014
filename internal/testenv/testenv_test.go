package testenv_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.WithClickHouse(), testenv.WithCHDB())
}

func databaseExists(t *testing.T, db string) bool {
	t.Helper()
	var n uint64
	conn := testenv.Open(t, "")
	if err := conn.QueryRow(t.Context(), "SELECT count() FROM system.databases WHERE name = "+chsql.String(db)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestNewDatabase(t *testing.T) {
	var db string
	t.Run("inner", func(t *testing.T) {
		c, name := testenv.NewDatabase(t, false)
		db = name
		if !databaseExists(t, db) {
			t.Fatalf("database %s not created", db)
		}
		// The connection's default database is the new one.
		if err := c.Exec(t.Context(), "CREATE TABLE plain (n UInt8) ENGINE = Memory"); err != nil {
			t.Fatal(err)
		}
		var current string
		if err := c.QueryRow(t.Context(), "SELECT currentDatabase()").Scan(&current); err != nil || current != db {
			t.Errorf("currentDatabase() = %q, %v; want %q", current, err, db)
		}
		if other := testenv.Open(t, db); other.Ping(t.Context()) != nil {
			t.Error("Open: ping failed")
		}
	})
	if databaseExists(t, db) {
		t.Errorf("database %s not dropped after its test", db)
	}
}

func TestNewDatabaseMigrated(t *testing.T) {
	conn, db := testenv.NewDatabase(t, true)
	var n uint64
	if err := conn.QueryRow(t.Context(), "SELECT count() FROM system.tables WHERE database = "+chsql.String(db)+" AND name IN ('events', 'dead_letters', 'schema_migrations')").Scan(&n); err != nil || n != 3 {
		t.Errorf("migrated database has %d of 3 tables (%v)", n, err)
	}
}

func TestNewDatabaseNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	var mu sync.Mutex
	for range 3 {
		t.Run("same name", func(t *testing.T) {
			_, db := testenv.NewDatabase(t, false)
			mu.Lock()
			defer mu.Unlock()
			if seen[db] {
				t.Errorf("database name %s handed out twice", db)
			}
			seen[db] = true
		})
	}
}

func TestSharedServerRestart(t *testing.T) {
	conn, _ := testenv.NewDatabase(t, false)
	srv := testenv.ClickHouse()
	if err := conn.Exec(t.Context(), "CREATE TABLE kept (n UInt8) ENGINE = MergeTree() ORDER BY n"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		var n uint64
		return conn.QueryRow(t.Context(), "SELECT count() FROM kept").Scan(&n) == nil
	}, "table not readable after the shared server restarted")
}

func TestChDB(t *testing.T) {
	var db string
	t.Run("inner", func(t *testing.T) {
		ch, name := testenv.ChDB(t)
		db = name
		if err := ch.Exec("CREATE TABLE " + db + ".t (n UInt64, s String) ENGINE = MergeTree() ORDER BY n"); err != nil {
			t.Fatal(err)
		}
		if err := ch.Exec("INSERT INTO " + db + ".t FORMAT JSONEachRow {\"n\": 18446744073709551615, \"s\": \"a\"}"); err != nil {
			t.Fatal(err)
		}
		rows, err := ch.QueryJSON("SELECT n, s, toInt32(-3) AS small FROM " + db + ".t")
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0]["s"] != "a" {
			t.Fatalf("rows = %v", rows)
		}
		if small, ok := rows[0]["small"].(json.Number); !ok || small.String() != "-3" {
			t.Errorf("small = %#v, want json.Number -3", rows[0]["small"])
		}
		if n := rows[0]["n"]; n != "18446744073709551615" && n != json.Number("18446744073709551615") {
			t.Errorf("n = %#v, want 18446744073709551615 exactly", n)
		}
		if rows, err := ch.QueryJSON("SELECT 1 WHERE 0"); err != nil || len(rows) != 0 {
			t.Errorf("empty result = %v, %v", rows, err)
		}
		if err := ch.Exec("SELECT * FROM no_such_table_anywhere"); err == nil {
			t.Error("query of a missing table did not fail")
		}
		if err := ch.Exec("SELECT 'a\x00'"); err == nil {
			t.Error("query with a NUL byte did not fail")
		}
	})
	ch, _ := testenv.ChDB(t)
	rows, err := ch.QueryJSON("SELECT name FROM system.databases WHERE name = " + chsql.String(db))
	if err != nil || len(rows) != 0 {
		t.Errorf("chDB database %s not dropped after its test: %v, %v", db, rows, err)
	}
}

func TestNATSRestart(t *testing.T) {
	n := testenv.StartNATS(t, natsembed.Config{})
	if n.URL == "" || n.Port == 0 || n.Dir == "" {
		t.Fatalf("NATS = %+v", n)
	}
	nc := testenv.Connect(t, n.URL)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.a", []byte("before")); err != nil {
		t.Fatal(err)
	}
	port, dir := n.Port, n.Dir
	n.Restart(t)
	if n.Port != port || n.Dir != dir {
		t.Errorf("restart moved: port %d→%d, dir %s→%s", port, n.Port, dir, n.Dir)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return nc.Status() == nats.CONNECTED }, "client did not reconnect (status %v)", nc.Status())
	testenv.Eventually(t, 10*time.Second, func() bool {
		_, err := js.Publish(ctx, "t.a", []byte("after"))
		return err == nil
	}, "publish after restart kept failing")
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("stream holds %d messages after restart, want 2 (one stored before)", info.State.Msgs)
	}
}

// fakeTB records Fatalf instead of failing the real test.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestEventually(t *testing.T) {
	calls := 0
	testenv.Eventually(t, time.Second, func() bool { calls++; return calls == 3 }, "never")
	if calls != 3 {
		t.Errorf("cond called %d times, want 3", calls)
	}

	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		testenv.Eventually(f, 50*time.Millisecond, func() bool { return false }, "waiting for %s", "godot")
	}()
	<-done
	if !strings.Contains(f.msg, "waiting for godot") || !strings.Contains(f.msg, "50ms") {
		t.Errorf("Fatalf message = %q", f.msg)
	}
}

// TestMainFailsWithoutCHDB runs this test binary again with a missing
// libchdb.so: Main must exit 1 and say how to fix it, not skip.
func TestMainFailsWithoutCHDB(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CHDB_LIB_PATH=/nonexistent/libchdb.so")
	out, err := cmd.CombinedOutput()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != 1 {
		t.Fatalf("exit = %v, want status 1; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "scripts/deps.sh") {
		t.Errorf("output does not say how to get libchdb.so:\n%s", out)
	}
}
