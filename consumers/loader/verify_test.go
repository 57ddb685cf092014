package loader

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/airtally/airtally/internal/chlocal"
	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/schema"
)

// insertHold is how long holdProxy holds back what a client sends after
// its INSERT: longer than the server's poll_interval (1 s, chlocal's
// profile), so that a server shutting down stops waiting for the data.
const insertHold = 3 * time.Second

// holdProxy is a TCP proxy to a ClickHouse server that, once armed, holds
// back by insertHold every chunk a client sends after a chunk naming
// marker (an INSERT's query text), on that one connection. It fires held
// once, when it starts holding the first such chunk.
type holdProxy struct {
	ln     net.Listener
	target string
	marker []byte

	mu    sync.Mutex
	armed bool
	held  chan struct{}
}

func startHoldProxy(t *testing.T, target, marker string) *holdProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{ln: ln, target: target, marker: []byte(marker)}
	t.Cleanup(func() { ln.Close() })
	go p.accept()
	return p
}

// arm makes the next connection that sends marker hold its data; the
// returned channel is closed when it starts holding.
func (p *holdProxy) arm() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed, p.held = true, make(chan struct{})
	return p.held
}

func (p *holdProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			client.Close()
			continue
		}
		go func() {
			_, _ = io.Copy(client, server)
			client.Close()
		}()
		go p.upstream(server, client)
	}
}

func (p *holdProxy) upstream(server, client net.Conn) {
	defer server.Close()
	defer client.Close()
	holding := false
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			if holding {
				p.mu.Lock()
				if p.held != nil {
					close(p.held)
					p.held = nil
				}
				p.mu.Unlock()
				time.Sleep(insertHold)
			} else if bytes.Contains(buf[:n], p.marker) {
				p.mu.Lock()
				holding, p.armed = p.armed, false
				p.mu.Unlock()
			}
			if _, werr := server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// ownClickHouse starts a ClickHouse server for one test (it is stopped
// mid-insert, which the shared one must not be) with a migrated database.
func ownClickHouse(t *testing.T) (srv *chlocal.Server, direct driver.Conn, db string) {
	t.Helper()
	srv, err := chlocal.Start(t.Context(), chlocal.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Kill() })
	db = "readback"
	direct, err = srv.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := srv.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Exec(t.Context(), "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	if _, err := schema.Migrate(t.Context(), direct, db); err != nil {
		t.Fatal(err)
	}
	return srv, direct, db
}

// stopWhenHeld stops srv (SIGTERM) once held fires, and starts it again
// after the proxy's hold has passed; it returns when the server is back.
func stopWhenHeld(t *testing.T, srv *chlocal.Server, held <-chan struct{}) {
	t.Helper()
	select {
	case <-held:
	case <-time.After(waitLong):
		t.Fatal("the insert never reached the proxy")
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("stop ClickHouse: %v", err)
	}
	time.Sleep(insertHold)
	if err := srv.Restart(ctx); err != nil {
		t.Fatalf("restart ClickHouse: %v", err)
	}
}

func countEvents(t *testing.T, conn driver.Conn, db string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(t.Context(), "SELECT count() FROM "+db+".events FINAL").Scan(&n); err != nil {
		t.Fatalf("count %s.events: %v", db, err)
	}
	return n
}

