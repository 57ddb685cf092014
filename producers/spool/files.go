package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const (
	segmentExt = ".seg"
	cursorName = "cursor"
	lockName   = "LOCK"
	cursorSize = 24
)

var cursorMagic = [4]byte{'S', 'P', 'C', '1'}

func segmentName(id uint64) string { return fmt.Sprintf("%020d%s", id, segmentExt) }

// listSegments returns the ids of the segment files in dir, ascending.
// Files that are not segments are ignored.
func listSegments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: list %s: %w", dir, err)
	}
	var ids []uint64
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, segmentExt) {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSuffix(name, segmentExt), 10, 64)
		if err != nil || id == 0 {
			continue
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

// syncDir fsyncs a directory so that file creations, renames and removals
// in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: open dir for fsync: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("spool: fsync dir %s: %w", dir, err)
	}
	return nil
}

func encodeCursor(p Position) []byte {
	b := make([]byte, cursorSize)
	copy(b[0:4], cursorMagic[:])
	binary.LittleEndian.PutUint64(b[4:12], p.Segment)
	binary.LittleEndian.PutUint64(b[12:20], uint64(p.Offset))
	binary.LittleEndian.PutUint32(b[20:24], Checksum(b[:20]))
	return b
}

var errNoCursor = errors.New("spool: no cursor file")

// readCursor reads the cursor file. It returns errNoCursor when there is
// none, and another error when it exists but cannot be trusted.
func readCursor(dir string) (Position, error) {
	b, err := os.ReadFile(filepath.Join(dir, cursorName))
	if errors.Is(err, fs.ErrNotExist) {
		return Position{}, errNoCursor
	}
	if err != nil {
		return Position{}, fmt.Errorf("spool: read cursor: %w", err)
	}
	if len(b) != cursorSize || [4]byte(b[0:4]) != cursorMagic || Checksum(b[:20]) != binary.LittleEndian.Uint32(b[20:24]) {
		return Position{}, errors.New("spool: cursor file is corrupt")
	}
	p := Position{Segment: binary.LittleEndian.Uint64(b[4:12]), Offset: int64(binary.LittleEndian.Uint64(b[12:20]))}
	if p.Offset < 0 {
		return Position{}, errors.New("spool: cursor file is corrupt")
	}
	return p, nil
}

// writeCursor replaces the cursor file durably: temp file, fsync, rename,
// directory fsync.
func writeCursor(dir string, p Position) error {
	return writeFileAtomic(dir, cursorName, encodeCursor(p))
}

// writeFileAtomic replaces dir/name with data durably.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: write %s: %w", name, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("spool: write %s: %w", name, err)
	}
	return syncDir(dir)
}
