package loader

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
)

// TestLoadsEveryEventOnceWithEveryField: N events become exactly N rows,
// each column as the event and its message had it (amounts, times to the
// millisecond, source and stream sequences, storage time).
func TestLoadsEveryEventOnceWithEveryField(t *testing.T) {
	e := newEnv(t)
	evs := events(403, 0)
	seqs := e.publish(evs...)
	start := time.Now().UTC().Truncate(time.Second)

	r := e.start(e.config(), nil)
	e.waitCount(e.db, uint64(len(evs)))
	e.waitSettled()

	got := e.rows(e.db)
	want := make([]row, len(evs))
	for i, ev := range evs {
		want[i] = e.wantRow(ev, seqs[i])
	}
	sortRows(want)
	for i := range got {
		if got[i].LoadedAt.Before(start) || got[i].LoadedAt.After(time.Now().Add(time.Second)) {
			t.Fatalf("row %d loaded_at %s is not the load time", i, got[i].LoadedAt)
		}
		got[i].LoadedAt = time.Time{}
	}
	diffRows(t, got, want)

	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := r.metric("airtally_loader_events_loaded_total"); n != float64(len(evs)) {
		t.Errorf("events loaded metric = %v, want %d", n, len(evs))
	}
	if n := r.metric("airtally_loader_batches_total"); n < 1 || n != r.metric("airtally_loader_batch_size") {
		t.Errorf("batches = %v, batch size observations = %v", n, r.metric("airtally_loader_batch_size"))
	}
	if n := r.metric("airtally_loader_insert_errors_total"); n != 0 {
		t.Errorf("insert errors = %v, want 0", n)
	}
}

// TestDuplicateAfterDedupWindowCountedOnce: a producer that replays after
// JetStream's duplicate window stores the same event twice (different
// Nats-Msg-Id); the table still counts it once.
func TestDuplicateAfterDedupWindowCountedOnce(t *testing.T) {
	e := newEnv(t)
	evs := events(10, 0)
	e.publish(evs...)
	data, err := evs[3].Encode()
	if err != nil {
		t.Fatal(err)
	}
	e.publishRaw(evs[3].Subject(e.streams.SubjectPrefix), data, "replayed-after-window")
	e.publishRaw(evs[5].Subject(e.streams.SubjectPrefix), mustEncode(t, evs[5]), "another-copy")
	if info := streamInfo(t, e); info.State.Msgs != 12 {
		t.Fatalf("stream holds %d messages, want 12 (two copies stored)", info.State.Msgs)
	}

	e.start(e.config(), nil)
	e.waitSettled()
	e.waitCount(e.db, 10)
	var raw uint64
	if err := e.conn.QueryRow(ctx(t), "SELECT count() FROM "+e.db+".events").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	t.Logf("rows before merging: %d, with FINAL: 10", raw)
}

// TestKilledAfterInsertBeforeAck: a loader that dies after its insert and
// before its acks leaves the batch unacknowledged; a new instance gets the
// redelivery, inserts it again, and the table still counts N.
func TestKilledAfterInsertBeforeAck(t *testing.T) {
	e := newEnv(t)
	evs := events(250, 0)
	e.publish(evs...)

	errKilled := errors.New("killed between insert and ack")
	cfg := e.config()
	cfg.FlushInterval = 300 * time.Millisecond // one batch of all 250
	first := e.start(cfg, func() error { return errKilled })
	if err := first.wait(t); !errors.Is(err, errKilled) {
		t.Fatalf("Run = %v, want the hook's error", err)
	}
	e.waitCount(e.db, 250) // the insert did happen
	if info := e.consumer(); info.NumAckPending != 250 || info.AckFloor.Stream != 0 {
		t.Fatalf("after the kill: ack pending %d, ack floor %d; want 250 and 0 (nothing acked)",
			info.NumAckPending, info.AckFloor.Stream)
	}

	second := e.start(e.config(), nil)
	e.waitSettled()
	e.waitCount(e.db, 250)
	if n := second.metric("airtally_loader_redeliveries_total"); n != 250 {
		t.Fatalf("second loader saw %v redeliveries, want 250", n)
	}
}

