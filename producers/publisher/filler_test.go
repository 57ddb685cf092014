package publisher

import (
	"context"
	"testing"

	"github.com/airtally/airtally/producers/event"
)

// TestResendAfterRestartIsFilled: an event sent without a number is
// stored; the publisher restarts (forgetting the numbers it gave); the
// client resends the event, alone and then in a batch. Each resend takes a
// new number that JetStream drops with the duplicate, and a heartbeat
// fills it, so the source's numbers stay whole (1, 2, 3, 4 with the next
// event), the event is stored once, and a filler sent again is itself a
// duplicate.
func TestResendAfterRestartIsFilled(t *testing.T) {
	ns := startNATS(t)
	nc, js := ns.connect()
	dir := t.TempDir()
	ctx := context.Background()

	first := callEvent("tampa-01", 1)
	p1 := newPublisher(t, nc, dir)
	r1, err := p1.Publish(ctx, first)
	if err != nil || r1.Status != StatusAcked || r1.Seq != 1 {
		t.Fatalf("first publish: %+v, %v", r1, err)
	}
	if err := p1.Close(ctx); err != nil {
		t.Fatal(err)
	}

	resend := func() *event.Event { ev := *first; ev.Source.Seq = 0; return &ev }
	p2 := newPublisher(t, nc, dir)
	r2, err := p2.Publish(ctx, resend())
	if err != nil || r2.Status != StatusDuplicate || r2.Seq != 2 {
		t.Fatalf("resend after restart: %+v, %v; want duplicate, seq 2", r2, err)
	}
	if err := p2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	p3 := newPublisher(t, nc, dir)
	res := p3.PublishBatch(ctx, []*event.Event{resend()})
	if res[0].Err != nil || res[0].Receipt.Status != StatusDuplicate || res[0].Receipt.Seq != 3 {
		t.Fatalf("batch resend after restart: %+v", res[0])
	}
	if r, err := p3.Publish(ctx, callEvent("tampa-01", 2)); err != nil || r.Seq != 4 {
		t.Fatalf("next event: %+v, %v; want seq 4", r, err)
	}
	if got := counterValue(t, p3.m.fillers); got != 1 {
		t.Errorf("p3 fillers = %v, want 1", got)
	}

	msgs := streamMessages(t, js)
	var kinds []event.Kind
	for i, m := range msgs {
		if m.ev.Source.Seq != uint64(i+1) {
			t.Fatalf("stream message %d has seq %d, want %d", i+1, m.ev.Source.Seq, i+1)
		}
		kinds = append(kinds, m.ev.Kind)
	}
	want := []event.Kind{event.CallReceived, event.Heartbeat, event.Heartbeat, event.CallReceived}
	if len(kinds) != len(want) {
		t.Fatalf("stream kinds %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("stream kinds %v, want %v", kinds, want)
		}
	}

	// The same filler again (a publisher retrying it) is a duplicate.
	f, err := p3.fillerRecord(record{id: first.EventID, seq: 2, subject: msgs[1].ev.Subject(p3.cfg.Streams.SubjectPrefix)})
	if err != nil {
		t.Fatal(err)
	}
	if f.id != msgs[1].ev.EventID {
		t.Fatalf("filler id %s, stored filler %s: not derived the same way", f.id, msgs[1].ev.EventID)
	}
}
