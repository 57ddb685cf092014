package backup

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"
)

// apiError is the error part of a JetStream API response.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("jetstream: %s (code %d, error code %d)", e.Description, e.Code, e.ErrCode)
}

// snapshotResponse is the answer to a snapshot request.
type snapshotResponse struct {
	Error  *apiError       `json:"error,omitempty"`
	Config json.RawMessage `json:"config,omitempty"`
	State  json.RawMessage `json:"state,omitempty"`
}

// streamState is the part of a stream's state the manifest reports.
type streamState struct {
	Msgs     uint64 `json:"messages"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

// snapshotStream writes the JetStream snapshot of stream to w and returns
// the stream's configuration and state as the server reported them.
func snapshotStream(ctx context.Context, nc *nats.Conn, c Config, stream string, w io.Writer) (cfg, state json.RawMessage, err error) {
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot %s: subscribe: %w", stream, err)
	}
	defer sub.Unsubscribe() //nolint:errcheck // best effort on the way out
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, nil, fmt.Errorf("snapshot %s: pending limits: %w", stream, err)
	}
	req, err := json.Marshal(map[string]any{
		"deliver_subject": inbox,
		"no_consumers":    c.SkipConsumers,
		"chunk_size":      c.ChunkSize,
		"jsck":            true,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot %s: encode request: %w", stream, err)
	}
	rctx, cancel := context.WithTimeout(ctx, c.RequestTimeout)
	defer cancel()
	msg, err := nc.RequestWithContext(rctx, c.APIPrefix+".STREAM.SNAPSHOT."+stream, req)
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot %s: request: %w", stream, err)
	}
	var resp snapshotResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, nil, fmt.Errorf("snapshot %s: decode response: %w", stream, err)
	}
	if resp.Error != nil {
		return nil, nil, fmt.Errorf("snapshot %s: %w", stream, resp.Error)
	}
	for {
		cctx, cancel := context.WithTimeout(ctx, c.RequestTimeout)
		chunk, err := sub.NextMsgWithContext(cctx)
		cancel()
		if err != nil {
			return nil, nil, fmt.Errorf("snapshot %s: wait for a chunk: %w", stream, err)
		}
		if len(chunk.Data) == 0 {
			// The end: a status header other than 204 is the server's error.
			if st := chunk.Header.Get("Status"); st != "" && st != "204" {
				return nil, nil, fmt.Errorf("snapshot %s: server ended the snapshot with status %s %s", stream, st, chunk.Header.Get("Description"))
			}
			return resp.Config, resp.State, nil
		}
		if _, err := w.Write(chunk.Data); err != nil {
			return nil, nil, fmt.Errorf("snapshot %s: write: %w", stream, err)
		}
		if chunk.Reply != "" {
			if err := chunk.Respond(nil); err != nil {
				return nil, nil, fmt.Errorf("snapshot %s: acknowledge a chunk: %w", stream, err)
			}
		}
	}
}

// restoreResponse is the answer to a restore request, and (with Error
// only) to the last chunk.
type restoreResponse struct {
	Error          *apiError `json:"error,omitempty"`
	DeliverSubject string    `json:"deliver_subject,omitempty"`
}

// restoreStream creates stream from its snapshot read from r. The stream
// must not exist.
func restoreStream(ctx context.Context, nc *nats.Conn, c Config, stream string, cfg, state json.RawMessage, r io.Reader) error {
	req, err := json.Marshal(map[string]json.RawMessage{"config": cfg, "state": state})
	if err != nil {
		return fmt.Errorf("restore %s: encode request: %w", stream, err)
	}
	var resp restoreResponse
	if err := request(ctx, nc, c, c.APIPrefix+".STREAM.RESTORE."+stream, req, &resp); err != nil {
		return fmt.Errorf("restore %s: request: %w", stream, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("restore %s: %w", stream, resp.Error)
	}
	br := bufio.NewReaderSize(r, c.ChunkSize)
	buf := make([]byte, c.ChunkSize)
	for {
		n, err := io.ReadFull(br, buf)
		if n > 0 {
			var ack restoreResponse
			if err := request(ctx, nc, c, resp.DeliverSubject, buf[:n], &ack); err != nil {
				return fmt.Errorf("restore %s: send a chunk: %w", stream, err)
			}
			if ack.Error != nil {
				return fmt.Errorf("restore %s: %w", stream, ack.Error)
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("restore %s: read the snapshot: %w", stream, err)
		}
	}
	var done restoreResponse
	if err := request(ctx, nc, c, resp.DeliverSubject, nil, &done); err != nil {
		return fmt.Errorf("restore %s: finish: %w", stream, err)
	}
	if done.Error != nil {
		return fmt.Errorf("restore %s: %w", stream, done.Error)
	}
	return nil
}

// request sends data to subject and decodes a non-empty answer into out.
func request(ctx context.Context, nc *nats.Conn, c Config, subject string, data []byte, out any) error {
	rctx, cancel := context.WithTimeout(ctx, c.RequestTimeout)
	defer cancel()
	msg, err := nc.RequestWithContext(rctx, subject, data)
	if err != nil {
		return err
	}
	if len(msg.Data) == 0 {
		return nil
	}
	if err := json.Unmarshal(msg.Data, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}