// TestClickHouseOutage: with ClickHouse stopped mid-load the loader holds
// one batch, retries it with InProgress keeping it from redelivery, acks
// nothing, and catches up when ClickHouse is back.
func TestClickHouseOutage(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.BatchSize = 100
	cfg.FlushInterval = 200 * time.Millisecond
	r := e.start(cfg, nil)

	e.publish(events(120, 0)...)
	e.waitCount(e.db, 120)
	e.waitSettled()
	floor := e.consumer().AckFloor.Stream

	ch := testenv.ClickHouse()
	if err := ch.Stop(ctx(t)); err != nil {
		t.Fatalf("stop clickhouse: %v", err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = ch.Restart(context.Background())
		}
	})
	e.publish(events(250, 120)...)

	// Watch for three AckWaits: nothing is acknowledged, at most two batches
	// are held (the one being inserted and the next one, already fetched),
	// and InProgress keeps them from being redelivered.
	testenv.Eventually(t, waitLong, func() bool { return r.metric("airtally_loader_insert_errors_total") >= 3 },
		"no failed inserts while ClickHouse is down")
	for end := time.Now().Add(3 * cfg.AckWait); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		info := e.consumer()
		if info.AckFloor.Stream != floor {
			t.Fatalf("ack floor moved from %d to %d while ClickHouse was down", floor, info.AckFloor.Stream)
		}
		if info.NumAckPending == 0 || info.NumAckPending > 2*cfg.BatchSize || info.NumAckPending+int(info.NumPending) != 250 {
			t.Fatalf("while down: ack pending %d, pending %d; want at most two batches (1..%d) held and the rest pending",
				info.NumAckPending, info.NumPending, 2*cfg.BatchSize)
		}
		if info.NumRedelivered != 0 {
			t.Fatalf("%d messages redelivered while ClickHouse was down: InProgress did not keep them", info.NumRedelivered)
		}
	}

	if err := ch.Restart(ctx(t)); err != nil {
		t.Fatalf("restart clickhouse: %v", err)
	}
	restarted = true
	e.waitCount(e.db, 370)
	e.waitSettled()
	if n := r.metric("airtally_loader_redeliveries_total"); n != 0 {
		t.Errorf("%v redeliveries, want 0", n)
	}
}

