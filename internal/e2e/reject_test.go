package e2e

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/pci"
)

// Invalid events get a 400 naming the fields over HTTP; put raw on the
// stream, past the producers, they are dead-lettered with the reason. The
// good events of the same request and of the same stream are loaded.
func TestInvalidEventsRejectedOrDeadLettered(t *testing.T) {
	s := newStack(t)
	s.startLoader("a")
	gwPub, _ := s.newPublisher(t.TempDir())
	gw := s.startGateway(gwPub)
	web := source("web", "shop-01")

	// HTTP: one array, good and invalid events alternating.
	invalid := []struct {
		name  string
		raw   []byte
		field string
	}{
		{"call without call_id", withField(t, wire(t, newEventOf(event.CallReceived, web)), "call_id", nil), "call_id"},
		{"lower-case currency", withField(t, wire(t, newEventOf(event.OrderPlaced, web)), "currency", "usd"), "currency"},
		{"unknown field", withField(t, wire(t, newEventOf(event.CallEnded, web)), "colour", "red"), "colour"},
		{"number as text", withField(t, wire(t, newEventOf(event.CallEnded, web)), "talk_seconds", "ten"), "talk_seconds"},
		{"unknown kind", withField(t, wire(t, newEventOf(event.Heartbeat, web)), "kind", "call.teleported"), "kind"},
		{"time without zone", withField(t, wire(t, newEventOf(event.Heartbeat, web)), "occurred_at", "2026-11-25 20:01:02"), "occurred_at"},
	}
	good := newEvents(web, len(invalid))
	var parts [][]byte
	for i := range invalid {
		parts = append(parts, wire(t, good[i]), invalid[i].raw)
	}
	a := gw.post("application/json", jsonArray(parts))
	if a.code != http.StatusBadRequest {
		t.Fatalf("POST with invalid events: %d, want 400: %s", a.code, a.body)
	}
	if a.resp.Message == "" || a.resp.ErrorID == "" {
		t.Errorf("400 without message or error_id: %s", a.body)
	}
	if len(a.resp.Accepted) != len(good) || len(a.resp.Rejected) != len(invalid) {
		t.Fatalf("%d accepted and %d rejected, want %d and %d: %s", len(a.resp.Accepted), len(a.resp.Rejected), len(good), len(invalid), a.body)
	}
	for i, acc := range a.resp.Accepted {
		if acc.Index != 2*i || acc.EventID != good[i].EventID {
			t.Errorf("accepted[%d] = %+v, want index %d, id %s", i, acc, 2*i, good[i].EventID)
		}
	}
	for i, rej := range a.resp.Rejected {
		c := invalid[i]
		if rej.Index != 2*i+1 {
			t.Errorf("%s: rejected index %d, want %d", c.name, rej.Index, 2*i+1)
		}
		found := false
		for _, p := range rej.Errors {
			found = found || (p.Field == c.field && p.Reason != "")
		}
		if !found {
			t.Errorf("%s: errors %+v do not name field %q", c.name, rej.Errors, c.field)
		}
	}

	// Raw on the stream: good and invalid messages alternating, so that
	// they share the loader's batches.
	f := &rawFeed{t: t, src: source("raw", "feed-01")}
	wrongSubject, _ := f.good(event.CallReceived)
	wrongSubject.name, wrongSubject.reason = "subject of another source", "subject: does not match"
	wrongSubject.subject = strings.Replace(wrongSubject.subject, ".feed-01", ".feed-02", 1)
	unknownKind := f.edited("unknown kind", event.Heartbeat, "kind", "call.teleported", "kind: is not a kind")
	unknownKind.subject = "drtv.v1.call_teleported.raw.feed-01"
	bad := []rawCase{
		f.edited("call without dnis", event.CallReceived, "dnis", nil, "dnis: is required"),
		{name: "not JSON", subject: "drtv.v1.call_received.raw.feed-01", data: []byte("call 1234 came in"), reason: "must be a JSON object"},
		wrongSubject,
		f.edited("raw caller number", event.CallReceived, "ani", "+1 (813) 555-0177", "ani: must be replaced by ani_hash"),
		unknownKind,
		f.edited("sequence zero", event.Heartbeat, "source", map[string]any{"system": "raw", "instance": "feed-01", "seq": 0}, "source.seq: is required"),
		f.edited("negative amount", event.OrderPlaced, "amount_cents", -5, "amount_cents: must not be negative"),
	}
	var rawGood []*event.Event
	deadSeq := map[uint64]rawCase{}
	for _, c := range bad {
		for range 2 {
			g, ev := f.good(rotation[len(rawGood)%len(rotation)])
			s.putRaw(g.subject, g.data)
			rawGood = append(rawGood, ev)
		}
		deadSeq[s.putRaw(c.subject, c.data)] = c
	}

	// Every good event is loaded, each bad one dead-lettered once.
	s.waitRows(uint64(len(good) + len(rawGood)))
	s.checkIDs(ids(good, rawGood))
	testenv.Eventually(t, wait, func() bool { return s.streamCount(streams.DefaultDLQStream) >= len(bad) },
		"dead-letter stream holds fewer than %d messages", len(bad))
	dlq := s.streamMessages(streams.DefaultDLQStream)
	if len(dlq) != len(bad) {
		t.Fatalf("dead-letter stream holds %d messages, want %d", len(dlq), len(bad))
	}
	for _, m := range dlq {
		seq, err := strconv.ParseUint(m.Header.Get(streams.HeaderDLQStreamSeq), 10, 64)
		c, ok := deadSeq[seq]
		if err != nil || !ok {
			t.Errorf("dead letter %s names stream seq %q, not one of the invalid messages", m.Subject, m.Header.Get(streams.HeaderDLQStreamSeq))
			continue
		}
		if reason := m.Header.Get(streams.HeaderDLQReason); !strings.Contains(reason, c.reason) {
			t.Errorf("%s: dead-letter reason %q does not say %q", c.name, reason, c.reason)
		}
		if got := m.Header.Get(streams.HeaderDLQSubject); got != c.subject {
			t.Errorf("%s: dead letter names subject %q, want %q", c.name, got, c.subject)
		}
		if want := "drtv.dlq." + c.subject; m.Subject != want {
			t.Errorf("%s: dead letter on %q, want %q", c.name, m.Subject, want)
		}
		if !bytes.Equal(m.Data, c.data) {
			t.Errorf("%s: dead letter does not carry the original payload", c.name)
		}
	}
	// The gateway's refusals used up no sequence number.
	var rawSeqs []uint64
	for _, ev := range rawGood {
		rawSeqs = append(rawSeqs, ev.Source.Seq)
	}
	s.checkSourceOrder(map[string]int{web.Key(): len(good), f.src.Key(): len(rawGood)}, map[string][]uint64{f.src.Key(): rawSeqs})
	// And the dead_letters table records each with its reason.
	rows := s.deadLetterRows()
	if len(rows) != len(bad) {
		t.Fatalf("dead_letters holds %d rows, want %d", len(rows), len(bad))
	}
	for seq, c := range deadSeq {
		if !strings.Contains(rows[seq], c.reason) {
			t.Errorf("%s: dead_letters row of stream seq %d has reason %q, want it to say %q", c.name, seq, rows[seq], c.reason)
		}
	}
}

