package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
)

// Defaults of Options.
const (
	DefaultMaxBytes      = 1 << 30
	DefaultSegmentBytes  = 64 << 20
	DefaultMaxFrameBytes = 1 << 20
	// MinMaxBytes is the smallest MaxBytes accepted.
	MinMaxBytes = 1 << 10
)

// Errors.
var (
	// ErrFull is wrapped by the error of an append whose context ended
	// while it waited for room.
	ErrFull = errors.New("spool: full")
	// ErrTooLarge means a payload is larger than Options.MaxFrameBytes.
	ErrTooLarge = errors.New("spool: payload too large")
	// ErrClosed is returned by every call after Close.
	ErrClosed = errors.New("spool: closed")
	// ErrLocked means another process (or another Spool) has the directory.
	ErrLocked = errors.New("spool: directory in use")
)

// Options configures a spool.
type Options struct {
	// MaxBytes bounds the bytes of frames (headers included) not yet
	// consumed; default 1 GiB, at least MinMaxBytes. Disk use is at most
	// MaxBytes plus one segment (the consumed part of the oldest one).
	MaxBytes int64
	// SegmentBytes is the size at which a new segment file is started;
	// default 64 MiB, or MaxBytes/4 when that is smaller (at least 1 KiB).
	SegmentBytes int64
	// MaxFrameBytes is the largest payload accepted; default 1 MiB, or
	// MaxBytes minus a header when that is smaller. A longer length in a
	// header is treated as corruption.
	MaxFrameBytes int
	// Logger receives recovery reports; nil means slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns o with every unset field at its default.
func (o Options) WithDefaults() Options {
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxFrameBytes == 0 {
		o.MaxFrameBytes = int(min(int64(DefaultMaxFrameBytes), o.MaxBytes-HeaderSize))
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = min(DefaultSegmentBytes, max(o.MaxBytes/4, 1<<10))
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Validate reports the first option that is wrong.
func (o Options) Validate() error {
	o = o.WithDefaults()
	switch {
	case o.MaxBytes < MinMaxBytes:
		return fmt.Errorf("spool: max bytes must be at least %d, got %d", MinMaxBytes, o.MaxBytes)
	case o.SegmentBytes < 1<<10:
		return fmt.Errorf("spool: segment bytes must be at least 1024, got %d", o.SegmentBytes)
	case o.MaxFrameBytes < 1 || o.MaxFrameBytes > math.MaxUint32:
		return fmt.Errorf("spool: max frame bytes must be 1 to %d, got %d", uint64(math.MaxUint32), o.MaxFrameBytes)
	case int64(o.MaxFrameBytes)+HeaderSize > o.MaxBytes:
		return fmt.Errorf("spool: max frame bytes %d plus a header exceeds max bytes %d", o.MaxFrameBytes, o.MaxBytes)
	}
	return nil
}

// Position is a place in the spool: a segment and a byte offset in it.
type Position struct {
	Segment uint64
	Offset  int64
}

// Frame is one payload read from the spool.
type Frame struct {
	// Payload is the frame's payload; it belongs to the caller.
	Payload []byte
	// Pos is where the frame starts.
	Pos Position

	owner *Spool
	next  Position // where the frame after it starts
	index uint64   // frame number since Open
	end   int64    // logical byte offset after the frame since Open
}

type segment struct {
	id   uint64
	size int64
}

// progress is a point in the frame stream: a position with the number of
// frames and bytes before it (counted from Open).
type progress struct {
	pos     Position
	index   uint64
	logical int64
}

// Spool is an open spool directory. Appending is safe from many
// goroutines; Read, Scan and Commit must be used by one consumer.
type Spool struct {
	dir      string
	opts     Options
	log      *slog.Logger
	lock     *os.File
	recovery Recovery

	readMu sync.Mutex // the consumer: Read, Scan, Commit
	rf     *os.File   // cached read handle, guarded by readMu
	rfID   uint64

	syncMu sync.Mutex   // one fsync of the active segment at a time
	fileMu sync.RWMutex // read-held while syncing the active file, write-held to replace it

	mu        sync.Mutex
	segs      []segment // ascending; the last one is active
	active    *os.File
	cursor    progress
	written   progress // end of everything written
	writeGen  uint64   // count of successful writes
	durable   uint64   // frames [0, durable) are fsync'd
	syncedGen uint64
	room      chan struct{} // closed and replaced when room is freed
	closed    bool
	closedCh  chan struct{}
	closeErr  error
	err       error // sticky: a write or fsync failed; nothing can be trusted
	buf       []byte

	appended    chan struct{}
	depthFrames atomic.Int64
	depthBytes  atomic.Int64
}

// Open opens (creating if needed) the spool in dir, recovering it from any
// crash. What was cut out is in Recovery() and logged.
func Open(ctx context.Context, dir string, opts Options) (*Spool, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.WithDefaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: open lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("spool: lock %s: %w", dir, ErrLocked)
	}
	s := &Spool{
		dir:      dir,
		opts:     opts,
		log:      opts.Logger,
		lock:     lock,
		room:     make(chan struct{}),
		closedCh: make(chan struct{}),
		appended: make(chan struct{}, 1),
	}
	if err := s.recover(ctx); err != nil {
		s.closeFiles()
		return nil, err
	}
	return s, nil
}

// Recovery reports what Open found and repaired.
func (s *Spool) Recovery() Recovery { return s.recovery }

// Dir is the spool's directory.
func (s *Spool) Dir() string { return s.dir }

// MaxBytes is the bound on bytes not yet consumed.
func (s *Spool) MaxBytes() int64 { return s.opts.MaxBytes }

// Depth returns the frames not yet consumed and their bytes (headers
// included). It does not block.
func (s *Spool) Depth() (frames, bytes int64) {
	return s.depthFrames.Load(), s.depthBytes.Load()
}

// Empty reports whether every frame appended has been consumed.
func (s *Spool) Empty() bool { return s.depthFrames.Load() == 0 }

// HasRoom reports whether a payload of n bytes would be appended now
// without waiting.
func (s *Spool) HasRoom(n int) bool {
	return s.depthBytes.Load()+int64(n)+HeaderSize <= s.opts.MaxBytes
}

// Appended returns a channel that receives a value (without blocking the
// sender: at most one is pending) after frames become durable. The consumer
// waits on it instead of polling.
func (s *Spool) Appended() <-chan struct{} { return s.appended }

// Append writes payload as one frame and returns after it is fsync'd. When
// the spool is full it waits until Commit frees room or ctx ends; the error
// then wraps ErrFull.
func (s *Spool) Append(ctx context.Context, payload []byte) error {
	_, err := s.AppendBatch(ctx, [][]byte{payload})
	return err
}

// AppendBatch writes payloads as frames, in order, with as few fsyncs as
// possible, and returns how many of them (a prefix) are durable. Like
// Append it waits for room; on error, payloads[n:] were not appended.
func (s *Spool) AppendBatch(ctx context.Context, payloads [][]byte) (n int, err error) {
	for i, p := range payloads {
		if len(p) > s.opts.MaxFrameBytes {
			return 0, fmt.Errorf("spool: append frame %d of %d bytes (max %d): %w", i, len(p), s.opts.MaxFrameBytes, ErrTooLarge)
		}
	}
	for n < len(payloads) {
		gen, k, werr := s.write(ctx, payloads[n:])
		if k > 0 {
			if serr := s.syncTo(gen); serr != nil {
				return n, serr
			}
			n += k
		}
		if werr != nil {
			return n, werr
		}
		if k == 0 {
			return n, errors.New("spool: append: no progress") // unreachable: write waits until a frame fits
		}
	}
	return n, nil
}

func frameSize(p []byte) int64 { return int64(HeaderSize + len(p)) }

// write writes the longest prefix of ps that fits, waiting until at least
// one frame fits. It returns the write generation to fsync and the count.
func (s *Spool) write(ctx context.Context, ps [][]byte) (gen uint64, n int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.closed {
			return 0, 0, ErrClosed
		}
		if s.err != nil {
			return 0, 0, s.err
		}
		if s.depthLocked()+frameSize(ps[0]) <= s.opts.MaxBytes {
			break
		}
		room := s.room
		s.mu.Unlock()
		select {
		case <-room:
		case <-s.closedCh:
		case <-ctx.Done():
			s.mu.Lock()
			return 0, 0, fmt.Errorf("spool: append: %w: waited for room until %w", ErrFull, context.Cause(ctx))
		}
		s.mu.Lock()
	}

	buf := s.buf[:0]
	var pendingFrames int
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if err := s.writeActiveLocked(buf); err != nil {
			return err
		}
		s.written.index += uint64(pendingFrames)
		s.written.logical += int64(len(buf))
		s.writeGen++
		n += pendingFrames
		pendingFrames, buf = 0, buf[:0]
		s.publishDepthLocked()
		return nil
	}
	depth := s.depthLocked()
	for _, p := range ps {
		size := frameSize(p)
		if depth+size > s.opts.MaxBytes {
			break
		}
		activeSize := s.segs[len(s.segs)-1].size + int64(len(buf))
		if activeSize > 0 && activeSize+size > s.opts.SegmentBytes {
			if err := flush(); err != nil {
				return s.writeGen, n, err
			}
			if err := s.rotateLocked(); err != nil {
				return s.writeGen, n, err
			}
		}
		buf = AppendFrame(buf, p)
		pendingFrames++
		depth += size
	}
	err = flush()
	if cap(buf) <= 4<<20 {
		s.buf = buf[:0]
	}
	return s.writeGen, n, err
}