// TestDeadLetters: invalid events, a mismatched subject and a card number
// in one field, mixed with good events. The good ones are loaded; each bad
// one is in the dead-letter stream with its reason and in dead_letters; the
// card number is nowhere: not in the events stream (the original is
// securely deleted), the dead letter, ClickHouse or the logs.
func TestDeadLetters(t *testing.T) {
	const (
		pan     = "4111111111111111"
		rawANI  = "8135550199"
		typoVal = "not-a-number"
	)
	e := newEnv(t)
	good := events(40, 0)
	e.publish(good[:20]...)

	bad := events(4, 100)
	var badSeqs []uint64
	// A card number in one field.
	badSeqs = append(badSeqs, e.publishRaw(bad[0].Subject(e.streams.SubjectPrefix), withField(t, bad[0], "promo_code", pan), bad[0].EventID.String()))
	// A raw caller number (must be hashed) and a mistyped field.
	m := withField(t, bad[1], "ani", rawANI)
	badSeqs = append(badSeqs, e.publishRaw(bad[1].Subject(e.streams.SubjectPrefix), m, bad[1].EventID.String()))
	badSeqs = append(badSeqs, e.publishRaw(bad[2].Subject(e.streams.SubjectPrefix), withField(t, bad[2], "talk_seconds", typoVal), bad[2].EventID.String()))
	// Not JSON.
	badSeqs = append(badSeqs, e.publishRaw(e.streams.SubjectPrefix+".call_received.acd.tampa-01", []byte("{garbage"), "garbage"))
	// A valid event on another source's subject.
	badSeqs = append(badSeqs, e.publishRaw(e.streams.SubjectPrefix+".call_received.acd.other-02", mustEncode(t, bad[3]), bad[3].EventID.String()))
	e.publish(good[20:]...)

	r := e.start(e.config(), nil)
	e.waitCount(e.db, 40)
	e.waitSettled()

	// The dead-letter stream: one per bad message, reason in headers.
	dlq := readStream(t, e, e.streams.DLQStream)
	if len(dlq) != len(badSeqs) {
		t.Fatalf("dead-letter stream holds %d messages, want %d", len(dlq), len(badSeqs))
	}
	wantReason := map[uint64]string{badSeqs[0]: "promo_code: looks like a payment card number", badSeqs[1]: "ani: ",
		badSeqs[2]: "talk_seconds: must be a whole number", badSeqs[3]: "must be a JSON object", badSeqs[4]: "subject: does not match"}
	for i, msg := range dlq {
		seq := badSeqs[i]
		h := msg.Header
		if h.Get("Airtally-Dlq-Stream-Seq") != jsonNum(seq) {
			t.Errorf("dead letter %d: stream seq header %q, want %d", i, h.Get("Airtally-Dlq-Stream-Seq"), seq)
		}
		if !strings.Contains(h.Get("Airtally-Dlq-Reason"), wantReason[seq]) {
			t.Errorf("dead letter %d: reason %q, want it to contain %q", i, h.Get("Airtally-Dlq-Reason"), wantReason[seq])
		}
		if h.Get("Airtally-Dlq-Subject") == "" || msg.Subject != "drtv.dlq."+h.Get("Airtally-Dlq-Subject") {
			t.Errorf("dead letter %d: subject %q, subject header %q", i, msg.Subject, h.Get("Airtally-Dlq-Subject"))
		}
	}
	if !strings.Contains(string(dlq[0].Data), `"promo_code":"XXXXXXXXXXXXXXXX"`) {
		t.Errorf("the card dead letter does not carry the masked payload: %d bytes", len(dlq[0].Data))
	}

	// dead_letters rows, no payload.
	type deadRow struct {
		StreamSeq uint64 `ch:"stream_seq"`
		Subject   string `ch:"subject"`
		System    string `ch:"source_system"`
		Instance  string `ch:"source_instance"`
		Reason    string `ch:"reason"`
	}
	var dead []deadRow
	if err := e.conn.Select(ctx(t), &dead, "SELECT stream_seq, subject, source_system, source_instance, reason FROM "+e.db+".dead_letters FINAL ORDER BY stream_seq"); err != nil {
		t.Fatal(err)
	}
	if len(dead) != len(badSeqs) {
		t.Fatalf("dead_letters holds %d rows, want %d", len(dead), len(badSeqs))
	}
	for i, d := range dead {
		if d.StreamSeq != badSeqs[i] || !strings.Contains(d.Reason, wantReason[d.StreamSeq]) || d.System != "acd" {
			t.Errorf("dead_letters row %d = %+v", i, d)
		}
	}
	if dead[4].Instance != "other-02" {
		t.Errorf("dead_letters source instance %q, want other-02", dead[4].Instance)
	}
	for class, n := range map[string]float64{classCardNumber: 1, classInvalid: 3, classSubject: 1} {
		if got := r.metric("airtally_loader_dead_letters_total", "reason", class); got != n {
			t.Errorf("dead letters with reason %s = %v, want %v", class, got, n)
		}
	}
	if n := r.metric("airtally_loader_dead_letters_total"); n != float64(len(badSeqs)) {
		t.Errorf("dead letters metric = %v, want %d", n, len(badSeqs))
	}

	// The card number is nowhere.
	stream, err := e.js.Stream(ctx(t), e.streams.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.GetMsg(ctx(t), badSeqs[0]); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("the original holding a card number is still in the events stream (err %v)", err)
	}
	for _, msg := range readStream(t, e, e.streams.EventsStream) {
		if strings.Contains(string(msg.Data), pan) {
			t.Errorf("events stream seq %d holds the card number", msg.Sequence)
		}
	}
	for _, msg := range dlq {
		if strings.Contains(string(msg.Data), pan) || strings.Contains(msg.Subject, pan) || strings.Contains(headerText(msg.Header), pan) {
			t.Errorf("dead letter of seq %s holds the card number", msg.Header.Get("Airtally-Dlq-Stream-Seq"))
		}
	}
	for _, table := range []string{"events", "dead_letters"} {
		if n := countContaining(t, e, table, pan); n != 0 {
			t.Errorf("%d rows of %s hold the card number", n, table)
		}
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "dead-lettered") {
		t.Fatalf("no dead letter logged:\n%s", logs)
	}
	for _, secret := range []string{pan, rawANI, typoVal} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold the value %q", secret)
		}
	}
	// The rest of the events stream is untouched.
	if info := streamInfo(t, e); info.State.Msgs != uint64(len(good)+len(badSeqs)-1) {
		t.Errorf("events stream holds %d messages, want %d", info.State.Msgs, len(good)+len(badSeqs)-1)
	}
}

