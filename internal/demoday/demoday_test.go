package demoday

import (
	"testing"
	"time"
)

func TestDeterministicAndValid(t *testing.T) {
	cfg := Config{Date: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), Seed: 7}
	a, b := Generate(cfg), Generate(cfg)
	if len(a.Events) == 0 || len(a.Events) != len(b.Events) {
		t.Fatalf("sizes %d and %d", len(a.Events), len(b.Events))
	}
	seen := map[string]bool{}
	for i, e := range a.Events {
		if e.EventID != b.Events[i].EventID || e.Source != b.Events[i].Source {
			t.Fatalf("event %d differs between two runs", i)
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("event %d invalid: %v", i, err)
		}
		if seen[e.EventID.String()] {
			t.Fatalf("duplicate event id %s", e.EventID)
		}
		seen[e.EventID.String()] = true
	}
	other := Generate(Config{Date: cfg.Date, Seed: 8})
	if other.Events[0].EventID == a.Events[0].EventID {
		t.Fatal("another seed gave the same ids")
	}
}
