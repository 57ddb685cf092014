package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/airtally/airtally/producers/pci"
)

// TimeLayout is how occurred_at is written: RFC 3339 in UTC with
// milliseconds. On input any RFC 3339 time with an offset is accepted and
// converted to UTC; precision beyond the millisecond is dropped.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// MaxEncodedBytes is the largest encoded event accepted.
const MaxEncodedBytes = 16 << 10

// Problem is one thing wrong with an event: the field (a JSON path such as
// "source.seq"; empty for the event as a whole) and the reason. A reason
// never repeats the value that was sent.
type Problem struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func (p Problem) String() string {
	if p.Field == "" {
		return p.Reason
	}
	return p.Field + ": " + p.Reason
}

// ValidationError lists every problem found in one event.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid event: " + strings.Join(parts, "; ")
}

// ErrCardNumber is wrapped by a ValidationError's Is when any problem is a
// card number found in the event.
var ErrCardNumber = errors.New("event: contains a card number")

// Is lets errors.Is(err, ErrCardNumber) find card-number rejections.
func (e *ValidationError) Is(target error) bool {
	if target != ErrCardNumber {
		return false
	}
	for _, p := range e.Problems {
		if p.Reason == reasonCard {
			return true
		}
	}
	return false
}

// Problems returns the problems of err if it is (or wraps) a
// *ValidationError, else nil.
func Problems(err error) []Problem {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Problems
	}
	return nil
}

const reasonCard = "looks like a payment card number; card data must never be sent"

type problems []Problem

// add records a problem. The field name is masked and cut to 64 bytes: an
// unknown field's name is what the sender wrote, and could hold a card
// number.
func (ps *problems) add(field, format string, args ...any) {
	field = pci.Mask(field)
	if len(field) > 64 {
		field = field[:64]
	}
	*ps = append(*ps, Problem{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}

// wireEvent is Event's JSON form; times are kept as text so that a
// malformed time is reported as a problem, not a decoding failure.
type wireEvent struct {
	Event
	OccurredAt  *string `json:"occurred_at"`
	AiredAt     *string `json:"aired_at"`
	AiredUntil  *string `json:"aired_until"`
	WindowStart *string `json:"window_start"`
	WindowEnd   *string `json:"window_end"`
}

// timeFields are the JSON fields that hold times, and where they go.
var timeFields = map[string]func(*Event) *time.Time{
	"occurred_at":  func(e *Event) *time.Time { return &e.OccurredAt },
	"aired_at":     func(e *Event) *time.Time { return &e.AiredAt },
	"aired_until":  func(e *Event) *time.Time { return &e.AiredUntil },
	"window_start": func(e *Event) *time.Time { return &e.WindowStart },
	"window_end":   func(e *Event) *time.Time { return &e.WindowEnd },
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimeLayout)
}

// MarshalJSON writes the one JSON encoding of an event, times in UTC with
// milliseconds.
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	return json.Marshal(struct {
		plain
		OccurredAt  string `json:"occurred_at"`
		AiredAt     string `json:"aired_at,omitempty"`
		AiredUntil  string `json:"aired_until,omitempty"`
		WindowStart string `json:"window_start,omitempty"`
		WindowEnd   string `json:"window_end,omitempty"`
	}{plain: plain(e), OccurredAt: e.OccurredAt.UTC().Format(TimeLayout), AiredAt: formatTime(e.AiredAt), AiredUntil: formatTime(e.AiredUntil),
		WindowStart: formatTime(e.WindowStart), WindowEnd: formatTime(e.WindowEnd)})
}

// cardExempt are the top-level fields not scanned for card numbers: their
// format is checked strictly (ids, times, hashes), or, for ani, the value is
// replaced by its keyed hash before it goes anywhere.
var cardExempt = map[string]bool{"event_id": true, "occurred_at": true, "aired_at": true, "aired_until": true,
	"window_start": true, "window_end": true, "ani": true, "ani_hash": true}

// fieldNames is every top-level JSON field of schema version 1: the JSON
// names of Event's fields plus the time fields.
var fieldNames = func() map[string]bool {
	names := map[string]bool{}
	t := reflect.TypeOf(Event{})
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names[name] = true
		}
	}
	for name := range timeFields {
		names[name] = true
	}
	return names
}()

var sourceFieldNames = map[string]bool{"system": true, "instance": true, "seq": true}

// Parse decodes an event as a producer sends it, reporting every structural
// problem at once: not an object, unknown fields, values of the wrong type,
// a malformed time and any card number. It does not check the rules of the
// event's kind; call Validate for that once the producer has completed the
// event (id, sequence, hashed ANI).
func Parse(data []byte) (*Event, error) {
	var ps problems
	if len(data) > MaxEncodedBytes {
		ps.add("", "is larger than %d bytes", MaxEncodedBytes)
		return nil, ps.err()
	}
	if ev, ok := parseFast(data); ok {
		return ev, nil
	}
	return parseSlow(data)
}

