package detector

import (
	"fmt"
	"github.com/airtally/airtally/internal/promreg"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the detector's Prometheus collectors. A nil *metrics records
// nothing.
type metrics struct {
	events      prometheus.Counter
	detections  *prometheus.CounterVec
	alerts      *prometheus.CounterVec
	alertErrors *prometheus.CounterVec
	down        prometheus.Gauge
	snapshots   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	const ns, sub = "airtally", "detector"
	m := &metrics{
		events: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "events_total", Help: "Events of the stream the detector applied."}),
		detections: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "detections_total", Help: "Detection events published, by kind (a re-derived one counts again)."}, []string{"kind"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "alerts_total", Help: "Alerts sent, by state (incident, resolved)."}, []string{"state"}),
		alertErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "alert_errors_total", Help: "Alerts that could not be delivered, by channel (nats, webhook)."}, []string{"channel"}),
		down: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "sources_down", Help: "Sources with an open downtime window."}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "snapshots_total", Help: "State snapshots saved (each acknowledges the events before it)."}),
	}
	var err error
	m.events = promreg.Register(reg, m.events, &err)
	m.detections = promreg.Register(reg, m.detections, &err)
	m.alerts = promreg.Register(reg, m.alerts, &err)
	m.alertErrors = promreg.Register(reg, m.alertErrors, &err)
	m.down = promreg.Register(reg, m.down, &err)
	m.snapshots = promreg.Register(reg, m.snapshots, &err)
	if err != nil {
		return nil, fmt.Errorf("detector: register metrics: %w", err)
	}
	return m, nil
}

func (m *metrics) event() {
	if m != nil {
		m.events.Inc()
	}
}

func (m *metrics) detection(kind string) {
	if m != nil {
		m.detections.WithLabelValues(kind).Inc()
	}
}

func (m *metrics) alert(state string) {
	if m != nil {
		m.alerts.WithLabelValues(state).Inc()
	}
}

func (m *metrics) alertError(channel string) {
	if m != nil {
		m.alertErrors.WithLabelValues(channel).Inc()
	}
}

func (m *metrics) sourcesDown(n int) {
	if m != nil {
		m.down.Set(float64(n))
	}
}

func (m *metrics) snapshot() {
	if m != nil {
		m.snapshots.Inc()
	}
}
