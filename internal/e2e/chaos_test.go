package e2e

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airtally/airtally/internal/chaos"
	"github.com/airtally/airtally/internal/testenv"
)

// Issue 6 §2: chaos with an exact account, run by internal/chaos (also
// behind "airtally chaos"). Producers publish a steady flow into a
// three-node cluster whose nodes are separate processes, with three-way
// replicated streams; the gateway and one of the two loaders are
// processes too. A seeded fault injector kills and breaks things, one at
// a time or two at once. Then the faults stop, everything settles, and
// every acknowledged event is accounted for.
//
// The processes are this test binary re-executed as the airtally command
// (see cliEnv in main_test.go), so no binary is built.
//
// Environment:
//   - AIRTALLY_CHAOS_DURATION: how long faults are injected per sync
//     setting (a Go duration; default chaosDefaultDuration). For a long
//     run use "airtally chaos --duration 1h", or e.g.
//     AIRTALLY_CHAOS_DURATION=1h go test -timeout 3h -run Chaos ./internal/e2e/
//   - AIRTALLY_CHAOS_SEED: the RNG seed (default: the clock; always
//     printed, so that a failing run's schedule of faults can be replayed).
const (
	chaosDurationEnv     = "AIRTALLY_CHAOS_DURATION"
	chaosSeedEnv         = "AIRTALLY_CHAOS_SEED"
	chaosDefaultDuration = 20 * time.Second
)

// Under every fault, at random, repeatedly and sometimes two at once, with
// JetStream's default sync policy and with sync always: every event whose
// Publish returned a receipt (acked, duplicate or spooled) or that the
// gateway answered 202 for is in ClickHouse, and counted once (FINAL);
// each library source's sequence is complete and in stream order; every
// kind of fault was injected and bit.
func TestChaosExactAccount(t *testing.T) {
	dur := chaosDefaultDuration
	if v := os.Getenv(chaosDurationEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a positive Go duration (e.g. 40s, 1h): %v", chaosDurationEnv, v, err)
		}
		dur = d
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(chaosSeedEnv); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want an unsigned integer: %v", chaosSeedEnv, v, err)
		}
		seed = n
	}
	for _, c := range []struct {
		name       string
		syncAlways bool
	}{
		{"sync default", false},
		{"sync always", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			runChaos(t, c.syncAlways, dur, seed)
		})
	}
}

func runChaos(t *testing.T, syncAlways bool, dur time.Duration, seed uint64) {
	_, db := testenv.NewDatabase(t, true)
	// The shared ClickHouse must be running when this test ends, whatever
	// happened (this runs before the database is dropped).
	t.Cleanup(func() { restartClickHouse(t) })
	logs := &logBuffer{}
	dir := t.TempDir()
	t.Logf("seed %d (%s=%d replays the schedule)", seed, chaosSeedEnv, seed)
	res, err := chaos.Run(context.Background(), chaos.Config{
		Duration:   dur,
		Seed:       seed,
		SyncAlways: syncAlways,
		Dir:        dir,
		Command:    os.Args[0],
		CommandEnv: []string{cliEnv + "=1"},
		ClickHouse: testenv.ClickHouse(),
		Database:   db,
		Logger:     slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Progress:   func(line string) { t.Log(line) },
	})
	if err != nil {
		t.Fatalf("chaos run (its log:\n%s): %v", chaosTail(logs.String()), err)
	}
	var b strings.Builder
	if err := res.Write(&b); err != nil {
		t.Fatal(err)
	}
	t.Log(b.String())
	if res.Acknowledged == 0 {
		t.Errorf("no event was acknowledged: the account proves nothing")
	}
	if res.Lost > 0 {
		t.Errorf("%d acknowledged events lost, e.g. %v", res.Lost, res.LostIDs)
	}
	if res.CountedTwice > 0 {
		t.Errorf("%d events counted more than once through FINAL, e.g. %v", res.CountedTwice, res.TwiceIDs)
	}
	if res.PresentOnce != res.Acknowledged {
		t.Errorf("%d acknowledged, %d present once", res.Acknowledged, res.PresentOnce)
	}
	for _, f := range chaos.Faults {
		if res.Faults[f] == 0 {
			t.Errorf("fault %q was never injected", f)
		}
	}
	for _, p := range res.Problems {
		t.Errorf("%s", p)
	}
	if t.Failed() {
		t.Logf("harness log:\n%s", chaosTail(logs.String()))
	}
}

// chaosTail is the last 16 KiB of a log.
func chaosTail(out string) string {
	if len(out) > 16<<10 {
		return "…" + out[len(out)-16<<10:]
	}
	return out
}
