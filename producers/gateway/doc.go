// Package gateway is airtally's HTTP gateway: systems that cannot speak NATS
// POST events to it, and it publishes them through package publisher
// (validated, ANI sealed, acked by JetStream or fsync'd to the local spool)
// before it answers. docs/events.md is the reference for clients.
//
// # Endpoints
//
//	POST /v1/events   one event (a JSON object), a JSON array of events, or
//	                  NDJSON (one object per line; Content-Type
//	                  application/x-ndjson, or recognised without it)
//	GET  /healthz     200 {"status":"ok"} while the process is alive
//	GET  /readyz      200 {"status":"ready"} when the publisher is ready,
//	                  else 503 with Retry-After
//
// POST /v1/events needs "Authorization: Bearer <token>". Each token has a
// Grant: a token bound to a system and/or instance may only send events of
// that source; an event of another source is rejected on field "source".
//
// # Answers of POST /v1/events
//
// Every body is JSON. An answer about the events (202, 400 with per-event
// errors, 503, 500 about refused events) is an EventsResponse:
//
//	{"message": "...", "error_id": "<uuidv7>",          (400, 500 and 503 only)
//	 "accepted": [{"index": 0, "event_id": "<uuid>", "seq": 12, "status": "acked"}],
//	 "rejected": [{"index": 1, "event_id": "<if sent>",
//	               "errors": [{"field": "call_id", "reason": "is required for call.received"}]}],
//	 "retry":    [2, 3]}                                 (500 and 503 only)
//
// The code says what happened:
//
//   - 202: every event is stored; status is acked, spooled or duplicate.
//   - 400: at least one event was rejected (invalid, a card number, or a
//     source the token may not use); the valid events of the same request
//     are stored and listed under accepted.
//   - 503 (with Retry-After): at least one valid event could be neither
//     published nor spooled; resend exactly the indexes under retry.
//   - 500 (an EventsResponse, no Retry-After): NATS refuses the gateway's
//     own user the subject of at least one valid event (its permissions do
//     not cover that source: publisher.ErrPermissionDenied). Such events
//     are not spooled, since they could never drain, and are listed under
//     retry: the client keeps them and sends them again once operators
//     fixed the permissions. The answer does not name the subject; the
//     Error log (and airtally_gateway_events_denied_total) does.
//
// The precedence is 500 (refused events) over 503 over 400 over 202.
//
// Any other error is an ErrorResponse, {"message": "...", "error_id":
// "<uuidv7>"}: 400 (the body is not JSON, NDJSON or holds no event), 401
// (no valid token; with WWW-Authenticate), 404, 405 (with Allow), 413 (body
// over Config.MaxBodyBytes or more than Config.MaxEvents events), 415 (a
// content type other than JSON/NDJSON, or a Content-Encoding), 500 (a
// panic, recovered). No answer ever holds a Go error text, a stack trace, a
// token or a value that was sent; the detail is logged under the same
// error_id.
//
// # Logging
//
// The gateway logs counts, ids, the token's grant name and error ids: never
// tokens, payloads or field values. Its logger is additionally wrapped in
// pci.RedactingHandler.
//
// # Server timeouts
//
// The gateway answers only after every valid event is acked or spooled, and
// the wait is bounded by the request's context (the publisher's own publish
// timeout bounds each attempt). Server timeouts belong to the caller that
// runs the http.Server; recommended:
//
//	ReadHeaderTimeout  5 s
//	ReadTimeout        30 s   (a 4 MiB body over a slow link)
//	WriteTimeout       60 s   (longer than the publisher's publish timeout
//	                           plus a spool fsync)
//	IdleTimeout        120 s
//	MaxHeaderBytes     16 KiB
package gateway