func (s *Spool) depthLocked() int64 { return s.written.logical - s.cursor.logical }

func (s *Spool) publishDepthLocked() {
	s.depthFrames.Store(int64(s.written.index - s.cursor.index))
	s.depthBytes.Store(s.written.logical - s.cursor.logical)
}

// writeActiveLocked appends b to the active segment. A failed write is
// undone by truncating the segment back; if even that fails the spool is
// broken for good.
func (s *Spool) writeActiveLocked(b []byte) error {
	seg := &s.segs[len(s.segs)-1]
	if _, err := s.active.WriteAt(b, seg.size); err != nil {
		werr := fmt.Errorf("spool: write %s: %w", segmentName(seg.id), err)
		if terr := s.active.Truncate(seg.size); terr != nil {
			s.err = fmt.Errorf("%w; undoing it failed too: %w", werr, terr)
			return s.err
		}
		return werr
	}
	seg.size += int64(len(b))
	return nil
}

// rotateLocked starts a new active segment after making the current one
// durable.
func (s *Spool) rotateLocked() error {
	id := s.segs[len(s.segs)-1].id + 1
	path := filepath.Join(s.dir, segmentName(id))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spool: create segment: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return err
	}
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	if err := s.active.Sync(); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		s.err = fmt.Errorf("spool: fsync %s: %w", segmentName(s.segs[len(s.segs)-1].id), err)
		return s.err
	}
	_ = s.active.Close()
	s.active = f
	s.segs = append(s.segs, segment{id: id})
	return nil
}

