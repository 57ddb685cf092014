package backup_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/backup"
	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/publisher"
)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.WithClickHouse())
}

var quiet = slog.New(slog.DiscardHandler)

// source is a running local stack with the demo day loaded.
type source struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	conn   driver.Conn
	db     string
	day    demoday.Day
	report string // the day's airing report, rendered as JSON
}

// loadedStack publishes the demo day through the Go publisher (plus one
// raw message that is not an event, to be dead-lettered) to an embedded
// NATS server, runs the loader into a migrated database until it has
// acknowledged everything, and renders the day's report.
func loadedStack(t *testing.T) *source {
	t.Helper()
	ctx := t.Context()
	s := &source{day: demoday.Generate(demoday.Config{Date: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), Seed: 7})}
	n := testenv.StartNATS(t, natsembed.Config{})
	s.nc = testenv.Connect(t, n.URL)
	var err error
	if s.js, err = jetstream.New(s.nc); err != nil {
		t.Fatal(err)
	}
	if err := streams.Ensure(ctx, s.js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	s.conn, s.db = testenv.NewDatabase(t, true)

	lctx, stop := context.WithCancel(ctx)
	l, err := loader.New(s.js, s.conn, loader.Config{Database: s.db, FlushInterval: 100 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Run(lctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("loader: %v", err)
		}
	})

	pub, err := publisher.New(ctx, s.nc, publisher.Config{SpoolDir: t.TempDir(), ANIKey: []byte("backup-test-key-0123456789"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	evs := s.day.Events
	for start := 0; start < len(evs); start += 500 {
		for i, r := range pub.PublishBatch(ctx, evs[start:min(start+500, len(evs))]) {
			if r.Err != nil || r.Receipt.Status != publisher.StatusAcked {
				t.Fatalf("publish event %d: %+v", start+i, r)
			}
		}
	}
	if _, err := s.js.Publish(ctx, "drtv.v1.call_received.acd.tampa-01", []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	wantMsgs := uint64(len(evs) + 1)
	testenv.Eventually(t, 2*time.Minute, func() bool {
		c, err := s.js.Consumer(ctx, streams.DefaultEventsStream, loader.DefaultConsumer)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.AckFloor.Stream == wantMsgs && info.NumAckPending == 0
	}, "the loader acknowledged all %d messages", wantMsgs)
	if n := streamMsgs(t, s.js, streams.DefaultDLQStream); n != 1 {
		t.Fatalf("dead-letter stream holds %d messages, want 1", n)
	}
	s.report = renderReport(t, s.conn, s.db, s.day)
	if !strings.Contains(s.report, `"airings"`) {
		t.Fatalf("the source report has no airings:\n%s", s.report)
	}
	return s
}

func streamMsgs(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	st, err := js.Stream(t.Context(), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatalf("stream %s info: %v", name, err)
	}
	return info.State.Msgs
}

func renderReport(t *testing.T, conn driver.Conn, db string, d demoday.Day) string {
	t.Helper()
	res, err := report.Run(t.Context(), report.Native(conn), report.Options{
		Database: db, Filter: report.Filter{From: d.From, To: d.To}, Curves: true,
	})
	if err != nil {
		t.Fatalf("report on %s: %v", db, err)
	}
	var buf bytes.Buffer
	if err := report.Write(&buf, res, report.FormatJSON); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func countFinal(t *testing.T, conn driver.Conn, db, table string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(t.Context(), "SELECT count() FROM "+db+"."+table+" FINAL").Scan(&n); err != nil {
		t.Fatalf("count %s.%s: %v", db, table, err)
	}
	return n
}

// TestBackupRestoreGivesTheSameReport backs up a loaded local stack,
// restores the streams into a fresh NATS server (a new store folder) and
// the tables into a fresh database, and gets the identical airing report;
// a replay from the restored stream into another fresh database gives it
// too.
func TestBackupRestoreGivesTheSameReport(t *testing.T) {
	ctx := t.Context()
	src := loadedStack(t)
	dir := filepath.Join(t.TempDir(), "backup")
	// Small chunks: the snapshot and the restore go through many acknowledged chunks.
	m, err := backup.Backup(ctx, src.nc, src.conn, backup.Config{Dir: dir, Database: src.db, ChunkSize: 4 << 10, Logger: quiet})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if m.Streams[0].Bytes < 8*(4<<10) {
		t.Fatalf("events snapshot is %d bytes, want several 4 KiB chunks", m.Streams[0].Bytes)
	}
	if len(m.Streams) != 2 || m.Streams[0].Messages != uint64(len(src.day.Events)+1) || m.Streams[1].Messages != 1 {
		t.Fatalf("manifest streams = %+v, want DRTV with %d messages and DRTV_DLQ with 1", m.Streams, len(src.day.Events)+1)
	}
	if _, err := backup.Backup(ctx, src.nc, src.conn, backup.Config{Dir: dir, Database: src.db, Logger: quiet}); err == nil {
		t.Fatal("a second backup into the same folder succeeded, want a refusal")
	}

	fresh := testenv.StartNATS(t, natsembed.Config{})
	nc2 := testenv.Connect(t, fresh.URL)
	conn2, db2 := testenv.NewDatabase(t, false)
	if _, err := backup.Restore(ctx, nc2, conn2, backup.Config{Dir: dir, Database: db2, Logger: quiet}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	js2, err := jetstream.New(nc2)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{streams.DefaultEventsStream, streams.DefaultDLQStream} {
		if got, want := streamMsgs(t, js2, name), streamMsgs(t, src.js, name); got != want {
			t.Errorf("restored stream %s holds %d messages, want %d", name, got, want)
		}
	}
	c, err := js2.Consumer(ctx, streams.DefaultEventsStream, loader.DefaultConsumer)
	if err != nil {
		t.Fatalf("the loader's consumer was not restored: %v", err)
	}
	if info, err := c.Info(ctx); err != nil || info.AckFloor.Stream != uint64(len(src.day.Events)+1) {
		t.Errorf("restored loader consumer: ack floor %+v (%v), want stream sequence %d", info, err, len(src.day.Events)+1)
	}
	for _, table := range []string{"events", "dead_letters", "airings", "offers"} {
		if got, want := countFinal(t, conn2, db2, table), countFinal(t, src.conn, src.db, table); got != want || want == 0 {
			t.Errorf("restored %s holds %d rows, want %d (not 0)", table, got, want)
		}
	}
	if got := renderReport(t, conn2, db2, src.day); got != src.report {
		t.Errorf("report on the restored database differs:\n got %s\nwant %s", got, src.report)
	}

	conn3, db3 := testenv.NewDatabase(t, false)
	stats, err := loader.Replay(ctx, js2, conn3, loader.ReplayConfig{Database: db3, Logger: quiet})
	if err != nil {
		t.Fatalf("replay from the restored stream: %v", err)
	}
	if stats.Loaded != uint64(len(src.day.Events)) || stats.Invalid != 1 {
		t.Errorf("replay loaded %d and skipped %d, want %d and 1", stats.Loaded, stats.Invalid, len(src.day.Events))
	}
	if got := renderReport(t, conn3, db3, src.day); got != src.report {
		t.Errorf("report replayed from the restored stream differs:\n got %s\nwant %s", got, src.report)
	}
}

// TestRestoreRefusesDamagedBackup damages one file of a backup and
// expects Restore to refuse before it creates any stream.
func TestRestoreRefusesDamagedBackup(t *testing.T) {
	ctx := t.Context()
	src := loadedStack(t)
	dir := filepath.Join(t.TempDir(), "backup")
	m, err := backup.Backup(ctx, src.nc, src.conn, backup.Config{Dir: dir, Database: src.db, Logger: quiet})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	path := filepath.Join(dir, m.Tables[0].File)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
	fresh := testenv.StartNATS(t, natsembed.Config{})
	nc2 := testenv.Connect(t, fresh.URL)
	conn2, db2 := testenv.NewDatabase(t, false)
	_, err = backup.Restore(ctx, nc2, conn2, backup.Config{Dir: dir, Database: db2, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "is damaged") {
		t.Fatalf("restore of a damaged backup: %v, want a checksum error", err)
	}
	js2, err := jetstream.New(nc2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js2.Stream(ctx, streams.DefaultEventsStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("after a refused restore, stream lookup = %v, want not found", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  backup.Config
		want string
	}{
		{"ok with defaults", backup.Config{Dir: "b", Database: "airtally"}, ""},
		{"no folder", backup.Config{Database: "airtally"}, "Dir"},
		{"bad database", backup.Config{Dir: "b", Database: "air-tally"}, "Database"},
		{"chunk too small", backup.Config{Dir: "b", Database: "a", ChunkSize: 100}, "ChunkSize"},
		{"chunk too large", backup.Config{Dir: "b", Database: "a", ChunkSize: 2 << 20}, "ChunkSize"},
		{"nothing to restore", backup.Config{Dir: "b", Database: "a", SkipStreams: true, SkipTables: true}, "nothing"},
		{"negative batch", backup.Config{Dir: "b", Database: "a", BatchSize: -1}, "BatchSize"},
		{"same streams", backup.Config{Dir: "b", Database: "a", Streams: streams.Config{EventsStream: "X", DLQStream: "X"}}, "streams"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" && err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
