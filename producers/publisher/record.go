package publisher

import (
	"encoding/binary"
	"errors"
	"strings"

	"github.com/google/uuid"
)

// A spooled event is a record: what the forwarder needs to publish it
// without decoding the event again.
//
//	version (1 byte, 1) | event id (16) | source seq (uint64 BE) |
//	subject length (uint16 BE) | subject | encoded event
type record struct {
	id      uuid.UUID
	seq     uint64
	subject string
	data    []byte
	// fresh (in memory only, not spooled): the publisher numbered the
	// event in this call (the caller sent no source.seq and no earlier
	// number was remembered for its id). See fillerRecord.
	fresh bool
}

const (
	recordVersion    = 1
	recordHeaderSize = 1 + 16 + 8 + 2
	// maxRecordBytes bounds a record: the largest event plus its header.
	maxRecordBytes = 32 << 10
)

var errBadRecord = errors.New("publisher: not a spooled event record")

func (r record) encode() []byte {
	b := make([]byte, 0, recordHeaderSize+len(r.subject)+len(r.data))
	b = append(b, recordVersion)
	b = append(b, r.id[:]...)
	b = binary.BigEndian.AppendUint64(b, r.seq)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.subject)))
	b = append(b, r.subject...)
	return append(b, r.data...)
}

func decodeRecord(b []byte) (record, error) {
	if len(b) < recordHeaderSize || b[0] != recordVersion {
		return record{}, errBadRecord
	}
	var r record
	copy(r.id[:], b[1:17])
	r.seq = binary.BigEndian.Uint64(b[17:25])
	n := int(binary.BigEndian.Uint16(b[25:27]))
	if len(b) < recordHeaderSize+n {
		return record{}, errBadRecord
	}
	r.subject = string(b[recordHeaderSize : recordHeaderSize+n])
	r.data = b[recordHeaderSize+n:]
	return r, nil
}

// sourceKey is "system.instance", the last two tokens of an event subject.
func sourceKey(subject string) string {
	i := strings.LastIndexByte(subject, '.')
	if i <= 0 {
		return subject
	}
	j := strings.LastIndexByte(subject[:i], '.')
	return subject[j+1:]
}
