package spool

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Frame layout.
const (
	// Magic is the first byte of every frame. 0xF5 never occurs in UTF-8
	// text, so a frame start is unlikely to be mistaken inside a payload.
	Magic byte = 0xF5
	// HeaderSize is the size of a frame header: magic, length, checksum.
	HeaderSize = 9
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors of DecodeFrame.
var (
	// ErrShortFrame means the bytes end before the frame does (a torn
	// write at the end of a segment, or simply more bytes are needed).
	ErrShortFrame = errors.New("spool: incomplete frame")
	// ErrCorruptFrame means the bytes are not a valid frame: wrong magic
	// byte, a length out of range or a checksum mismatch.
	ErrCorruptFrame = errors.New("spool: corrupt frame")
)

// Checksum is the CRC-32C of payload, as stored in a frame header.
func Checksum(payload []byte) uint32 { return crc32.Checksum(payload, castagnoli) }

// AppendFrame appends the frame holding payload to dst and returns the
// extended slice.
func AppendFrame(dst, payload []byte) []byte {
	var h [HeaderSize]byte
	h[0] = Magic
	binary.LittleEndian.PutUint32(h[1:5], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[5:9], Checksum(payload))
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

// DecodeFrame decodes the frame at the start of b. It returns the payload
// (a sub-slice of b) and the frame's total size. maxPayload bounds the
// length a header may declare. A frame whose checksum does not match is
// never returned: the error wraps ErrCorruptFrame; bytes that end inside a
// frame give an error wrapping ErrShortFrame.
func DecodeFrame(b []byte, maxPayload int) (payload []byte, n int, err error) {
	if len(b) == 0 {
		return nil, 0, ErrShortFrame
	}
	if b[0] != Magic {
		return nil, 0, errBadMagic
	}
	if len(b) < HeaderSize {
		return nil, 0, ErrShortFrame
	}
	length := binary.LittleEndian.Uint32(b[1:5])
	if maxPayload < 0 || uint64(length) > uint64(maxPayload) {
		return nil, 0, errBadLength
	}
	n = HeaderSize + int(length)
	if len(b) < n {
		return nil, 0, ErrShortFrame
	}
	payload = b[HeaderSize:n]
	if Checksum(payload) != binary.LittleEndian.Uint32(b[5:9]) {
		return nil, 0, errBadChecksum
	}
	return payload, n, nil
}

// frameError is a corrupt-frame error with its precise reason.
type frameError struct{ reason string }

func (e *frameError) Error() string        { return "spool: corrupt frame: " + e.reason }
func (e *frameError) Is(target error) bool { return target == ErrCorruptFrame }

var (
	errBadMagic    = &frameError{"bad magic byte"}
	errBadLength   = &frameError{"length out of range"}
	errBadChecksum = &frameError{"checksum mismatch"}
)
