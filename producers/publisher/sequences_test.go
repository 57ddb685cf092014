package publisher

import (
	"context"
	"fmt"
	"testing"
)

func TestSequenceJournalCompactsAndRestores(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	q, err := openSequences(ctx, dir, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	// Enough records to pass the compaction threshold several times.
	const sources, rounds = 50, 3000
	written := 0
	for r := 1; r <= rounds; r++ {
		for s := 0; s < sources; s += 10 {
			m := map[string]uint64{}
			for k := s; k < s+10; k++ {
				m[fmt.Sprintf("acd.site-%02d", k)] = uint64(r)
			}
			if err := q.commit(ctx, m); err != nil {
				t.Fatal(err)
			}
			written += len(fmt.Sprint(m))
		}
	}
	if written < 2*compactAt {
		t.Fatalf("wrote only %d bytes: the test does not reach compaction", written)
	}
	if _, size := q.journal.Depth(); size > compactAt+1024 {
		t.Fatalf("journal holds %d bytes after %d written; compaction did not run", size, written)
	}
	// A lower number (a caller-given seq) never lowers the state.
	if err := q.commit(ctx, map[string]uint64{"acd.site-00": 3}); err != nil {
		t.Fatal(err)
	}
	if err := q.close(); err != nil {
		t.Fatal(err)
	}
	q2, err := openSequences(ctx, dir, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer q2.close()
	for k := 0; k < sources; k++ {
		if got := q2.peek(fmt.Sprintf("acd.site-%02d", k)); got != rounds {
			t.Fatalf("source %d restored at %d, want %d", k, got, rounds)
		}
	}
}
