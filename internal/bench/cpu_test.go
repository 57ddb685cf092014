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

	// This process's own time grows while it works: spin until it has
	// grown by 0.1 s (however loaded the machine), or fail after 10 s.
	before, err := cpuSeconds("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		after, err := cpuSeconds("/proc/self/stat")
		if err != nil {
			t.Fatal(err)
		}
		if after-before >= 0.1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s of spinning counted %g s of processor time", after-before)
		}
		for end := time.Now().Add(10 * time.Millisecond); time.Now().Before(end); {
		}
	}
}

func TestCPUPerEventAndBound(t *testing.T) {
	c := CPU{Process: 1.5, ClickHouse: 0.5}
	if p, ch := c.PerEvent(100_000); !near(p, 15) || !near(ch, 5) {
		t.Errorf("PerEvent = %g, %g µs; want 15, 5", p, ch)
	}
	// 20 µs an event on 2 cores: 100,000 events a second use both.
	if b := costBound(2, Throughput{Events: 100_000, CPU: c}); !near(b, 100_000) {
		t.Errorf("costBound = %g, want 100000", b)
	}
	if b := costBound(2, Throughput{Events: 10}); b != 0 {
		t.Errorf("costBound of no time = %g, want 0 (unknown)", b)
	}
	// Costs add up: two phases of 20 µs an event allow half the rate.
	if b := costBound(2, Throughput{Events: 100_000, CPU: c}, Throughput{Events: 50_000, CPU: CPU{Process: 1}}); !near(b, 50_000) {
		t.Errorf("costBound of two phases = %g, want 50000", b)
	}
}