// syncTo returns once every write up to generation gen is fsync'd.
// Concurrent callers share fsyncs (group commit).
func (s *Spool) syncTo(gen uint64) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	if s.syncedGen >= gen {
		s.mu.Unlock()
		return nil
	}
	if s.closed {
		// Close fsync'd everything written before it.
		err := s.closeErr
		s.mu.Unlock()
		return err
	}
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return err
	}
	targetGen, targetIndex, f := s.writeGen, s.written.index, s.active
	s.fileMu.RLock()
	s.mu.Unlock()
	err := f.Sync()
	s.fileMu.RUnlock()

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.err = fmt.Errorf("spool: fsync: %w", err)
		return s.err
	}
	s.syncedGen = targetGen
	s.durable = max(s.durable, targetIndex)
	select {
	case s.appended <- struct{}{}:
	default:
	}
	return nil
}

// Read returns up to max frames from the cursor, in order, without
// consuming them; it returns none when the spool is empty. Frames become
// readable once they are durable.
func (s *Spool) Read(max int) ([]Frame, error) {
	if max <= 0 {
		return nil, nil
	}
	var frames []Frame
	err := s.scan(context.Background(), func(f Frame) (bool, error) {
		frames = append(frames, f)
		return len(frames) < max, nil
	})
	return frames, err
}

// Scan calls fn for every frame from the cursor to the last durable one,
// in order, without consuming them. An error from fn stops the scan and is
// returned.
func (s *Spool) Scan(ctx context.Context, fn func(Frame) error) error {
	return s.scan(ctx, func(f Frame) (bool, error) { return true, fn(f) })
}

func (s *Spool) scan(ctx context.Context, fn func(Frame) (more bool, err error)) error {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	at, end := s.cursor, s.durable
	segs := append([]segment(nil), s.segs...)
	s.mu.Unlock()

	var hdr [HeaderSize]byte
	for at.index < end {
		if at.index%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		i := segIndex(segs, at.pos.Segment)
		if i < 0 {
			return fmt.Errorf("spool: read: segment %d is gone", at.pos.Segment)
		}
		if at.pos.Offset >= segs[i].size {
			if i+1 >= len(segs) {
				return fmt.Errorf("spool: read: frame %d missing after %s", at.index, segmentName(segs[i].id))
			}
			at.pos = Position{Segment: segs[i+1].id}
			continue
		}
		f, err := s.readHandle(at.pos.Segment)
		if err != nil {
			return err
		}
		if _, err := f.ReadAt(hdr[:], at.pos.Offset); err != nil {
			return fmt.Errorf("spool: read %s at %d: %w", segmentName(at.pos.Segment), at.pos.Offset, err)
		}
		if _, _, err := DecodeFrame(hdr[:], s.opts.MaxFrameBytes); err != nil && !errors.Is(err, ErrShortFrame) {
			return fmt.Errorf("spool: read %s at %d: %w", segmentName(at.pos.Segment), at.pos.Offset, err)
		}
		whole := make([]byte, HeaderSize+int(leUint32(hdr[1:5])))
		if _, err := f.ReadAt(whole, at.pos.Offset); err != nil {
			return fmt.Errorf("spool: read %s at %d: %w", segmentName(at.pos.Segment), at.pos.Offset, err)
		}
		payload, n, err := DecodeFrame(whole, s.opts.MaxFrameBytes)
		if err != nil {
			return fmt.Errorf("spool: read %s at %d: %w", segmentName(at.pos.Segment), at.pos.Offset, err)
		}
		next := progress{pos: Position{Segment: at.pos.Segment, Offset: at.pos.Offset + int64(n)}, index: at.index + 1, logical: at.logical + int64(n)}
		more, err := fn(Frame{Payload: payload, Pos: at.pos, owner: s, next: next.pos, index: at.index, end: next.logical})
		if err != nil {
			return err
		}
		at = next
		if !more {
			break
		}
	}
	return nil
}