// deadLetterRows maps stream_seq to reason in dead_letters.
func (s *stack) deadLetterRows() map[uint64]string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := s.ch.Query(ctx, "SELECT stream_seq, reason FROM "+s.table("dead_letters")+" FINAL")
	if err != nil {
		s.t.Fatalf("read dead_letters: %v", err)
	}
	defer rows.Close()
	out := map[uint64]string{}
	for rows.Next() {
		var seq uint64
		var reason string
		if err := rows.Scan(&seq, &reason); err != nil {
			s.t.Fatalf("scan dead_letters: %v", err)
		}
		out[seq] = reason
	}
	if err := rows.Err(); err != nil {
		s.t.Fatalf("read dead_letters: %v", err)
	}
	return out
}

// card is a test card number (Luhn-valid) as written somewhere.
type card struct {
	where string // what the test put it in
	text  string // as written, with its spaces or dashes
}

// digits is the card number without separators.
func (c card) digits() string {
	return strings.NewReplacer(" ", "", "-", "").Replace(c.text)
}

// leaks reports whether text holds any of the cards, with or without
// separators.
func leaks(text []byte, cards []card) []string {
	flat := bytes.NewBuffer(nil)
	for _, b := range text {
		if b != ' ' && b != '-' {
			flat.WriteByte(b)
		}
	}
	var found []string
	for _, c := range cards {
		if bytes.Contains(flat.Bytes(), []byte(c.digits())) {
			found = append(found, c.where)
		}
	}
	return found
}

