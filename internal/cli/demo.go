package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/airtally/airtally/consumers/projector"
	"io"
	"math"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/consumers/detector"
	"github.com/airtally/airtally/consumers/detector/accountability"
	"github.com/airtally/airtally/consumers/detector/faultday"
	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/report"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
)

// demoResponse scales the demo day's response: about 150 calls per airing.
const demoResponse = 4

// demoDay is the local mode's demo broadcast day: a bad day
// (consumers/detector/faultday) with a call centre down for ten minutes
// inside an airing's window, a range of another call centre's events
// lost, a number silent at both call centres for fifteen minutes, a call
// centre spooling for five minutes, and an order console whose clock is
// four minutes behind. It is a recorded day, played in minutes: its events
// go into the stream in the order they reached the event store that day,
// and the detector is told when each did (detectorConfig).
type demoDay struct {
	fd faultday.Day
	// day is the delivered events as a demoday.Day (in occurred order).
	day demoday.Day
	// received is each event's received time that day (Unix ms), by event
	// id.
	received map[string]int64
	first    time.Time
}

func newDemoDay(date time.Time, seed uint64) *demoDay {
	fd := faultday.Generate(faultday.Config{Date: date, Seed: seed, Response: demoResponse})
	d := &demoDay{fd: fd, received: make(map[string]int64, len(fd.Delivered)), first: fd.Delivered[0].Received}
	evs := make([]*event.Event, len(fd.Delivered))
	for i, dl := range fd.Delivered {
		evs[i] = dl.Event
		d.received[dl.Event.EventID.String()] = dl.Received.UnixMilli()
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].OccurredAt.Before(evs[j].OccurredAt) })
	d.day = demoday.Day{Events: evs, From: fd.Full.From, To: fd.Full.To}
	return d
}

// detectorConfig makes the detector read the recorded day at its own
// pace: each of its events was received when the day says (or when it
// really was, for one dated after now: a cancellation days later); the
// detector's own detections let no time pass; only events advance time.
func (d *demoDay) detectorConfig(cfg detector.Config) detector.Config {
	cfg.ReceivedAt = d.receivedAt
	cfg.CheckInterval = -1
	return cfg
}

func (d *demoDay) receivedAt(msg jetstream.Msg) (time.Time, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return time.Time{}, err
	}
	if ms, ok := d.received[msg.Headers().Get(nats.MsgIdHdr)]; ok {
		if t := time.UnixMilli(ms).UTC(); t.Before(meta.Timestamp) {
			return t, nil
		}
		return meta.Timestamp, nil
	}
	// Subjects end in kind.system.instance.
	if tok := strings.Split(msg.Subject(), "."); len(tok) >= 2 && tok[len(tok)-2] == event.DetectorSystem {
		return d.first, nil
	}
	return meta.Timestamp, nil
}

// play sends the day's events in the order they reached the event store:
// the web shop's through the HTTP gateway (as a system that cannot speak
// NATS would), everything else through the Go publisher (as an ACD or
// agent console would), each run of one kind acknowledged before the
// next.
func (d *demoDay) play(ctx context.Context, env *Env, nc *nats.Conn, aniKey []byte, spoolDir, gwURL, token string) (viaHTTP, viaGo int, err error) {
	pub, err := publisher.New(ctx, nc, publisher.Config{SpoolDir: spoolDir, ANIKey: aniKey, Logger: env.Log})
	if err != nil {
		return 0, 0, userErr(err, "could not open the demo producer's spool")
	}
	defer closePublisher(env, pub)
	client := &http.Client{Timeout: 30 * time.Second}
	web := func(e *event.Event) bool {
		return e.Source.System == demoday.WebShop.System && e.Source.Instance == demoday.WebShop.Instance
	}
	ds := d.fd.Delivered
	for start := 0; start < len(ds); {
		end := start + 1
		for end < len(ds) && web(ds[end].Event) == web(ds[start].Event) {
			end++
		}
		run := make([]*event.Event, end-start)
		for i := range run {
			run[i] = ds[start+i].Event
		}
		if web(run[0]) {
			if err := postEvents(ctx, env, client, gwURL, token, run); err != nil {
				return 0, 0, err
			}
			viaHTTP += len(run)
		} else {
			for b := 0; b < len(run); b += 500 {
				batch := run[b:min(b+500, len(run))]
				for i, r := range pub.PublishBatch(ctx, batch) {
					if r.Err != nil {
						return 0, 0, userErr(r.Err, "the demo producer could not publish event %s", batch[i].EventID)
					}
				}
			}
			viaGo += len(run)
		}
		start = end
	}
	return viaHTTP, viaGo, nil
}

