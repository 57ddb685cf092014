package schema_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/schema"
)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.WithClickHouse(), testenv.WithCHDB())
}

func TestMigrateFreshThenNothing(t *testing.T) {
	conn, db := testenv.NewDatabase(t, false)
	ctx := t.Context()
	migs, err := schema.Migrations(db)
	if err != nil {
		t.Fatal(err)
	}
	var all []int
	for _, m := range migs {
		all = append(all, m.Version)
	}

	applied, err := schema.Migrate(ctx, conn, db)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if !slices.Equal(applied, all) {
		t.Errorf("first Migrate applied %v, want %v", applied, all)
	}
	got, err := schema.Applied(ctx, conn, db)
	if err != nil || !slices.Equal(got, all) {
		t.Errorf("Applied = %v, %v; want %v", got, err, all)
	}

	rows, err := conn.Query(ctx, "SELECT version, name, checksum, applied_at FROM "+db+".schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	i := 0
	for ; rows.Next(); i++ {
		var (
			version        uint32
			name, checksum string
			appliedAt      time.Time
		)
		if err := rows.Scan(&version, &name, &checksum, &appliedAt); err != nil {
			t.Fatal(err)
		}
		m := migs[i]
		if int(version) != m.Version || name != m.Name || checksum != m.Checksum {
			t.Errorf("record %d = (%d, %s, %s), want (%d, %s, %s)", i, version, name, checksum, m.Version, m.Name, m.Checksum)
		}
		if time.Since(appliedAt) > time.Hour || appliedAt.After(time.Now().Add(time.Minute)) {
			t.Errorf("record %d applied_at = %v, want about now", i, appliedAt)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if i != len(migs) {
		t.Errorf("%d records, want %d", i, len(migs))
	}

	applied, err = schema.Migrate(ctx, conn, db)
	if err != nil || len(applied) != 0 {
		t.Errorf("second Migrate = %v, %v; want nothing applied", applied, err)
	}
}

func TestAppliedOnMissingDatabase(t *testing.T) {
	conn := testenv.Open(t, "")
	got, err := schema.Applied(t.Context(), conn, "no_such_database_here")
	if err != nil || len(got) != 0 {
		t.Errorf("Applied = %v, %v; want none", got, err)
	}
}

type column struct{ name, typ string }

var wantColumns = map[string][]column{
	"events": {
		{"event_id", "UUID"}, {"kind", "String"}, {"schema_version", "UInt8"},
		{"occurred_at", "DateTime('UTC')"}, {"occurred_at_ms", "Int64"},
		{"source_system", "String"}, {"source_instance", "String"}, {"source_seq", "UInt64"},
		{"call_id", "String"}, {"dnis", "String"}, {"ani_hash", "String"}, {"queue", "String"},
		{"site", "String"}, {"agent_id", "String"}, {"talk_seconds", "Int64"}, {"wait_seconds", "Int64"},
		{"disposition", "String"}, {"order_id", "String"}, {"offer", "String"}, {"sku", "String"},
		{"amount_cents", "Int64"}, {"currency", "String"}, {"upsell_count", "Int64"},
		{"continuity", "UInt8"}, {"payment_brand", "String"}, {"card_last4", "String"},
		{"channel", "String"}, {"promo_code", "String"}, {"vanity_url", "String"},
		{"reason", "String"}, {"interval_seconds", "Int64"}, {"stream_seq", "UInt64"},
		{"stored_at", "DateTime('UTC')"}, {"stored_at_ms", "Int64"}, {"loaded_at", "DateTime('UTC')"},
		// 0010: detections.
		{"monitored_system", "String"}, {"monitored_instance", "String"},
		{"window_start", "DateTime('UTC')"}, {"window_start_ms", "Int64"},
		{"window_end", "DateTime('UTC')"}, {"window_end_ms", "Int64"},
		{"seq_from", "UInt64"}, {"seq_to", "UInt64"}, {"tolerance_seconds", "Int64"},
		{"clock_skew_ms", "Int64"}, {"delay_ms", "Int64"}, {"event_count", "Int64"},
		{"expected_calls", "Int64"}, {"observed_calls", "Int64"}, {"outcome", "String"},
	},
	"dead_letters": {
		{"stream_seq", "UInt64"}, {"subject", "String"}, {"source_system", "String"},
		{"source_instance", "String"}, {"reason", "String"}, {"failed_at", "DateTime('UTC')"},
	},
	"schema_migrations": {
		{"version", "UInt32"}, {"name", "String"}, {"checksum", "String"}, {"applied_at", "DateTime('UTC')"},
	},
}

func TestTablesAndColumns(t *testing.T) {
	conn, db := testenv.NewDatabase(t, true)
	ctx := t.Context()
	for table, want := range wantColumns {
		t.Run(table, func(t *testing.T) {
			rows, err := conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = "+chsql.String(db)+" AND table = "+chsql.String(table)+"")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var got []column
			for rows.Next() {
				var c column
				if err := rows.Scan(&c.name, &c.typ); err != nil {
					t.Fatal(err)
				}
				got = append(got, c)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("columns of %s.%s:\n got %v\nwant %v", db, table, got, want)
			}
		})
	}
	var engineFull string
	if err := conn.QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = "+chsql.String(db)+" AND name = 'events'").Scan(&engineFull); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ReplacingMergeTree", "PARTITION BY toYYYYMM(occurred_at)", "ORDER BY (kind, occurred_at, event_id)"} {
		if !strings.Contains(engineFull, want) {
			t.Errorf("events engine %q lacks %q", engineFull, want)
		}
	}
}

func TestChangedChecksumRefused(t *testing.T) {
	conn, db := testenv.NewDatabase(t, true)
	ctx := t.Context()
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".schema_migrations (version, name, checksum, applied_at)")
	if err != nil {
		t.Fatal(err)
	}
	defer batch.Close()
	if err := batch.Append(uint32(1), "events", "0000tampered", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	applied, err := schema.Migrate(ctx, conn, db)
	if !errors.Is(err, schema.ErrChecksum) {
		t.Fatalf("Migrate = %v, %v; want ErrChecksum", applied, err)
	}
	if !strings.Contains(err.Error(), "0001_events") || !strings.Contains(err.Error(), "0000tampered") {
		t.Errorf("error does not name the migration and the recorded checksum: %v", err)
	}
}

func TestPendingMigrationApplied(t *testing.T) {
	conn, db := testenv.NewDatabase(t, true)
	ctx := t.Context()
	embedded, err := schema.Migrations(db)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for _, m := range embedded {
		body, err := migrationFile(m.Version, m.Name)
		if err != nil {
			t.Fatal(err)
		}
		fsys[fmt.Sprintf("m/%04d_%s.sql", m.Version, m.Name)] = &fstest.MapFile{Data: body}
	}
	fsys["m/9001_extra.sql"] = &fstest.MapFile{Data: []byte("-- test\nCREATE TABLE IF NOT EXISTS {{db}}.extra (n UInt8)\nENGINE = MergeTree() ORDER BY n;\n")}
	migs, err := schema.Load(fsys, "m", db)
	if err != nil {
		t.Fatal(err)
	}
	applied, err := schema.Apply(ctx, conn, db, "", migs)
	if err != nil || !slices.Equal(applied, []int{9001}) {
		t.Fatalf("Apply = %v, %v; want [9001]", applied, err)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".extra").Scan(&n); err != nil {
		t.Errorf("extra table: %v", err)
	}
	// The binary that only knows the embedded migrations tolerates the
	// newer version recorded in the database.
	if applied, err := schema.Migrate(ctx, conn, db); err != nil || len(applied) != 0 {
		t.Errorf("Migrate after a newer migration = %v, %v", applied, err)
	}
}

func TestConcurrentMigrate(t *testing.T) {
	_, db := testenv.NewDatabase(t, false)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		conn := testenv.Open(t, "")
		wg.Go(func() {
			_, errs[i] = schema.Migrate(t.Context(), conn, db)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrator %d: %v", i, err)
		}
	}
	conn := testenv.Open(t, db)
	migs, err := schema.Migrations(db)
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for _, m := range migs {
		want = append(want, m.Version)
	}
	got, err := schema.Applied(t.Context(), conn, db)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Applied = %v, %v; want %v, each once despite duplicate records", got, err, want)
	}
	if applied, err := schema.Migrate(t.Context(), conn, db); err != nil || len(applied) != 0 {
		t.Errorf("Migrate after the race = %v, %v", applied, err)
	}
}

// sampleEvent is one full events row: column names and Go values in
// table order.
func sampleEvent(id uuid.UUID) ([]string, []any) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	cols := []string{}
	vals := []any{}
	add := func(c string, v any) { cols = append(cols, c); vals = append(vals, v) }
	add("event_id", id)
	add("kind", "order.placed")
	add("schema_version", uint8(1))
	add("occurred_at", at)
	add("occurred_at_ms", at.UnixMilli()+123)
	add("source_system", "oms")
	add("source_instance", "tampa-01")
	add("source_seq", uint64(7))
	add("call_id", "c-1")
	add("dnis", "8005550100")
	add("ani_hash", "ab12")
	add("queue", "sales")
	add("site", "tampa")
	add("agent_id", "a-9")
	add("talk_seconds", int64(120))
	add("wait_seconds", int64(5))
	add("disposition", "sale")
	add("order_id", "o-1")
	add("offer", "knife-set")
	add("sku", "KS-1")
	add("amount_cents", int64(3995))
	add("currency", "USD")
	add("upsell_count", int64(1))
	add("continuity", uint8(1))
	add("payment_brand", "visa")
	add("card_last4", "4242")
	add("channel", "phone")
	add("promo_code", "TV10")
	add("vanity_url", "knives.example")
	add("reason", "")
	add("interval_seconds", int64(0))
	add("stream_seq", uint64(42))
	add("stored_at", at.Add(time.Second))
	add("stored_at_ms", at.Add(time.Second).UnixMilli())
	add("loaded_at", at.Add(2*time.Second))
	return cols, vals
}

