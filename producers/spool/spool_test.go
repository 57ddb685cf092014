package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func open(t *testing.T, dir string, o Options) *Spool {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet()
	}
	s, err := Open(context.Background(), dir, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func payload(i int) []byte {
	return []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, bytes.Repeat([]byte("x"), i%50)))
}

func appendN(t *testing.T, s *Spool, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := s.Append(context.Background(), payload(i)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

// readAll reads every unconsumed frame without committing.
func readAll(t *testing.T, s *Spool) []Frame {
	t.Helper()
	var all []Frame
	if err := s.Scan(context.Background(), func(f Frame) error { all = append(all, f); return nil }); err != nil {
		t.Fatalf("scan: %v", err)
	}
	return all
}

func wantPayloads(t *testing.T, frames []Frame, want ...int) {
	t.Helper()
	if len(frames) != len(want) {
		t.Fatalf("got %d frames, want %d", len(frames), len(want))
	}
	for i, f := range frames {
		if !bytes.Equal(f.Payload, payload(want[i])) {
			t.Fatalf("frame %d = %q, want %q", i, f.Payload, payload(want[i]))
		}
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAppendReadCommitInOrder(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	appendN(t, s, 0, 10)
	if n, b := s.Depth(); n != 10 || b == 0 {
		t.Fatalf("depth = %d frames %d bytes, want 10 frames", n, b)
	}
	got, err := s.Read(4)
	if err != nil {
		t.Fatal(err)
	}
	wantPayloads(t, got, 0, 1, 2, 3)
	// Reading again without commit returns the same frames.
	again, _ := s.Read(4)
	wantPayloads(t, again, 0, 1, 2, 3)
	if err := s.Commit(got[3]); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Depth(); n != 6 {
		t.Fatalf("depth after commit = %d, want 6", n)
	}
	wantPayloads(t, readAll(t, s), seq(4, 10)...)
	// Committing an older frame again changes nothing.
	if err := s.Commit(got[1]); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Depth(); n != 6 {
		t.Fatalf("depth after stale commit = %d, want 6", n)
	}
	rest := readAll(t, s)
	if err := s.Commit(rest[len(rest)-1]); err != nil {
		t.Fatal(err)
	}
	if n, b := s.Depth(); n != 0 || b != 0 || !s.Empty() {
		t.Fatalf("depth after draining = %d/%d", n, b)
	}
	if f, _ := s.Read(10); len(f) != 0 {
		t.Fatalf("read %d frames from an empty spool", len(f))
	}
}

func TestCursorSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 1 << 10})
	appendN(t, s, 0, 100)
	frames, _ := s.Read(30)
	if err := s.Commit(frames[29]); err != nil {
		t.Fatal(err)
	}
	// Frames 30..39 are "forwarded" but their commit is lost in the crash.
	if _, err := s.Read(10); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := open(t, dir, Options{SegmentBytes: 1 << 10})
	if r := s2.Recovery(); len(r.Damages) != 0 || r.Frames != 70 {
		t.Fatalf("recovery = %+v, want 70 frames and no damage", r)
	}
	wantPayloads(t, readAll(t, s2), seq(30, 100)...)
	appendN(t, s2, 100, 110)
	wantPayloads(t, readAll(t, s2), seq(30, 110)...)
}

func TestConsumedSegmentsAreDeleted(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 1 << 10})
	appendN(t, s, 0, 200)
	if n := len(segmentFiles(t, dir)); n < 5 {
		t.Fatalf("%d segments for 200 frames of 1 KiB segments, want several", n)
	}
	all := readAll(t, s)
	if err := s.Commit(all[99]); err != nil {
		t.Fatal(err)
	}
	for _, f := range segmentFiles(t, dir) {
		var id uint64
		fmt.Sscanf(filepath.Base(f), "%d", &id)
		if id < all[99].Pos.Segment {
			t.Fatalf("segment %s is fully consumed but still there", f)
		}
	}
	if err := s.Commit(all[199]); err != nil {
		t.Fatal(err)
	}
	files := segmentFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("after draining %d segment files remain, want 1", len(files))
	}
	if fi, err := os.Stat(files[0]); err != nil || fi.Size() != 0 {
		t.Fatalf("the remaining segment is not a fresh empty one: %v %v", fi, err)
	}
}