// TestInsertReadBack: ClickHouse 18.16, shut down while an INSERT's data
// is still on its way, answers the INSERT as done with no row stored. The
// first part shows that server behaviour (the test's precondition); the
// second that a loader does not acknowledge such a batch: it reads the
// batch back, finds it missing, inserts it again once the server is back,
// and every event ends up stored once.
func TestInsertReadBack(t *testing.T) {
	srv, direct, db := ownClickHouse(t)
	proxy := startHoldProxy(t, srv.Addr(), "INSERT INTO "+db+".events")
	opts := srv.Options(db)
	opts.Addr = []string{proxy.ln.Addr().String()}
	opts.ReadTimeout = waitLong
	viaProxy := openConn(t, opts)

	t.Run("server answers an unfinished insert as done", func(t *testing.T) {
		table, err := readEventsTable(t.Context(), direct, db)
		if err != nil {
			t.Fatal(err)
		}
		ins := &DirectInserter{conn: viaProxy, table: table}
		rows, err := ins.Rows(events(50, 0), 1, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		held := proxy.arm()
		sent := make(chan error, 1)
		go func() { sent <- table.insert(context.Background(), viaProxy, rows, time.Now(), nil) }()
		stopWhenHeld(t, srv, held)
		sendErr := <-sent
		if n := countEvents(t, direct, db); sendErr != nil || n != 0 {
			t.Fatalf("precondition not met: Send returned %v and %d of 50 rows are stored; this test expects ClickHouse 18.16 to answer the insert as done with none stored", sendErr, n)
		}
		// The same batch with its read-back: an error (the server gone, or the
		// rows), never nil.
		held = proxy.arm()
		go func() {
			sent <- table.insert(context.Background(), viaProxy, rows, time.Now(), eventsCheck(db, rows))
		}()
		stopWhenHeld(t, srv, held)
		if err := <-sent; err == nil {
			t.Fatalf("insert with read-back returned nil; %d of 50 rows are stored", countEvents(t, direct, db))
		} else {
			t.Logf("insert with read-back: %v", err)
		}
		if err := direct.Exec(t.Context(), "TRUNCATE TABLE "+db+".events"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("loader inserts again and acknowledges once stored", func(t *testing.T) {
		e := newEnvOn(t, direct, viaProxy, db)
		evs := events(50, 100)
		e.publish(evs...)
		held := proxy.arm()
		cfg := e.config()
		cfg.BatchSize = 50
		e.start(cfg, nil)
		stopWhenHeld(t, srv, held)
		e.waitSettled()
		if n := countEvents(t, direct, db); n != 50 {
			t.Fatalf("the consumer settled with %d of 50 acknowledged events stored", n)
		}
		var rows, ids uint64
		if err := direct.QueryRow(t.Context(), "SELECT count(), uniqExact(event_id) FROM "+db+".events FINAL").Scan(&rows, &ids); err != nil {
			t.Fatal(err)
		}
		if rows != 50 || ids != 50 {
			t.Errorf("events holds %d rows of %d ids, want 50 of 50", rows, ids)
		}
	})
}

// TestReadBackQueries runs the read-back queries of every table on a
// migrated database: a batch stored reads back whole, one not stored reads
// back as missing, and a later revision of an airing counts as stored.
func TestReadBackQueries(t *testing.T) {
	conn, db := testenv.NewDatabase(t, true)
	table, err := readEventsTable(t.Context(), conn, db)
	if err != nil {
		t.Fatal(err)
	}
	ins := &DirectInserter{conn: conn, table: table}
	stored, err := ins.Rows(events(9000, 0), 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := table.insert(t.Context(), conn, stored, time.Now(), eventsCheck(db, stored)); err != nil {
		t.Fatalf("stored batch: %v", err)
	}
	absent, err := ins.Rows(events(10, 20000), 20001, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := eventsCheck(db, append(absent, stored[:5]...)).check(t, conn); err == nil {
		t.Error("events read-back found rows never inserted")
	} else if want := "holds 5 of its 15 keys"; !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("events read-back: %v, want %q", err, want)
	}

	dead := [][]any{{uint64(7), "s", "acd", "x", "r", time.Now().UTC().Truncate(time.Second)}}
	dq := insertQuery(db, "dead_letters", deadLetterColumns)
	if err := deadLettersCheck(db, dead).check(t, conn); err == nil {
		t.Error("dead_letters read-back found a row never inserted")
	}
	if err := insertRows(t.Context(), conn, dq, dead, deadLettersCheck(db, dead)); err != nil {
		t.Errorf("dead_letters: %v", err)
	}

	cols := []string{"airing_id", "version"}
	older := [][]any{{"A-1", int64(5)}, {"A-2", int64(5)}}
	if err := versionedCheck(db, "airings", cols, []string{"airing_id"}, older).check(t, conn); err == nil {
		t.Error("airings read-back found rows never inserted")
	}
	if err := insertRows(t.Context(), conn, insertQuery(db, "airings", cols), [][]any{{"A-1", int64(9)}, {"A-2", int64(5)}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := versionedCheck(db, "airings", cols, []string{"airing_id"}, older).check(t, conn); err != nil {
		t.Errorf("airings read-back of a batch since revised: %v", err)
	}
	newer := [][]any{{"A-2", int64(6)}}
	if err := versionedCheck(db, "airings", cols, []string{"airing_id"}, newer).check(t, conn); err == nil {
		t.Error("airings read-back took an older revision for a newer one")
	}
	offerCols := []string{"offer", "media_type", "version"}
	offers := [][]any{{"glow", "tv", int64(3)}, {"glow", "", int64(3)}}
	if err := insertRows(t.Context(), conn, insertQuery(db, "offers", offerCols), [][]any{{"glow", "tv", int64(3)}}, nil); err != nil {
		t.Fatal(err)
	}
	err = versionedCheck(db, "offers", offerCols, []string{"offer", "media_type"}, offers).check(t, conn)
	if want := "holds 1 of its 2 keys"; err == nil || !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("offers read-back: %v, want %q", err, want)
	}
}

// TestReadBackQueriesOnCurrentClickHouse runs the read-back queries on
// chDB, on a database migrated there, and checks what they count.
func TestReadBackQueriesOnCurrentClickHouse(t *testing.T) {
	conn, db := testenv.NewDatabase(t, true)
	table, err := readEventsTable(t.Context(), conn, db)
	if err != nil {
		t.Fatal(err)
	}
	ch, cdb := testenv.ChDB(t)
	migs, err := schema.Migrations(cdb)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migs {
		for _, st := range m.Statements {
			if err := ch.Exec(st); err != nil {
				t.Fatalf("chDB refused:\n%s\n%v", st, err)
			}
		}
	}
	ins := &DirectInserter{conn: conn, table: table}
	rows, err := ins.Rows(events(8, 0), 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows[:6] { // two of the eight are never stored
		if err := ch.Exec(fmt.Sprintf("INSERT INTO %s.events (event_id, kind, occurred_at) VALUES ('%s', %s, toDateTime(%d))",
			cdb, r.ev.EventID, chsql.String(string(r.ev.Kind)), r.ev.OccurredAt.Unix())); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.Exec("INSERT INTO " + cdb + ".dead_letters (stream_seq) VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	if err := ch.Exec("INSERT INTO " + cdb + ".airings (airing_id, version) VALUES ('A-1', 9)"); err != nil {
		t.Fatal(err)
	}
	// chDB has no external tables: the keys go into a table of that name
	// in the session's current database, which the query names the same.
	onCHDB := func(c *storedCheck) string {
		t.Helper()
		var cols, vals []string
		for _, kc := range c.cols {
			cols = append(cols, kc.name+" "+kc.typ)
		}
		for i := range c.count {
			var lits []string
			for _, col := range c.keys {
				switch v := reflect.ValueOf(col).Index(i).Interface().(type) {
				case string:
					lits = append(lits, chsql.String(v))
				case time.Time:
					lits = append(lits, fmt.Sprintf("toDateTime(%d)", v.Unix()))
				case uuid.UUID:
					lits = append(lits, "'"+v.String()+"'")
				default:
					lits = append(lits, fmt.Sprint(v))
				}
			}
			vals = append(vals, "("+strings.Join(lits, ", ")+")")
		}
		for _, st := range []string{
			"DROP TABLE IF EXISTS " + batchKeysTable,
			"CREATE TABLE " + batchKeysTable + " (" + strings.Join(cols, ", ") + ") ENGINE = Memory",
			"INSERT INTO " + batchKeysTable + " VALUES " + strings.Join(vals, ", "),
		} {
			if err := ch.Exec(st); err != nil {
				t.Fatalf("chDB refused:\n%s\n%v", st, err)
			}
		}
		out, err := ch.QueryJSON(c.query)
		if err != nil {
			t.Fatalf("chDB refused:\n%s\n%v", c.query, err)
		}
		return fmt.Sprint(out)
	}
	if got, want := onCHDB(eventsCheck(cdb, rows)), "[map[uniqExact(kind, occurred_at, event_id):6]]"; got != want {
		t.Errorf("events read-back on chDB: %s, want %s", got, want)
	}
	if got, want := onCHDB(deadLettersCheck(cdb, [][]any{{uint64(7)}, {uint64(8)}})), "[map[uniqExact(stream_seq):1]]"; got != want {
		t.Errorf("dead_letters read-back on chDB: %s, want %s", got, want)
	}
	airingRows := [][]any{{"A-1", int64(5)}, {"A-2", int64(5)}}
	if got, want := onCHDB(versionedCheck(cdb, "airings", []string{"airing_id", "version"}, []string{"airing_id"}, airingRows)), "[map[airing_id:A-1 max(version):9]]"; got != want {
		t.Errorf("airings read-back on chDB: %s, want %s", got, want)
	}
	offerRows := [][]any{{"glow", "tv", int64(3)}}
	if got, want := onCHDB(versionedCheck(cdb, "offers", []string{"offer", "media_type", "version"}, []string{"offer", "media_type"}, offerRows)), "[]"; got != want {
		t.Errorf("offers read-back on chDB: %s, want %s", got, want)
	}
	if err := ch.Exec("DROP TABLE " + batchKeysTable); err != nil {
		t.Fatal(err)
	}
}

func openConn(t *testing.T, opts *clickhouse.Options) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// check runs c against conn.
func (c *storedCheck) check(t *testing.T, conn driver.Conn) error {
	t.Helper()
	return c.run(t.Context(), conn)
}

// BenchmarkReadBack times the read-back of one batch just inserted, of
// the loader's size (5,000) and replay's (20,000), beside the insert.
func BenchmarkReadBack(b *testing.B) {
	conn, db := testenv.NewDatabase(b, true)
	table, err := readEventsTable(b.Context(), conn, db)
	if err != nil {
		b.Fatal(err)
	}
	ins := &DirectInserter{conn: conn, table: table}
	for _, n := range []int{5000, 20000} {
		rows, err := ins.Rows(events(n, 0), 1, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("insert/%d", n), func(b *testing.B) {
			for b.Loop() {
				if err := table.insert(b.Context(), conn, rows, time.Now(), nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		check := eventsCheck(db, rows)
		b.Run(fmt.Sprintf("read-back/%d", n), func(b *testing.B) {
			for b.Loop() {
				if err := check.run(b.Context(), conn); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
