package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
	"github.com/google/uuid"
)

// EventsResponse is the body of every 202, of a 400 that lists per-event
// errors, and of a 503 or a 500 about events from POST /v1/events.
// Accepted is always present (possibly empty); Rejected and Retry only
// when not empty; Message and ErrorID on 400, 500 and 503 only.
type EventsResponse struct {
	// Message is a polite, human-readable summary (400, 500 and 503 only).
	Message string `json:"message,omitempty"`
	// ErrorID (a UUIDv7) names this error in the gateway's log (400, 500
	// and 503 only).
	ErrorID string `json:"error_id,omitempty"`
	// Accepted lists every event stored, in request order. They must not be
	// sent again (though a resend with the same event_id is harmless).
	Accepted []AcceptedEvent `json:"accepted"`
	// Rejected lists every event refused as invalid, in request order.
	// Sending one again unchanged is refused again.
	Rejected []RejectedEvent `json:"rejected,omitempty"`
	// Retry lists the indexes of the events that could not be stored for
	// now (500 and 503 only): send exactly these again, after Retry-After
	// (503), or later once the gateway's operators fixed it (500).
	Retry []int `json:"retry,omitempty"`
}

// AcceptedEvent is one stored event.
type AcceptedEvent struct {
	// Index is the event's zero-based position in the request (for NDJSON,
	// among the non-blank lines).
	Index int `json:"index"`
	// EventID is the event's id: the one sent, or the one the gateway gave.
	EventID uuid.UUID `json:"event_id"`
	// Seq is the event's source sequence number: the one sent, or the one
	// the gateway gave.
	Seq uint64 `json:"seq"`
	// Status is "acked" (stored by JetStream), "spooled" (written and
	// fsync'd to the gateway's local spool, forwarded to JetStream when it
	// is reachable) or "duplicate" (JetStream already had this event_id).
	Status publisher.Status `json:"status"`
}

// RejectedEvent is one refused event with every problem found in it.
type RejectedEvent struct {
	// Index is the event's zero-based position in the request.
	Index int `json:"index"`
	// EventID is the event_id that was sent, when it could be read.
	EventID string `json:"event_id,omitempty"`
	// Errors name the field (a JSON path such as "source.seq"; "" for the
	// event as a whole) and the reason. A reason never repeats the value
	// sent.
	Errors []event.Problem `json:"errors"`
}

// ErrorResponse is the body of every other error answer (401, 404, 405,
// 413, 415, a 400 about the body as a whole, a 500, and /readyz's 503).
type ErrorResponse struct {
	// Message is a polite, human-readable explanation.
	Message string `json:"message"`
	// ErrorID (a UUIDv7) names this error in the gateway's log.
	ErrorID string `json:"error_id"`
}

// StatusResponse is the body of /healthz and of a ready /readyz.
type StatusResponse struct {
	Status string `json:"status"`
}

// Messages of whole-request errors.
const (
	msgUnauthorized = "A valid bearer token is required: send the header \"Authorization: Bearer <token>\"."
	msgNotFound     = "There is nothing at this address. Events are sent with POST /v1/events."
	msgMethod       = "This method is not allowed at this address; see the Allow header."
	msgMediaType    = "Please send events as application/json (one object or an array) or application/x-ndjson (one object per line)."
	msgEncoding     = "Please send the body uncompressed; no Content-Encoding is supported."
	msgBodyTooLarge = "The request body is too large; please send fewer events per request."
	msgTooMany      = "The request holds too many events; please split it into smaller requests."
	msgMalformed    = "The request body must be one JSON object, a JSON array of objects, or NDJSON (one object per line)."
	msgNoEvents     = "The request holds no event."
	msgUnreadable   = "The request body could not be read completely; please send it again."
	msgRejected     = "Some events were not accepted; \"rejected\" gives the reasons. The events listed under \"accepted\" are stored: send only the corrected rejected events again."
	msgUnavailable  = "Some events could not be stored right now. The events listed under \"accepted\" are stored; please send the events listed under \"retry\" again after the Retry-After delay."
	msgInternal     = "Something went wrong on our side. Please try again later; if it keeps happening, quote the error_id."
	msgDenied       = "Some events could not be stored: this gateway is not set up to store events for their source. This is a fault on our side, logged for our operators. The events listed under \"accepted\" are stored; please keep the events listed under \"retry\" and send them again later with the same event_id, quoting the error_id if it persists."
	msgNotReady     = "The gateway cannot accept events right now; please try again after the Retry-After delay."
)

// newErrorID returns a fresh UUIDv7 for an error response.
func newErrorID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only if the system's random source does; a random v4
		// still names the error uniquely.
		id = uuid.New()
	}
	return id.String()
}

// writeJSON writes v as the response body with the given status.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Every body is one of this package's plain structs.
		code = http.StatusInternalServerError
		b = []byte(`{"message":"` + msgInternal + `","error_id":"` + newErrorID() + `"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
