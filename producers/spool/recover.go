package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Damage is one stretch of a file that Open could not trust and cut out.
type Damage struct {
	// File is the path of the damaged file.
	File string
	// Offset is where the damage begins.
	Offset int64
	// Bytes is how many bytes were discarded (0 when a file is missing).
	Bytes int64
	// Reason says what was wrong: a torn frame, a checksum mismatch, ...
	Reason string
}

func (d Damage) String() string {
	return fmt.Sprintf("%s at offset %d: %d bytes discarded: %s", d.File, d.Offset, d.Bytes, d.Reason)
}

// Recovery is what Open found.
type Recovery struct {
	// Segments is the number of segment files kept.
	Segments int
	// Frames and Bytes are the frames not yet consumed and their size.
	Frames int64
	Bytes  int64
	// Damages lists every stretch that was cut out, in file order.
	Damages []Damage
}

// DiscardedBytes is the total of bytes cut out.
func (r Recovery) DiscardedBytes() int64 {
	var n int64
	for _, d := range r.Damages {
		n += d.Bytes
	}
	return n
}

// frameLoc is a valid frame found by the scan.
type frameLoc struct{ off, n int64 }

// recover scans the directory, repairs damaged segments, positions the
// cursor and opens the active segment.
func (s *Spool) recover(ctx context.Context) error {
	s.removeTemps()
	ids, err := listSegments(s.dir)
	if err != nil {
		return err
	}
	cur, cerr := readCursor(s.dir)
	haveCursor := cerr == nil
	if cerr != nil && !errors.Is(cerr, errNoCursor) {
		s.report(Damage{File: filepath.Join(s.dir, cursorName), Reason: "cursor unreadable (" + cerr.Error() + "); forwarding restarts at the oldest segment, so frames may be forwarded again"})
	}
	if !haveCursor {
		cur = Position{}
		if len(ids) > 0 {
			cur.Segment = ids[0]
		}
	}
	// Segments before the cursor's are consumed (a crash came before their
	// deletion).
	for len(ids) > 0 && ids[0] < cur.Segment {
		if err := os.Remove(filepath.Join(s.dir, segmentName(ids[0]))); err != nil {
			return fmt.Errorf("spool: delete consumed segment: %w", err)
		}
		ids = ids[1:]
	}
	if haveCursor && (len(ids) == 0 || ids[0] != cur.Segment) && (cur.Offset > 0 || len(ids) > 0) {
		s.report(Damage{File: filepath.Join(s.dir, segmentName(cur.Segment)), Offset: cur.Offset, Reason: "the segment at the cursor is missing; forwarding goes on with the next segment"})
	}
	if len(ids) > 0 && ids[0] != cur.Segment {
		cur = Position{Segment: ids[0]}
	}

	cursorFile := cur
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("spool: recover: %w", err)
		}
		locs, size, err := s.recoverSegment(id, &cur, cursorFile)
		if err != nil {
			return err
		}
		s.segs = append(s.segs, segment{id: id, size: size})
		for _, l := range locs {
			if id > cur.Segment || l.off >= cur.Offset {
				s.written.index++
				s.written.logical += l.n
			}
		}
	}
	if len(s.segs) == 0 {
		id := max(cur.Segment, 1)
		f, err := os.OpenFile(filepath.Join(s.dir, segmentName(id)), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("spool: create segment: %w", err)
		}
		if err := syncDir(s.dir); err != nil {
			_ = f.Close()
			return err
		}
		s.active = f
		s.segs = []segment{{id: id}}
		cur = Position{Segment: id}
	} else {
		last := s.segs[len(s.segs)-1]
		f, err := os.OpenFile(filepath.Join(s.dir, segmentName(last.id)), os.O_RDWR, 0o600)
		if err != nil {
			return fmt.Errorf("spool: open active segment: %w", err)
		}
		s.active = f
	}
	if haveCursor && cur != cursorFile {
		if err := writeCursor(s.dir, cur); err != nil {
			return err
		}
	}
	s.cursor = progress{pos: cur}
	s.durable = s.written.index
	s.publishDepthLocked()
	s.recovery.Segments = len(s.segs)
	s.recovery.Frames, s.recovery.Bytes = s.Depth()
	return nil
}

