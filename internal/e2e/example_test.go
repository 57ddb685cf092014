package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/internal/connect"
	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
)

// A producer publishes one event with the Go library and reads its
// receipt: where the event is now. Publishing the same event again (a
// retry) is recognised as a duplicate.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "airtally-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.DiscardHandler)

	// NATS with JetStream and the airtally streams.
	srv, err := natsembed.Start(natsembed.Config{Dir: filepath.Join(dir, "nats")})
	if err != nil {
		panic(err)
	}
	defer srv.Stop()
	nc, err := connect.ConnectNATS(connect.NATS{URL: srv.ClientURL(), Name: "example-producer"}, quiet)
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		panic(err)
	}
	if err := streams.Ensure(ctx, js, streams.Config{}); err != nil {
		panic(err)
	}

	// The producer's publisher, with its local spool.
	p, err := publisher.New(ctx, nc, publisher.Config{
		SpoolDir: filepath.Join(dir, "spool"),
		ANIKey:   []byte("the-deployment-secret-hmac-key-0"),
		Logger:   quiet,
	})
	if err != nil {
		panic(err)
	}
	defer p.Close(ctx)

	ev := &event.Event{
		Kind:       event.CallReceived,
		OccurredAt: time.Date(2026, 11, 25, 20, 1, 2, 123e6, time.UTC),
		Source:     event.Source{System: "acd", Instance: "tampa-01"},
		CallID:     "c-1001",
		DNIS:       "8005550199",
		ANI:        "+1 (813) 555-0100",
	}
	r, err := p.Publish(ctx, ev)
	if err != nil {
		panic(err)
	}
	fmt.Printf("status %s, source seq %d, id is the event's: %v\n", r.Status, r.Seq, r.EventID == ev.EventID)

	again, err := p.Publish(ctx, ev)
	if err != nil {
		panic(err)
	}
	fmt.Printf("again: status %s, source seq %d\n", again.Status, again.Seq)
	// Output:
	// status acked, source seq 1, id is the event's: true
	// again: status duplicate, source seq 1
}
