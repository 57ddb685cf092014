package e2e

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
)

// cardCorpusFile is pci's masking corpus: name, input, expected masked
// output (equal to the input for text without a card number).
const cardCorpusFile = "../../producers/pci/testdata/corpus.tsv"

// corpusText is one line of the corpus.
type corpusText struct {
	name, in, masked string
}

func (c corpusText) card() bool { return c.in != c.masked }

// cardDigits are the digit strings of the card numbers in c: every stretch
// that the corpus masks, without its separators.
func (c corpusText) cardDigits() []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
	}
	for i := 0; i < len(c.in); i++ {
		switch {
		case c.masked[i] == 'X' && c.in[i] != 'X':
			cur.WriteByte(c.in[i])
		case (c.in[i] == ' ' || c.in[i] == '-') && cur.Len() > 0 && i+1 < len(c.in) && c.masked[i+1] == 'X':
			// a separator inside a masked card number
		default:
			flush()
		}
	}
	flush()
	return out
}

func readCardCorpus(t *testing.T) []corpusText {
	t.Helper()
	f, err := os.Open(cardCorpusFile)
	if err != nil {
		t.Fatalf("open card corpus: %v", err)
	}
	defer f.Close()
	var out []corpusText
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) != 3 || len(cols[1]) != len(cols[2]) {
			t.Fatalf("%s line %d: want name, input and masked output of the same length", cardCorpusFile, n)
		}
		out = append(out, corpusText{name: cols[0], in: cols[1], masked: cols[2]})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read card corpus: %v", err)
	}
	return out
}

// corpusField is a free-text field of an event that a corpus text is put
// in.
type corpusField struct {
	name string // JSON field and ClickHouse column
	kind event.Kind
	set  func(*event.Event, string)
}

var corpusFields = []corpusField{
	{"disposition", event.CallEnded, func(ev *event.Event, s string) { ev.Disposition = s }},
	{"reason", event.OrderCancelled, func(ev *event.Event, s string) { ev.Reason = s }},
	{"queue", event.CallReceived, func(ev *event.Event, s string) { ev.Queue = s }},
	{"promo_code", event.OrderPlaced, func(ev *event.Event, s string) { ev.PromoCode = s }},
}