func TestTornTailIsCutAndReported(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string) int64 // returns bytes added or removed
		frames int                                   // intact frames that remain
	}{
		{"truncated mid-frame", func(t *testing.T, path string) int64 {
			fi, _ := os.Stat(path)
			if err := os.Truncate(path, fi.Size()-5); err != nil {
				t.Fatal(err)
			}
			return int64(HeaderSize+len(payload(9))) - 5
		}, 9},
		{"truncated mid-header", func(t *testing.T, path string) int64 {
			fi, _ := os.Stat(path)
			if err := os.Truncate(path, fi.Size()-int64(len(payload(9)))-3); err != nil {
				t.Fatal(err)
			}
			return HeaderSize - 3
		}, 9},
		{"garbage appended", func(t *testing.T, path string) int64 {
			f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			defer f.Close()
			junk := []byte("\x00\x00garbage-after-a-crash")
			f.Write(junk)
			return int64(len(junk))
		}, 10},
		{"half a frame appended", func(t *testing.T, path string) int64 {
			f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			defer f.Close()
			half := AppendFrame(nil, payload(10))[:12]
			f.Write(half)
			return int64(len(half))
		}, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Options{})
			appendN(t, s, 0, 10)
			s.Close()
			files := segmentFiles(t, dir)
			if len(files) != 1 {
				t.Fatalf("%d segments, want 1", len(files))
			}
			discarded := tc.damage(t, files[0])

			s2 := open(t, dir, Options{})
			r := s2.Recovery()
			if len(r.Damages) != 1 {
				t.Fatalf("damages = %+v, want exactly one", r.Damages)
			}
			d := r.Damages[0]
			if d.File != files[0] || d.Bytes != discarded || d.Reason == "" {
				t.Fatalf("damage = %+v, want file %s and %d bytes", d, files[0], discarded)
			}
			if r.Frames != int64(tc.frames) {
				t.Fatalf("recovered %d frames, want %d", r.Frames, tc.frames)
			}
			wantPayloads(t, readAll(t, s2), seq(0, tc.frames)...)
			// The spool goes on cleanly after the cut.
			appendN(t, s2, 100, 102)
			s2.Close()
			s3 := open(t, dir, Options{})
			if r := s3.Recovery(); len(r.Damages) != 0 {
				t.Fatalf("damage reported again after repair: %+v", r.Damages)
			}
			wantPayloads(t, readAll(t, s3), append(seq(0, tc.frames), 100, 101)...)
		})
	}
}

func TestMidSegmentCorruptionKeepsTheRest(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 1 << 10})
	appendN(t, s, 0, 60)
	// Consume the first 3 frames so the cursor sits in the damaged segment.
	f, _ := s.Read(3)
	if err := s.Commit(f[2]); err != nil {
		t.Fatal(err)
	}
	s.Close()
	files := segmentFiles(t, dir)
	if len(files) < 3 {
		t.Fatalf("want at least 3 segments, got %d", len(files))
	}
	// Flip one payload byte of the 5th frame (index 4) of the first segment.
	data, _ := os.ReadFile(files[0])
	locs, _ := scanFrames(data, DefaultMaxFrameBytes)
	if len(locs) < 8 {
		t.Fatalf("first segment has %d frames, want at least 8", len(locs))
	}
	bad := locs[4]
	data[bad.off+HeaderSize+2] ^= 0x20
	if err := os.WriteFile(files[0], data, 0o600); err != nil {
		t.Fatal(err)
	}

	s2 := open(t, dir, Options{SegmentBytes: 1 << 10})
	r := s2.Recovery()
	if len(r.Damages) != 1 || r.Damages[0].Offset != bad.off || r.Damages[0].Bytes != bad.n || r.Damages[0].File != files[0] {
		t.Fatalf("damages = %+v, want one of %d bytes at %d in %s", r.Damages, bad.n, bad.off, files[0])
	}
	// Frames 3 and the ones after the corrupt frame 4 are all there, and
	// the later segments too.
	want := append([]int{3}, seq(5, 60)...)
	wantPayloads(t, readAll(t, s2), want...)
	s2.Close()
	s3 := open(t, dir, Options{SegmentBytes: 1 << 10})
	if len(s3.Recovery().Damages) != 0 {
		t.Fatalf("damage reported again: %+v", s3.Recovery().Damages)
	}
	wantPayloads(t, readAll(t, s3), want...)
}

