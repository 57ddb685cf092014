package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/gateway"
	"github.com/airtally/airtally/producers/publisher"
)

// loadInterval paces each library producer (about 200 events/s each); the
// HTTP producer sends four events every 4 × loadInterval.
const loadInterval = 5 * time.Millisecond

// publishTimeout bounds one Publish call; a call this slow is a failure
// of the run (Publish spools when NATS does not answer in time).
const publishTimeout = time.Minute

// load is the producers: each publishes one source's events at a steady
// pace until stopped, and records every event acknowledged to it.
type load struct {
	quit chan struct{}
	wg   sync.WaitGroup
	gen  eventGen

	mu     sync.Mutex
	counts map[string]int // acknowledged events by source
	sent   []uuid.UUID    // acknowledged event ids
	status map[publisher.Status]int
	// slowCall is the longest Publish call, of source slowSrc.
	slowCall time.Duration
	slowSrc  string
	// httpResends counts the HTTP requests sent again (no answer, or a
	// 503 for some of the events).
	httpResends int
	errs        []string
}

func newLoad() *load {
	return &load{quit: make(chan struct{}), counts: map[string]int{}, status: map[publisher.Status]int{}}
}

// record notes one acknowledged event.
func (l *load) record(src string, id uuid.UUID, st publisher.Status) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[src]++
	l.sent = append(l.sent, id)
	l.status[st]++
}

func (l *load) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, fmt.Sprintf(format, args...))
}

func (l *load) stopped() bool {
	select {
	case <-l.quit:
		return true
	default:
		return false
	}
}

// produce publishes src's events with pub until quit; every event whose
// Publish returned a receipt (acked, duplicate or spooled) is recorded.
// An error of Publish ends this producer and fails the run.
func (l *load) produce(pub *publisher.Publisher, src event.Source) {
	tick := time.NewTicker(loadInterval)
	defer tick.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-tick.C:
		}
		ev := l.gen.next(src)
		ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		began := time.Now()
		r, err := pub.Publish(ctx, ev)
		took := time.Since(began)
		cancel()
		if err != nil {
			l.fail("publish %s seq %d: %v", src.Key(), ev.Source.Seq, err)
			return
		}
		l.record(src.Key(), r.EventID, r.Status)
		l.mu.Lock()
		if took > l.slowCall {
			l.slowCall, l.slowSrc = took, src.Key()
		}
		l.mu.Unlock()
	}
}

// httpProducer posts events to the gateway process.
type httpProducer struct {
	url, token string
	client     *http.Client
}

// produceHTTP posts src's events four at a time to the gateway until quit.
// Every event in an answer's accepted list is recorded. A request that got
// no answer (the gateway was killed) is sent again, and so are the events
// a 503 lists for retry, with the same event ids: an event is
// acknowledged only by an answer that lists it as accepted. Any other
// answer ends this producer and fails the run.
func (l *load) produceHTTP(h httpProducer, src event.Source) {
	tick := time.NewTicker(4 * loadInterval)
	defer tick.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-tick.C:
		}
		evs := []*event.Event{l.gen.next(src), l.gen.next(src), l.gen.next(src), l.gen.next(src)}
		for len(evs) > 0 {
			if l.stopped() {
				return // the rest was never acknowledged
			}
			a, err := h.post(evs)
			if err != nil {
				// No answer: the events may or may not be stored; resend.
				l.mu.Lock()
				l.httpResends++
				l.mu.Unlock()
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for _, acc := range a.resp.Accepted {
				l.record(src.Key(), acc.EventID, acc.Status)
			}
			switch a.code {
			case http.StatusAccepted:
				evs = nil
			case http.StatusServiceUnavailable, http.StatusTooManyRequests:
				var rest []*event.Event
				for _, i := range a.resp.Retry {
					if i >= 0 && i < len(evs) {
						rest = append(rest, evs[i])
					}
				}
				evs = rest
				l.mu.Lock()
				l.httpResends++
				l.mu.Unlock()
				time.Sleep(250 * time.Millisecond)
			default:
				l.fail("gateway answered %d, want 202 or 503: %.300s", a.code, a.body)
				return
			}
		}
	}
}

// answer is an HTTP answer of POST /v1/events.
type answer struct {
	code int
	body []byte
	resp gateway.EventsResponse
}

func (h httpProducer) post(evs []*event.Event) (answer, error) {
	body, err := json.Marshal(evs)
	if err != nil {
		return answer{}, fmt.Errorf("marshal events: %w", err)
	}
	req, err := http.NewRequest(http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return answer{}, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := h.client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("POST /v1/events: %w", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return answer{}, fmt.Errorf("read answer: %w", err)
	}
	a := answer{code: res.StatusCode, body: b}
	if err := json.Unmarshal(b, &a.resp); err != nil {
		// A half-written answer is no answer.
		return a, errors.Join(errNoAnswer, fmt.Errorf("answer %d is not JSON: %w", a.code, err))
	}
	return a, nil
}

var errNoAnswer = errors.New("chaos: no usable answer")

// halt stops the producers and waits for them.
func (l *load) halt() {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	l.wg.Wait()
}

// eventGen makes valid events of rotating kinds.
type eventGen struct{ n atomic.Int64 }

var (
	baseTime = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	rotation = []event.Kind{event.CallReceived, event.CallEnded, event.OrderPlaced, event.Heartbeat}
)

// next is a valid event of src with a fresh UUIDv7 id and no sequence
// number (the publisher gives it one), of a kind that rotates through
// calls, orders and heartbeats.
func (g *eventGen) next(src event.Source) *event.Event {
	n := g.n.Add(1)
	k := rotation[n%int64(len(rotation))]
	ev := event.New(k, src, baseTime.Add(time.Duration(n)*1013*time.Millisecond))
	switch k {
	case event.CallReceived:
		ev.CallID, ev.DNIS, ev.ANI, ev.Queue = fmt.Sprintf("c-%d", n), "8005550199", "+1 (813) 555-0100", "sales"
	case event.CallEnded:
		ev.CallID, ev.DNIS, ev.AgentID, ev.TalkSeconds, ev.Disposition = fmt.Sprintf("c-%d", n), "8005550199", "agent-7", 60+n%300, "sale"
	case event.OrderPlaced:
		ev.OrderID, ev.Offer, ev.SKU, ev.AmountCents, ev.Currency = fmt.Sprintf("o-%d", n), "blender", "bl-100", 3999+n%100, "USD"
		ev.Channel, ev.CallID, ev.PaymentBrand, ev.CardLast4 = event.ChannelPhone, fmt.Sprintf("c-%d", n), "visa", "1111"
	case event.Heartbeat:
		ev.IntervalSeconds = 30
	}
	return ev
}