// recoverSegment scans one segment and cuts out whatever is not a valid
// frame. If the segment holds the cursor, cur is moved to the same frame in
// the repaired layout (persisted before the segment is rewritten, so a
// crash in between forwards frames again rather than skipping any). It
// returns the valid frames at their final offsets and the final size.
func (s *Spool) recoverSegment(id uint64, cur *Position, cursorFile Position) ([]frameLoc, int64, error) {
	path := filepath.Join(s.dir, segmentName(id))
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("spool: read segment: %w", err)
	}
	locs, damages := scanFrames(data, s.opts.MaxFrameBytes)
	for i := range damages {
		damages[i].File = path
		s.report(damages[i])
	}
	if len(damages) == 0 {
		if id == cur.Segment {
			cur.Offset = alignCursor(locs, cur.Offset, locs)
		}
		return locs, int64(len(data)), nil
	}

	// The kept frames, packed from offset 0.
	packed := make([]frameLoc, len(locs))
	var off int64
	for i, l := range locs {
		packed[i] = frameLoc{off: off, n: l.n}
		off += l.n
	}
	if id == cur.Segment {
		cur.Offset = alignCursor(locs, cur.Offset, packed)
		if *cur != cursorFile {
			if err := writeCursor(s.dir, *cur); err != nil {
				return nil, 0, err
			}
		}
	}
	tailOnly := len(damages) == 1 && damages[0].Offset+damages[0].Bytes == int64(len(data))
	if tailOnly {
		if err := truncateFile(path, damages[0].Offset); err != nil {
			return nil, 0, err
		}
		return locs, damages[0].Offset, nil
	}
	var out bytes.Buffer
	for _, l := range locs {
		out.Write(data[l.off : l.off+l.n])
	}
	if err := writeFileAtomic(s.dir, segmentName(id), out.Bytes()); err != nil {
		return nil, 0, err
	}
	return packed, off, nil
}

// alignCursor maps a cursor offset in the old layout to the new one: the
// frames that end at or before it are consumed, the others are not.
func alignCursor(old []frameLoc, offset int64, packed []frameLoc) int64 {
	for i, l := range old {
		if l.off+l.n > offset {
			return packed[i].off
		}
	}
	if len(packed) == 0 {
		return 0
	}
	last := packed[len(packed)-1]
	return last.off + last.n
}

// scanFrames finds the valid frames of a segment. Bytes that are not a
// valid frame are reported as damage, and the scan resumes at the next
// offset where a valid frame starts, so intact frames after a corrupt one
// are kept.
func scanFrames(data []byte, maxPayload int) ([]frameLoc, []Damage) {
	var locs []frameLoc
	var damages []Damage
	off := 0
	for off < len(data) {
		_, n, err := DecodeFrame(data[off:], maxPayload)
		if err == nil {
			locs = append(locs, frameLoc{off: int64(off), n: int64(n)})
			off += n
			continue
		}
		next := resync(data, off+1, maxPayload)
		reason := err.Error()
		if errors.Is(err, ErrShortFrame) || next == len(data) && errors.Is(err, errBadChecksum) {
			reason = "torn frame: the last write did not complete (" + strings.TrimPrefix(err.Error(), "spool: ") + ")"
		}
		damages = append(damages, Damage{Offset: int64(off), Bytes: int64(next - off), Reason: reason})
		off = next
	}
	return locs, damages
}

// resync returns the first offset at or after from where a valid frame
// starts, or len(data).
func resync(data []byte, from, maxPayload int) int {
	for from < len(data) {
		i := bytes.IndexByte(data[from:], Magic)
		if i < 0 {
			return len(data)
		}
		from += i
		if _, _, err := DecodeFrame(data[from:], maxPayload); err == nil {
			return from
		}
		from++
	}
	return len(data)
}

func truncateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("spool: truncate segment: %w", err)
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("spool: truncate segment: %w", err)
	}
	return nil
}

func (s *Spool) report(d Damage) {
	s.recovery.Damages = append(s.recovery.Damages, d)
	s.log.Error("spool: damaged data cut out at open", "file", d.File, "offset", d.Offset, "bytes_discarded", d.Bytes, "reason", d.Reason)
}

// removeTemps deletes temp files a crash may have left behind.
func (s *Spool) removeTemps() {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			_ = os.Remove(filepath.Join(s.dir, e.Name()))
		}
	}
}
