package detector

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/airtally/airtally/producers/event"
)

// Alert states.
const (
	AlertIncident = "incident"
	AlertResolved = "resolved"
)

// Alert is what goes out when a source goes down, or a line falls silent,
// inside a live airing's response window, and when that incident ends:
// one alert per incident and one resolution. It is published as JSON on
// the alert subject; the webhook gets {"text": Text}.
type Alert struct {
	// ID identifies the incident: the id of its opening detection event.
	ID string `json:"id"`
	// State is "incident" or "resolved".
	State string `json:"state"`
	// Kind is the detection's kind (source.down, source.up, line.silent,
	// line.restored, data.delayed).
	Kind event.Kind `json:"kind"`
	// Source is the monitored source ("system.instance"), if any.
	Source string `json:"source,omitempty"`
	// DNIS is the silent line's number, if any.
	DNIS string `json:"dnis,omitempty"`
	// Airings are the airings whose live response windows it touches.
	Airings []string `json:"airings,omitempty"`
	// Since is when the incident began; Until when it ended (resolutions).
	Since time.Time  `json:"since"`
	Until *time.Time `json:"until,omitempty"`
	// Outcome qualifies a resolution (see the event package's outcomes).
	Outcome string `json:"outcome,omitempty"`
	// Text is a sentence for people.
	Text string `json:"text"`
}

// alerter sends alerts to the log, a NATS subject and a webhook. Webhook
// posts run in the background, in order, so that a slow chat service never
// holds the detector up.
type alerter struct {
	nc      *nats.Conn
	subject string
	webhook string
	client  *http.Client
	log     *slog.Logger
	m       *metrics
	queue   chan Alert
	done    chan struct{}
}

const alertQueue = 256

func newAlerter(nc *nats.Conn, cfg AlertConfig, log *slog.Logger, m *metrics) *alerter {
	a := &alerter{nc: nc, webhook: cfg.WebhookURL, log: log, m: m, client: &http.Client{Timeout: cfg.WebhookTimeout}}
	if cfg.Subject != "-" {
		a.subject = cfg.Subject
	}
	if a.webhook != "" {
		a.queue = make(chan Alert, alertQueue)
		a.done = make(chan struct{})
		go a.post()
	}
	return a
}

// send logs al, publishes it and queues it for the webhook.
func (a *alerter) send(al Alert) {
	level := slog.LevelWarn
	if al.State == AlertResolved {
		level = slog.LevelInfo
	}
	a.log.Log(context.Background(), level, "detector: alert", "state", al.State, "kind", al.Kind, "incident", al.ID,
		"source", al.Source, "dnis", al.DNIS, "airings", al.Airings, "text", al.Text)
	a.m.alert(al.State)
	if a.subject != "" && a.nc != nil {
		b, err := json.Marshal(al)
		if err == nil {
			err = a.nc.Publish(a.subject, b)
		}
		if err != nil {
			a.m.alertError("nats")
			a.log.Warn("detector: alert not published on NATS", "subject", a.subject, "incident", al.ID, "err", err)
		}
	}
	if a.queue != nil {
		select {
		case a.queue <- al:
		default:
			a.m.alertError("webhook")
			a.log.Warn("detector: webhook queue full, alert not posted", "incident", al.ID)
		}
	}
}

// post delivers queued alerts to the webhook, three attempts each.
func (a *alerter) post() {
	defer close(a.done)
	for al := range a.queue {
		body, _ := json.Marshal(map[string]string{"text": al.Text})
		var err error
		for attempt := range 3 {
			if attempt > 0 {
				time.Sleep(time.Duration(attempt) * time.Second)
			}
			if err = a.postOnce(body); err == nil {
				break
			}
		}
		if err != nil {
			a.m.alertError("webhook")
			// The URL holds the chat service's secret: never log it.
			a.log.Warn("detector: alert not delivered to the webhook", "incident", al.ID, "err", err)
		}
	}
}

