package detector

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/consumers/detector/faultday"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
)

// alerts collects what the three alert channels received.
type alerts struct {
	mu      sync.Mutex
	nats    []Alert
	natsAt  []time.Time
	webhook []map[string]any
	logs    bytes.Buffer
}

func (a *alerts) snapshot() ([]Alert, []time.Time, []map[string]any, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Alert(nil), a.nats...), append([]time.Time(nil), a.natsAt...), append([]map[string]any(nil), a.webhook...), a.logs.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// listen subscribes to the alert subject and serves a webhook; it returns
// the collector and the webhook's URL.
func listen(t *testing.T, nc *nats.Conn, subject string) (*alerts, string) {
	t.Helper()
	a := &alerts{}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		var al Alert
		if err := json.Unmarshal(m.Data, &al); err != nil {
			t.Errorf("alert is not JSON: %v", err)
			return
		}
		a.mu.Lock()
		a.nats, a.natsAt = append(a.nats, al), append(a.natsAt, time.Now())
		a.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&body) != nil {
			t.Errorf("webhook got a body that is not JSON")
		}
		a.mu.Lock()
		a.webhook = append(a.webhook, body)
		a.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return a, srv.URL
}

// scheduleLive publishes an airing whose response window is open now.
func scheduleLive(t *testing.T, pub *publisher.Publisher) {
	t.Helper()
	now := time.Now().UTC()
	ev := event.New(event.AiringScheduled, event.Source{System: "schedule", Instance: "live"}, now.Add(-time.Hour))
	ev.AiringID, ev.Offer, ev.Station, ev.DNIS, ev.AiredAt = "LIVE-1", "widget", "WXYZ", "8005550100", now.Add(-5*time.Minute)
	if _, err := pub.Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
}

// TestOngoingOutageDetectedLive: a source sending real heartbeats stops;
// the detector, checking by the clock, opens its downtime window within
// twice its tolerance, and alerts once (NATS subject, log, webhook) since an
// airing's window is live; when the source comes back, one resolution.
func TestOngoingOutageDetectedLive(t *testing.T) {
	b := newBroker(t)
	producer := b.publisher(t)
	scheduleLive(t, producer)
	const interval = time.Second // heartbeats announce whole seconds
	grace := 100 * time.Millisecond
	tolerance := 2*interval + grace // as the detector derives it from the heartbeats

	got, hook := listen(t, b.nc, "test.alerts")
	logs := &got.logs
	cfg := Config{
		ToleranceGrace: grace, CheckInterval: 50 * time.Millisecond, LiveMargin: 50 * time.Millisecond, LoaderConsumer: "-",
		Alerts: AlertConfig{Subject: "test.alerts", WebhookURL: hook},
		Logger: slog.New(slog.NewJSONHandler(lockedWriter{&got.mu, logs}, nil)),
	}
	r := b.runDetector(t, b.publisher(t), cfg)

	src := event.Source{System: "acd", Instance: "live-1"}
	stop, err := producer.StartHeartbeats(t.Context(), src, interval)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() bool { return r.d.Applied() >= 3 }, "detector to see the heartbeats")
	stop()
	stopped := time.Now()

	testenv.Eventually(t, 20*time.Second, func() bool { n, _, _, _ := got.snapshot(); return len(n) >= 1 }, "an alert")
	nats, at, _, _ := got.snapshot()
	inc := nats[0]
	if inc.State != AlertIncident || inc.Kind != event.SourceDown || inc.Source != "acd.live-1" || len(inc.Airings) != 1 || inc.Airings[0] != "LIVE-1" {
		t.Fatalf("incident alert %+v", inc)
	}
	took := at[0].Sub(stopped)
	if took > 2*tolerance {
		t.Errorf("outage alerted %s after the source stopped; want within twice its tolerance (%s)", took, 2*tolerance)
	}
	t.Logf("outage alerted %s after the source stopped (tolerance %s)", took, tolerance)
	if d := stopped.Sub(inc.Since); d < -interval || d > interval {
		t.Errorf("window starts at %s, the source stopped at %s", inc.Since, stopped)
	}

	// It comes back: one resolution, and no storm in between.
	stop2, err := producer.StartHeartbeats(t.Context(), src, interval)
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	testenv.Eventually(t, 20*time.Second, func() bool {
		n, _, w, _ := got.snapshot()
		return len(n) >= 2 && len(w) >= 2
	}, "the resolution on NATS and on the webhook")
	nats, _, hooks, logText := got.snapshot()
	if len(nats) != 2 || nats[1].State != AlertResolved || nats[1].ID != inc.ID || nats[1].Outcome != event.OutcomeDown || nats[1].Until == nil {
		t.Fatalf("alerts %+v, want one incident and its resolution", nats)
	}
	for i, h := range hooks {
		text, _ := h["text"].(string)
		if !strings.Contains(text, "acd.live-1") {
			t.Errorf("webhook post %d: %v", i, h)
		}
	}
	if strings.Count(logText, `"msg":"detector: alert"`) != 2 {
		t.Errorf("the log holds %d alerts, want 2", strings.Count(logText, `"msg":"detector: alert"`))
	}
	r.stop()
	dets := r.rec.published()
	if len(dets) != 2 || dets[0].Kind != event.SourceDown || dets[1].Kind != event.SourceUp || dets[1].Outcome != event.OutcomeDown {
		t.Fatalf("detections %v", kinds(dets))
	}
}

