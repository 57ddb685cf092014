package publisher

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/airtally/airtally/producers/event"
)

// A number wasted on a resend. An event sent without source.seq is
// numbered by the publisher; a resend of it gets its number back from
// recentSeqs. After a restart (or once recentSeqs has forgotten it) the
// resend gets a new number, JetStream recognises the event id as a
// duplicate and drops it, and the new number is never stored: a hole in
// the source's numbering that a detector would report as a lost event.
// So when a freshly numbered event is acked as a duplicate on its first
// attempt (Publish or PublishBatch publishing it directly), the publisher
// stores a heartbeat of the source with that number (a "filler"): the
// source is alive, nothing was lost, and the numbering stays whole. The
// filler's event id is derived from the resent event's id and the number,
// so a filler sent twice is itself a duplicate. The detector's own events
// are not filled: no one watches its numbering, and a detector that
// re-derives its detections resends them by design.
//
// Only a first attempt tells: a duplicate ack for an event forwarded from
// the spool may be the event's own earlier attempt, stored under the same
// number before its ack was lost, and a filler would then repeat a
// number. So a resend that arrives while JetStream is unreachable (and is
// spooled) can still leave a gap of one; the detector reports it, and
// nothing was lost.

// fillerID is a UUIDv7-shaped id derived from id and seq: id's timestamp,
// then bits of SHA-256(id, seq).
func fillerID(id uuid.UUID, seq uint64) uuid.UUID {
	h := sha256.New()
	h.Write(id[:])
	fmt.Fprintf(h, "/filler/%d", seq)
	sum := h.Sum(nil)
	var out uuid.UUID
	copy(out[:6], id[:6])
	copy(out[6:], sum[:10])
	out[6] = 0x70 | out[6]&0x0f // version 7
	out[8] = 0x80 | out[8]&0x3f // RFC 4122 variant
	return out
}

// fillerRecord is the heartbeat that takes the number of r, a freshly
// numbered event acked as a duplicate.
func (p *Publisher) fillerRecord(r record) (record, error) {
	system, instance, ok := strings.Cut(sourceKey(r.subject), ".")
	if !ok {
		return record{}, fmt.Errorf("publisher: filler for %s: no source in subject %q", r.id, r.subject)
	}
	hb := event.New(event.Heartbeat, event.Source{System: system, Instance: instance, Seq: r.seq}, time.Now())
	hb.EventID = fillerID(r.id, r.seq)
	hb.IntervalSeconds = int64(DefaultHeartbeatInterval / time.Second)
	data, err := hb.Encode()
	if err != nil {
		return record{}, fmt.Errorf("publisher: filler for %s: %w", r.id, err)
	}
	return record{id: hb.EventID, seq: r.seq, subject: hb.Subject(p.cfg.Streams.SubjectPrefix), data: data}, nil
}

// fill stores the fillers of wasted (records acked as duplicates after
// being numbered afresh): published when JetStream takes them, spooled
// otherwise. It must not be called with a source lock held. A filler that
// can be neither is logged: the source then shows a gap of one number.
func (p *Publisher) fill(ctx context.Context, wasted []record) {
	for _, r := range wasted {
		f, err := p.fillerRecord(r)
		if err == nil {
			err = p.storeFiller(ctx, f)
		}
		if err != nil {
			p.log.Warn("publisher: a resent event took a new number that could not be filled; the source shows a gap of one",
				"event_id", r.id.String(), "source", sourceKey(r.subject), "seq", r.seq, "err", err)
			continue
		}
		p.m.fillers.Inc()
	}
}

// storeFiller publishes f, or spools it when JetStream does not take it.
func (p *Publisher) storeFiller(ctx context.Context, f record) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.PublishTimeout)
	defer cancel()
	if p.spool.Empty() && p.connected() {
		if _, err := p.publishSync(ctx, f); err == nil {
			return nil
		} else if errors.As(err, new(*PermissionError)) {
			return err
		}
	}
	return p.spool.Append(ctx, f.encode())
}
