package loader

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDecodeMessage(t *testing.T) {
	const prefix = "drtv.v1"
	ev := events(3, 0)[2] // an order
	good, err := ev.Encode()
	if err != nil {
		t.Fatal(err)
	}
	set := func(field string, value any) []byte {
		var m map[string]any
		_ = json.Unmarshal(good, &m)
		m[field] = value
		b, _ := json.Marshal(m)
		return b
	}
	subject := ev.Subject(prefix)
	m := meta{streamSeq: 42, storedAt: time.Date(2026, 11, 25, 20, 0, 1, 987654321, time.UTC)}

	tests := []struct {
		name    string
		subject string
		data    []byte
		class   string // "" for a row
		reason  string
		secret  string // in no reason; for a card, in no part of the dead letter
	}{
		{"valid", subject, good, "", "", ""},
		{"card number", subject, set("offer", "card 4111-1111-1111-1111 here"), classCardNumber, "offer: looks like a payment card number", "4111-1111-1111-1111"},
		{"card number in the subject", prefix + ".order_placed.acd.4111111111111111", good, classCardNumber, "subject: does not match", "4111111111111111"},
		{"missing required field", subject, set("currency", ""), classInvalid, "currency: is required for order.placed", ""},
		{"wrong type", subject, set("amount_cents", "lots"), classInvalid, "amount_cents: must be a whole number", "lots"},
		{"not json", subject, []byte("\x00\x01"), classInvalid, "must be a JSON object", ""},
		{"card number in truncated json", subject, []byte(`{"kind":"order.placed","note":"4111 1111 1111 1111"`), classCardNumber, "must be a JSON object", "4111 1111 1111 1111"},
		{"card number in an array", subject, []byte(`["4111111111111111"]`), classCardNumber, "must be a JSON object", "4111111111111111"},
		{"other kind's subject", prefix + ".call_received.acd.tampa-01", good, classSubject, "subject: does not match", ""},
		{"other source's subject", prefix + ".order_placed.acd.tampa-02", good, classSubject, "subject: does not match", ""},
		{"subject outside the prefix", "elsewhere.order_placed.acd.tampa-01", good, classSubject, "subject: does not match", ""},
		{"occurred_at beyond DateTime", subject, set("occurred_at", "2099-12-31T23:59:59.000Z"), "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row, _, dead := decodeMessage(knownColumns, prefix, tt.subject, tt.data, m)
			if tt.class == "" {
				if dead != nil {
					t.Fatalf("dead letter %+v, want a row", dead)
				}
				if row == nil || row.ev == nil || row.meta != m {
					t.Fatalf("row %+v, want the event with the message's meta", row)
				}
				return
			}
			if dead == nil {
				t.Fatalf("row, want a dead letter of class %s", tt.class)
			}
			if dead.class != tt.class || !strings.Contains(dead.reason, tt.reason) || dead.streamSeq != 42 {
				t.Fatalf("dead letter %+v, want class %s, reason containing %q", dead, tt.class, tt.reason)
			}
			if tt.secret == "" {
				return
			}
			// A reason never repeats a value; a card number is nowhere.
			texts := map[string]string{"reason": dead.reason}
			if dead.card {
				texts["subject"], texts["payload"], texts["instance"] = dead.subject, string(dead.payload), dead.instance
			}
			for what, text := range texts {
				if strings.Contains(text, tt.secret) {
					t.Errorf("the %s of the dead letter holds %q", what, tt.secret)
				}
			}
		})
	}
}

func TestEventRowValues(t *testing.T) {
	ev := events(3, 0)[2]
	stored := time.Date(2026, 11, 25, 20, 0, 1, 987654321, time.UTC)
	r, err := newRow(knownColumns, ev, meta{streamSeq: 7, storedAt: stored})
	if err != nil {
		t.Fatal(err)
	}
	loaded := time.Date(2026, 11, 25, 20, 0, 2, 0, time.UTC)
	row := rowValues(knownColumns, r, loaded)
	byName := map[string]any{}
	for i, c := range knownColumns {
		byName[c.name] = row[i]
	}
	want := map[string]any{
		"event_id": ev.EventID, "kind": "order.placed", "schema_version": uint8(1),
		"occurred_at_ms": ev.OccurredAt.UnixMilli(), "source_seq": ev.Source.Seq, "amount_cents": ev.AmountCents,
		"continuity": uint8(1), "channel": "phone", "stream_seq": uint64(7), "stored_at_ms": stored.UnixMilli(),
		"occurred_at": ev.OccurredAt.UTC(), "stored_at": stored, "loaded_at": loaded, "order_id": ev.OrderID,
	}
	for name, v := range want {
		if byName[name] != v {
			t.Errorf("%s = %#v, want %#v", name, byName[name], v)
		}
	}
	if _, err := newRow(knownColumns, ev, meta{storedAt: stored}); err == nil {
		t.Error("a row without a stream sequence was accepted")
	}
	far := *ev
	far.OccurredAt = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := newRow(knownColumns, &far, meta{streamSeq: 7, storedAt: stored}); err == nil || !strings.Contains(err.Error(), "occurred_at") {
		t.Errorf("occurred_at beyond DateTime: err %v", err)
	}
}
