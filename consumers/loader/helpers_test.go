package loader

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
)

func TestMain(m *testing.M) { testenv.Main(m, testenv.WithClickHouse(), testenv.WithCHDB()) }

const waitLong = 60 * time.Second

// env is one test's servers: an embedded NATS with the streams, a fresh
// migrated ClickHouse database, and a log buffer every loader writes to.
type env struct {
	t    testing.TB
	nats *testenv.NATS
	js   jetstream.JetStream
	conn driver.Conn
	// loaderConn, when set, is the loaders' connection (conn is then the
	// test's own, e.g. past a fault proxy).
	loaderConn driver.Conn
	db         string
	streams    streams.Config
	logs       *logBuffer
}

func newEnv(t testing.TB) *env {
	t.Helper()
	conn, db := testenv.NewDatabase(t, true)
	return newEnvOn(t, conn, nil, db)
}

// newEnvOn is newEnv on a given database: conn is the test's connection,
// loaderConn (nil: conn) the loaders'.
func newEnvOn(t testing.TB, conn, loaderConn driver.Conn, db string) *env {
	t.Helper()
	e := &env{t: t, logs: &logBuffer{}, conn: conn, loaderConn: loaderConn, db: db}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("LOADER_TEST_LOGS") != "" {
			t.Logf("loader logs:\n%s", e.logs)
		}
	})
	e.nats = testenv.StartNATS(t, natsembed.Config{})
	e.js = newJS(t, e.nats.URL)
	if err := streams.Ensure(ctx(t), e.js, e.streams); err != nil {
		t.Fatal(err)
	}
	e.streams = e.streams.WithDefaults()
	return e
}

func newJS(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(testenv.Connect(t, url))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitLong)
	t.Cleanup(cancel)
	return c
}

