package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func validOrder() *Event {
	e := New(OrderPlaced, Source{System: "shop", Instance: "web-1", Seq: 7}, time.Date(2026, 11, 25, 20, 1, 2, 123456789, time.FixedZone("EST", -5*3600)))
	e.OrderID, e.Offer, e.Currency, e.Channel, e.AmountCents = "o-1", "widget", "USD", ChannelWeb, 1999
	e.PromoCode = "TV25"
	return e
}

func TestRoundTrip(t *testing.T) {
	e := validOrder()
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"occurred_at":"2026-11-26T01:01:02.123Z"`) {
		t.Fatalf("occurred_at not UTC with ms: %s", b)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.EventID != e.EventID || !got.OccurredAt.Equal(e.OccurredAt) || got.AmountCents != 1999 || got.Source != e.Source || got.PromoCode != "TV25" {
		t.Fatalf("round trip changed the event: %+v", got)
	}
}

func TestAiringRoundTrip(t *testing.T) {
	e := New(AiringScheduled, Source{System: "schedule", Instance: "import", Seq: 1}, time.Now())
	e.AiringID, e.Offer, e.Station, e.DNIS, e.Currency, e.SpendCents = "a-1", "widget", "WXYZ", "8005550100", "USD", 150000
	e.AiredAt = time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.AiredAt.Equal(e.AiredAt) || !got.AiredUntil.IsZero() || got.SpendCents != 150000 {
		t.Fatalf("airing round trip: %+v", got)
	}
}

func TestValidationNamesEveryProblem(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Event)
		fields []string
	}{
		{"valid", func(*Event) {}, nil},
		{"missing ids", func(e *Event) { e.OrderID, e.Offer = "", "" }, []string{"order_id", "offer"}},
		{"bad envelope", func(e *Event) { e.Source.System, e.Source.Seq, e.SchemaVersion = "Bad Name", 0, 2 },
			[]string{"source.system", "source.seq", "schema_version"}},
		{"money rules", func(e *Event) { e.AmountCents, e.Currency = -5, "usd" }, []string{"amount_cents", "currency"}},
		{"raw ani", func(e *Event) { e.ANI = "8135550100" }, []string{"ani"}},
		{"last4", func(e *Event) { e.CardLast4 = "12345" }, []string{"card_last4"}},
		{"unknown kind", func(e *Event) { e.Kind = "call.dropped" }, []string{"kind"}},
		{"call without dnis", func(e *Event) { e.Kind, e.CallID = CallReceived, "c1" }, []string{"dnis"}},
		{"ended without disposition", func(e *Event) { e.Kind, e.CallID, e.DNIS = CallEnded, "c1", "8005550100" }, []string{"disposition"}},
		{"heartbeat interval", func(e *Event) { e.Kind = Heartbeat }, []string{"interval_seconds"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := validOrder()
			tc.mutate(e)
			err := e.Validate()
			if len(tc.fields) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			got := map[string]bool{}
			for _, p := range Problems(err) {
				got[p.Field] = true
			}
			for _, f := range tc.fields {
				if !got[f] {
					t.Errorf("no problem named %s in %v", f, err)
				}
			}
		})
	}
}

func TestParseReportsAllAndNeverEchoesCards(t *testing.T) {
	const pan = "4111 1111 1111 1111"
	in := `{"kind":"call.received","amount_cents":"x","bogus":1,"occurred_at":"yesterday",` +
		`"source":{"seq":-1,"zz":1},"disposition":"paid ` + pan + `","queue":4012888888881881}`
	_, err := Parse([]byte(in))
	if err == nil {
		t.Fatal("expected an error")
	}
	want := []string{"amount_cents", "bogus", "occurred_at", "source.seq", "source.zz", "disposition", "queue"}
	got := map[string]bool{}
	for _, p := range Problems(err) {
		got[p.Field] = true
	}
	for _, f := range want {
		if !got[f] {
			t.Errorf("no problem for %s: %v", f, err)
		}
	}
	if !errors.Is(err, ErrCardNumber) {
		t.Error("errors.Is(err, ErrCardNumber) = false")
	}
	if strings.Contains(err.Error(), "4111") || strings.Contains(err.Error(), "4012888888881881") {
		t.Fatalf("error echoes the card number: %v", err)
	}
}

func TestCardInFieldNameNotEchoed(t *testing.T) {
	_, err := Parse([]byte(`{"4111 1111 1111 1111":1,"kind":"heartbeat"}`))
	if err == nil || strings.Contains(err.Error(), "4111") {
		t.Fatalf("want a problem that does not echo the key, got %v", err)
	}
	if !errors.Is(err, ErrCardNumber) {
		t.Fatal("a card number as a field name is not a card-number rejection")
	}
}

func TestEncodeRefusesCardInAnyField(t *testing.T) {
	e := validOrder()
	e.SKU = "sku-4111-1111-1111-1111"
	if _, err := e.Encode(); !errors.Is(err, ErrCardNumber) {
		t.Fatalf("Encode accepted a card number: %v", err)
	}
}

func TestSealANI(t *testing.T) {
	e := validOrder()
	e.ANI = "+1 (813) 555-0100"
	e.SealANI([]byte("k"))
	if e.ANI != "" || e.ANIHash != HashANI([]byte("k"), "18135550100") || len(e.ANIHash) != 64 {
		t.Fatalf("SealANI: %+v", e)
	}
	if HashANI([]byte("other"), "18135550100") == e.ANIHash {
		t.Fatal("hash is not keyed")
	}
}

func FuzzDecode(f *testing.F) {
	b, _ := validOrder().Encode()
	f.Add(b)
	f.Add([]byte(`{"kind":"heartbeat","source":{"system":"a","instance":"b","seq":1},"interval_seconds":5}`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte(`{"occurred_at":null}`))
	f.Add([]byte(`{"Kind":"heartbeat"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if fast, ok := parseFast(data); ok {
			slow, err := parseSlow(data)
			if err != nil {
				t.Fatalf("fast path accepted what the slow path refuses: %v", err)
			}
			fb, _ := json.Marshal(fast)
			sb, _ := json.Marshal(slow)
			if string(fb) != string(sb) {
				t.Fatalf("fast and slow paths differ:\n%s\n%s", fb, sb)
			}
		}
		e, err := Decode(data)
		if err != nil {
			if strings.Contains(err.Error(), "4111111111111111") {
				t.Fatal("error echoes a card number")
			}
			return
		}
		// Whatever decodes must encode and decode again to the same event.
		out, err := e.Encode()
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		again, err := Decode(out)
		if err != nil || again.EventID != e.EventID || again.Source != e.Source || !again.OccurredAt.Equal(e.OccurredAt) {
			t.Fatalf("re-decode differs: %v", err)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	e := validOrder()
	data, _ := e.Encode()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	e := validOrder()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := e.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}
