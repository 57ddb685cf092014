package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRunTiny runs the whole benchmark at a tiny scale against the real
// servers (an embedded NATS server, the installed ClickHouse server) and
// checks that the report is complete and sane. It asserts no speed.
func TestRunTiny(t *testing.T) {
	const events, rate = 300, 200
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress []string
	rep, err := Run(ctx, Config{
		Events: events, Rate: rate, Duration: time.Second, Sources: 3, PublishBatch: 50, InsertBatch: 100,
		Progress: func(s string) { progress = append(progress, s) },
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}

	m := rep.Machine
	if m.Cores < 1 || m.GOMAXPROCS < 1 || m.GoVersion == "" || m.NATSVersion == "" || m.ClickHouseVersion == "" || m.ClickHouseVersion == "?" {
		t.Errorf("machine facts incomplete: %+v", m)
	}
	if _, err := os.Stat(m.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary run folder %s not removed (stat: %v)", m.Dir, err)
	}
	if len(rep.Results) != 2 || rep.Results[0].Sync != SyncInterval || rep.Results[1].Sync != SyncAlways {
		t.Fatalf("results for %v, want interval then always", syncsOf(rep.Results))
	}
	if len(progress) != 1+2*7 {
		t.Errorf("progress lines %q, want one for ClickHouse and one per phase", progress)
	}
	for _, res := range rep.Results {
		t.Run(string(res.Sync), func(t *testing.T) {
			for name, tp := range map[string]Throughput{"raw publish": res.RawPublish, "raw fetch": res.RawFetch, "raw insert": res.RawInsert, "raw insert, replay batches": res.RawInsertReplayBatch,
				"end to end": res.EndToEnd.Throughput, "replay": res.Replay.Throughput} {
				if tp.Events != events || tp.Seconds <= 0 || tp.PerSecond <= 0 {
					t.Errorf("%s: %+v, want %d events over a positive time", name, tp, events)
				}
				checkMemory(t, name, tp.Peak)
				if tp.CPU.Process < 0 || tp.CPU.ClickHouse < 0 || tp.CPU.Process > 2*float64(m.Cores)*tp.Seconds+0.05 {
					t.Errorf("%s: processor time %+v over %gs on %d cores", name, tp.CPU, tp.Seconds, m.Cores)
				}
			}
			e := res.EndToEnd
			if e.Loaded != events {
				t.Errorf("end to end loaded %d events (FINAL), want %d", e.Loaded, events)
			}
			if e.PublishSeconds <= 0 || e.PublishSeconds > e.Seconds {
				t.Errorf("end to end: all acked after %gs, all queryable after %gs", e.PublishSeconds, e.Seconds)
			}
			if e.Loader.Batches < 1 || e.Loader.Rows < events || e.Loader.InsertSeconds <= 0 {
				t.Errorf("end to end loader stats %+v, want at least one batch and %d rows", e.Loader, events)
			}
			slower := min(res.RawPublish.PerSecond, res.RawInsert.PerSecond)
			if e.Ratio <= 0 || !near(e.Ratio, e.PerSecond/slower) || (e.Limit != "publish" && e.Limit != "insert") {
				t.Errorf("end to end ratio %g of %q, want %g", e.Ratio, e.Limit, e.PerSecond/slower)
			}
			if e.TargetMet != (e.Ratio >= TargetRatio) {
				t.Errorf("end to end target met = %v at ratio %g", e.TargetMet, e.Ratio)
			}
			r := res.Replay
			if r.Loaded != events || r.Batches != 1 || r.PartsCreated < 1 || r.ActiveParts < 1 || r.InsertSeconds <= 0 {
				t.Errorf("replay %+v, want %d events loaded in one batch, parts created and active", r, events)
			}
			if !near(r.Ratio, r.PerSecond/res.RawFetch.PerSecond) || r.TargetMet != (r.Ratio >= ReplayTargetRatio) {
				t.Errorf("replay ratio %g (target met %v), want %g", r.Ratio, r.TargetMet, r.PerSecond/res.RawFetch.PerSecond)
			}
			l := res.Latency
			if l.Rate != rate || l.Events != rate || l.PublishSeconds <= 0 || l.AchievedRate <= 0 || l.Polls < 1 {
				t.Errorf("latency phase %+v, want %d events at %d/s", l, rate, rate)
			}
			if l.P50Millis <= 0 || l.P50Millis > l.P99Millis || l.P99Millis > l.MaxMillis || l.MeanMillis <= 0 || l.MeanMillis > l.MaxMillis {
				t.Errorf("latency p50 %g, p99 %g, max %g, mean %g ms: not 0 < p50 <= p99 <= max", l.P50Millis, l.P99Millis, l.MaxMillis, l.MeanMillis)
			}
			if l.Loader.Batches < 1 || l.Loader.Rows < rate {
				t.Errorf("latency loader stats %+v, want at least one batch and %d rows", l.Loader, rate)
			}
			if l.TargetMet {
				t.Errorf("latency target met at %d/s; it applies at %d/s or more only", rate, TargetRate)
			}
			checkMemory(t, "latency", l.Peak)
			if res.Peak.Process < l.Peak.Process || res.Peak.ClickHouse < e.Peak.ClickHouse {
				t.Errorf("setting peak %+v below a phase's peak", res.Peak)
			}
		})
	}

	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sync_interval 2m (default)", "sync_interval always", "JetStream publish alone", "JetStream fetch alone", "ClickHouse insert alone", "replay rate",
		"sustained throughput", "p99", "Processor time per event", "bound at that cost", "ClickHouse " + m.ClickHouseVersion, "flush interval", "poll interval"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.Results[1].Latency.P99Millis != rep.Results[1].Latency.P99Millis {
		t.Errorf("JSON report does not round-trip (%v)", err)
	}
	t.Logf("\n%s", text.String())
}

func checkMemory(t *testing.T, phase string, m Memory) {
	t.Helper()
	if m.Process == 0 || m.ClickHouse == 0 {
		t.Errorf("%s: peak memory %+v, want both above 0", phase, m)
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func syncsOf(rs []Result) []Sync {
	var out []Sync
	for _, r := range rs {
		out = append(out, r.Sync)
	}
	return out
}

func TestRunKeepsGivenDir(t *testing.T) {
	dir := t.TempDir()
	_, err := Run(context.Background(), Config{Dir: dir, Events: 10, Rate: 10, Duration: 200 * time.Millisecond, Syncs: []Sync{SyncInterval}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	runs, err := os.ReadDir(dir)
	if err != nil || len(runs) != 1 || !strings.HasPrefix(runs[0].Name(), "bench-") {
		t.Fatalf("%s holds %v (%v), want one bench-* folder", dir, runs, err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"defaults", Config{}, ""},
		{"one setting", Config{Syncs: []Sync{SyncAlways}}, ""},
		{"negative events", Config{Events: -1}, "events"},
		{"too many events", Config{Events: 20_000_000}, "events"},
		{"negative rate", Config{Rate: -5}, "rate"},
		{"short duration", Config{Duration: time.Millisecond}, "duration"},
		{"no paced event", Config{Rate: 1, Duration: 500 * time.Millisecond}, "at least one event"},
		{"short flush", Config{FlushInterval: time.Microsecond}, "flush interval"},
		{"short poll", Config{PollInterval: time.Microsecond}, "poll interval"},
		{"negative window", Config{Window: -1}, "window"},
		{"huge insert batch", Config{InsertBatch: 2_000_000}, "insert batch"},
		{"huge replay batch", Config{ReplayBatch: 2_000_000}, "replay batch"},
		{"huge publish batch", Config{PublishBatch: 200_000}, "publish batch"},
		{"too many sources", Config{Sources: 100}, "sources"},
		{"short phase timeout", Config{PhaseTimeout: time.Millisecond}, "phase timeout"},
		{"unknown sync", Config{Syncs: []Sync{"never"}}, `"never"`},
		{"sync twice", Config{Syncs: []Sync{SyncAlways, SyncAlways}}, "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestParseSyncs(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []Sync
		wantErr bool
	}{
		{"both", []Sync{SyncInterval, SyncAlways}, false},
		{"interval", []Sync{SyncInterval}, false},
		{"always", []Sync{SyncAlways}, false},
		{"always, interval", []Sync{SyncAlways, SyncInterval}, false},
		{"always,both", []Sync{SyncAlways, SyncInterval}, false},
		{"sometimes", nil, true},
		{"", nil, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSyncs(tc.in)
			if (err != nil) != tc.wantErr || strings.Join(syncStrings(got), ",") != strings.Join(syncStrings(tc.want), ",") {
				t.Fatalf("ParseSyncs(%q) = %v, %v; want %v (error: %v)", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func syncStrings(ss []Sync) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

func TestQuantile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"one value", ms(7), 0.99, 7 * time.Millisecond},
		{"median of four", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 0.99, 99 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 0.50, 50 * time.Millisecond},
		{"max", ms(1, 2, 3), 1, 3 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := quantile(tc.sorted, tc.q); got != tc.want {
				t.Fatalf("quantile(%v, %g) = %v, want %v", tc.sorted, tc.q, got, tc.want)
			}
		})
	}
}

func TestEventMixIsValid(t *testing.T) {
	evs := newEventMix("check", time.Now()).completed(1000, []byte("0123456789abcdef"))
	kinds := map[string]int{}
	for i, e := range evs {
		data, err := e.Encode()
		if err != nil {
			t.Fatalf("event %d (%s): %v", i, e.Kind, err)
		}
		if len(data) < 150 || len(data) > 1000 {
			t.Errorf("event %d (%s) encodes to %d bytes, want a realistic 150-1000", i, e.Kind, len(data))
		}
		kinds[string(e.Kind)]++
	}
	if len(kinds) != 5 {
		t.Errorf("kinds %v, want calls received, answered and ended, orders and heartbeats", kinds)
	}
}