// parseSlow decodes field by field, collecting every problem.
func parseSlow(data []byte) (*Event, error) {
	var ps problems
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		ps.add("", "must be a JSON object")
		return nil, ps.err()
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	ev := &Event{}
	for _, k := range keys {
		raw := fields[k]
		if pci.Contains(k) || (!cardExempt[k] && rawHasCard(raw)) {
			ps.add(k, reasonCard)
			continue
		}
		if !fieldNames[k] {
			ps.add(k, "is not a field of schema version %d", SchemaVersion)
			continue
		}
		switch k {
		case "occurred_at", "aired_at", "aired_until", "window_start", "window_end":
			if string(raw) == "null" {
				continue // as if absent, like the fast path
			}
			var s string
			if json.Unmarshal(raw, &s) != nil {
				ps.add(k, "must be a string with an RFC 3339 time")
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				ps.add(k, "must be an RFC 3339 time with a time zone, e.g. 2026-11-25T20:01:02.123Z")
				continue
			}
			*timeFields[k](ev) = t.UTC().Truncate(time.Millisecond)
		case "source":
			parseSource(raw, &ev.Source, &ps)
		default:
			// Decode the one field alone, over what is decoded so far, so
			// that a type error names its field and touches nothing else.
			one, _ := json.Marshal(map[string]json.RawMessage{k: raw})
			w := wireEvent{Event: *ev}
			if err := json.Unmarshal(one, &w); err != nil {
				ps.add(k, "%s", typeReason(err))
				continue
			}
			*ev = w.Event
		}
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return ev, nil
}

// parseFast decodes a well-formed event: parseScan for the plain form
// Encode writes, else parseDecoder. It reports false at the first sign of
// trouble (an unknown field, a wrong type, a bad time, a card number,
// trailing data), and Parse then takes the slow path that names every
// problem.
func parseFast(data []byte) (*Event, bool) {
	if ev, ok := parseScan(data); ok {
		return ev, true
	}
	return parseDecoder(data)
}

// parseDecoder decodes a well-formed event with encoding/json. It is what
// parseScan's doubts fall back to (nulls, escapes, repeated objects, ...),
// so that they are decoded as they always were.
func parseDecoder(data []byte) (*Event, bool) {
	if pci.Contains(string(data)) {
		// Something looks like a card number, maybe only inside an exempt
		// field (an id, a hash): let the slow path look field by field.
		return nil, false
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, false // null, arrays, scalars: the slow path names the problem
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
	// A fixed list, not a map: this runs for every event a loader or a
	// replay reads.
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

// keysExact reports whether every object key in data is, letter for
// letter, a field of an event or of its source. encoding/json matches keys
// without regard to case; the contract does not.
func keysExact(data []byte) bool {
	for i := 0; i < len(data); i++ {
		if data[i] != '"' {
			continue
		}
		start := i + 1
		j := start
		for j < len(data) && data[j] != '"' {
			if data[j] == '\\' {
				return false // escapes in the document: leave it to the slow path
			}
			j++
		}
		if j >= len(data) {
			return false
		}
		k := j + 1
		for k < len(data) && (data[k] == ' ' || data[k] == '\t' || data[k] == '\n' || data[k] == '\r') {
			k++
		}
		if k < len(data) && data[k] == ':' {
			key := data[start:j]
			if !fieldNames[string(key)] && !sourceFieldNames[string(key)] {
				return false
			}
		}
		i = j
	}
	return true
}

func parseSource(raw json.RawMessage, src *Source, ps *problems) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		ps.add("source", "must be an object with system, instance and seq")
		return
	}
	for k, v := range fields {
		if !sourceFieldNames[k] {
			ps.add("source."+k, "is not a field of source")
			continue
		}
		one, _ := json.Marshal(map[string]json.RawMessage{k: v})
		if err := json.Unmarshal(one, src); err != nil {
			ps.add("source."+k, "%s", typeReason(err))
		}
	}
}

func typeReason(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		switch te.Type.Kind().String() {
		case "string":
			return "must be a string"
		case "bool":
			return "must be true or false"
		case "int64", "uint64", "int":
			return "must be a whole number in range"
		case "array":
			return "must be a UUID string"
		}
		return "has the wrong type"
	}
	if strings.Contains(err.Error(), "uuid") || strings.Contains(err.Error(), "UUID") {
		return "must be a UUID"
	}
	return "has the wrong type"
}

// rawHasCard reports whether any string or number inside raw looks like a
// card number.
func rawHasCard(raw json.RawMessage) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			// Malformed JSON cannot reach here (it was decoded already);
			// scan the raw text to be safe.
			return err.Error() != "EOF" && pci.Contains(string(raw))
		}
		switch v := tok.(type) {
		case string:
			if pci.Contains(v) {
				return true
			}
		case json.Number:
			if pci.Contains(v.String()) {
				return true
			}
		}
	}
}

// Decode parses and validates an event as it is stored on the stream: the
// strict form that consumers accept.
func Decode(data []byte) (*Event, error) {
	ev, err := Parse(data)
	if err != nil {
		return nil, err
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return ev, nil
}

// Encode validates e and returns its JSON encoding. It refuses an event
// with a card number in any field, whatever field it is.
func (e *Event) Encode() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("event: encode: %w", err)
	}
	if !pci.Contains(string(b)) {
		return b, nil // nothing anywhere looks like a card number
	}
	// Something does, maybe only in an exempt field (an id, a hash): look
	// field by field.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, fmt.Errorf("event: encode: %w", err)
	}
	var ps problems
	for k, raw := range fields {
		if !cardExempt[k] && rawHasCard(raw) {
			ps.add(k, reasonCard)
		}
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return b, nil
}
