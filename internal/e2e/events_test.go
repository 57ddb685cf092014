package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
)

var (
	baseTime = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	eventNo  atomic.Int64
)

const rawANI = "+1 (813) 555-0100"

func source(system, instance string) event.Source {
	return event.Source{System: system, Instance: instance}
}

// rotation is the kinds newEvent cycles through.
var rotation = []event.Kind{event.CallReceived, event.CallEnded, event.OrderPlaced, event.Heartbeat}

// newEvent is a valid event of src, of a kind that rotates through calls,
// orders and heartbeats, with a fresh UUIDv7 id and no sequence number.
func newEvent(src event.Source) *event.Event {
	return newEventOf(rotation[eventNo.Load()%int64(len(rotation))], src)
}

// newEventOf is a valid event of kind k (a call, order or heartbeat kind)
// from src. Event times are a little more than a second apart, with
// milliseconds.
func newEventOf(k event.Kind, src event.Source) *event.Event {
	n := eventNo.Add(1)
	ev := event.New(k, src, baseTime.Add(time.Duration(n)*1013*time.Millisecond))
	switch {
	case k == event.CallReceived:
		ev.CallID, ev.DNIS, ev.ANI, ev.Queue = fmt.Sprintf("c-%d", n), "8005550199", rawANI, "sales"
	case k.IsCall():
		ev.CallID, ev.DNIS, ev.AgentID, ev.TalkSeconds = fmt.Sprintf("c-%d", n), "8005550199", "agent-7", 60+n%300
		if k == event.CallEnded {
			ev.Disposition = "sale"
		}
	case k == event.OrderPlaced:
		ev.OrderID, ev.Offer, ev.SKU, ev.AmountCents, ev.Currency = fmt.Sprintf("o-%d", n), "blender", "bl-100", 3999+n%100, "USD"
		ev.Channel, ev.CallID, ev.PaymentBrand, ev.CardLast4 = event.ChannelPhone, fmt.Sprintf("c-%d", n), "visa", "1111"
	case k == event.OrderCancelled:
		ev.OrderID, ev.Reason = fmt.Sprintf("o-%d", n), "changed mind"
	case k == event.Heartbeat:
		ev.IntervalSeconds = 30
	default:
		panic("newEventOf: no recipe for kind " + string(k))
	}
	return ev
}

// newEvents is n events of src.
func newEvents(src event.Source, n int) []*event.Event {
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = newEvent(src)
	}
	return evs
}

// ids returns the event ids of evs.
func ids(evs ...[]*event.Event) []uuid.UUID {
	var out []uuid.UUID
	for _, list := range evs {
		for _, ev := range list {
			out = append(out, ev.EventID)
		}
	}
	return out
}

// publishAll publishes evs through the library, alternately one by one
// and as batches of up to 25, and requires every receipt to have status
// want (any if "").
func publishAll(t testing.TB, p *publisher.Publisher, evs []*event.Event, want publisher.Status) {
	t.Helper()
	if err := tryPublishAll(p, evs, want); err != nil {
		t.Fatal(err)
	}
}

// tryPublishAll is publishAll for other goroutines than the test's.
func tryPublishAll(p *publisher.Publisher, evs []*event.Event, want publisher.Status) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	check := func(ev *event.Event, r publisher.Receipt, err error) error {
		switch {
		case err != nil:
			return fmt.Errorf("publish %s: %w", ev.EventID, err)
		case r.EventID != ev.EventID || r.Seq == 0 || r.Seq != ev.Source.Seq:
			return fmt.Errorf("receipt %+v does not match event %s seq %d", r, ev.EventID, ev.Source.Seq)
		case want != "" && r.Status != want:
			return fmt.Errorf("event %s: receipt status %q, want %q", ev.EventID, r.Status, want)
		}
		return nil
	}
	for i := 0; i < len(evs); {
		if (i/25)%2 == 0 {
			r, err := p.Publish(ctx, evs[i])
			if err := check(evs[i], r, err); err != nil {
				return err
			}
			i++
			continue
		}
		end := min(i+25, len(evs))
		for j, res := range p.PublishBatch(ctx, evs[i:end]) {
			if err := check(evs[i+j], res.Receipt, res.Err); err != nil {
				return err
			}
		}
		i = end
	}
	return nil
}

// encoded is ev with sequence number seq, encoded as the stream holds it
// (ANI sealed).
func encoded(t testing.TB, ev *event.Event, seq uint64) []byte {
	t.Helper()
	ev.Source.Seq = seq
	ev.SealANI(aniKey)
	b, err := ev.Encode()
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

// withField returns the JSON object b with field set to v (deleted when v
// is nil).
func withField(t testing.TB, b []byte, field string, v any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if v == nil {
		delete(m, field)
	} else {
		m[field] = v
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// subject is the subject of ev on the events stream.
func subject(ev *event.Event) string { return ev.Subject(streams.DefaultSubjectPrefix) }

// hostPort is the host:port of a nats:// URL.
func hostPort(url string) string { return strings.TrimPrefix(url, "nats://") }

// rawCase is a message put straight on the events stream.
type rawCase struct {
	name    string
	subject string
	data    []byte
	// reason is what the dead letter's reason must contain; "" for a good
	// message.
	reason string
}

// rawFeed numbers the raw messages of one source.
type rawFeed struct {
	t   *testing.T
	src event.Source
	seq uint64
}

// next is the next event of the feed, numbered.
func (f *rawFeed) next(k event.Kind) *event.Event {
	f.seq++
	ev := newEventOf(k, f.src)
	ev.Source.Seq = f.seq
	return ev
}

// good is the next event of the feed as a valid message.
func (f *rawFeed) good(k event.Kind) (rawCase, *event.Event) {
	ev := f.next(k)
	return rawCase{name: "good", subject: subject(ev), data: encoded(f.t, ev, ev.Source.Seq)}, ev
}

// edited is the next event of the feed with a field changed (removed when
// v is nil).
func (f *rawFeed) edited(name string, k event.Kind, field string, v any, reason string) rawCase {
	ev := f.next(k)
	return rawCase{name: name, subject: subject(ev), data: withField(f.t, encoded(f.t, ev, ev.Source.Seq), field, v), reason: reason}
}

// jsonArray joins JSON values into an array.
func jsonArray(parts [][]byte) []byte {
	return append(append([]byte{'['}, bytes.Join(parts, []byte{','})...), ']')
}

// number is s as a JSON number.
func number(s string) jsonNumber { return jsonNumber(s) }

// jsonNumber marshals as the number it spells.
type jsonNumber string

func (n jsonNumber) MarshalJSON() ([]byte, error) { return []byte(n), nil }