func (a *alerter) postOnce(body []byte) error {
	req, err := http.NewRequest(http.MethodPost, a.webhook, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook post: %w", redactURL(err))
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook post: status %d", resp.StatusCode)
	}
	return nil
}

// redactURL drops the URL (and its secret) from an HTTP client error.
func redactURL(err error) error {
	if ue, ok := err.(interface{ Unwrap() error }); ok && strings.Contains(err.Error(), "://") {
		return ue.Unwrap()
	}
	return err
}

// close waits for the queued webhook posts, at most until ctx ends.
func (a *alerter) close(ctx context.Context) {
	if a.queue == nil {
		return
	}
	close(a.queue)
	select {
	case <-a.done:
	case <-ctx.Done():
	}
}

// alertFor builds the alert of a detection, given the airings concerned.
func alertFor(d detection, state string) Alert {
	ev := d.Event
	al := Alert{ID: d.Incident, State: state, Kind: ev.Kind, DNIS: ev.DNIS, Airings: d.Airings,
		Since: ev.WindowStart, Outcome: ev.Outcome}
	if ev.MonitoredSystem != "" {
		al.Source = ev.MonitoredKey()
	}
	if !ev.WindowEnd.IsZero() {
		until := ev.WindowEnd
		al.Until = &until
	}
	clock := func(t time.Time) string { return t.UTC().Format("15:04:05") + " UTC" }
	airings := ""
	if len(d.Airings) > 0 {
		airings = " during the response window of airing " + strings.Join(d.Airings, ", ")
	}
	switch ev.Kind {
	case event.SourceDown:
		al.Text = fmt.Sprintf("airtally: %s has sent nothing since %s (tolerance %s)%s: calls and orders may be going unrecorded.",
			al.Source, clock(ev.WindowStart), time.Duration(ev.ToleranceSeconds)*time.Second, airings)
	case event.SourceUp:
		long := ev.WindowEnd.Sub(ev.WindowStart).Round(time.Second)
		switch ev.Outcome {
		case event.OutcomeDelayed:
			al.Text = fmt.Sprintf("airtally: %s is back: it was cut off, and its events since %s arrived late; nothing was lost.", al.Source, clock(ev.WindowStart))
		case event.OutcomeLost:
			al.Text = fmt.Sprintf("airtally: %s is back: it kept working, but its events from %s to %s never arrived (a sequence gap).",
				al.Source, clock(ev.WindowStart), clock(ev.WindowEnd))
		default:
			al.Text = fmt.Sprintf("airtally: %s is back at %s: it was down for %s.", al.Source, clock(ev.WindowEnd), long)
		}
	case event.LineSilent:
		al.Text = fmt.Sprintf("airtally: no call on %s at %s since about %s, although %d were expected%s: suspected outage (a carrier routing failure?) while the call centre's heartbeats are healthy.",
			ev.DNIS, siteOf(ev), clock(ev.WindowStart), ev.ExpectedCalls, airings)
	case event.LineRestored:
		al.Text = fmt.Sprintf("airtally: %s rings again at %s from about %s, after %s of silence (about %d calls missed).",
			ev.DNIS, siteOf(ev), clock(ev.WindowEnd), ev.WindowEnd.Sub(ev.WindowStart).Round(time.Second), ev.ExpectedCalls)
	case event.DataDelayed:
		if state == AlertIncident {
			al.Text = fmt.Sprintf("airtally: %s is %s behind: data is late, not lost.", al.Source, time.Duration(ev.DelayMS)*time.Millisecond)
		} else {
			al.Text = fmt.Sprintf("airtally: %s caught up (it was up to %s behind; %d events waited): nothing was lost.",
				al.Source, (time.Duration(ev.DelayMS) * time.Millisecond).Round(time.Second), ev.EventCount)
		}
	}
	return al
}

func siteOf(ev *event.Event) string {
	s := ev.MonitoredKey()
	if ev.Site != "" {
		s += " (" + ev.Site + ")"
	}
	return s
}