// A card number anywhere in an event, in any spelling, is refused by every
// route and ends up nowhere: not on either stream, not in any String
// column of any table, not in the components' raw logs, not in an HTTP
// answer, not in a spool or JetStream file.
func TestCardNumbersNeverStored(t *testing.T) {
	s := newStack(t)
	s.startLoader("a")
	libDir, gwDir := t.TempDir(), t.TempDir()
	lib, _ := s.newPublisher(libDir)
	gwPub, _ := s.newPublisher(gwDir)
	gw := s.startGateway(gwPub)
	var cards []card
	use := func(where, text string) string {
		if !pci.Contains(text) {
			t.Fatalf("test bug: %q (%s) is not a card number to pci", text, where)
		}
		cards = append(cards, card{where: where, text: text})
		return text
	}
	var stored []uuid.UUID

	// The library refuses them.
	lsrc := source("acd", "tampa-01")
	libCases := []*event.Event{
		func() *event.Event {
			ev := newEventOf(event.CallReceived, lsrc)
			ev.CallID = use("library call_id, spaces", "4111 1111 1111 1111")
			return ev
		}(),
		func() *event.Event {
			ev := newEventOf(event.CallReceived, lsrc)
			ev.Queue = use("library queue, dashes", "5555-5555-5555-4444")
			return ev
		}(),
		func() *event.Event {
			ev := newEventOf(event.CallEnded, lsrc)
			ev.Disposition = "caller read " + use("library disposition, free text", "378282246310005") + " aloud"
			return ev
		}(),
		func() *event.Event {
			ev := newEventOf(event.OrderCancelled, lsrc)
			ev.Reason = "refund to " + use("library reason, spaced in text", "4012 8888 8888 1881") + " please"
			return ev
		}(),
		func() *event.Event {
			ev := newEventOf(event.OrderPlaced, lsrc)
			ev.PromoCode = "PROMO" + use("library promo_code, glued to letters", "6011111111111117")
			return ev
		}(),
	}
	ctx := s.ctx()
	for i, ev := range libCases {
		good := newEvent(lsrc)
		res := lib.PublishBatch(ctx, []*event.Event{good, ev})
		if res[0].Err != nil {
			t.Fatalf("good event beside card case %d: %+v", i, res[0])
		}
		stored = append(stored, good.EventID)
		if err := res[1].Err; !errors.Is(err, event.ErrCardNumber) {
			t.Errorf("%s: batch publish error %v, want a card-number rejection", cards[i].where, err)
		} else if l := leaks([]byte(err.Error()), cards); len(l) > 0 {
			t.Errorf("the error text repeats the card of %v", l)
		}
		if _, err := lib.Publish(ctx, ev); !errors.Is(err, event.ErrCardNumber) {
			t.Errorf("%s: publish error %v, want a card-number rejection", cards[i].where, err)
		}
	}

	// The gateway refuses them with a 400, and its good neighbours are
	// stored.
	web := source("web", "shop-01")
	httpCases := [][]byte{
		withField(t, wire(t, newEventOf(event.CallAnswered, web)), "agent_id", use("HTTP agent_id, dashes", "3530-1113-3330-0000")),
		withField(t, wire(t, newEventOf(event.CallEnded, web)), "disposition", "cust gave "+use("HTTP disposition, free text", "5105105105105100")+" twice"),
		withField(t, wire(t, newEventOf(event.CallEnded, web)), "note", use("HTTP unknown field's value", "4000056655665556")),
		withField(t, wire(t, newEventOf(event.CallEnded, web)), use("HTTP unknown field's name", "2223003122003222"), "x"),
		withField(t, wire(t, newEventOf(event.OrderPlaced, web)), "amount_cents", number(use("HTTP amount_cents, a JSON number", "4222222222222"))),
		withField(t, wire(t, newEventOf(event.OrderPlaced, web)), "vanity_url", "https://x.example/"+use("HTTP vanity_url, spaces", "4917 6100 0000 0000")),
		withField(t, wire(t, newEventOf(event.Heartbeat, web)), "source", map[string]any{"system": "web", "instance": use("HTTP source.instance", "6200000000000005")}),
	}
	httpGood := newEvents(web, len(httpCases))
	var parts [][]byte
	for i := range httpCases {
		parts = append(parts, wire(t, httpGood[i]), httpCases[i])
	}
	answers := []answer{gw.post("application/json", jsonArray(parts))}
	if a := answers[0]; a.code != http.StatusBadRequest || len(a.resp.Accepted) != len(httpGood) || len(a.resp.Rejected) != len(httpCases) {
		t.Fatalf("POST with card numbers: %d, %d accepted, %d rejected; want 400, %d and %d: %s",
			a.code, len(a.resp.Accepted), len(a.resp.Rejected), len(httpGood), len(httpCases), a.body)
	}
	for i, rej := range answers[0].resp.Rejected {
		card := false
		for _, p := range rej.Errors {
			card = card || strings.Contains(p.Reason, "card number")
		}
		if rej.Index != 2*i+1 || !card {
			t.Errorf("rejected %+v: want index %d refused as a card number", rej, 2*i+1)
		}
	}
	stored = append(stored, ids(httpGood)...)
	// Each alone, as NDJSON: still a 400.
	for i, c := range httpCases {
		a := gw.post("application/x-ndjson", append(c, '\n'))
		if a.code != http.StatusBadRequest {
			t.Errorf("NDJSON with %s: %d, want 400", cards[len(libCases)+i].where, a.code)
		}
		answers = append(answers, a)
	}

	// Raw on the stream, bypassing the producers: dead-lettered with the
	// card masked, and the original erased from the events stream.
	f := &rawFeed{t: t, src: source("raw", "feed-01")}
	inSubject, _ := f.good(event.CallReceived)
	inSubject.subject = "drtv.v1.call_received.raw." + use("raw subject token", "4000002500003155")
	// A card in the subject makes the subject mismatch its event: that is
	// the reason given; the subject is masked and the original erased.
	inSubject.reason = "subject: does not match"
	const cardReason = "looks like a payment card number"
	rawBad := []rawCase{
		f.edited("raw promo_code", event.OrderPlaced, "promo_code", use("raw promo_code, spaces", "4242 4242 4242 4242"), "promo_code: "+cardReason),
		f.edited("raw unknown field", event.CallEnded, "memo", "call back on "+use("raw unknown field, dashes", "5200-8282-8282-8210"), "memo: "+cardReason),
		f.edited("raw number", event.Heartbeat, "x", number(use("raw JSON number", "6011000990139424")), "x: "+cardReason),
		inSubject,
	}
	var rawGood []*event.Event
	cardSeqs := map[uint64]rawCase{}
	for _, c := range rawBad {
		g, ev := f.good(event.CallReceived)
		s.putRaw(g.subject, g.data)
		rawGood = append(rawGood, ev)
		cardSeqs[s.putRaw(c.subject, c.data)] = c
	}
	stored = append(stored, ids(rawGood)...)

	s.waitRows(uint64(len(stored)))
	s.checkIDs(stored)
	testenv.Eventually(t, wait, func() bool {
		return s.streamCount(streams.DefaultDLQStream) == len(rawBad) && len(s.deadLetterRows()) == len(rawBad)
	}, "the %d raw card messages are not all dead-lettered", len(rawBad))

	// The originals are gone from the events stream.
	st, err := s.js.Stream(ctx, streams.DefaultEventsStream)
	if err != nil {
		t.Fatal(err)
	}
	for seq, c := range cardSeqs {
		if _, err := st.GetMsg(ctx, seq); !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Errorf("%s: the original at stream seq %d is still in the events stream (err %v)", c.name, seq, err)
		}
	}
	// The dead letters say why (checked for cards below).
	for _, m := range s.streamMessages(streams.DefaultDLQStream) {
		seq, _ := strconv.ParseUint(m.Header.Get(streams.HeaderDLQStreamSeq), 10, 64)
		c, ok := cardSeqs[seq]
		if !ok {
			t.Errorf("dead letter %s names stream seq %d, not a raw card message", m.Subject, seq)
			continue
		}
		if r := m.Header.Get(streams.HeaderDLQReason); !strings.Contains(r, c.reason) {
			t.Errorf("%s: dead letter has reason %q, want it to say %q", c.name, r, c.reason)
		}
		if !strings.HasPrefix(m.Subject, "drtv.dlq.drtv.v1.") {
			t.Errorf("%s: dead letter on %q", c.name, m.Subject)
		}
	}

	// Nowhere a card.
	check := func(where string, text []byte) {
		t.Helper()
		if l := leaks(text, cards); len(l) > 0 {
			t.Errorf("%s holds the card number of %v", where, l)
		}
	}
	for _, name := range []string{streams.DefaultEventsStream, streams.DefaultDLQStream} {
		for _, m := range s.streamMessages(name) {
			where := name + " seq " + strconv.FormatUint(m.Sequence, 10)
			check(where+" subject", []byte(m.Subject))
			check(where+" payload", m.Data)
			for k, vs := range m.Header {
				check(where+" header "+k, []byte(k+strings.Join(vs, " ")))
			}
		}
	}
	for where, text := range s.stringColumns() {
		check("ClickHouse "+where, text)
	}
	logs := s.logs.String()
	check("the raw logs of publishers, gateway and loader", []byte(logs))
	for _, want := range []string{`"component":"gateway"`, `"component":"loader"`, "dead-lettered", "events rejected"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the captured logs lack %q: the components did not log into the capture", want)
		}
	}
	for i, a := range answers {
		check("HTTP answer "+strconv.Itoa(i), a.body)
	}
	checkFiles(t, "the library's spool", libDir, check)
	checkFiles(t, "the gateway's spool", gwDir, check)
	// JetStream's files hold the messages in clear: the raw good events
	// are readable there, so the card numbers would be too.
	seen := false
	checkFiles(t, "JetStream's store", s.nats.Dir, func(where string, text []byte) {
		check(where, text)
		seen = seen || bytes.Contains(text, []byte(rawGood[0].EventID.String()))
	})
	if !seen {
		t.Errorf("JetStream's files do not show a stored event in clear: the check above proves nothing")
	}

	// Refused events used up no sequence number.
	var rawSeqs []uint64
	for _, ev := range rawGood {
		rawSeqs = append(rawSeqs, ev.Source.Seq)
	}
	s.checkSourceOrder(map[string]int{lsrc.Key(): len(libCases), web.Key(): len(httpGood), f.src.Key(): len(rawGood)},
		map[string][]uint64{f.src.Key(): rawSeqs})
}

