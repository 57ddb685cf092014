package publisher

import (
	"errors"
	"time"

	"github.com/airtally/airtally/producers/spool"
)

var errDisconnected = errors.New("publisher: NATS connection is not connected")

// forward drains the spool in order for as long as the Publisher runs:
// publish, wait for the ack, move the cursor; with backoff while JetStream
// does not answer. It retries on a timer and checks the connection often,
// so it resumes by itself after NATS comes back.
func (p *Publisher) forward() {
	defer close(p.fwdDone)
	backoff := minBackoff
	forwarded, failing := 0, false
	var warned time.Time
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		frames, err := p.spool.Read(forwardBatch)
		if err != nil {
			p.log.Error("publisher: cannot read the spool; will retry", "err", err)
			if !p.pause(maxBackoff) {
				return
			}
			continue
		}
		if len(frames) == 0 {
			if forwarded > 0 {
				p.log.Info("publisher: spool drained; publishing directly again", "forwarded", forwarded)
				forwarded = 0
			}
			p.degraded.Store(false)
			select {
			case <-p.stop:
				return
			case <-p.spool.Appended():
			case <-time.After(idlePoll):
			}
			continue
		}
		n, err := p.forwardFrames(frames)
		forwarded += n
		if err != nil {
			p.m.errors.WithLabelValues(stageForward).Inc()
			if !failing || time.Since(warned) >= failureLogEvery {
				events, bytes := p.spool.Depth()
				p.log.Warn("publisher: cannot forward the spool yet; retrying with backoff", "spooled_events", events, "spooled_bytes", bytes, "err", err)
				failing, warned = true, time.Now()
			}
			if !p.pause(backoff) {
				return
			}
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		if failing {
			p.log.Info("publisher: forwarding the spool again")
			failing = false
		}
		backoff = minBackoff
	}
}

// forwardFrames publishes frames in order until one fails, then commits
// the cursor past the last one acked. It returns how many were acked.
func (p *Publisher) forwardFrames(frames []spool.Frame) (int, error) {
	var last *spool.Frame
	var ferr error
	acked := 0
loop:
	for i := range frames {
		select {
		case <-p.stop:
			break loop
		default:
		}
		if !p.connected() {
			ferr = errDisconnected
			break
		}
		r, err := decodeRecord(frames[i].Payload)
		if err != nil {
			// It passed its checksum yet is no record of ours: it can never
			// be published. Say so loudly and go on.
			p.log.Error("publisher: spool frame is not an event record; skipped", "segment", frames[i].Pos.Segment, "offset", frames[i].Pos.Offset, "bytes", len(frames[i].Payload))
			last = &frames[i]
			continue
		}
		ack, err := p.publishSync(p.life, r)
		if err != nil {
			ferr = err
			break
		}
		p.m.forwarded.WithLabelValues(string(ackStatus(ack))).Inc()
		acked++
		last = &frames[i]
	}
	if last != nil {
		if err := p.spool.Commit(*last); err != nil {
			p.log.Error("publisher: cannot move the spool cursor; events will be forwarded again", "err", err)
			if ferr == nil {
				ferr = err
			}
		}
	}
	return acked, ferr
}

// pause waits d, or less if the connection comes back; false if stopping.
func (p *Publisher) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(statusPoll)
	defer tick.Stop()
	was := p.connected()
	for {
		select {
		case <-p.stop:
			return false
		case <-t.C:
			return true
		case <-tick.C:
			now := p.connected()
			if now && !was {
				return true
			}
			was = now
		}
	}
}
