package event

import (
	"strings"
	"testing"
	"time"
)

func validDetection(k Kind) *Event {
	at := time.Date(2026, 11, 25, 20, 14, 0, 0, time.UTC)
	e := New(k, Source{System: DetectorSystem, Instance: "main", Seq: 3}, at)
	e.MonitoredSystem, e.MonitoredInstance = "acd", "tampa-01"
	e.WindowStart = at
	e.ToleranceSeconds = 150
	switch k {
	case SourceUp:
		e.WindowEnd, e.Outcome = at.Add(10*time.Minute), OutcomeDown
	case GapOpened, GapClosed:
		e.WindowEnd, e.SeqFrom, e.SeqTo, e.ToleranceSeconds = at.Add(3*time.Minute), 500, 540, 0
		if k == GapClosed {
			e.Outcome = OutcomeFilled
		}
	case LineSilent, LineRestored:
		e.DNIS, e.Site, e.AiringID, e.ExpectedCalls, e.ToleranceSeconds = "8005550102", "tampa", "FR-1930-CNBC", 8, 0
		if k == LineRestored {
			e.WindowEnd, e.ObservedCalls = at.Add(12*time.Minute), 1
		}
	case DataDelayed:
		e.WindowEnd, e.DelayMS, e.EventCount, e.Outcome, e.ToleranceSeconds = at.Add(5*time.Minute), 300000, 42, OutcomeProducer, 0
	}
	return e
}

// TestDetectionRoundTrip: every detection kind encodes, decodes to the same
// event (window times included) and agrees on the fast and slow paths.
func TestDetectionRoundTrip(t *testing.T) {
	for _, k := range []Kind{SourceDown, SourceUp, GapOpened, GapClosed, LineSilent, LineRestored, DataDelayed} {
		t.Run(string(k), func(t *testing.T) {
			e := validDetection(k)
			e.ClockSkewMS = -240000
			b, err := e.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), `"window_start":"2026-11-25T20:14:00.000Z"`) {
				t.Fatalf("window_start not encoded: %s", b)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !got.WindowStart.Equal(e.WindowStart) || !got.WindowEnd.Equal(e.WindowEnd) || got.SeqFrom != e.SeqFrom ||
				got.Outcome != e.Outcome || got.ClockSkewMS != -240000 || got.MonitoredKey() != e.MonitoredKey() {
				t.Fatalf("round trip changed the event:\n%+v\n%+v", e, got)
			}
			fast, ok := parseFast(b)
			slow, err := parseSlow(b)
			if !ok || err != nil || !fast.WindowEnd.Equal(slow.WindowEnd) || !fast.WindowStart.Equal(slow.WindowStart) {
				t.Fatalf("fast (%v) and slow (%v) paths disagree", ok, err)
			}
			if !k.IsDetection() || k.IsCall() || !k.Known() {
				t.Fatalf("%s: IsDetection/Known wrong", k)
			}
		})
	}
}

func TestDetectionValidation(t *testing.T) {
	tests := []struct {
		name   string
		kind   Kind
		mutate func(*Event)
		fields []string
	}{
		{"valid down", SourceDown, func(*Event) {}, nil},
		{"not from the detector", SourceDown, func(e *Event) { e.Source.System = "acd" }, []string{"source.system"}},
		{"no monitored source", SourceUp, func(e *Event) { e.MonitoredSystem, e.MonitoredInstance = "", "Bad" },
			[]string{"monitored_system", "monitored_instance"}},
		{"no window", SourceUp, func(e *Event) { e.WindowStart, e.WindowEnd = time.Time{}, time.Time{} }, []string{"window_start", "window_end"}},
		{"window backwards", SourceUp, func(e *Event) { e.WindowEnd = e.WindowStart.Add(-time.Second) }, []string{"window_end"}},
		{"window out of range", SourceUp, func(e *Event) { e.WindowEnd = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC) }, []string{"window_end"}},
		{"up without outcome", SourceUp, func(e *Event) { e.Outcome = "" }, []string{"outcome"}},
		{"down without tolerance", SourceDown, func(e *Event) { e.ToleranceSeconds = 0 }, []string{"tolerance_seconds"}},
		{"gap range backwards", GapOpened, func(e *Event) { e.SeqFrom, e.SeqTo = 9, 3 }, []string{"seq_to"}},
		{"gap from zero", GapOpened, func(e *Event) { e.SeqFrom = 0 }, []string{"seq_from"}},
		{"seq range on a down", SourceDown, func(e *Event) { e.SeqFrom = 4 }, []string{"seq_from"}},
		{"closed with a bad outcome", GapClosed, func(e *Event) { e.Outcome = "gone" }, []string{"outcome"}},
		{"silent line without dnis", LineSilent, func(e *Event) { e.DNIS = "" }, []string{"dnis"}},
		{"silent line of a whole number", LineSilent, func(e *Event) { e.MonitoredSystem, e.MonitoredInstance = "", "" }, nil},
		{"delay without figures", DataDelayed, func(e *Event) { e.DelayMS, e.EventCount, e.Outcome = 0, 0, "" },
			[]string{"delay_ms", "event_count", "outcome"}},
		{"negative counts", LineRestored, func(e *Event) { e.ExpectedCalls, e.ObservedCalls = -1, -2 },
			[]string{"expected_calls", "observed_calls"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := validDetection(tc.kind)
			tc.mutate(e)
			assertProblems(t, e.Validate(), tc.fields)
		})
	}
}

// TestDetectionFieldsOnlyOnDetections: the detection fields are refused on
// other kinds, so that a producer cannot pass for the detector.
func TestDetectionFieldsOnlyOnDetections(t *testing.T) {
	e := validOrder()
	e.MonitoredSystem, e.WindowStart, e.Outcome, e.ClockSkewMS = "acd", time.Now(), "down", 5
	assertProblems(t, e.Validate(), []string{"monitored_system", "window_start", "outcome", "clock_skew_ms"})
}

func assertProblems(t *testing.T, err error, fields []string) {
	t.Helper()
	if len(fields) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	got := map[string]bool{}
	for _, p := range Problems(err) {
		got[p.Field] = true
	}
	for _, f := range fields {
		if !got[f] {
			t.Errorf("no problem named %s in %v", f, err)
		}
	}
}

func FuzzDecodeDetection(f *testing.F) {
	for _, k := range []Kind{SourceUp, GapOpened, LineSilent, DataDelayed} {
		b, _ := validDetection(k).Encode()
		f.Add(b)
	}
	f.Add([]byte(`{"window_start":null,"window_end":"2026-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := parseFast(data)
		if !ok {
			return
		}
		slow, err := parseSlow(data)
		if err != nil {
			t.Fatalf("fast path accepted what the slow path refuses: %v", err)
		}
		if !fast.WindowStart.Equal(slow.WindowStart) || !fast.WindowEnd.Equal(slow.WindowEnd) || fast.SeqTo != slow.SeqTo {
			t.Fatal("fast and slow paths differ on detection fields")
		}
	})
}
