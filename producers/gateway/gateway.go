package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/pci"
	"github.com/airtally/airtally/producers/publisher"
	"github.com/google/uuid"
)

// Publisher is what the gateway needs of a producer: *publisher.Publisher
// satisfies it.
//
// PublishBatch completes, validates and stores every event, returning one
// Result per event in order, and returns only once each event is acked by
// JetStream or spooled (or has failed). A Result's Err is (or wraps) an
// *event.ValidationError for an invalid event; any other error means the
// event was not stored and may be retried. Cancelling ctx stops the wait.
// An error wrapping publisher.ErrPermissionDenied means NATS refuses the
// gateway's own user the event's subject: not stored, and not storable
// until an operator fixes the deployment (answered 500, the client keeps
// the event). Ready reports whether events can be accepted now. Both are
// safe for concurrent use.
type Publisher interface {
	PublishBatch(ctx context.Context, evs []*event.Event) []publisher.Result
	Ready() bool
}

// SourceCounter is implemented by a Publisher that keeps state per source
// (publisher.Publisher and publisher.Relay): Config.MaxSources applies
// only to such a Publisher.
type SourceCounter interface {
	Sources() int
	HasSource(src event.Source) bool
}

// Gateway is the HTTP gateway. It is safe for concurrent use.
type Gateway struct {
	cfg     Config
	pub     Publisher
	auth    *authenticator
	log     *slog.Logger
	metrics *metrics
	handler http.Handler
	limits  *rateLimiter // per-token rate limits; nil: unlimited
}

// New returns a gateway publishing through pub.
func New(cfg Config, pub Publisher) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if pub == nil {
		return nil, errors.New("gateway: publisher is required")
	}
	cfg = cfg.WithDefaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.DiscardHandler)
	if cfg.Logger != nil {
		// A last line of defence: nothing here logs values, and the
		// redacting handler masks any card number that would slip through.
		logger = slog.New(pci.NewRedactingHandler(cfg.Logger.Handler()))
	}
	g := &Gateway{
		cfg:     cfg,
		pub:     pub,
		auth:    newAuthenticator(cfg.Tokens),
		log:     logger.With("component", "gateway"),
		metrics: m,
		limits:  newRateLimiter(cfg.RatePerSecond, cfg.RateBurst),
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/events", g.endpoint("events", g.postEvents))
	mux.Handle("/healthz", g.endpoint("healthz", g.healthz))
	mux.Handle("/readyz", g.endpoint("readyz", g.readyz))
	mux.Handle("/", g.endpoint("other", g.notFound))
	g.handler = mux
	return g, nil
}

// Handler returns the gateway's HTTP handler:
//
//	POST /v1/events  send events
//	GET  /healthz    200 while the process is alive
//	GET  /readyz     200 when events can be accepted, else 503
func (g *Gateway) Handler() http.Handler { return g.handler }

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// endpoint wraps a handler with panic recovery and the request metric.
func (g *Gateway) endpoint(name string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				id := newErrorID()
				g.log.ErrorContext(r.Context(), "handler panicked", "error_id", id, "endpoint", name,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if sw.code == 0 {
					writeJSON(sw, http.StatusInternalServerError, ErrorResponse{Message: msgInternal, ErrorID: id})
				}
			}
			g.metrics.requests.WithLabelValues(name, strconv.Itoa(sw.code)).Inc()
		}()
		h(sw, r)
	})
}

// fail answers a whole-request error and logs it with its error_id. err,
// if any, is the detail for the log only.
func (g *Gateway) fail(w http.ResponseWriter, r *http.Request, code int, msg string, err error) {
	id := newErrorID()
	level := slog.LevelInfo
	switch {
	case code == http.StatusServiceUnavailable:
		level = slog.LevelWarn
	case code >= 500:
		level = slog.LevelError
	}
	attrs := []any{"error_id", id, "code", code, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	g.log.Log(r.Context(), level, "request refused", attrs...)
	writeJSON(w, code, ErrorResponse{Message: msg, ErrorID: id})
}

func (g *Gateway) notFound(w http.ResponseWriter, r *http.Request) {
	g.fail(w, r, http.StatusNotFound, msgNotFound, nil)
}

// onlyGet answers 405 to anything but GET and HEAD.
func (g *Gateway) onlyGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	g.fail(w, r, http.StatusMethodNotAllowed, msgMethod, nil)
	return false
}