// postEvents posts events to the gateway as NDJSON, 100 a request.
func postEvents(ctx context.Context, env *Env, client *http.Client, gwURL, token string, evs []*event.Event) error {
	for start := 0; start < len(evs); start += 100 {
		var body bytes.Buffer
		for _, e := range evs[start:min(start+100, len(evs))] {
			b, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("demo: encode: %w", err)
			}
			body.Write(b)
			body.WriteByte('\n')
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, gwURL+"/v1/events", &body)
		if err != nil {
			return fmt.Errorf("demo: request: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := client.Do(req)
		if err != nil {
			return userErr(err, "the demo could not reach the HTTP gateway")
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			env.Log.Error("demo: gateway refused a batch", "status", resp.StatusCode, "body", string(msg))
			return userErr(fmt.Errorf("status %d", resp.StatusCode), "the HTTP gateway refused part of the demo day")
		}
	}
	return nil
}

// demoRun is what playing and accounting the demo day needs.
type demoRun struct {
	env       *Env
	step      func(format string, args ...any)
	nc        *nats.Conn
	js        jetstream.JetStream
	conn      driver.Conn
	db        string
	aniKey    []byte
	spoolDir  string
	gwURL     string
	token     string
	wait      time.Duration
	loaderErr <-chan error
	det       *detector.Detector
	// proj is local mode's projector: the demo catches up with it rather
	// than racing it with a second one.
	proj *projector.Projector
}

// runDemo plays the demo day, waits until it is loaded and the detector
// has seen it, and prints what arrived, the airing report, every airing's
// accountability and what the day's faults did to which airings.
func runDemo(ctx context.Context, r demoRun, d *demoDay) error {
	out := r.env.Stdout
	viaHTTP, viaGo, err := d.play(ctx, r.env, r.nc, r.aniKey, r.spoolDir, r.gwURL, r.token)
	if err != nil {
		return err
	}
	r.step("demo day %s played: %d events through the HTTP gateway, %d through the Go publisher, in the order they reached the event store that day",
		d.day.From.Format("2006-01-02"), viaHTTP, viaGo)
	if err := waitLoaded(ctx, r.conn, r.db, d.day, r.wait, r.loaderErr); err != nil {
		return err
	}
	if err := printArrived(ctx, out, r.conn, r.db, r.js, d.day.From, d.day.To); err != nil {
		return userErr(err, "could not read the results back from ClickHouse")
	}
	res, err := report.Run(ctx, report.Native(r.conn), report.Options{Database: r.db, Filter: report.Filter{From: d.day.From, To: d.day.To}})
	if err != nil {
		return userErr(err, "could not compute the airing report")
	}
	fmt.Fprintf(out, "\nThe airing report for %s (airtally report --from %s):\n\n", d.day.From.Format("2006-01-02"), d.day.From.Format("2006-01-02"))
	if err := report.Write(out, res, report.FormatText); err != nil {
		return fmt.Errorf("write the airing report: %w", err)
	}
	if err := waitDetected(ctx, r.js, r.conn, r.db, r.det, r.wait); err != nil {
		return err
	}
	// Bring the airing and accountability projections up to date with
	// everything loaded (as the local projector would, a moment later).
	if err := r.proj.CatchUp(ctx); err != nil {
		return userErr(err, "could not bring the airing and accountability projections up to date")
	}
	acc, err := accountability.Query(ctx, report.Native(r.conn), r.db, d.day.From, d.day.To)
	if err != nil {
		return userErr(err, "could not compute the airings' accountability")
	}
	fmt.Fprintf(out, "\nEvery airing accounted for (airtally accountability --from %s):\n\n", d.day.From.Format("2006-01-02"))
	if err := accountability.Write(out, acc); err != nil {
		return fmt.Errorf("write the accountability: %w", err)
	}
	f := d.fd.Faults
	fmt.Fprintf(out, "\nThe day's faults: %s down %s-%s UTC; %s's events %d-%d lost between it and the broker; %s silent %s-%s UTC at both call centres; %s spooled %s-%s UTC and delivered late; %s's clock %s.\n",
		f.OutageSource, hm(f.Outage.From), hm(f.Outage.To), f.GapSource, f.GapFrom, f.GapTo, f.SilentDNIS, hm(f.Silent.From), hm(f.Silent.To),
		f.SpoolSource, hm(f.Spool.From), hm(f.Spool.To), f.SkewSource, skewText(f.Skew))
	fmt.Fprintln(out, "\nWhat they did to the airings:")
	fmt.Fprintln(out)
	return writeStory(out, acc)
}

func skewText(d time.Duration) string {
	if d < 0 {
		return (-d).String() + " behind"
	}
	return d.String() + " ahead"
}

func hm(t time.Time) string { return t.UTC().Format("15:04") }

// writeStory writes one line per airing the accountability flags (partial,
// no response, pending, or late data), naming each cause with its minutes,
// the calls and orders estimated lost, the media ratio measured and
// adjusted and the verdict against the target; then how many airings were
// fully recorded and on time.
func writeStory(w io.Writer, rows []accountability.Airing) error {
	clean, dnr := 0, 0
	for _, a := range rows {
		line, flagged := storyLine(a)
		switch {
		case flagged:
			if _, err := fmt.Fprintln(w, "  "+line); err != nil {
				return err
			}
		case a.Status == accountability.StatusDidNotRun:
			dnr++
		default:
			clean++
		}
	}
	others := fmt.Sprintf("The other %d airings were", clean)
	if clean == 1 {
		others = "The other airing was"
	}
	_, err := fmt.Fprintf(w, "\n  %s recorded in full and on time (%d did not run).\n", others, dnr)
	return err
}

// storyLine is an airing's line of the story; flagged is false for an
// airing recorded in full and on time, or one that did not run.
func storyLine(a accountability.Airing) (line string, flagged bool) {
	var causes, late []string
	for _, part := range strings.Split(a.Reason, "; ") {
		switch {
		case part == "" || part == "full coverage":
		case strings.HasPrefix(part, "shares "), strings.HasPrefix(part, "no response: "):
			// told from SharedWith and ExpectedCalls below
		case strings.HasSuffix(part, " late, none lost"), strings.HasSuffix(part, " name orders never received"):
			late = append(late, part)
		default:
			causes = append(causes, part)
		}
	}
	if a.Status == accountability.StatusDidNotRun || (a.Status == accountability.StatusAccounted && len(late) == 0 && a.SharedWith == "") {
		return "", false
	}
	var parts []string
	switch a.Status {
	case accountability.StatusPartial:
		for i, c := range causes {
			causes[i] = lostRange.ReplaceAllString(c, "$1 ($2)") + " inside the window"
		}
		parts = append(parts, strings.Join(causes, ", "))
	case accountability.StatusNoResponse:
		p := fmt.Sprintf("no response: %d calls", a.Calls)
		if a.ExpectedCalls > 0 {
			p += fmt.Sprintf(" where comparable airings predict about %.0f", a.ExpectedCalls)
		}
		parts = append(parts, p)
		if len(causes) > 0 {
			parts = append(parts, strings.Join(causes, ", "))
		}
	case accountability.StatusAccounted:
		parts = append(parts, "recorded in full")
	default:
		parts = append(parts, a.Status+": "+strings.Join(causes, ", "))
	}
	if a.EstimatedMissingCalls > 0 || a.EstimatedMissingOrders > 0 {
		parts = append(parts, fmt.Sprintf("about %.0f calls and %.0f orders lost", a.EstimatedMissingCalls, a.EstimatedMissingOrders))
	}
	parts = append(parts, late...)
	if a.SharedWith != "" {
		parts = append(parts, fmt.Sprintf("its number shared with %s (%.0f calls shared)", a.SharedWith, a.SharedCalls))
	}
	if r := ratioStory(a); r != "" {
		parts = append(parts, r)
	}
	return a.AiringID + ": " + strings.Join(parts, "; "), true
}

// lostRange is a sequence gap's cause: "acd.phoenix-01 lost events
// 1477-1620 10 min".
var lostRange = regexp.MustCompile(`^(.* lost events \d+-\d+) ([0-9.]+ min)$`)

// ratioStory is "ratio 1.40 measured, 1.90 adjusted: on target (1.20)".
func ratioStory(a accountability.Airing) string {
	if a.MediaRatio == nil && a.AdjustedMediaRatio == nil {
		return ""
	}
	s := "ratio " + ratio2(a.MediaRatio)
	adjusted := a.AdjustedMediaRatio != nil && (a.MediaRatio == nil || math.Abs(*a.AdjustedMediaRatio-*a.MediaRatio) >= 0.005)
	if adjusted {
		s += " measured, " + ratio2(a.AdjustedMediaRatio) + " adjusted"
	}
	toTarget := a.AdjustedRatioToTarget
	if toTarget == nil {
		toTarget = a.RatioToTarget
	}
	if a.TargetRatio == nil || toTarget == nil {
		return s + " (no target)"
	}
	verdict := "on target"
	if *toTarget < 1 {
		verdict = "below target"
	}
	return fmt.Sprintf("%s: %s (%s)", s, verdict, ratio2(a.TargetRatio))
}

func ratio2(r *float64) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *r)
}