// TestTwoLoadersShareTheConsumer: two instances on one durable consumer
// load N events exactly once in the results.
func TestTwoLoadersShareTheConsumer(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.BatchSize = 50
	a := e.start(cfg, nil)
	b := e.start(cfg, nil)

	var wg sync.WaitGroup
	for p := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				if _, err := e.tryPublish(events(100, uint64(p*1000+i*100))...); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	e.waitCount(e.db, 2000)
	e.waitSettled()
	na, nb := a.metric("airtally_loader_events_loaded_total"), b.metric("airtally_loader_events_loaded_total")
	t.Logf("loader a inserted %v rows, loader b %v", na, nb)
	if na+nb < 2000 {
		t.Fatalf("the loaders inserted %v rows in all, want at least 2000", na+nb)
	}
}

// TestReplayEqualsLive: replaying the stream into a fresh database gives
// the very rows live loading gave (every column but loaded_at), skipping
// the invalid messages, and touches neither the live database nor the
// durable consumer.
func TestReplayEqualsLive(t *testing.T) {
	e := newEnv(t)
	evs := events(300, 0)
	e.publish(evs[:150]...)
	e.publishRaw(e.streams.SubjectPrefix+".heartbeat.acd.tampa-01", []byte(`{"kind":"heartbeat"}`), "invalid-1")
	e.publishRaw(evs[7].Subject(e.streams.SubjectPrefix), mustEncode(t, evs[7]), "late-copy")
	e.publish(evs[150:]...)

	e.start(e.config(), nil)
	e.waitCount(e.db, 300)
	e.waitSettled()
	before := e.consumer()

	_, fresh := testenv.NewDatabase(t, false)
	stats, err := Replay(ctx(t), e.js, e.conn, ReplayConfig{Database: fresh, BatchSize: 64, Logger: e.config().Logger})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if stats.LastSeq != 302 || stats.Messages != 302 || stats.Loaded != 301 || stats.Invalid != 1 || stats.Batches != 5 {
		t.Fatalf("replay stats %+v; want last seq 302, 302 messages, 301 loaded, 1 invalid, 5 batches", stats)
	}
	if n := e.count(fresh); n != 300 {
		t.Fatalf("replayed table counts %d events, want 300", n)
	}
	live, replayed := e.rows(e.db), e.rows(fresh)
	for i := range live {
		live[i].LoadedAt = time.Time{}
	}
	for i := range replayed {
		replayed[i].LoadedAt = time.Time{}
	}
	diffRows(t, replayed, live)

	after := e.consumer()
	if after.Delivered.Stream != before.Delivered.Stream || after.AckFloor.Stream != before.AckFloor.Stream || after.NumAckPending != 0 {
		t.Errorf("replay moved the durable consumer: delivered %d → %d, ack floor %d → %d",
			before.Delivered.Stream, after.Delivered.Stream, before.AckFloor.Stream, after.AckFloor.Stream)
	}
	if n := e.count(e.db); n != 300 {
		t.Errorf("live database counts %d after the replay, want 300", n)
	}
}

// TestGracefulShutdownThenRestart: cancelling Run mid-stream stops
// fetching, finishes the batch in flight (nothing left unacknowledged), and
// a new loader picks up where it stopped: N in the end.
func TestGracefulShutdownThenRestart(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.BatchSize = 40
	first := e.start(cfg, nil)

	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := range 30 {
			if _, err := e.tryPublish(events(20, uint64(i*20))...); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(10 * time.Millisecond) // a producer's pace, not synchronisation
		}
	}()
	testenv.Eventually(t, waitLong, func() bool { return e.count(e.db) >= 100 }, "the first loader loaded nothing")
	if err := first.stop(t); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	testenv.Eventually(t, waitLong, func() bool { return e.consumer().NumAckPending == 0 },
		"the stopped loader left messages unacknowledged")
	select {
	case <-published:
		t.Log("the producer had finished before the loader stopped")
	default:
		t.Logf("stopped mid-stream with %d events loaded", e.count(e.db))
	}
	<-published

	e.start(cfg, nil)
	e.waitCount(e.db, 600)
	e.waitSettled()
}

