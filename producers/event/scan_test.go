package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/airtally/airtally/producers/pci"
)

// referenceParse is Parse as it was before parseScan: the encoding/json
// fast path (kept here verbatim, as referenceFast) and the slow path. The
// new Parse must agree with it on every input: the same event, or the
// same problems.
func referenceParse(data []byte) (*Event, error) {
	var ps problems
	if len(data) > MaxEncodedBytes {
		ps.add("", "is larger than %d bytes", MaxEncodedBytes)
		return nil, ps.err()
	}
	if ev, ok := referenceFast(data); ok {
		return ev, nil
	}
	return parseSlow(data)
}

// referenceFast is parseFast before parseScan, verbatim.
func referenceFast(data []byte) (*Event, bool) {
	if pci.Contains(string(data)) {
		return nil, false
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, false
	}
	if !keysExact(data) {
		return nil, false
	}
	var w wireEvent
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	ev := &w.Event
	for _, f := range [...]struct {
		text *string
		to   *time.Time
	}{
		{w.OccurredAt, &ev.OccurredAt}, {w.AiredAt, &ev.AiredAt}, {w.AiredUntil, &ev.AiredUntil},
		{w.WindowStart, &ev.WindowStart}, {w.WindowEnd, &ev.WindowEnd},
	} {
		if f.text == nil {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, *f.text)
		if err != nil {
			return nil, false
		}
		*f.to = t.UTC().Truncate(time.Millisecond)
	}
	return ev, true
}

// sameParse reports how Parse and referenceParse differ on data ("" if
// they agree). Problems are compared as a sorted list: parseSlow names a
// source's problems in map order.
func sameParse(data []byte) string {
	got, gotErr := Parse(data)
	want, wantErr := referenceParse(data)
	switch {
	case (gotErr == nil) != (wantErr == nil):
		return fmt.Sprintf("error %v, reference error %v", gotErr, wantErr)
	case gotErr != nil:
		g, w := sortedProblems(gotErr), sortedProblems(wantErr)
		if !reflect.DeepEqual(g, w) {
			return fmt.Sprintf("problems %v, reference problems %v", g, w)
		}
		if errorsIsCard(gotErr) != errorsIsCard(wantErr) {
			return "ErrCardNumber differs"
		}
	case !reflect.DeepEqual(got, want):
		return fmt.Sprintf("event\n%+v\nreference event\n%+v", got, want)
	}
	return ""
}

func sortedProblems(err error) []Problem {
	ps := slices.Clone(Problems(err))
	slices.SortFunc(ps, func(a, b Problem) int { return strings.Compare(a.String(), b.String()) })
	return ps
}

func errorsIsCard(err error) bool {
	ve, ok := err.(*ValidationError)
	return ok && ve.Is(ErrCardNumber)
}

// fieldKinds is the JSON type of every top-level field, for the generator.
var fieldKinds = func() map[string]string {
	kinds := map[string]string{}
	t := reflect.TypeOf(Event{})
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		switch t.Field(i).Type.Kind() {
		case reflect.String:
			kinds[name] = "string"
		case reflect.Int, reflect.Int64:
			kinds[name] = "int"
		case reflect.Uint64:
			kinds[name] = "uint"
		case reflect.Bool:
			kinds[name] = "bool"
		}
	}
	kinds["event_id"], kinds["source"] = "uuid", "source"
	for name := range timeFields {
		kinds[name] = "time"
	}
	return kinds
}()

// TestScanCoversEveryField: parseScan knows every field of the contract
// (else events with the new field would only be slower, but a test should
// say so), scans for card numbers exactly the fields parseSlow scans, and
// every field's kind is one the generator makes.
func TestScanCoversEveryField(t *testing.T) {
	for name := range fieldNames {
		if fieldKinds[name] == "" {
			t.Errorf("field %s: no kind for the generator", name)
		}
		ev := validOrder()
		b, _ := ev.Encode()
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		m[name] = sampleValue(fieldKinds[name])
		doc, _ := json.Marshal(m)
		if _, ok := parseScan(doc); !ok {
			t.Errorf("field %s: parseScan does not take %s", name, doc)
		}
		// A card number passes in the fields exempt from the card scan
		// only, as in parseSlow.
		switch fieldKinds[name] {
		case "string":
			m[name] = "4111111111111111"
		case "int", "uint":
			m[name] = 4111111111111111
		default:
			continue
		}
		doc, _ = json.Marshal(m)
		if _, ok := parseScan(doc); ok != cardExempt[name] {
			t.Errorf("field %s: parseScan takes a card number: %v, exempt from the card scan: %v", name, ok, cardExempt[name])
		}
	}
}

