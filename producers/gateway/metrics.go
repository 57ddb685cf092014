package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons of the rejected-events metric.
const (
	rejectInvalid = "invalid" // fails the event contract
	rejectCard    = "card"    // holds a card number
	rejectSource  = "source"  // the token may not send for its source
	// rejectSourceLimit: a new source beyond Config.MaxSources.
	rejectSourceLimit = "source_limit"
)

// metrics are the gateway's Prometheus collectors. They always exist;
// they are registered only when the configuration has a Registerer.
type metrics struct {
	requests    *prometheus.CounterVec
	accepted    *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	unavailable prometheus.Counter
	denied      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "airtally", Subsystem: "gateway", Name: "requests_total",
			Help: "HTTP requests answered, by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "airtally", Subsystem: "gateway", Name: "events_accepted_total",
			Help: "Events accepted, by status: acked (by JetStream), spooled (to the local spool) or duplicate.",
		}, []string{"status"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "airtally", Subsystem: "gateway", Name: "events_rejected_total",
			Help: "Events rejected, by reason: invalid, card (held a card number), source (not allowed for the token) or source_limit (a new source beyond the gateway's limit).",
		}, []string{"reason"}),
		unavailable: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "airtally", Subsystem: "gateway", Name: "events_unavailable_total",
			Help: "Valid events that could be neither published nor spooled (answered 503 for the client to retry).",
		}),
		denied: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "airtally", Subsystem: "gateway", Name: "events_denied_total",
			Help: "Valid events whose subject NATS refuses to the gateway's user (permissions; answered 500, not spooled): fix the gateway's NATS permissions.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.accepted, m.rejected, m.unavailable, m.denied} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: register metrics: %w", err)
		}
	}
	return m, nil
}
