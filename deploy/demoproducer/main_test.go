package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/producers/event"
)

// TestPlaysTheDayThroughTheGateway posts the demo day to a gateway that
// checks each request (method, path, token, NDJSON of valid events, batch
// size) and is busy once (503): every event of the day arrives, once per
// run, in the day's order.
func TestPlaysTheDayThroughTheGateway(t *testing.T) {
	const token = "demo-token-0123456789abcdef"
	var (
		mu   sync.Mutex
		got  []string
		busy = 1
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/events" || r.Header.Get("Authorization") != "Bearer "+token ||
			r.Header.Get("Content-Type") != "application/x-ndjson" {
			t.Errorf("request %s %s, auth %q, type %q", r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if busy > 0 {
			busy--
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"message":"busy"}`))
			return
		}
		var accepted []map[string]any
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			ev, err := event.Decode(bytes.TrimSpace(sc.Bytes()))
			if err != nil {
				t.Errorf("line %d is not a valid event: %v", len(accepted), err)
				continue
			}
			got = append(got, ev.EventID.String())
			accepted = append(accepted, map[string]any{"index": len(accepted), "event_id": ev.EventID.String(), "status": "acked"})
		}
		if len(accepted) > 700 {
			t.Errorf("%d events in one request, batch is 700", len(accepted))
		}
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(map[string]any{"accepted": accepted})
	}))
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config{gatewayURL: srv.URL, tokenFile: tokenFile, date: "2025-11-24", seed: 1, batch: 700, timeout: time.Minute}
	if err := run(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	day := demoday.Generate(demoday.Config{Date: time.Date(2025, 11, 24, 0, 0, 0, 0, time.UTC), Seed: 1})
	var want []string
	for _, e := range day.Events {
		want = append(want, e.EventID.String())
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("the gateway got %d events, want the day's %d in order", len(got), len(want))
	}
	t.Run("bad token file", func(t *testing.T) {
		c := c
		c.tokenFile = filepath.Join(t.TempDir(), "missing")
		if err := run(t.Context(), c); err == nil {
			t.Fatal("ran without a token")
		}
	})
}