func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) {
	if g.onlyGet(w, r) {
		writeJSON(w, http.StatusOK, StatusResponse{Status: "ok"})
	}
}

func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	if !g.onlyGet(w, r) {
		return
	}
	if g.pub.Ready() {
		writeJSON(w, http.StatusOK, StatusResponse{Status: "ready"})
		return
	}
	g.setRetryAfter(w)
	g.fail(w, r, http.StatusServiceUnavailable, msgNotReady, errors.New("publisher not ready"))
}

func (g *Gateway) setRetryAfter(w http.ResponseWriter) {
	secs := int64((g.cfg.RetryAfter + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
}

// postEvents is POST /v1/events.
func (g *Gateway) postEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		g.fail(w, r, http.StatusMethodNotAllowed, msgMethod, nil)
		return
	}
	grant, ok := g.auth.grant(r.Header.Get("Authorization"))
	if !ok {
		detail := errors.New("gateway: bearer token not recognised")
		if r.Header.Get("Authorization") == "" {
			detail = errors.New("gateway: no Authorization header")
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="airtally"`)
		g.fail(w, r, http.StatusUnauthorized, msgUnauthorized, detail)
		return
	}
	form, err := formOf(r.Header.Get("Content-Type"))
	if err != nil {
		g.fail(w, r, http.StatusUnsupportedMediaType, msgMediaType, err)
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		g.fail(w, r, http.StatusUnsupportedMediaType, msgEncoding, errEncoding)
		return
	}
	if r.ContentLength > g.cfg.MaxBodyBytes {
		g.fail(w, r, http.StatusRequestEntityTooLarge, msgBodyTooLarge,
			fmt.Errorf("gateway: content length %d over %d", r.ContentLength, g.cfg.MaxBodyBytes))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			g.fail(w, r, http.StatusRequestEntityTooLarge, msgBodyTooLarge, fmt.Errorf("gateway: read body: %w", err))
			return
		}
		g.fail(w, r, http.StatusBadRequest, msgUnreadable, fmt.Errorf("gateway: read body: %w", err))
		return
	}
	raws, err := splitBody(body, form, g.cfg.MaxEvents)
	switch {
	case errors.Is(err, errTooMany):
		g.fail(w, r, http.StatusRequestEntityTooLarge, msgTooMany, err)
		return
	case errors.Is(err, errNoEvents):
		g.fail(w, r, http.StatusBadRequest, msgNoEvents, err)
		return
	case err != nil:
		g.fail(w, r, http.StatusBadRequest, msgMalformed, err)
		return
	}
	if !g.admitRate(w, r, grant, len(raws)) {
		return
	}
	g.answer(w, r, grant, g.process(r.Context(), grant, raws))
}

// outcome is what became of the events of one request.
type outcome struct {
	resp     EventsResponse
	events   int
	storeErr error // the first error of an event not stored
	// deniedErr is the first error of an event whose subject NATS refuses
	// to the gateway's user (publisher.ErrPermissionDenied).
	deniedErr error
}

// process checks every event, publishes the valid ones and sorts the
// results into accepted, rejected and to retry.
func (g *Gateway) process(ctx context.Context, grant Grant, raws []json.RawMessage) outcome {
	out := outcome{resp: EventsResponse{Accepted: []AcceptedEvent{}}, events: len(raws)}
	rejected := make(map[int]RejectedEvent)
	var (
		valid []*event.Event
		index []int
	)
	counter, _ := g.pub.(SourceCounter)
	newSources := map[event.Source]bool{}
	for i, raw := range raws {
		ev, problems, reason := check(raw, grant)
		if len(problems) == 0 && counter != nil {
			if p, ok := g.newSource(counter, ev, newSources); !ok {
				problems, reason = []event.Problem{p}, rejectSourceLimit
			}
		}
		if len(problems) > 0 {
			rejected[i] = rejectedEvent(i, ev, problems)
			g.metrics.rejected.WithLabelValues(reason).Inc()
			continue
		}
		valid = append(valid, ev)
		index = append(index, i)
	}
	if len(valid) > 0 {
		results := g.pub.PublishBatch(ctx, valid)
		for j, i := range index {
			res := publisher.Result{Err: errors.New("gateway: publisher returned no result for the event")}
			if j < len(results) {
				res = results[j]
			}
			var ve *event.ValidationError
			switch {
			case res.Err == nil:
				out.resp.Accepted = append(out.resp.Accepted, AcceptedEvent{
					Index: i, EventID: res.Receipt.EventID, Seq: res.Receipt.Seq, Status: res.Receipt.Status,
				})
				g.metrics.accepted.WithLabelValues(string(res.Receipt.Status)).Inc()
			case errors.Is(res.Err, publisher.ErrPermissionDenied):
				// The gateway's NATS user may not publish this source: a
				// deployment fault, not the client's, and not spooled.
				out.resp.Retry = append(out.resp.Retry, i)
				if out.deniedErr == nil {
					out.deniedErr = res.Err
				}
				g.metrics.denied.Inc()
			case errors.As(res.Err, &ve):
				reason := rejectInvalid
				if errors.Is(ve, event.ErrCardNumber) {
					reason = rejectCard
				}
				rejected[i] = rejectedEvent(i, valid[j], ve.Problems)
				g.metrics.rejected.WithLabelValues(reason).Inc()
			default:
				out.resp.Retry = append(out.resp.Retry, i)
				if out.storeErr == nil {
					out.storeErr = res.Err
				}
				g.metrics.unavailable.Inc()
			}
		}
	}
	for i := range raws {
		if rej, ok := rejected[i]; ok {
			out.resp.Rejected = append(out.resp.Rejected, rej)
		}
	}
	return out
}

// answer writes the outcome: 500 if NATS refused the gateway's user the
// subject of any valid event (a deployment fault: no Retry-After, the
// client keeps those events until operators fix it), else 503 if any valid
// event could not be stored, else 400 if any event was rejected, else 202.
// The answer never names the subject; the log does, under the error_id.
func (g *Gateway) answer(w http.ResponseWriter, r *http.Request, grant Grant, out outcome) {
	resp := out.resp
	code := http.StatusAccepted
	switch {
	case out.deniedErr != nil:
		code, resp.Message = http.StatusInternalServerError, msgDenied
	case len(resp.Retry) > 0:
		code, resp.Message = http.StatusServiceUnavailable, msgUnavailable
		g.setRetryAfter(w)
	case len(resp.Rejected) > 0:
		code, resp.Message = http.StatusBadRequest, msgRejected
	}
	attrs := []any{"code", code, "token", grant.Name, "events", out.events,
		"accepted", len(resp.Accepted), "rejected", len(resp.Rejected), "retry", len(resp.Retry)}
	switch code {
	case http.StatusAccepted:
		g.log.DebugContext(r.Context(), "events accepted", attrs...)
	case http.StatusBadRequest:
		resp.ErrorID = newErrorID()
		g.log.InfoContext(r.Context(), "events rejected", append(attrs, "error_id", resp.ErrorID)...)
	case http.StatusInternalServerError:
		resp.ErrorID = newErrorID()
		attrs = append(attrs, "error_id", resp.ErrorID, "err", out.deniedErr)
		if out.storeErr != nil {
			attrs = append(attrs, "other_err", out.storeErr)
		}
		g.log.ErrorContext(r.Context(), "events not stored: NATS refuses the gateway's user their subject; fix the gateway's NATS permissions", attrs...)
	default:
		resp.ErrorID = newErrorID()
		g.log.ErrorContext(r.Context(), "events not stored", append(attrs, "error_id", resp.ErrorID, "err", out.storeErr)...)
	}
	writeJSON(w, code, resp)
}

// maxFieldLen bounds a field name echoed in an error (unknown fields are
// named as sent).
const maxFieldLen = 128

// reasonCardField is the reason given for a field name that holds a card
// number.
const reasonCardField = "this field name looks like a payment card number; card data must never be sent"

// rejectedEvent builds the rejection of event i. The field names of
// problems are the client's own text for unknown fields: any card number
// in them is masked and long ones are cut, so nothing sensitive is echoed.
func rejectedEvent(i int, ev *event.Event, problems []event.Problem) RejectedEvent {
	rej := RejectedEvent{Index: i, Errors: make([]event.Problem, len(problems))}
	if ev != nil && ev.EventID != uuid.Nil {
		rej.EventID = ev.EventID.String()
	}
	for k, p := range problems {
		rej.Errors[k] = safeProblem(p)
	}
	return rej
}

func safeProblem(p event.Problem) event.Problem {
	if pci.Contains(p.Field) {
		return event.Problem{Field: pci.Mask(p.Field), Reason: reasonCardField}
	}
	if len(p.Field) > maxFieldLen {
		p.Field = strings.ToValidUTF8(p.Field[:maxFieldLen], "") + "…"
	}
	return p
}

// placeholderKey seals a copy of an event's ANI for validation only; the
// publisher seals the real event with the deployment's key.
var placeholderKey = []byte("airtally-gateway-validation-only")

// check parses one raw event and checks it against the grant and, on a
// copy completed as the publisher will complete it, against the event
// contract, so that every problem is reported at once. It returns the
// parsed event (nil if unparseable), the problems and the metric reason.
// newSource admits ev's source: a known source always, a new one while the
// sources known (and the new ones of this request, in seen) stay under
// MaxSources.
func (g *Gateway) newSource(counter SourceCounter, ev *event.Event, seen map[event.Source]bool) (event.Problem, bool) {
	src := event.Source{System: ev.Source.System, Instance: ev.Source.Instance}
	if seen[src] || counter.HasSource(src) {
		return event.Problem{}, true
	}
	if counter.Sources()+len(seen) >= g.cfg.MaxSources {
		g.log.Warn("gateway: event of a new source refused: the source limit is reached", "limit", g.cfg.MaxSources, "source", src.Key())
		return event.Problem{Field: "source", Reason: fmt.Sprintf("is a new source, and the gateway already keeps numbers for its limit of %d sources; ask the operator", g.cfg.MaxSources)}, false
	}
	seen[src] = true
	return event.Problem{}, true
}

func check(raw json.RawMessage, grant Grant) (*event.Event, []event.Problem, string) {
	ev, err := event.Parse(raw)
	if err != nil {
		problems := event.Problems(err)
		if len(problems) == 0 {
			problems = []event.Problem{{Reason: "could not be read"}}
		}
		return nil, problems, rejectReason(err, problems)
	}
	var problems []event.Problem
	reason := rejectInvalid
	if ev.Kind.IsDetection() {
		problems = append(problems, event.Problem{Field: "kind", Reason: "detection events are published by airtally's detector only"})
	}
	if !grant.allows(ev.Source.System, ev.Source.Instance) {
		problems = append(problems, event.Problem{Field: "source", Reason: "is not a source this token may send events for"})
		reason = rejectSource
	}
	if err := completed(ev).Validate(); err != nil {
		problems = append(problems, event.Problems(err)...)
		if reason == rejectInvalid {
			reason = rejectReason(err, problems)
		}
	}
	return ev, problems, reason
}

func rejectReason(err error, problems []event.Problem) string {
	if errors.Is(err, event.ErrCardNumber) {
		return rejectCard
	}
	for _, p := range problems {
		if pci.Contains(p.Field) {
			return rejectCard
		}
	}
	return rejectInvalid
}

// completed returns a copy of ev completed the way the publisher completes
// an event before validating it: an event_id if missing, the schema
// version if missing, a source sequence if 0 and the ANI sealed.
func completed(ev *event.Event) *event.Event {
	c := *ev
	if c.EventID == uuid.Nil {
		c.EventID = uuid.Must(uuid.NewV7())
	}
	if c.SchemaVersion == 0 {
		c.SchemaVersion = event.SchemaVersion
	}
	if c.Source.Seq == 0 {
		c.Source.Seq = 1
	}
	c.SealANI(placeholderKey)
	return &c
}
