package publisher

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the publisher's Prometheus metrics. Without a Registerer
// they are still counted, just not exported.
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector

	events    *prometheus.CounterVec
	forwarded *prometheus.CounterVec
	errors    *prometheus.CounterVec
	fillers   prometheus.Counter
}

// Label values.
const (
	statusRejected    = "rejected"
	statusUnavailable = "unavailable"
	statusDenied      = "denied"
	forwardDenied     = "set_aside"
	stagePublish      = "publish"
	stageForward      = "forward"
)

func newMetrics(reg prometheus.Registerer, depth, denied func() (int64, int64)) (*metrics, error) {
	m := &metrics{
		reg: reg,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airtally_publisher_events_total",
			Help: "Events handed to the publisher, by outcome: acked, duplicate, spooled, rejected (invalid), denied (NATS permissions) or unavailable.",
		}, []string{"status"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airtally_publisher_spool_forwarded_total",
			Help: "Spooled events forwarded to JetStream, by ack status (acked or duplicate), or set aside because NATS refused their subject (set_aside).",
		}, []string{"status"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airtally_publisher_publish_errors_total",
			Help: "JetStream publish attempts that failed, by stage (publish: a new event, forward: from the spool).",
		}, []string{"stage"}),
		fillers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airtally_publisher_fillers_total",
			Help: "Heartbeats stored to fill a number that a resent event took after a restart (JetStream dropped the resend as a duplicate).",
		}),
	}
	for _, s := range []Status{StatusAcked, StatusDuplicate, StatusSpooled, statusRejected, statusDenied, statusUnavailable} {
		m.events.WithLabelValues(string(s))
	}
	for _, s := range []Status{StatusAcked, StatusDuplicate, forwardDenied} {
		m.forwarded.WithLabelValues(string(s))
	}
	for _, s := range []string{stagePublish, stageForward} {
		m.errors.WithLabelValues(s)
	}
	m.collectors = []prometheus.Collector{
		m.events, m.forwarded, m.errors, m.fillers,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "airtally_publisher_spool_events",
			Help: "Events in the spool waiting to be forwarded.",
		}, func() float64 { n, _ := depth(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "airtally_publisher_spool_bytes",
			Help: "Bytes in the spool waiting to be forwarded.",
		}, func() float64 { _, b := depth(); return float64(b) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "airtally_publisher_denied_events",
			Help: "Spooled events set aside because NATS refused their subject (permissions); alert on any.",
		}, func() float64 { n, _ := denied(); return float64(n) }),
	}
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors[:i] {
				reg.Unregister(done)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("publisher: metrics already registered: one Publisher per Registerer")
			}
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) event(s Status) { m.events.WithLabelValues(string(s)).Inc() }

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
