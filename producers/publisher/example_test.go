package publisher_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "publisher-example-")
	defer os.RemoveAll(dir)

	// A NATS server with JetStream and the airtally streams.
	srv, err := natsembed.Start(natsembed.Config{Dir: dir + "/nats"})
	if err != nil {
		panic(err)
	}
	defer srv.Stop()
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := streams.Ensure(ctx, js, streams.Config{}); err != nil {
		panic(err)
	}

	p, err := publisher.New(ctx, nc, publisher.Config{
		SpoolDir: dir + "/spool",
		ANIKey:   []byte("a-secret-of-at-least-16-bytes"),
	})
	if err != nil {
		panic(err)
	}
	defer p.Close(ctx)

	ev := &event.Event{
		Kind:       event.CallReceived,
		OccurredAt: time.Date(2026, 11, 25, 20, 1, 2, 0, time.UTC),
		Source:     event.Source{System: "acd", Instance: "tampa-01"},
		CallID:     "c-1001",
		DNIS:       "8005550199",
		ANI:        "+1 (813) 555-0100", // sealed into ani_hash before it leaves
	}
	r, err := p.Publish(ctx, ev)
	if err != nil {
		panic(err)
	}
	fmt.Println("status:", r.Status, "seq:", r.Seq)
	fmt.Println("uuidv7 id:", r.EventID.Version() == 7, "raw ANI cleared:", ev.ANI == "" && ev.ANIHash != "")
	// Output:
	// status: acked seq: 1
	// uuidv7 id: true raw ANI cleared: true
}
