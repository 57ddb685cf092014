package publisher

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	"github.com/airtally/airtally/producers/spool"
)

// compactAt is the journal size past which it is rewritten as a snapshot.
const compactAt = 1 << 20

// sequences is the per-source sequence state: the last number given to
// each source. It is kept in a journal (a spool of JSON records
// {"system.instance": seq}, each fsync'd, taken together by maximum), so
// reserving a number costs one appended frame; concurrent reservations of
// different sources share an fsync.
type sequences struct {
	journal *spool.Spool
	log     *slog.Logger

	// Reservations hold compact for reading while they append and update
	// last; compaction holds it for writing, so its snapshot covers every
	// record it drops.
	compact sync.RWMutex

	mu       sync.Mutex
	last     map[string]uint64
	snapSize int64 // bytes of the last snapshot record
}

func openSequences(ctx context.Context, dir string, log *slog.Logger) (*sequences, error) {
	j, err := spool.Open(ctx, dir, spool.Options{MaxBytes: 256 << 20, SegmentBytes: 4 << 20, MaxFrameBytes: 64 << 20, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("publisher: open sequence journal: %w", err)
	}
	q := &sequences{journal: j, log: log, last: map[string]uint64{}}
	err = j.Scan(ctx, func(f spool.Frame) error {
		var m map[string]uint64
		if err := json.Unmarshal(f.Payload, &m); err != nil {
			log.Error("publisher: unreadable sequence record skipped", "dir", dir, "segment", f.Pos.Segment, "offset", f.Pos.Offset)
			return nil
		}
		q.merge(m)
		return nil
	})
	if err != nil {
		_ = j.Close()
		return nil, fmt.Errorf("publisher: read sequence journal: %w", err)
	}
	return q, nil
}

func (q *sequences) merge(m map[string]uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k, v := range m {
		if v > q.last[k] {
			q.last[k] = v
		}
	}
}

// count is how many sources have a number.
func (q *sequences) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.last)
}

// peek is the last number given to source key.
func (q *sequences) peek(key string) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.last[key]
}

// commit persists the numbers in m (fsync'd) and then makes them the
// sources' last numbers.
func (q *sequences) commit(ctx context.Context, m map[string]uint64) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("publisher: encode sequences: %w", err)
	}
	q.compact.RLock()
	err = q.journal.Append(ctx, b)
	if err == nil {
		q.merge(m)
	}
	q.compact.RUnlock()
	if err != nil {
		return fmt.Errorf("publisher: persist sequences: %w", err)
	}
	q.mu.Lock()
	threshold := max(compactAt, 4*q.snapSize)
	q.mu.Unlock()
	if _, size := q.journal.Depth(); size > threshold {
		if err := q.snapshot(ctx); err != nil {
			q.log.Warn("publisher: sequence journal compaction failed; will retry", "err", err)
		}
	}
	return nil
}

// snapshot writes the whole state as one record and drops the records
// before it.
func (q *sequences) snapshot(ctx context.Context) error {
	q.compact.Lock()
	defer q.compact.Unlock()
	var last spool.Frame
	var have bool
	if err := q.journal.Scan(ctx, func(f spool.Frame) error { last, have = f, true; return nil }); err != nil {
		return err
	}
	q.mu.Lock()
	b, err := json.Marshal(q.last)
	q.snapSize = int64(len(b))
	q.mu.Unlock()
	if err != nil {
		return fmt.Errorf("publisher: encode sequences: %w", err)
	}
	if err := q.journal.Append(ctx, b); err != nil {
		return err
	}
	if have {
		return q.journal.Commit(last)
	}
	return nil
}

func (q *sequences) close() error { return q.journal.Close() }
