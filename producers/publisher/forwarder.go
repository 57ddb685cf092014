package publisher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/airtally/airtally/producers/spool"
)

// forward drains the spool in order for as long as the Publisher runs:
// publish, wait for the ack, move the cursor; with backoff while JetStream
// does not answer. It retries on a timer and checks the connection often,
// so it resumes by itself after NATS comes back. An event whose subject the
// server refuses (permissions) is set aside in the spool of refused events
// instead of blocking the others; once the spool is drained, the events
// set aside are tried once more when RetryDenied (or a restart) asks.
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
		src := p.spool
		if len(frames) == 0 {
			if n := p.retryDenied.Load(); n > 0 {
				src = p.denied
				if frames, err = p.denied.Read(int(min(n, forwardBatch))); err != nil {
					p.log.Error("publisher: cannot read the spool of refused events; will retry", "err", err)
					if !p.pause(maxBackoff) {
						return
					}
					continue
				}
				if len(frames) == 0 {
					p.retryDenied.Store(0)
				}
			}
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
			case <-p.wake:
			case <-time.After(idlePoll):
			}
			continue
		}
		done, n, err := p.forwardFrames(src, frames)
		forwarded += n
		if src == p.denied {
			p.retryDenied.Add(-int64(done))
		}
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

// forwardFrames publishes frames of src in order until one fails, then
// commits src's cursor past the last one done: acked, or set aside in the
// spool of refused events because the server refused its subject. It
// returns how many were done and how many of them acked.
func (p *Publisher) forwardFrames(src *spool.Spool, frames []spool.Frame) (done, acked int, ferr error) {
	var last *spool.Frame
	aside := 0
	defer func() {
		if aside > 0 {
			events, _ := p.denied.Depth()
			p.log.Error("publisher: NATS refused spooled events (permissions); set aside, not retried until RetryDenied or a restart",
				"events", aside, "set_aside_total", events, "dir", p.denied.Dir())
		}
	}()
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
			done, last = i+1, &frames[i]
			continue
		}
		ack, err := p.publishSync(p.life, r)
		var perr *PermissionError
		switch {
		case errors.As(err, &perr):
			// Never deliverable as configured: keep it, out of the way.
			if err := p.setAside(frames[i].Payload); err != nil {
				ferr = err
				break loop
			}
			aside++
			p.m.forwarded.WithLabelValues(forwardDenied).Inc()
		case err != nil:
			ferr = err
			break loop
		default:
			p.m.forwarded.WithLabelValues(string(ackStatus(ack))).Inc()
			acked++
		}
		done = i + 1
		last = &frames[i]
	}
	if last != nil {
		if err := src.Commit(*last); err != nil {
			p.log.Error("publisher: cannot move the spool cursor; events will be forwarded again", "err", err)
			if ferr == nil {
				ferr = err
			}
		}
	}
	return done, acked, ferr
}

// setAside appends a refused event's record to the spool of refused
// events (fsync'd), waiting at most the publish timeout for room.
func (p *Publisher) setAside(payload []byte) error {
	ctx, cancel := context.WithTimeout(p.life, p.cfg.PublishTimeout)
	defer cancel()
	if err := p.denied.Append(ctx, payload); err != nil {
		return fmt.Errorf("publisher: set a refused event aside: %w", err)
	}
	return nil
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