// TestShutdownWithClickHouseDownNeverAcks: a batch that cannot be inserted
// within ShutdownTimeout is abandoned unacknowledged and loaded by the next
// loader once ClickHouse is back.
func TestShutdownWithClickHouseDownNeverAcks(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.ShutdownTimeout = 300 * time.Millisecond
	cfg.AckWait = 5 * time.Minute // a redelivery within the test comes from the abandon, not AckWait
	r := e.start(cfg, nil)
	e.waitStarted()

	ch := testenv.ClickHouse()
	if err := ch.Stop(ctx(t)); err != nil {
		t.Fatalf("stop clickhouse: %v", err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = ch.Restart(context.Background())
		}
	})
	e.publish(events(30, 0)...)
	testenv.Eventually(t, waitLong, func() bool { return r.metric("airtally_loader_insert_errors_total") >= 2 },
		"no failed inserts while ClickHouse is down")
	if err := r.stop(t); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if info := e.consumer(); info.AckFloor.Stream != 0 {
		t.Fatalf("ack floor %d after a shutdown with ClickHouse down; nothing may be acked", info.AckFloor.Stream)
	}

	if err := ch.Restart(ctx(t)); err != nil {
		t.Fatalf("restart clickhouse: %v", err)
	}
	restarted = true
	e.start(cfg, nil)
	e.waitCount(e.db, 30)
	e.waitSettled()
}

func mustEncode(t testing.TB, ev *event.Event) []byte {
	t.Helper()
	b, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withField encodes ev with field set to value (as a JSON string, or as
// raw JSON when value is valid JSON that is not a plain string).
func withField(t testing.TB, ev *event.Event, field, value string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(mustEncode(t, ev), &m); err != nil {
		t.Fatal(err)
	}
	m[field] = value
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jsonNum(n uint64) string { b, _ := json.Marshal(n); return string(b) }

func streamInfo(t testing.TB, e *env) *jetstream.StreamInfo {
	t.Helper()
	s, err := e.js.Stream(ctx(t), e.streams.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// readStream returns every message stored in stream, in order.
func readStream(t testing.TB, e *env, name string) []*jetstream.RawStreamMsg {
	t.Helper()
	s, err := e.js.Stream(ctx(t), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		msg, err := s.GetMsg(ctx(t), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, msg)
	}
	return out
}

func headerText(h map[string][]string) string {
	var b strings.Builder
	for k, vs := range h {
		b.WriteString(k + ":" + strings.Join(vs, ",") + "\n")
	}
	return b.String()
}

// countContaining counts the rows of db.table with s in any String column.
func countContaining(t testing.TB, e *env, table, s string) uint64 {
	t.Helper()
	var cols []string
	rows, err := e.conn.Query(ctx(t), "SELECT name FROM system.columns WHERE database = ? AND table = ? AND type = 'String'", e.db, table)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, "position("+c+", '"+s+"') > 0")
	}
	rows.Close()
	if len(cols) == 0 {
		t.Fatalf("%s.%s has no String column", e.db, table)
	}
	var n uint64
	q := "SELECT count() FROM " + e.db + "." + table + " WHERE " + strings.Join(cols, " OR ")
	if err := e.conn.QueryRow(ctx(t), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestConsumerDeletedIsRecreated: a loader whose durable consumer is
// deleted under it creates it again and goes on loading; the events
// delivered again collapse.
func TestConsumerDeletedIsRecreated(t *testing.T) {
	e := newEnv(t)
	e.start(e.config(), nil)
	e.publish(events(10, 0)...)
	e.waitCount(e.db, 10)
	if err := e.js.DeleteConsumer(ctx(t), e.streams.EventsStream, DefaultConsumer); err != nil {
		t.Fatal(err)
	}
	e.publish(events(10, 10)...)
	e.waitCount(e.db, 20)
	e.waitSettled()
}

// TestNATSRestart: the loader's fetches resume after NATS restarts (one
// request per fetch, no long-lived subscription to lose), and everything
// stored before and after is loaded.
func TestNATSRestart(t *testing.T) {
	e := newEnv(t)
	e.start(e.config(), nil)
	e.publish(events(50, 0)...)
	e.waitCount(e.db, 50)

	e.nats.Restart(t)
	testenv.Eventually(t, waitLong, func() bool {
		_, err := e.tryPublish(events(50, 50)...)
		return err == nil
	}, "cannot publish after the NATS restart")
	e.waitCount(e.db, 100)
	e.waitSettled()
}

// TestRunRefusesAnUnmigratedDatabase: a loader pointed at a database
// without the events table fails at once with ErrSchema instead of
// consuming anything.
func TestRunRefusesAnUnmigratedDatabase(t *testing.T) {
	e := newEnv(t)
	_, bare := testenv.NewDatabase(t, false)
	cfg := e.config()
	cfg.Database = bare
	r := e.start(cfg, nil)
	if err := r.wait(t); !errors.Is(err, ErrSchema) {
		t.Fatalf("Run = %v, want ErrSchema", err)
	}
	if _, err := e.consumerInfo(); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("the consumer exists (err %v): the loader went on", err)
	}
}
