package faultday

import (
	"testing"
	"time"

	"github.com/airtally/airtally/producers/event"
)

var testDate = time.Date(2025, 11, 24, 0, 0, 0, 0, time.UTC)

// TestFaultedDay: the day is reproducible, the faults are where they are
// said to be, and the truth names exactly the airings they touch.
func TestFaultedDay(t *testing.T) {
	d := Generate(Config{Date: testDate, Seed: 5, Response: 4})
	again := Generate(Config{Date: testDate, Seed: 5, Response: 4})
	if len(d.Delivered) != len(again.Delivered) || d.Delivered[100].Event.EventID != again.Delivered[100].Event.EventID {
		t.Fatal("the same seed gave another day")
	}
	f := d.Faults
	last := map[string]uint64{}
	var prev time.Time
	for i, dl := range d.Delivered {
		e, key := dl.Event, dl.Event.Source.Key()
		if err := e.Validate(); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
		if dl.Received.Before(prev) {
			t.Fatalf("delivery %d received before the one before it", i)
		}
		prev = dl.Received
		switch {
		case key == f.OutageSource && in(e.OccurredAt, f.Outage):
			t.Errorf("an event of the source that was down: %s at %s", e.Kind, e.OccurredAt)
		case key == f.GapSource && e.Source.Seq >= f.GapFrom && e.Source.Seq <= f.GapTo:
			t.Errorf("an event of the lost range arrived: seq %d", e.Source.Seq)
		case e.Kind == event.CallReceived && e.DNIS != "" && in(e.OccurredAt, f.Silent) && len(e.DNIS) >= 10 && e.DNIS[len(e.DNIS)-10:] == f.SilentDNIS:
			t.Errorf("a call reached the silent number")
		case key == f.SpoolSource && in(e.OccurredAt, f.Spool) && dl.Received.Before(f.Spool.To):
			t.Errorf("a spooled event arrived before the spool was delivered")
		}
		// A source's events arrive in its order; only the lost range is
		// missing.
		if want := last[key] + 1; e.Source.Seq != want && !(key == f.GapSource && want == f.GapFrom && e.Source.Seq == f.GapTo+1) {
			t.Fatalf("%s: seq %d after %d", key, e.Source.Seq, last[key])
		}
		last[key] = e.Source.Seq
	}
	if len(d.Airings) != 3 {
		t.Fatalf("faults touched %v, want three airings", d.Airings)
	}
	for id, a := range d.Airings {
		if a.UncoveredMinutes <= 0 || a.DroppedCalls <= 0 || len(a.Causes) != 1 {
			t.Errorf("%s: %+v", id, a)
		}
	}
	if a := d.Airings["FR-0915-HGTV"]; a.UncoveredMinutes != 10 || a.Causes[0] != "outage" {
		t.Errorf("the outage airing: %+v", a)
	}
	if a := d.Airings["FR-1930-CNBC"]; a.UncoveredMinutes != 15 || a.Causes[0] != "silent" {
		t.Errorf("the silent airing: %+v", a)
	}
}
