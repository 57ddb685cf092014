package flowwatch

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A count that grows, stops for 1.2 s while a fault is marked, and grows
// again: one stall of about that length, named after the fault; the
// repair does not name it; WaitGrowth sees the growth.
func TestStallNamedAfterItsFault(t *testing.T) {
	var n atomic.Uint64
	var frozen atomic.Bool
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			if !frozen.Load() {
				n.Add(1)
			}
		}
	}()
	defer close(stop)
	w := Start(func(context.Context) (uint64, error) { return n.Load(), nil })
	ctx := t.Context()
	if err := w.WaitGrowth(ctx, 5, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	frozen.Store(true)
	w.Mark("ClickHouse stopped")
	time.Sleep(1200 * time.Millisecond)
	w.Repaired("ClickHouse stopped")
	frozen.Store(false)
	if err := w.WaitGrowth(ctx, 5, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	stalls, longest := w.Stop()
	if len(stalls) != 1 || stalls[0].Length < time.Second || stalls[0].Length > 3*time.Second || stalls[0].During != "ClickHouse stopped" {
		t.Fatalf("stalls %v, want one of about 1.2s during ClickHouse stopped", stalls)
	}
	if longest != stalls[0] {
		t.Errorf("longest %v, want %v", longest, stalls[0])
	}
	if tl := w.Timeline(); !strings.Contains(tl, "ClickHouse stopped at") || !strings.Contains(tl, "pause of") {
		t.Errorf("timeline %q", tl)
	}
	if err := w.WaitGrowth(ctx, 1_000_000, 100*time.Millisecond); err == nil {
		t.Error("WaitGrowth of a stopped watch succeeded")
	}
}