func kinds(evs []*event.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, string(e.Kind)+" "+e.Outcome)
	}
	return out
}

// TestStalledLoaderIsDelayNotDowntime: a loader that stops acknowledging
// is reported as late data (an alert while it lasts, data.delayed with
// outcome loader when it caught up), never as any source's downtime.
func TestStalledLoaderIsDelayNotDowntime(t *testing.T) {
	b := newBroker(t)
	ctx := t.Context()
	s, err := b.js.Stream(ctx, streams.DefaultEventsStream)
	if err != nil {
		t.Fatal(err)
	}
	loaderCons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "stalled-loader", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	producer := b.publisher(t)
	stop, err := producer.StartHeartbeats(ctx, event.Source{System: "acd", Instance: "busy"}, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	got, _ := listen(t, b.nc, "test.alerts.loader")
	r := b.runDetector(t, b.publisher(t), Config{
		ToleranceGrace: 100 * time.Millisecond, CheckInterval: 50 * time.Millisecond, LiveMargin: 50 * time.Millisecond,
		LoaderConsumer: "stalled-loader", LoaderTolerance: time.Second, LoaderCheck: 100 * time.Millisecond,
		Alerts: AlertConfig{Subject: "test.alerts.loader"}, Logger: quiet(),
	})
	testenv.Eventually(t, 20*time.Second, func() bool { n, _, _, _ := got.snapshot(); return len(n) >= 1 }, "the loader alert")
	if n, _, _, _ := got.snapshot(); n[0].Kind != event.DataDelayed || n[0].Source != "loader.stalled-loader" || n[0].State != AlertIncident {
		t.Fatalf("alert %+v", n[0])
	}
	// The loader catches up.
	testenv.Eventually(t, 20*time.Second, func() bool {
		batch, err := loaderCons.FetchNoWait(500)
		if err != nil {
			return false
		}
		for m := range batch.Messages() {
			_ = m.Ack()
		}
		info, err := loaderCons.Info(ctx)
		if err != nil {
			return false
		}
		n, _, _, _ := got.snapshot()
		return info.NumAckPending == 0 && len(n) >= 2
	}, "the loader to catch up and the resolution")
	r.stop()
	var delayed *event.Event
	for _, e := range r.rec.published() {
		switch e.Kind {
		case event.DataDelayed:
			delayed = e
		case event.SourceDown, event.SourceUp:
			t.Errorf("a stalled loader made %s for %s", e.Kind, e.MonitoredKey())
		}
	}
	if delayed == nil || delayed.Outcome != event.OutcomeLoader || delayed.DelayMS < 1000 || delayed.EventCount < 1 {
		t.Fatalf("data.delayed %+v", delayed)
	}
}

// TestRestartNeitherDoublesNorSkips: a detector stopped mid-stream and
// started again resumes from its saved state: together its runs publish
// exactly the detections of one uninterrupted run, each once on the
// stream.
func TestRestartNeitherDoublesNorSkips(t *testing.T) {
	d := faultday.Generate(faultday.Config{Date: proofDate, Seed: 3, Response: 2})
	b := newBroker(t)
	seqs := b.deliver(t, d.Delivered)
	last := seqs[len(seqs)-1]

	cfg := simDetector()
	cfg.SnapshotEvents = 500
	var published []*event.Event
	for _, upTo := range []uint64{last / 3, 2 * last / 3, last} {
		r := b.runDetector(t, b.publisher(t), cfg)
		waitApplied(t, r, upTo)
		r.stop()
		published = append(published, r.rec.published()...)
	}
	onStream := b.detections(t)
	seen := map[string]int{}
	for _, e := range onStream {
		seen[e.EventID.String()]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("detection %s is %d times on the stream", id, n)
		}
	}

	cfg.Consumer, cfg.StateBucket = "detector-once", "AIRTALLY_DETECTOR_ONCE"
	once := b.runDetector(t, b.publisher(t), cfg)
	waitApplied(t, once, b.lastSeq(t))
	once.stop()
	byID := map[string]*event.Event{}
	for _, e := range published { // a re-derived copy replaces its first
		byID[e.EventID.String()] = e
	}
	var union []*event.Event
	for _, e := range byID {
		union = append(union, e)
	}
	sameDetections(t, once.rec.published(), union)
	if len(onStream) != len(byID) {
		t.Errorf("%d detections on the stream, the runs derived %d", len(onStream), len(byID))
	}
}

// TestConfigValidate names the field that is wrong.
func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"defaults", Config{}, ""},
		{"consumer", Config{Consumer: "no spaces"}, "consumer"},
		{"instance", Config{Instance: "Main"}, "instance"},
		{"factor", Config{ToleranceFactor: 0.5}, "tolerance factor"},
		{"silent calls", Config{SilentCalls: 0.5}, "silent calls"},
		{"webhook", Config{Alerts: AlertConfig{WebhookURL: "ftp://x"}}, "webhook"},
		{"subject", Config{Alerts: AlertConfig{Subject: "a.*"}}, "alert subject"},
		{"source tolerance", Config{SourceTolerance: map[string]time.Duration{"acd.x": 0}}, "tolerance of source"},
		{"ack wait", Config{AckWait: time.Second, SnapshotInterval: time.Second}, "ack wait"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v does not name %q", err, tc.want)
			}
		})
	}
	if _, err := New(nil, nil, Config{}); err == nil {
		t.Error("New accepted no JetStream and no publisher")
	}
}
