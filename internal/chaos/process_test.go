package chaos

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// A process that exits by itself is reported, with how it ended; one
// killed by a fault is not.
func TestProcReportsOnlyExitsByItself(t *testing.T) {
	dir := t.TempDir()
	var (
		mu     sync.Mutex
		exits  []string
		exited = make(chan struct{}, 4)
	)
	cfg := &Config{Dir: dir, Command: "/bin/sh", onExit: func(p *proc, err error) {
		mu.Lock()
		exits = append(exits, p.name+": "+err.Error())
		mu.Unlock()
		exited <- struct{}{}
	}}
	quits := newProc(cfg, "quits", "-c", "echo giving up; exit 3")
	killed := newProc(cfg, "killed", "-c", "sleep 60")
	if err := killed.start(); err != nil {
		t.Fatal(err)
	}
	if err := quits.start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the process that exits by itself was not reported")
	}
	killed.kill()
	quits.kill() // already gone: nothing to report
	// A restart is watched again.
	if err := quits.start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the restarted process's exit was not reported")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(exits) != 2 || exits[0] != "quits: exit status 3" || exits[1] != "quits: exit status 3" {
		t.Fatalf("exits reported: %q, want quits twice and never the killed one", exits)
	}
	if !strings.Contains(quits.tail(1024), "giving up") {
		t.Fatalf("log tail %q lacks the process's output", quits.tail(1024))
	}
}

// The verdict names what failed: a process that exited by itself (when
// nothing was lost), losses, events counted twice.
func TestVerdictNamesWhatFailed(t *testing.T) {
	tests := []struct {
		name string
		res  Result
		want string
	}{
		{"ok", Result{}, "verdict: OK: nothing acknowledged was lost or counted twice, and no process exited by itself"},
		{"exit", Result{Exits: []Exit{{Process: "loader", At: 87 * time.Second, How: "exit status 1"}}},
			"verdict: FAILED: a process exited by itself: loader, at 87 s (exit status 1)"},
		{"lost and twice", Result{Lost: 2, CountedTwice: 1}, "verdict: FAILED: 2 acknowledged events lost; 1 events counted twice"},
		{"not settled", Result{Lost: 7, Unsettled: true, Problems: []string{"did not settle: publisher 0 still spools 7 events"}},
			"verdict: FAILED: 7 acknowledged events not in ClickHouse when the run stopped settling (lost, or still on their way); did not settle: publisher 0 still spools 7 events"},
		{"problem", Result{Problems: []string{"the flow did not resume: after step 3\n--- loader log"}}, "verdict: FAILED: the flow did not resume: after step 3\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := tc.res.Write(&b); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), tc.want) {
				t.Fatalf("account:\n%s\nlacks %q", b.String(), tc.want)
			}
			if tc.res.OK() != (tc.name == "ok") {
				t.Fatalf("OK() = %t", tc.res.OK())
			}
		})
	}
}
