package loader

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/airtally/airtally/internal/testenv"
)

// TestReplayStoppedThenResumed stops a replay midway (its context
// cancelled from the progress callback, between two batches, and in a
// second case from outside at an arbitrary moment) and starts it again on
// the same database: it resumes after the highest stream sequence loaded,
// and every event is there exactly once: FINAL count equals the stream's
// valid events, and no event id has a second row even before merges.
func TestReplayStoppedThenResumed(t *testing.T) {
	for _, tc := range []struct {
		name string
		// stop cancels the first replay; progress is its progress callback.
		stop func(cancel context.CancelFunc) (progress func(ReplayProgress))
	}{
		{"between batches", func(cancel context.CancelFunc) func(ReplayProgress) {
			return func(p ReplayProgress) {
				if p.Done >= 900 {
					cancel()
				}
			}
		}},
		{"at any moment", func(cancel context.CancelFunc) func(ReplayProgress) {
			fired := false
			return func(p ReplayProgress) {
				if !fired && p.Done > 0 {
					fired = true
					time.AfterFunc(3*time.Millisecond, cancel)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			const n = 3000
			e.publishAsync(n)
			e.publishRaw(e.streams.SubjectPrefix+".heartbeat.acd.tampa-01", []byte(`{"kind":"heartbeat"}`), "invalid-1")
			_, db := testenv.NewDatabase(t, false)
			log := e.config().Logger

			c, cancel := context.WithCancel(ctx(t))
			first, err := Replay(c, e.js, e.conn, ReplayConfig{
				Database: db, BatchSize: 100, ProgressInterval: time.Nanosecond, Progress: tc.stop(cancel), Logger: log,
			})
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("stopped replay returned %v (stats %+v), want context.Canceled", err, first)
			}
			if first.Loaded == 0 || first.Loaded >= n {
				t.Fatalf("the stopped replay loaded %d of %d events; want it stopped midway", first.Loaded, n)
			}
			var before uint64
			if err := e.conn.QueryRow(ctx(t), "SELECT max(stream_seq) FROM "+db+".events").Scan(&before); err != nil {
				t.Fatal(err)
			}

			var last ReplayProgress
			second, err := Replay(ctx(t), e.js, e.conn, ReplayConfig{
				Database: db, BatchSize: 100, Progress: func(p ReplayProgress) { last = p }, Logger: log,
			})
			if err != nil {
				t.Fatalf("resumed replay: %v", err)
			}
			if second.ResumedAfter != before || before == 0 {
				t.Errorf("resumed after stream sequence %d, want %d (the highest loaded)", second.ResumedAfter, before)
			}
			if second.LastSeq != n+1 || second.Messages != n+1-before || second.Invalid != 1 {
				t.Errorf("resumed replay stats %+v; want last seq %d, %d messages, 1 invalid", second, n+1, n+1-before)
			}
			if !last.Final || last.Done != second.Messages || last.Total != last.Done || last.ResumedAfter != before {
				t.Errorf("last progress %+v; want final, done = total = %d, resumed after %d", last, second.Messages, before)
			}
			if got := e.count(db); got != n {
				t.Errorf("FINAL count %d, want %d", got, n)
			}
			var rows, ids uint64
			if err := e.conn.QueryRow(ctx(t), "SELECT count(), uniqExact(event_id) FROM "+db+".events").Scan(&rows, &ids); err != nil {
				t.Fatal(err)
			}
			if rows != n || ids != n {
				t.Errorf("%d rows of %d event ids (without FINAL), want %d of %d: an event was loaded twice or lost", rows, ids, n, n)
			}

			// A third replay reads only the invalid message after the last
			// event; FromStart replays everything again, and the copies
			// collapse.
			third, err := Replay(ctx(t), e.js, e.conn, ReplayConfig{Database: db, Logger: log})
			if err != nil || third.ResumedAfter != n || third.Messages != 1 || third.Loaded != 0 {
				t.Errorf("replay of a complete database: %+v, %v; want resumed after %d, only the invalid message read", third, err, n)
			}
			all, err := Replay(ctx(t), e.js, e.conn, ReplayConfig{Database: db, FromStart: true, Logger: log})
			if err != nil || all.ResumedAfter != 0 || all.Loaded != n {
				t.Errorf("replay from the start: %+v, %v; want %d loaded", all, err, n)
			}
			if got := e.count(db); got != n {
				t.Errorf("FINAL count after a replay from the start %d, want %d", got, n)
			}
		})
	}
}