func leUint32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func segIndex(segs []segment, id uint64) int {
	for i, sg := range segs {
		if sg.id == id {
			return i
		}
	}
	return -1
}

// readHandle returns an open read handle on segment id; readMu is held.
func (s *Spool) readHandle(id uint64) (*os.File, error) {
	if s.rf != nil && s.rfID == id {
		return s.rf, nil
	}
	if s.rf != nil {
		_ = s.rf.Close()
		s.rf = nil
	}
	f, err := os.Open(filepath.Join(s.dir, segmentName(id)))
	if err != nil {
		return nil, fmt.Errorf("spool: open segment for reading: %w", err)
	}
	s.rf, s.rfID = f, id
	return f, nil
}

// Commit marks f and every frame before it as consumed: it persists the
// cursor durably, frees their room (waking blocked appenders) and deletes
// segments that are fully consumed. Committing an already committed frame
// does nothing.
func (s *Spool) Commit(f Frame) error {
	s.readMu.Lock()
	defer s.readMu.Unlock()

	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case f.owner != s || f.index >= s.durable:
		s.mu.Unlock()
		return errors.New("spool: commit: frame was not read from this spool")
	case f.index < s.cursor.index:
		s.mu.Unlock()
		return nil
	}
	to := progress{pos: f.next, index: f.index + 1, logical: f.end}
	// A cursor at the end of a finished segment moves to the next one.
	for i := segIndex(s.segs, to.pos.Segment); i >= 0 && i+1 < len(s.segs) && to.pos.Offset >= s.segs[i].size; i++ {
		to.pos = Position{Segment: s.segs[i+1].id}
	}
	// Drained: start a fresh segment so the consumed one can be deleted.
	active := s.segs[len(s.segs)-1]
	if to.index == s.written.index && to.pos.Segment == active.id && active.size > 0 && s.err == nil {
		if err := s.rotateLocked(); err != nil {
			s.log.Warn("spool: could not start a new segment after draining", "dir", s.dir, "err", err)
		} else {
			to.pos = Position{Segment: active.id + 1}
		}
	}
	s.mu.Unlock()

	if err := writeCursor(s.dir, to.pos); err != nil {
		return fmt.Errorf("spool: commit: %w", err)
	}

	s.mu.Lock()
	s.cursor = to
	s.publishDepthLocked()
	close(s.room)
	s.room = make(chan struct{})
	var dead []uint64
	for len(s.segs) > 1 && s.segs[0].id < to.pos.Segment {
		dead = append(dead, s.segs[0].id)
		s.segs = s.segs[1:]
	}
	s.mu.Unlock()

	for _, id := range dead {
		if s.rf != nil && s.rfID == id {
			_ = s.rf.Close()
			s.rf = nil
		}
		if err := os.Remove(filepath.Join(s.dir, segmentName(id))); err != nil {
			s.log.Warn("spool: could not delete a consumed segment", "file", segmentName(id), "err", err)
		}
	}
	return nil
}

// Close fsyncs and closes the spool and releases the directory. Blocked
// appenders return ErrClosed.
func (s *Spool) Close() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.closedCh)
	if s.active != nil && s.err == nil {
		if err := s.active.Sync(); err != nil {
			s.closeErr = fmt.Errorf("spool: fsync on close: %w", err)
		}
	}
	s.closeFiles()
	return s.closeErr
}

func (s *Spool) closeFiles() {
	if s.active != nil {
		_ = s.active.Close()
		s.active = nil
	}
	if s.rf != nil {
		_ = s.rf.Close()
		s.rf = nil
	}
	if s.lock != nil {
		_ = s.lock.Close() // releases the flock
		s.lock = nil
	}
}
