package loader

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/internal/streams"
)

// publishDeadLetter publishes d to the dead-letter stream and waits for the
// PubAck. Its Nats-Msg-Id names the original's stream sequence, so a
// redelivered original is not dead-lettered twice within the duplicate
// window.
func (l *Loader) publishDeadLetter(ctx context.Context, d *deadLetter) error {
	msg := &nats.Msg{
		Subject: l.cfg.Streams.DLQSubject(d.subject),
		Data:    d.payload,
		Header:  nats.Header{},
	}
	msg.Header.Set(streams.HeaderDLQReason, d.reason)
	msg.Header.Set(streams.HeaderDLQStreamSeq, strconv.FormatUint(d.streamSeq, 10))
	msg.Header.Set(streams.HeaderDLQSubject, d.subject)
	msg.Header.Set(jetstream.MsgIDHeader, "dlq:"+l.cfg.Streams.EventsStream+":"+strconv.FormatUint(d.streamSeq, 10))
	if _, err := l.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(l.cfg.Streams.DLQStream)); err != nil {
		return fmt.Errorf("loader: publish dead letter of stream seq %d: %w", d.streamSeq, err)
	}
	return nil
}

// secureDelete erases message seq from the events stream. A message already
// gone (deleted by an earlier attempt) counts as deleted.
func secureDelete(ctx context.Context, stream jetstream.Stream, seq uint64) error {
	err := stream.SecureDeleteMsg(ctx, seq)
	if err == nil {
		return nil
	}
	if _, gerr := stream.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
		return nil
	}
	return fmt.Errorf("loader: securely delete stream seq %d: %w", seq, err)
}