func countFinal(t *testing.T, conn driver.Conn, table string, final bool) uint64 {
	t.Helper()
	q := "SELECT count() FROM " + table
	if final {
		q += " FINAL"
	}
	var n uint64
	if err := conn.QueryRow(t.Context(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestCopiesCollapse18 inserts copies of one event on ClickHouse 18.16
// (PrepareBatch, as the loader does): FINAL counts one row, and a merge
// leaves one row.
func TestCopiesCollapse18(t *testing.T) {
	conn, db := testenv.NewDatabase(t, true)
	ctx := t.Context()
	id := uuid.Must(uuid.NewV7())
	cols, vals := sampleEvent(id)
	insert := func(copies int) {
		t.Helper()
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".events ("+strings.Join(cols, ", ")+")")
		if err != nil {
			t.Fatal(err)
		}
		defer batch.Close()
		for range copies {
			if err := batch.Append(vals...); err != nil {
				t.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			t.Fatal(err)
		}
	}
	insert(2) // two copies in one insert
	insert(1) // and a redelivered copy in another
	if n := countFinal(t, conn, db+".events", true); n != 1 {
		t.Errorf("events FINAL = %d rows, want 1", n)
	}
	if err := conn.Exec(ctx, "OPTIMIZE TABLE "+db+".events FINAL"); err != nil {
		t.Fatal(err)
	}
	if n := countFinal(t, conn, db+".events", false); n != 1 {
		t.Errorf("events after merge = %d rows, want 1", n)
	}
	var gotID uuid.UUID
	var amount int64
	if err := conn.QueryRow(ctx, "SELECT event_id, amount_cents FROM "+db+".events FINAL").Scan(&gotID, &amount); err != nil {
		t.Fatal(err)
	}
	if gotID != id || amount != 3995 {
		t.Errorf("row = %s, %d; want %s, 3995", gotID, amount, id)
	}

	// dead_letters collapse by stream_seq.
	for range 2 {
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".dead_letters (stream_seq, subject, source_system, source_instance, reason, failed_at)")
		if err != nil {
			t.Fatal(err)
		}
		if err := batch.Append(uint64(42), "drtv.v1.order_placed.oms.tampa-01", "oms", "tampa-01", "invalid", time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := batch.Send(); err != nil {
			t.Fatal(err)
		}
	}
	if n := countFinal(t, conn, db+".dead_letters", true); n != 1 {
		t.Errorf("dead_letters FINAL = %d rows, want 1", n)
	}
}

// TestMigrationsOnCurrentClickHouse runs every statement (bootstrap and
// migrations) on chDB, then checks that copies of one event collapse.
func TestMigrationsOnCurrentClickHouse(t *testing.T) {
	ch, db := testenv.ChDB(t)
	ident, err := chsql.Ident(db)
	if err != nil {
		t.Fatal(err)
	}
	migs, err := schema.Migrations(db)
	if err != nil {
		t.Fatal(err)
	}
	stmts := schema.Bootstrap(ident)
	for _, m := range migs {
		stmts = append(stmts, m.Statements...)
	}
	for _, s := range stmts {
		if err := ch.Exec(s); err != nil {
			t.Fatalf("chDB refused:\n%s\n%v", s, err)
		}
	}
	for table, want := range wantColumns {
		rows, err := ch.QueryJSON("SELECT name, type FROM system.columns WHERE database = " + chsql.String(db) + " AND table = " + chsql.String(table) + "")
		if err != nil {
			t.Fatal(err)
		}
		var got []column
		for _, r := range rows {
			got = append(got, column{r["name"].(string), r["type"].(string)})
		}
		if !slices.Equal(got, want) {
			t.Errorf("chDB columns of %s:\n got %v\nwant %v", table, got, want)
		}
	}

	id := uuid.Must(uuid.NewV7())
	row := jsonRow(sampleEvent(id))
	if err := ch.Exec("INSERT INTO " + ident + ".events FORMAT JSONEachRow " + row + "\n" + row); err != nil {
		t.Fatalf("insert: %v", err)
	}
	rows, err := ch.QueryJSON("SELECT count() AS n FROM " + ident + ".events FINAL")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || fmt.Sprint(rows[0]["n"]) != "1" {
		t.Errorf("events FINAL on chDB = %v, want n=1", rows)
	}
	other := jsonRow(sampleEvent(uuid.Must(uuid.NewV7())))
	if err := ch.Exec("INSERT INTO " + ident + ".events FORMAT JSONEachRow " + other + "\n" + row); err != nil {
		t.Fatalf("insert: %v", err)
	}
	rows, err = ch.QueryJSON("SELECT count() AS n FROM " + ident + ".events FINAL")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || fmt.Sprint(rows[0]["n"]) != "2" {
		t.Errorf("events FINAL on chDB after a second event = %v, want n=2", rows)
	}
}

// jsonRow renders a row as one JSONEachRow line.
func jsonRow(cols []string, vals []any) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, c := range cols {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:", c)
		switch v := vals[i].(type) {
		case string:
			fmt.Fprintf(&b, "%q", v)
		case uuid.UUID:
			fmt.Fprintf(&b, "%q", v.String())
		case time.Time:
			fmt.Fprintf(&b, "%q", v.UTC().Format(time.DateTime))
		default:
			fmt.Fprintf(&b, "%d", v)
		}
	}
	b.WriteByte('}')
	return b.String()
}

func TestMigrateRejectsBadDatabaseName(t *testing.T) {
	conn := testenv.Open(t, "")
	for _, db := range []string{"", "a-b", "x; DROP DATABASE default", "`x`"} {
		if _, err := schema.Migrate(context.Background(), conn, db); !errors.Is(err, chsql.ErrIdent) {
			t.Errorf("Migrate(%q) = %v, want ErrIdent", db, err)
		}
	}
}

// migrationFile reads a migration as shipped (go test runs in the
// package's folder).
func migrationFile(version int, name string) ([]byte, error) {
	return os.ReadFile(fmt.Sprintf("migrations/%04d_%s.sql", version, name))
}
