package detector

import (
	"crypto/sha256"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/airtally/airtally/producers/event"
)

// detectionID is the id of a detection event: a UUIDv7 whose time is the
// event's occurred time and whose other bits are a hash of its kind and of
// what it describes (parts). A detector that derives the same detection
// again (after a restart, in a replay) gives it the same id, so JetStream
// and the events table keep one copy.
func detectionID(k event.Kind, occurredMS int64, parts ...string) uuid.UUID {
	h := sha256.New()
	h.Write([]byte("airtally-detection-v1\x00"))
	h.Write([]byte(k))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	var id uuid.UUID
	copy(id[:], h.Sum(nil))
	ms := uint64(occurredMS)
	id[0], id[1], id[2], id[3], id[4], id[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	id[6] = 0x70 | id[6]&0x0f // version 7
	id[8] = 0x80 | id[8]&0x3f // RFC 9562 variant
	return id
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func at(msec int64) time.Time { return time.UnixMilli(msec).UTC() }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func utoa(n uint64) string { return strconv.FormatUint(n, 10) }

// dnisKey normalises a dialled number as the airing views do: its digits,
// without a leading country code 1 on an 11-digit number.
func dnisKey(dnis string) string {
	var b strings.Builder
	for i := 0; i < len(dnis); i++ {
		if c := dnis[i]; c >= '0' && c <= '9' {
			b.WriteByte(c)
		}
	}
	d := b.String()
	if len(d) == 11 && d[0] == '1' {
		return d[1:]
	}
	return d
}