func TestCorruptCursorRestartsFromOldest(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	appendN(t, s, 0, 5)
	f, _ := s.Read(2)
	s.Commit(f[1])
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, cursorName), []byte("not a cursor"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, dir, Options{})
	if r := s2.Recovery(); len(r.Damages) != 1 || r.Damages[0].File != filepath.Join(dir, cursorName) {
		t.Fatalf("damages = %+v, want the cursor reported", r.Damages)
	}
	// At least once: the frames after the lost cursor are all there.
	frames := readAll(t, s2)
	if len(frames) < 3 || !bytes.Equal(frames[len(frames)-1].Payload, payload(4)) {
		t.Fatalf("got %d frames after a corrupt cursor", len(frames))
	}
}

func TestFullSpoolBlocksUntilRoomOrContextEnds(t *testing.T) {
	s := open(t, t.TempDir(), Options{MaxBytes: MinMaxBytes})
	big := bytes.Repeat([]byte("b"), 300)
	for i := 0; i < 3; i++ {
		if err := s.Append(context.Background(), big); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if s.HasRoom(len(big)) {
		t.Fatal("spool of 1 KiB has room for a 4th frame of 309 bytes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := s.Append(ctx, big)
	if !errors.Is(err, ErrFull) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("append to a full spool = %v, want ErrFull and the deadline", err)
	}
	n, err := s.AppendBatch(ctx, [][]byte{big})
	if n != 0 || !errors.Is(err, ErrFull) {
		t.Fatalf("batch append to a full spool = %d, %v", n, err)
	}

	done := make(chan error, 1)
	go func() { done <- s.Append(context.Background(), []byte("after room")) }()
	frames, _ := s.Read(1)
	if err := s.Commit(frames[0]); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("blocked append after room was freed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocked append did not resume after a commit freed room")
	}
	// Nothing accepted was dropped.
	all := readAll(t, s)
	if len(all) != 3 || !bytes.Equal(all[2].Payload, []byte("after room")) {
		t.Fatalf("spool holds %d frames, want the 2 older and the new one", len(all))
	}

	// A frame larger than the limit fails at once.
	if err := s.Append(context.Background(), make([]byte, MinMaxBytes)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized append = %v, want ErrTooLarge", err)
	}
	// A blocked appender is released by Close.
	for s.HasRoom(len(big)) {
		s.Append(context.Background(), big)
	}
	go func() { done <- s.Append(context.Background(), big) }()
	s.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked append on close = %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not release a blocked append")
	}
}

func TestAppendBatchAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 1 << 10, MaxBytes: 8 << 10})
	var ps [][]byte
	for i := 0; i < 200; i++ {
		ps = append(ps, payload(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	n, err := s.AppendBatch(ctx, ps)
	if !errors.Is(err, ErrFull) || n == 0 || n == 200 {
		t.Fatalf("batch of 200 into 8 KiB = %d, %v; want a prefix and ErrFull", n, err)
	}
	if len(segmentFiles(t, dir)) < 2 {
		t.Fatal("batch did not span segments")
	}
	s.Close()
	s2 := open(t, dir, Options{SegmentBytes: 1 << 10, MaxBytes: 8 << 10})
	wantPayloads(t, readAll(t, s2), seq(0, n)...)
}

func TestConcurrentAppendersKeepEachOrder(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 4 << 10})
	const writers, each = 8, 100
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := s.Append(context.Background(), []byte(fmt.Sprintf("%d:%d", w, i))); err != nil {
					t.Errorf("writer %d append %d: %v", w, i, err)
					return
				}
			}
		}()
	}
	// The consumer drains while the writers write.
	next := make([]int, writers)
	got := 0
	deadline := time.Now().Add(30 * time.Second)
	for got < writers*each && time.Now().Before(deadline) {
		frames, err := s.Read(50)
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) == 0 {
			select {
			case <-s.Appended():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		for _, f := range frames {
			var w, i int
			fmt.Sscanf(string(f.Payload), "%d:%d", &w, &i)
			if i != next[w] {
				t.Fatalf("writer %d: got frame %d, want %d", w, i, next[w])
			}
			next[w]++
		}
		got += len(frames)
		if err := s.Commit(frames[len(frames)-1]); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if got != writers*each {
		t.Fatalf("consumed %d frames, want %d", got, writers*each)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, Options{})
	if _, err := Open(context.Background(), dir, Options{Logger: quiet()}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open = %v, want ErrLocked", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"defaults", Options{}, true},
		{"tiny max bytes", Options{MaxBytes: 100}, false},
		{"frame over max bytes", Options{MaxBytes: 4096, MaxFrameBytes: 4096}, false},
		{"small segments", Options{SegmentBytes: 10}, false},
		{"negative frame", Options{MaxFrameBytes: -1}, false},
		{"minimum", Options{MaxBytes: MinMaxBytes}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.o.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