// Every text of pci's corpus that holds a card number, put in each of
// several free-text fields, is refused by the Go publisher and the HTTP
// gateway and dead-lettered (masked, the original deleted) when put raw on
// the stream: none of its card numbers is on either stream, in any String
// column of any table or in the components' raw logs. Every text without
// one (invalid Luhn, too short, long ids, phone numbers) passes all three
// routes and is stored verbatim.
func TestCardCorpusNeverStored(t *testing.T) {
	s := newStack(t)
	s.startLoader("a")
	lib, _ := s.newPublisher(t.TempDir())
	gwPub, _ := s.newPublisher(t.TempDir())
	gw := s.startGateway(gwPub)
	ctx := s.ctx()

	corpus := readCardCorpus(t)
	var cards []card
	var clean []corpusText
	for _, c := range corpus {
		if !c.card() {
			clean = append(clean, c)
			continue
		}
		for i, d := range c.cardDigits() {
			cards = append(cards, card{where: c.name + " #" + strconv.Itoa(i), text: d})
		}
	}
	if len(cards) < 30 || len(clean) < 15 {
		t.Fatalf("corpus: %d card numbers and %d clean texts; want at least 30 and 15", len(cards), len(clean))
	}
	for _, c := range clean {
		if l := leaks([]byte(c.in), cards); len(l) > 0 {
			t.Fatalf("test bug: clean text %q holds the card digits of %v", c.name, l)
		}
	}

	// want maps each event that must be stored to its field and text.
	type stored struct{ field, text string }
	want := map[uuid.UUID]stored{}

	// The Go publisher.
	lsrc := source("acd", "tampa-01")
	for _, c := range corpus {
		for _, f := range corpusFields {
			ev := newEventOf(f.kind, lsrc)
			f.set(ev, c.in)
			_, err := lib.Publish(ctx, ev)
			switch {
			case c.card() && !errors.Is(err, event.ErrCardNumber):
				t.Errorf("library, %s in %s: publish error %v, want a card-number rejection", c.name, f.name, err)
			case !c.card() && err != nil:
				t.Errorf("library, %s in %s: %v, want it published", c.name, f.name, err)
			case !c.card():
				want[ev.EventID] = stored{f.name, c.in}
			}
		}
	}

	// The HTTP gateway: one array per field, card and clean texts mixed.
	web := source("web", "shop-01")
	var answers []answer
	for _, f := range corpusFields {
		var parts [][]byte
		var accepted []uuid.UUID
		var rejected []int
		for _, c := range corpus {
			ev := newEventOf(f.kind, web)
			if c.card() {
				rejected = append(rejected, len(parts))
				parts = append(parts, withField(t, wire(t, ev), f.name, c.in))
				continue
			}
			f.set(ev, c.in)
			accepted = append(accepted, ev.EventID)
			want[ev.EventID] = stored{f.name, c.in}
			parts = append(parts, wire(t, ev))
		}
		a := gw.post("application/json", jsonArray(parts))
		answers = append(answers, a)
		if a.code != http.StatusBadRequest || len(a.resp.Accepted) != len(accepted) || len(a.resp.Rejected) != len(rejected) {
			t.Fatalf("gateway, %s: %d with %d accepted and %d rejected; want 400, %d and %d", f.name, a.code, len(a.resp.Accepted), len(a.resp.Rejected), len(accepted), len(rejected))
		}
		for i, acc := range a.resp.Accepted {
			if acc.EventID != accepted[i] {
				t.Errorf("gateway, %s: accepted[%d] is %s, want %s", f.name, i, acc.EventID, accepted[i])
			}
		}
		for i, rej := range a.resp.Rejected {
			isCard := false
			for _, p := range rej.Errors {
				isCard = isCard || (p.Field == f.name && strings.Contains(p.Reason, "card number"))
			}
			if rej.Index != rejected[i] || !isCard {
				t.Errorf("gateway, %s: rejected %+v, want index %d refused as a card number in %s", f.name, rej, rejected[i], f.name)
			}
		}
	}

	// Raw on the stream, past the producers.
	feed := &rawFeed{t: t, src: source("raw", "feed-01")}
	rawCards := 0
	for _, c := range corpus {
		for _, f := range corpusFields {
			if c.card() {
				rc := feed.edited(c.name, f.kind, f.name, c.in, "")
				s.putRaw(rc.subject, rc.data)
				rawCards++
				continue
			}
			ev := feed.next(f.kind)
			f.set(ev, c.in)
			s.putRaw(subject(ev), encoded(t, ev, ev.Source.Seq))
			want[ev.EventID] = stored{f.name, c.in}
		}
	}

	// Every clean text is stored verbatim, in its field, once.
	s.waitRows(uint64(len(want)))
	got := s.corpusFieldValues()
	if len(got) != len(want) {
		t.Errorf("events holds %d rows, want %d", len(got), len(want))
	}
	for id, w := range want {
		row, ok := got[id]
		if !ok {
			t.Errorf("event %s (%s) is not stored", id, w.field)
			continue
		}
		if row[w.field] != w.text {
			t.Errorf("event %s: %s is %q, want %q verbatim", id, w.field, row[w.field], w.text)
		}
	}
	testenv.Eventually(t, wait, func() bool {
		return s.streamCount(streams.DefaultDLQStream) == rawCards && len(s.deadLetterRows()) == rawCards
	}, "the %d raw card messages are not all dead-lettered", rawCards)

	t.Logf("%d card numbers refused on three routes in %d fields (%d raw dead letters); %d clean events stored verbatim", len(cards), len(corpusFields), rawCards, len(want))

	// No card number anywhere.
	check := func(where string, text []byte) {
		t.Helper()
		if l := leaks(text, cards); len(l) > 0 {
			t.Errorf("%s holds the card number of %v", where, l)
		}
	}
	for _, name := range []string{streams.DefaultEventsStream, streams.DefaultDLQStream} {
		for _, m := range s.streamMessages(name) {
			where := name + " seq " + strconv.FormatUint(m.Sequence, 10)
			check(where+" payload", m.Data)
			for k, vs := range m.Header {
				check(where+" header "+k, []byte(k+strings.Join(vs, " ")))
			}
		}
	}
	for where, text := range s.stringColumns() {
		check("ClickHouse "+where, text)
	}
	check("the raw logs of publishers, gateway and loader", []byte(s.logs.String()))
	for i, a := range answers {
		check("HTTP answer "+strconv.Itoa(i), a.body)
	}
}

// corpusFieldValues maps every event id of events to its corpus fields.
func (s *stack) corpusFieldValues() map[uuid.UUID]map[string]string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cols := make([]string, len(corpusFields))
	for i, f := range corpusFields {
		cols[i] = quoted(s.t, f.name)
	}
	rows, err := s.ch.Query(ctx, "SELECT event_id, "+strings.Join(cols, ", ")+" FROM "+s.table("events")+" FINAL")
	if err != nil {
		s.t.Fatalf("read events: %v", err)
	}
	defer rows.Close()
	out := map[uuid.UUID]map[string]string{}
	for rows.Next() {
		var id uuid.UUID
		vals := make([]string, len(corpusFields))
		dest := []any{&id}
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			s.t.Fatalf("scan events: %v", err)
		}
		row := map[string]string{}
		for i, f := range corpusFields {
			row[f.name] = vals[i]
		}
		out[id] = row
	}
	if err := rows.Err(); err != nil {
		s.t.Fatalf("read events: %v", err)
	}
	return out
}
