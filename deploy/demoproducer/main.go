// Command demoproducer plays a demo broadcast day into a running airtally
// stack through its HTTP gateway, so that the dashboards have something to
// show: the compose file's optional "demo" service runs it
// (docker compose --profile demo up).
//
// The day is the one internal/demoday generates (offers, the schedule and
// its post-log, calls, orders, cancellations, heartbeats of every source)
// for -date (default: yesterday, UTC), with the faults of
// consumers/detector/faultday unless -faults=false: a call centre down for
// ten minutes, events lost between a source and the broker, a number that
// falls silent. The events are posted in the order they occurred, as NDJSON
// batches. The same date and seed always give the same event ids, so
// running it again stores nothing twice.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/airtally/airtally/consumers/detector/faultday"
	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/producers/event"
)

type config struct {
	gatewayURL string
	tokenFile  string
	date       string
	seed       uint64
	faults     bool
	batch      int
	timeout    time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.gatewayURL, "gateway-url", "http://gateway:8080", "the airtally gateway's base URL")
	flag.StringVar(&c.tokenFile, "token-file", "", "file holding a gateway token allowed to send every source's events (required)")
	flag.StringVar(&c.date, "date", "", "the broadcast day, YYYY-MM-DD (default: yesterday, UTC)")
	flag.Uint64Var(&c.seed, "seed", 1, "seed of the day")
	flag.BoolVar(&c.faults, "faults", true, "play the day with faults (an outage, lost events, a silent number)")
	flag.IntVar(&c.batch, "batch", 500, "events per request (the gateway takes at most 1000)")
	flag.DurationVar(&c.timeout, "timeout", 10*time.Minute, "give up after this long")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "demoproducer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	if c.tokenFile == "" {
		return errors.New("-token-file is required")
	}
	if c.batch < 1 || c.batch > 1000 {
		return errors.New("-batch must be 1 to 1000")
	}
	b, err := os.ReadFile(c.tokenFile)
	if err != nil {
		return fmt.Errorf("read the token file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	day := time.Now().UTC().AddDate(0, 0, -1)
	if c.date != "" {
		if day, err = time.Parse(time.DateOnly, c.date); err != nil {
			return errors.New("-date must be YYYY-MM-DD")
		}
	}
	day = time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
	var evs []*event.Event
	if c.faults {
		for _, d := range faultday.Generate(faultday.Config{Date: day, Seed: c.seed}).Delivered {
			evs = append(evs, d.Event)
		}
	} else {
		evs = demoday.Generate(demoday.Config{Date: day, Seed: c.seed}).Events
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Minute}
	url := strings.TrimRight(c.gatewayURL, "/") + "/v1/events"
	var stored, duplicates int
	for i := 0; i < len(evs); i += c.batch {
		s, d, err := post(ctx, client, url, token, evs[i:min(i+c.batch, len(evs))])
		if err != nil {
			return fmt.Errorf("events %d to %d: %w", i, min(i+c.batch, len(evs))-1, err)
		}
		stored, duplicates = stored+s, duplicates+d
	}
	fmt.Printf("demo day %s: %d events posted to %s: %d stored, %d already there\n",
		day.Format(time.DateOnly), len(evs), c.gatewayURL, stored, duplicates)
	return nil
}

// answer is the part of the gateway's answer the producer reads.
type answer struct {
	Message  string `json:"message"`
	Accepted []struct {
		Status string `json:"status"`
	} `json:"accepted"`
	Rejected []struct {
		Index  int `json:"index"`
		Errors []struct {
			Field  string `json:"field"`
			Reason string `json:"reason"`
		} `json:"errors"`
	} `json:"rejected"`
}

// post sends one batch as NDJSON, again (the whole batch: the gateway
// drops what it already stored) while the gateway answers 503 or cannot be
// reached, and returns how many events were stored and how many were
// duplicates.
func post(ctx context.Context, client *http.Client, url, token string, evs []*event.Event) (int, int, error) {
	var body bytes.Buffer
	for _, e := range evs {
		data, err := e.Encode()
		if err != nil {
			return 0, 0, fmt.Errorf("encode %s: %w", e.Kind, err)
		}
		body.Write(data)
		body.WriteByte('\n')
	}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body.Bytes()))
		if err != nil {
			return 0, 0, err
		}
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		wait := 2 * time.Second
		if err == nil {
			data, rerr := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			resp.Body.Close()
			var a answer
			_ = json.Unmarshal(data, &a)
			switch {
			case rerr != nil:
				err = rerr
			case resp.StatusCode == http.StatusAccepted:
				dup := 0
				for _, x := range a.Accepted {
					if x.Status == "duplicate" {
						dup++
					}
				}
				return len(a.Accepted) - dup, dup, nil
			case resp.StatusCode == http.StatusServiceUnavailable:
				if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
					wait = time.Duration(s) * time.Second
				}
				err = fmt.Errorf("gateway busy: %s", a.Message)
			case resp.StatusCode == http.StatusBadRequest && len(a.Rejected) > 0:
				r := a.Rejected[0]
				return 0, 0, fmt.Errorf("%d events rejected, e.g. event %d: %v", len(a.Rejected), r.Index, r.Errors)
			default:
				return 0, 0, fmt.Errorf("gateway answered %d: %s", resp.StatusCode, a.Message)
			}
		}
		fmt.Fprintf(os.Stderr, "demoproducer: %v; trying again in %s\n", err, wait)
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(wait):
		}
	}
}