// sampleValue is a plain valid value of a field kind.
func sampleValue(kind string) any {
	switch kind {
	case "string":
		return "x"
	case "int", "uint":
		return 5
	case "bool":
		return true
	case "uuid":
		return uuid.Must(uuid.NewV7()).String()
	case "time":
		return "2026-11-25T20:01:02.123Z"
	case "source":
		return map[string]any{"system": "a", "instance": "b", "seq": 1}
	}
	return nil
}

// gen makes random event documents, valid and not. A clean gen makes
// values of the right type and range, almost all of which parseScan takes.
type gen struct {
	r     *rand.Rand
	clean bool
}

func (g gen) pick(options ...string) string { return options[g.r.IntN(len(options))] }

// card is a random card number, Luhn-valid, possibly grouped.
func (g gen) card() string {
	n := 13 + g.r.IntN(7)
	d := make([]int, n)
	for i := range d[:n-1] {
		d[i] = g.r.IntN(10)
	}
	sum := 0
	for i := n - 2; i >= 0; i-- {
		v := d[i]
		if (n-2-i)%2 == 0 {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	d[n-1] = (10 - sum%10) % 10
	var b strings.Builder
	sep := g.pick("", "", " ", "-")
	for i, v := range d {
		if i > 0 && i%4 == 0 {
			b.WriteString(sep)
		}
		b.WriteByte(byte('0' + v))
	}
	return b.String()
}

// text is a random string value, as raw JSON text.
func (g gen) text() string {
	var s string
	c := g.r.IntN(16)
	if g.clean && c >= 2 && c <= 7 {
		c = 1 + 7*(c%2) // unicode or a kind name, nothing odd
	}
	switch c {
	case 0:
		s = ""
	case 1:
		s = g.pick("héllo wörld", "日本語テキスト", "emoji 🎉 ok", "Ωmega", "\u2028sep\u2029"[:4*(1-boolInt(g.clean))])
	case 2:
		s = g.pick(`quote " inside`, `back\slash`, "tab\there", "nl\nhere", "<a&b>", "ctl\x01", "del\x7f")
	case 3:
		return `"` + g.pick("bad\xffutf8", "\xc3", "\xed\xa0\x80surrogate", "ok\xe2\x82") + `"` // raw invalid UTF-8
	case 4:
		return `"` + g.pick(`\u00e9`, `\ud83c\udf89`, `\ud800`, `\/`, `\"`, `\n`, `\x`) + `"` // escapes, some invalid
	case 5:
		s = "card " + g.card() + " here"
	case 6:
		s = strconv.FormatInt(g.r.Int64(), 10) + strconv.FormatInt(g.r.Int64N(1e6), 10) // long digit runs
	case 7:
		s = strings.Repeat("x", g.r.IntN(1100))
	case 8:
		s = g.pick("call.received", "order.placed", "heartbeat", "airing.scheduled", "offer.configured", "source.up",
			"gap.closed", "line.silent", "data.delayed", "USD", "phone", "web", "down", "filled", "producer")
	default:
		s = fmt.Sprintf("v-%d", g.r.IntN(100000))
	}
	b, _ := json.Marshal(s)
	if g.clean || g.r.IntN(3) == 0 {
		// Not HTML-escaped: "<a&b>" raw, as other encoders write it.
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(s)
		b = bytes.TrimRight(buf.Bytes(), "\n")
	}
	return string(b)
}

// number is a random JSON number, as text.
func (g gen) number() string {
	c := g.r.IntN(12)
	if g.clean && c >= 3 && c <= 9 {
		return strconv.FormatInt(g.r.Int64N(1e12), 10) // too short for a card number
	}
	switch c {
	case 0:
		return "0"
	case 1:
		return "-0"
	case 2:
		return strconv.FormatInt(-g.r.Int64N(1000), 10)
	case 3:
		return strconv.FormatInt(math.MaxInt64, 10)
	case 4:
		return "9223372036854775808" // MaxInt64 + 1
	case 5:
		return strconv.FormatUint(math.MaxUint64, 10)
	case 6:
		return "18446744073709551616"
	case 7:
		return g.pick("1.0", "1e2", "1E+2", "01", "-", "1.", ".5", "0x10", "+1", "2.5e-3", "1e400")
	case 8:
		return strings.ReplaceAll(g.card(), " ", "")
	case 9:
		return strconv.FormatInt(g.r.Int64(), 10)
	default:
		return strconv.Itoa(g.r.IntN(100000))
	}
}

// timeText is a random time value, as JSON text.
func (g gen) timeText() string {
	c := g.r.IntN(8)
	if g.clean {
		c = 1 + g.r.IntN(20)
	}
	switch c {
	case 0:
		return `"` + g.pick("2026-02-30T00:00:00Z", "2026-11-25 20:01:02Z", "2026-11-25T20:01:02", "yesterday",
			"2026-11-25T24:00:00Z", "2026-11-25T20:60:00Z", "2026-11-25T20:01:60Z", "", "2026-13-01T00:00:00Z") + `"`
	case 1:
		return `"` + g.pick("2026-11-25T20:01:02+05:30", "2026-11-25T20:01:02.123456789-08:00", "1999-12-31T23:59:59.9999Z",
			"2100-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "2026-11-25t20:01:02z", "2026-11-25T20:01:02.Z") + `"`
	default:
		at := time.Date(1990+g.r.IntN(120), time.Month(1+g.r.IntN(12)), 1+g.r.IntN(28), g.r.IntN(24), g.r.IntN(60), g.r.IntN(60),
			g.r.IntN(1e9), time.UTC)
		layout := g.pick(TimeLayout, time.RFC3339, time.RFC3339Nano)
		return `"` + at.Format(layout) + `"`
	}
}

// value is a random value for a field of kind, mostly of the right type.
func (g gen) value(kind string) string {
	if !g.clean && g.r.IntN(14) == 0 {
		return g.pick("null", "true", "false", `"x"`, "12", "[]", "{}", `{"a":1}`, "[1,2]", "nul", "tru")
	}
	switch kind {
	case "string":
		return g.text()
	case "int":
		return g.number()
	case "uint":
		if n := g.number(); !g.clean || n[0] != '-' {
			return n
		}
		return "1"
	case "bool":
		return g.pick("true", "false")
	case "uuid":
		switch g.r.IntN(6) + 6*boolInt(g.clean) {
		case 0:
			return `"` + g.pick("not-a-uuid", "", strings.ToUpper(uuid.NewString()), "{"+uuid.NewString()+"}",
				"urn:uuid:"+uuid.NewString(), strings.ReplaceAll(uuid.NewString(), "-", "")) + `"`
		case 1:
			return `"` + uuid.NewString() + `"` // v4
		}
		return `"` + uuid.Must(uuid.NewV7()).String() + `"`
	case "time":
		return g.timeText()
	case "source":
		return g.source()
	}
	return "null"
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// source is a random source object, as JSON text.
func (g gen) source() string {
	keys := []string{"system", "instance", "seq"}
	g.r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	var parts []string
	for _, k := range keys {
		if g.r.IntN(8) == 0 {
			continue
		}
		var v string
		switch k {
		case "seq":
			v = g.number()
		default:
			if g.r.IntN(3) == 0 {
				v = g.text()
			} else {
				v = `"` + g.pick("acd", "tampa-01", "shop", "detector", "web-1") + `"`
			}
		}
		if k == "seq" && g.clean {
			v = strconv.Itoa(g.r.IntN(1e6))
		}
		if !g.clean && g.r.IntN(30) == 0 {
			k = g.pick("System", "SEQ", "other", "seq ")
		}
		parts = append(parts, g.ws()+`"`+k+`"`+g.ws()+":"+g.ws()+v)
		if !g.clean && g.r.IntN(30) == 0 {
			parts = append(parts, parts[len(parts)-1]) // repeated
		}
	}
	return "{" + strings.Join(parts, ",") + g.ws() + "}"
}

// ws is whitespace, mostly none.
func (g gen) ws() string {
	if g.r.IntN(6) != 0 {
		return ""
	}
	if g.clean {
		return g.pick(" ", "\n", "\t", "\r\n  ")
	}
	return g.pick(" ", "\n", "\t", "\r\n  ", "\v", "\u00a0")
}

// encoded is a valid event of a random kind, as Encode writes it.
func (g gen) encoded() []byte {
	k := Kinds[g.r.IntN(len(Kinds))]
	var e *Event
	if k.IsDetection() {
		e = validDetection(k)
	} else {
		e = validOrder()
		e.Kind = k
	}
	e.Source.Seq = 1 + g.r.Uint64N(1e12)
	e.OccurredAt = time.UnixMilli(g.r.Int64N(4e12)).UTC()
	e.CallID, e.DNIS, e.ANIHash = fmt.Sprintf("c-%d", g.r.IntN(1e6)), "8005550100", HashANI([]byte("k"), strconv.Itoa(g.r.Int()))
	e.AmountCents, e.TalkSeconds, e.Continuity = g.r.Int64N(1e9), g.r.Int64N(1e4), g.r.IntN(2) == 0
	if g.r.IntN(4) == 0 {
		e.Offer = g.pick("widget", "héllo", "a&b", `say "hi"`, "日本")
	}
	if k.IsAiring() {
		e.AiringID, e.Station, e.AiredAt = "a-1", "WXYZ", e.OccurredAt.Add(-time.Hour)
	}
	b, _ := json.Marshal(e)
	return b
}

// document is a random event document, valid or not.
func (g gen) document() []byte {
	if !g.clean && g.r.IntN(4) == 0 {
		return g.mutate(g.encoded())
	}
	names := make([]string, 0, len(fieldKinds))
	for name := range fieldKinds {
		names = append(names, name)
	}
	slices.Sort(names)
	g.r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	names = names[:g.r.IntN(len(names)+1)]
	var b strings.Builder
	b.WriteString(g.ws() + "{")
	for i, name := range names {
		if i > 0 {
			b.WriteString(g.ws() + ",")
		}
		key := name
		switch g.r.IntN(60) + 60*boolInt(g.clean) {
		case 0:
			key = strings.ToUpper(name[:1]) + name[1:]
		case 1:
			key = g.pick("unknown", "note", "card 4111111111111111", "kind\u00e9", `ki\u006ed`)
		}
		b.WriteString(g.ws() + `"` + key + `"` + g.ws() + ":" + g.ws() + g.value(fieldKinds[name]))
		if g.r.IntN(40) == 0 && name != "source" { // the same key again
			b.WriteString(`,"` + key + `":` + g.value(fieldKinds[name]))
		}
	}
	b.WriteString(g.ws() + "}" + g.ws())
	out := []byte(b.String())
	if !g.clean && g.r.IntN(8) == 0 {
		out = g.mutate(out)
	}
	return out
}

// mutate damages a document a little.
func (g gen) mutate(b []byte) []byte {
	b = slices.Clone(b)
	switch g.r.IntN(8) {
	case 0:
		return b[:g.r.IntN(len(b)+1)]
	case 1:
		return append(b, []byte(g.pick(" ", "x", "}", "{}", "\n", " 1", "null", ","))...)
	case 2:
		if len(b) > 0 {
			b[g.r.IntN(len(b))] = byte(g.r.IntN(256))
		}
	case 3:
		if len(b) > 0 {
			i := g.r.IntN(len(b))
			b = slices.Insert(b, i, []byte(g.pick(" ", `"`, `\`, ",", ":", "0", "4111111111111111", "\x00", "é"))...)
		}
	case 4:
		if len(b) > 1 {
			i := g.r.IntN(len(b) - 1)
			b = slices.Delete(b, i, i+1)
		}
	case 5:
		return []byte(g.pick("null", "[]", `"x"`, "1", "", " ", "{", `{"kind":"heartbeat"`, "[{}]", "{}"))
	case 6:
		return bytes.Replace(b, []byte(`"`), []byte(`'`), 1)
	case 7:
		return bytes.Replace(b, []byte(`":"`), []byte(`": null, "x":"`), 1)
	}
	return b
}

// TestParseMatchesReference: on many generated documents of every kind,
// valid and not, Parse gives what it gave before parseScan: the same event
// or the same problems; and parseScan takes a good share of them.
func TestParseMatchesReference(t *testing.T) {
	n := 30000
	if testing.Short() {
		n = 3000
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(1, seed))
	scanned, accepted, cards := 0, 0, 0
	for i := 0; i < n; i++ {
		var doc []byte
		switch i % 3 {
		case 0:
			doc = gen{r: r}.encoded()
		case 1:
			doc = gen{r: r, clean: true}.document()
		default:
			doc = gen{r: r}.document()
		}
		if diff := sameParse(doc); diff != "" {
			t.Fatalf("Parse(%q): %s", doc, diff)
		}
		if _, ok := parseScan(doc); ok {
			scanned++
		}
		ev, err := Parse(doc)
		if err == nil {
			accepted++
			if field := cardField(ev); field != "" {
				t.Fatalf("Parse accepted a card number in %s: %q", field, doc)
			}
		} else if errorsIsCard(err) {
			cards++
		}
	}
	t.Logf("%d documents: %d accepted (%d by parseScan), %d refused for a card number", n, accepted, scanned, cards)
	if scanned < n/2 || cards < n/400 {
		t.Fatalf("the generator does not exercise parseScan enough: %d scanned, %d cards of %d", scanned, cards, n)
	}
}

// cardField is a field of ev outside cardExempt that holds a card number,
// or "".
func cardField(ev *Event) string {
	b, _ := json.Marshal(ev)
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(b, &fields)
	for k, raw := range fields {
		if !cardExempt[k] && rawHasCard(raw) {
			return k
		}
	}
	return ""
}

// TestScanEdgeCases: cases the reference decides in a way that is easy to
// get wrong, each compared with it.
func TestScanEdgeCases(t *testing.T) {
	good, _ := validOrder().Encode()
	src := `"source":{"system":"shop","instance":"web-1","seq":7}`
	for _, doc := range []string{
		string(good),
		`{}`, ` {} `, `{"kind":"heartbeat"}`,
		`{"source":null}`, `{"source":{}}`, `{"source":{"system":"a"},"source":{"instance":"b"}}`,
		`{"source":{"system":"a","system":"b"}}`, `{"ani_hash":"4111111111111111","source":{"system":"a"},"source":{"instance":"b"}}`,
		`{"ani_hash":"4111111111111111","source":null}`, `{"ani_hash":"4111111111111111","call_id":"x","call_id":null}`, `{"call_id":"x","call_id":null}`, `{"call_id":"x","call_id":"y"}`,
		`{"occurred_at":"2026-11-25T20:01:02Z","occurred_at":null}`, `{"occurred_at":"bad","occurred_at":"2026-11-25T20:01:02Z"}`,
		`{"amount_cents":"x","amount_cents":5}`, `{"offer":"4111111111111111","offer":"widget"}`,
		`{"ani_hash":"4111111111111111"}`, `{"event_id":"4111111111111111-1111-1111-1111-111111111111"}`,
		`{"offer":"4111 1111 1111 1111"}`, `{"seq_from":4111111111111111}`, `{` + src + `,"amount_cents":4111111111111111}`,
		`{"schema_version":9223372036854775808}`, `{"seq_to":-0}`, `{"talk_seconds":-0}`, `{"seq_to":18446744073709551615}`,
		`{"offer":"a\u0026b"}`, `{"offer":"héllo"}`, "{\"offer\":\"bad\xff\"}", `{"Offer":"x"}`, `{"offer ":"x"}`,
		`{"offer":"x"} {}`, `{"offer":"x"}}`, `{"offer":"x",}`, `{,"offer":"x"}`, `{"offer":"x"`, `{"offer" "x"}`,
		`{"continuity":1}`, `{"continuity":"true"}`, `{"continuity":truex}`, `{"amount_cents":5x}`,
		`{"aired_at":"2026-11-25T20:01:02.123456789+01:00"}`, `{"window_end":"2026-02-29T00:00:00Z"}`,
		`{"event_id":"{` + uuid.NewString() + `}"}`, `{"event_id":"` + strings.ToUpper(uuid.NewString()) + `"}`,
		`null`, `[]`, `"x"`, ``, `{"kind":"heartbeat"}` + "\x00",
	} {
		if diff := sameParse([]byte(doc)); diff != "" {
			t.Errorf("Parse(%q): %s", doc, diff)
		}
	}
}

// FuzzParseScan: on any input, Parse agrees with the reference.
func FuzzParseScan(f *testing.F) {
	r := rand.New(rand.NewPCG(2, 3))
	for range 20 {
		f.Add(gen{r: r}.encoded())
		f.Add(gen{r: r, clean: true}.document())
		f.Add(gen{r: r}.document())
	}
	f.Add([]byte(`{"source":{"system":"a"},"source":{"instance":"b"}}`))
	f.Add([]byte(`{"offer":"4111 1111 1111 1111"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if diff := sameParse(data); diff != "" {
			t.Fatalf("Parse(%q): %s", data, diff)
		}
	})
}