// checkFiles runs check on every file under dir.
func checkFiles(t *testing.T, what, dir string, check func(where string, text []byte)) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		}
		if err != nil {
			return err
		}
		n++
		check(what+" file "+strings.TrimPrefix(path, dir), b)
		return nil
	})
	if err != nil {
		t.Errorf("read %s: %v", what, err)
	}
	if n == 0 {
		t.Errorf("%s: no file under %s", what, dir)
	}
}

// stringColumns returns, for every table of the database (views aside),
// the text of all its String columns, row by row.
func (s *stack) stringColumns() map[string][]byte {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := s.ch.Query(ctx, `
		SELECT c.table, c.name FROM system.columns AS c
		WHERE c.database = ? AND c.type LIKE '%String%'
		  AND c.table IN (SELECT name FROM system.tables WHERE database = ? AND engine NOT LIKE '%View%')
		ORDER BY c.table, c.name`, s.db, s.db)
	if err != nil {
		s.t.Fatalf("list String columns: %v", err)
	}
	cols := map[string][]string{}
	for rows.Next() {
		var table, name string
		if err := rows.Scan(&table, &name); err != nil {
			s.t.Fatalf("scan: %v", err)
		}
		cols[table] = append(cols[table], name)
	}
	rows.Close()
	if len(cols["events"]) == 0 || len(cols["dead_letters"]) == 0 {
		s.t.Fatalf("String columns found: %v; want those of events and dead_letters at least", cols)
	}
	out := map[string][]byte{}
	for table, names := range cols {
		exprs := make([]string, len(names))
		for i, n := range names {
			exprs[i] = "ifNull(toString(" + quoted(s.t, n) + "), '')"
		}
		rows, err := s.ch.Query(ctx, "SELECT arrayStringConcat(["+strings.Join(exprs, ", ")+"], '\\t') FROM "+s.table(table))
		if err != nil {
			s.t.Fatalf("read %s: %v", table, err)
		}
		var buf bytes.Buffer
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				s.t.Fatalf("scan %s: %v", table, err)
			}
			buf.WriteString(line)
			buf.WriteByte('\n')
		}
		if err := rows.Err(); err != nil {
			s.t.Fatalf("read %s: %v", table, err)
		}
		rows.Close()
		out[table+" ("+strings.Join(names, ", ")+")"] = buf.Bytes()
	}
	return out
}