// localDetector runs the local mode's detector: at the demo day's pace
// while the demo day is accounted, then (with --serve) live.
type localDetector struct {
	js   jetstream.JetStream
	pub  detector.Publisher
	env  *Env
	wg   *sync.WaitGroup
	det  *detector.Detector
	stop context.CancelFunc
	done chan struct{}
}

// start runs a detector with cfg until ctx ends or restart.
func (l *localDetector) start(ctx context.Context, cfg detector.Config) error {
	det, err := detector.New(l.js, l.pub, cfg)
	if err != nil {
		return userErr(err, "the detector configuration is not valid")
	}
	dctx, stop := context.WithCancel(ctx)
	l.det, l.stop, l.done = det, stop, make(chan struct{})
	l.wg.Add(1)
	go func(done chan struct{}) {
		defer l.wg.Done()
		defer close(done)
		if err := det.Run(dctx); err != nil && !errors.Is(err, context.Canceled) {
			l.env.Log.Error("detector stopped", "err", err)
		}
	}(l.done)
	return nil
}

// restart stops the detector (it saves its state) and starts one with
// cfg, which carries on from that state.
func (l *localDetector) restart(ctx context.Context, cfg detector.Config) error {
	l.stop()
	select {
	case <-l.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return l.start(ctx, cfg)
}
