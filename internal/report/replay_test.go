package report_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/internal/demoday"
	"github.com/airtally/airtally/internal/natsembed"
	"github.com/airtally/airtally/internal/report/reporttest"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
)

// TestReplayFromStream publishes the day, schedule included, through the
// Go publisher to JetStream, then rebuilds the tables from the stream
// alone (every message decoded, in stream order, into a fresh database),
// and gets the truth, read from the projection computed after it.
func TestReplayFromStream(t *testing.T) {
	ctx := context.Background()
	d := demoday.Generate(demoday.Config{Date: testDate, Seed: 41})
	n := testenv.StartNATS(t, natsembed.Config{})
	nc := testenv.Connect(t, n.URL)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := streams.Ensure(ctx, js, streams.Config{}); err != nil {
		t.Fatal(err)
	}
	pub, err := publisher.New(ctx, nc, publisher.Config{SpoolDir: t.TempDir(), ANIKey: []byte("replay-test-key-0123456789"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	for start := 0; start < len(d.Events); start += 500 {
		batch := d.Events[start:min(start+500, len(d.Events))]
		for i, r := range pub.PublishBatch(ctx, batch) {
			if r.Err != nil || r.Receipt.Status != publisher.StatusAcked {
				t.Fatalf("publish event %d: %+v", start+i, r)
			}
		}
	}
	stream, err := js.Stream(ctx, streams.DefaultEventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(len(d.Events)) {
		t.Fatalf("stream holds %d events, want %d", info.State.Msgs, len(d.Events))
	}
	var replayed []reporttest.Sequenced
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := event.Decode(msg.Data)
		if err != nil {
			t.Fatalf("stream message %d: %v", seq, err)
		}
		replayed = append(replayed, reporttest.Sequenced{Event: ev, StreamSeq: seq})
	}
	for _, e := range []engine{on18(t, replayed), onCHDB(t, replayed)} {
		project(t, e)
		res := run(t, e, dayOptions(d))
		if res.Read.DaysFromProjection == 0 {
			t.Errorf("%s: the report after replay read no day from the projection", e.name)
		}
		checkAirings(t, e.name+" after replay", res.Airings, d.Truth, allIDs(d.Truth))
		checkUnattributed(t, e.name+" after replay", res.Unattributed, d.Truth.UnattributedBetween(d.From, d.To))
	}
}
