package publisher

import (
	"context"
	"github.com/airtally/airtally/producers/event"
	"github.com/google/uuid"
	"testing"
)

// TestResendWithoutSeqKeepsItsNumber: an event sent without a sequence
// number and sent again (as a gateway client does when it lost the answer)
// gets the same number back, alone and inside a batch, so the source's
// numbering has no hole; the next new event gets the next number.
func TestResendWithoutSeqKeepsItsNumber(t *testing.T) {
	ns := startNATS(t)
	nc, js := ns.connect()
	p := newPublisher(t, nc, t.TempDir())
	ctx := context.Background()

	first := callEvent("tampa-01", 1)
	first.Source.Seq = 0
	r1, err := p.Publish(ctx, first)
	if err != nil || r1.Status != StatusAcked {
		t.Fatalf("first publish: %+v, %v", r1, err)
	}
	resend := *first
	resend.Source.Seq = 0
	r2, err := p.Publish(ctx, &resend)
	if err != nil || r2.Status != StatusDuplicate || r2.Seq != r1.Seq {
		t.Fatalf("resend: %+v, %v; want duplicate with seq %d", r2, err, r1.Seq)
	}

	// A batch holding a resend and a new event twice.
	again := *first
	again.Source.Seq = 0
	fresh := callEvent("tampa-01", 2)
	fresh.Source.Seq = 0
	fresh.EventID = uuid.Must(uuid.NewV7()) // the client's own id, sent twice
	freshCopy := *fresh
	res := p.PublishBatch(ctx, []*event.Event{&again, fresh, &freshCopy})
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("batch item %d: %v", i, r.Err)
		}
	}
	if res[0].Receipt.Seq != r1.Seq || res[1].Receipt.Seq != r1.Seq+1 || res[2].Receipt.Seq != r1.Seq+1 {
		t.Fatalf("batch seqs %d %d %d, want %d %d %d", res[0].Receipt.Seq, res[1].Receipt.Seq, res[2].Receipt.Seq, r1.Seq, r1.Seq+1, r1.Seq+1)
	}
	if n := streamCount(t, js); n != 2 {
		t.Fatalf("stream holds %d messages, want 2", n)
	}
	next := callEvent("tampa-01", 3)
	next.Source.Seq = 0
	if r, err := p.Publish(ctx, next); err != nil || r.Seq != r1.Seq+2 {
		t.Fatalf("next event: %+v, %v; want seq %d", r, err, r1.Seq+2)
	}
}