// config is a loader configuration quick enough for tests.
func (e *env) config() Config {
	return Config{
		Database:      e.db,
		FlushInterval: 50 * time.Millisecond,
		AckWait:       2 * time.Second,
		BackoffMin:    20 * time.Millisecond,
		BackoffMax:    200 * time.Millisecond,
		LagInterval:   100 * time.Millisecond,
		Logger:        slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// running is a loader running in the background.
type running struct {
	l      *Loader
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	err    error
	exited bool
}

// start runs a loader with cfg (its own metrics registry and, when js is
// nil, its own NATS connection) until the test ends or stop is called.
func (e *env) start(cfg Config, hook func() error) *running {
	e.t.Helper()
	r := &running{reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	cfg.Registerer = r.reg
	l, err := New(newJS(e.t, e.nats.URL), cmp.Or(e.loaderConn, e.conn), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	l.afterInsert = hook
	r.l = l
	c, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- l.Run(c) }()
	e.t.Cleanup(func() { r.stop(e.t) })
	return r
}

// stop cancels the loader and waits for Run to return; it returns Run's
// error.
func (r *running) stop(t testing.TB) error {
	t.Helper()
	r.cancel()
	return r.wait(t)
}

// wait waits for Run to return by itself.
func (r *running) wait(t testing.TB) error {
	t.Helper()
	if r.exited {
		return r.err
	}
	select {
	case r.err = <-r.done:
		r.exited = true
	case <-time.After(waitLong):
		t.Fatalf("loader did not return within %s", waitLong)
	}
	return r.err
}

// metric sums the samples of the metric family name whose labels include
// labels (counter and gauge values, histogram counts).
func (r *running) metric(name string, labels ...string) float64 {
	families, err := r.reg.Gather()
	if err != nil {
		panic(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// logBuffer collects the components' raw log output.
type logBuffer = testenv.LogBuffer

var (
	testSource = event.Source{System: "acd", Instance: "tampa-01"}
	testEpoch  = time.Date(2026, 11, 25, 20, 0, 0, 123e6, time.UTC)
)

// events makes n valid events of mixed kinds from testSource, with source
// sequences from seq0+1 and times 1.017 s apart (milliseconds that matter).
func events(n int, seq0 uint64) []*event.Event {
	out := make([]*event.Event, n)
	for i := range out {
		at := testEpoch.Add(time.Duration(int(seq0)+i) * 1017 * time.Millisecond)
		src := testSource
		src.Seq = seq0 + uint64(i) + 1
		var e *event.Event
		switch i % 4 {
		case 0:
			e = event.New(event.CallReceived, src, at)
			e.CallID, e.DNIS, e.Queue, e.Site = fmt.Sprintf("c-%d", i), "8005550100", "sales", "tampa"
			e.ANIHash = event.HashANI([]byte("test-key"), fmt.Sprintf("813555%04d", i))
		case 1:
			e = event.New(event.CallEnded, src, at)
			e.CallID, e.DNIS, e.AgentID, e.Disposition = fmt.Sprintf("c-%d", i), "8005550100", "agent-7", "sale"
			e.TalkSeconds, e.WaitSeconds = int64(60+i), int64(i%30)
		case 2:
			e = event.New(event.OrderPlaced, src, at)
			e.OrderID, e.Offer, e.SKU, e.Currency, e.Channel = fmt.Sprintf("o-%d", i), "widget", "W-1", "USD", event.ChannelPhone
			e.AmountCents, e.UpsellCount, e.Continuity = int64(1999+i), int64(i%3), i%8 == 2
			e.PaymentBrand, e.CardLast4, e.PromoCode, e.VanityURL = "visa", "1111", "TV25", "widget.example/tv"
		default:
			e = event.New(event.Heartbeat, src, at)
			e.IntervalSeconds = 60
		}
		out[i] = e
	}
	return out
}

// publish publishes events with Nats-Msg-Id = event id and returns their
// stream sequences.
func (e *env) publish(evs ...*event.Event) []uint64 {
	e.t.Helper()
	seqs, err := e.tryPublish(evs...)
	if err != nil {
		e.t.Fatal(err)
	}
	return seqs
}

// tryPublish is publish for goroutines other than the test's.
func (e *env) tryPublish(evs ...*event.Event) ([]uint64, error) {
	seqs := make([]uint64, len(evs))
	for i, ev := range evs {
		data, err := ev.Encode()
		if err != nil {
			return nil, err
		}
		if seqs[i], err = e.tryPublishRaw(ev.Subject(e.streams.SubjectPrefix), data, ev.EventID.String()); err != nil {
			return nil, err
		}
	}
	return seqs, nil
}

// publishRaw publishes data on subject with the given Nats-Msg-Id.
func (e *env) publishRaw(subject string, data []byte, msgID string) uint64 {
	e.t.Helper()
	seq, err := e.tryPublishRaw(subject, data, msgID)
	if err != nil {
		e.t.Fatal(err)
	}
	return seq
}

func (e *env) tryPublishRaw(subject string, data []byte, msgID string) (uint64, error) {
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, msgID)
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := e.js.PublishMsg(c, msg)
	if err != nil {
		return 0, fmt.Errorf("publish on %s: %w", subject, err)
	}
	return ack.Sequence, nil
}

// count is the number of events in the events table, read with FINAL.
func (e *env) count(db string) uint64 {
	e.t.Helper()
	var n uint64
	if err := e.conn.QueryRow(ctx(e.t), "SELECT count() FROM "+db+".events FINAL").Scan(&n); err != nil {
		e.t.Fatalf("count %s.events: %v", db, err)
	}
	return n
}

// waitCount waits until db.events holds n events (FINAL) and fails if it
// ever holds more.
func (e *env) waitCount(db string, n uint64) {
	e.t.Helper()
	var got uint64
	testenv.Eventually(e.t, waitLong, func() bool {
		got = e.count(db)
		if got > n {
			e.t.Fatalf("%s.events holds %d events, want %d", db, got, n)
		}
		return got == n
	}, "%s.events holds %v events, want %d", db, lazy(func() any { return got }), n)
}

// lazy formats as the value f returns when the message is printed.
type lazy func() any

func (f lazy) String() string { return fmt.Sprint(f()) }

// consumer is the durable consumer's state.
func (e *env) consumer() *jetstream.ConsumerInfo {
	e.t.Helper()
	info, err := e.consumerInfo()
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

func (e *env) consumerInfo() (*jetstream.ConsumerInfo, error) {
	c, err := e.js.Consumer(ctx(e.t), e.streams.EventsStream, DefaultConsumer)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx(e.t))
}

// waitStarted waits until a loader has created the durable consumer (it
// has read the events table by then).
func (e *env) waitStarted() {
	e.t.Helper()
	testenv.Eventually(e.t, waitLong, func() bool {
		_, err := e.consumerInfo()
		return err == nil
	}, "no loader created the consumer")
}

// waitSettled waits until the durable consumer has nothing pending or
// unacknowledged.
func (e *env) waitSettled() {
	e.t.Helper()
	var info *jetstream.ConsumerInfo
	testenv.Eventually(e.t, waitLong, func() bool {
		var err error
		info, err = e.consumerInfo()
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, "consumer not settled: %v", lazy(func() any {
		if info == nil {
			return "no consumer"
		}
		return fmt.Sprintf("pending %d, ack pending %d", info.NumPending, info.NumAckPending)
	}))
}

// row is one row of the events table, every column.
type row struct {
	EventID         uuid.UUID `ch:"event_id"`
	Kind            string    `ch:"kind"`
	SchemaVersion   uint8     `ch:"schema_version"`
	OccurredAt      time.Time `ch:"occurred_at"`
	OccurredAtMs    int64     `ch:"occurred_at_ms"`
	SourceSystem    string    `ch:"source_system"`
	SourceInstance  string    `ch:"source_instance"`
	SourceSeq       uint64    `ch:"source_seq"`
	CallID          string    `ch:"call_id"`
	DNIS            string    `ch:"dnis"`
	ANIHash         string    `ch:"ani_hash"`
	Queue           string    `ch:"queue"`
	Site            string    `ch:"site"`
	AgentID         string    `ch:"agent_id"`
	TalkSeconds     int64     `ch:"talk_seconds"`
	WaitSeconds     int64     `ch:"wait_seconds"`
	Disposition     string    `ch:"disposition"`
	OrderID         string    `ch:"order_id"`
	Offer           string    `ch:"offer"`
	SKU             string    `ch:"sku"`
	AmountCents     int64     `ch:"amount_cents"`
	Currency        string    `ch:"currency"`
	UpsellCount     int64     `ch:"upsell_count"`
	Continuity      uint8     `ch:"continuity"`
	PaymentBrand    string    `ch:"payment_brand"`
	CardLast4       string    `ch:"card_last4"`
	Channel         string    `ch:"channel"`
	PromoCode       string    `ch:"promo_code"`
	VanityURL       string    `ch:"vanity_url"`
	Reason          string    `ch:"reason"`
	IntervalSeconds int64     `ch:"interval_seconds"`
	StreamSeq       uint64    `ch:"stream_seq"`
	StoredAt        time.Time `ch:"stored_at"`
	StoredAtMs      int64     `ch:"stored_at_ms"`
	LoadedAt        time.Time `ch:"loaded_at"`
}

// rows reads every row of db.events with FINAL, ordered by event id (in Go:
// ClickHouse orders UUIDs by their two 64-bit halves), times in UTC.
func (e *env) rows(db string) []row {
	e.t.Helper()
	var out []row
	q := "SELECT " + strings.Join(baseColumns, ", ") + " FROM " + db + ".events FINAL"
	if err := e.conn.Select(ctx(e.t), &out, q); err != nil {
		e.t.Fatalf("select %s.events: %v", db, err)
	}
	sortRows(out)
	for i := range out {
		out[i].OccurredAt = out[i].OccurredAt.UTC()
		out[i].StoredAt = out[i].StoredAt.UTC()
		out[i].LoadedAt = out[i].LoadedAt.UTC()
	}
	return out
}

// wantRow is the row that ev stored at seq should make (loaded_at zero).
func (e *env) wantRow(ev *event.Event, seq uint64) row {
	e.t.Helper()
	stored, err := e.js.Stream(ctx(e.t), e.streams.EventsStream)
	if err != nil {
		e.t.Fatal(err)
	}
	raw, err := stored.GetMsg(ctx(e.t), seq)
	if err != nil {
		e.t.Fatalf("get stream seq %d: %v", seq, err)
	}
	return row{
		EventID: ev.EventID, Kind: string(ev.Kind), SchemaVersion: uint8(ev.SchemaVersion),
		OccurredAt: ev.OccurredAt.Truncate(time.Second).UTC(), OccurredAtMs: ev.OccurredAt.UnixMilli(),
		SourceSystem: ev.Source.System, SourceInstance: ev.Source.Instance, SourceSeq: ev.Source.Seq,
		CallID: ev.CallID, DNIS: ev.DNIS, ANIHash: ev.ANIHash, Queue: ev.Queue, Site: ev.Site, AgentID: ev.AgentID,
		TalkSeconds: ev.TalkSeconds, WaitSeconds: ev.WaitSeconds, Disposition: ev.Disposition,
		OrderID: ev.OrderID, Offer: ev.Offer, SKU: ev.SKU, AmountCents: ev.AmountCents, Currency: ev.Currency,
		UpsellCount: ev.UpsellCount, Continuity: boolByte(ev.Continuity), PaymentBrand: ev.PaymentBrand,
		CardLast4: ev.CardLast4, Channel: string(ev.Channel), PromoCode: ev.PromoCode, VanityURL: ev.VanityURL,
		Reason: ev.Reason, IntervalSeconds: ev.IntervalSeconds,
		StreamSeq: seq, StoredAt: raw.Time.Truncate(time.Second).UTC(), StoredAtMs: raw.Time.UnixMilli(),
	}
}

// diffRows fails the test with the first difference between got and want.
func diffRows(t testing.TB, got, want []row) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d", len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			g, _ := json.Marshal(got[i])
			w, _ := json.Marshal(want[i])
			t.Fatalf("row %d differs:\n got %s\nwant %s", i, g, w)
		}
	}
}

// sortRows orders rows by event id.
func sortRows(rs []row) {
	slices.SortFunc(rs, func(a, b row) int { return bytes.Compare(a.EventID[:], b.EventID[:]) })
}

// rowValues are the values of r for cols as an insert sends them (block),
// loaded at loadedAt: the i-th is cols[i]'s.
func rowValues(cols []column, r *Row, loadedAt time.Time) []any {
	vals := block(cols, []*Row{r}, loadedAt)
	out := make([]any, len(vals))
	for i, v := range vals {
		out[i] = reflect.ValueOf(v).Index(0).Interface()
	}
	return out
}
