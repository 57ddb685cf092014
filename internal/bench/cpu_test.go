package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCPUSeconds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stat")
	// A command name with a space and a parenthesis; utime 250, stime 50.
	stat := "4242 (clickhouse (x) srv) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 30 0 100 1000 10\n"
	if err := os.WriteFile(path, []byte(stat), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := cpuSeconds(path)
	if err != nil || got != 3 {
		t.Fatalf("cpuSeconds = %g, %v; want 3 (300 ticks)", got, err)
	}
	if err := os.WriteFile(path, []byte("4242 (x) S 1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cpuSeconds(path); err == nil {
		t.Error("a truncated stat file was read")
	}

	// This process's own time grows while it works.
	before, err := cpuSeconds("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	after, err := cpuSeconds("/proc/self/stat")
	if err != nil || after-before < 0.1 {
		t.Errorf("300 ms of spinning counted %g s (%v)", after-before, err)
	}
}

func TestCPUPerEventAndBound(t *testing.T) {
	c := CPU{Process: 1.5, ClickHouse: 0.5}
	if p, ch := c.PerEvent(100_000); !near(p, 15) || !near(ch, 5) {
		t.Errorf("PerEvent = %g, %g µs; want 15, 5", p, ch)
	}
	// 20 µs an event on 2 cores: 100,000 events a second use both.
	if b := c.Bound(100_000, 2); !near(b, 100_000) {
		t.Errorf("Bound = %g, want 100000", b)
	}
	if b := (CPU{}).Bound(10, 2); b != 0 {
		t.Errorf("Bound of no time = %g, want 0 (unknown)", b)
	}
}
