package loader

import (
	"fmt"
	"github.com/airtally/airtally/internal/promreg"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the loader's Prometheus collectors. A nil *metrics records
// nothing.
type metrics struct {
	loaded       prometheus.Counter
	batches      prometheus.Counter
	batchSize    prometheus.Histogram
	insertTime   prometheus.Histogram
	insertErrors prometheus.Counter
	deadLetters  *prometheus.CounterVec
	redeliveries prometheus.Counter
	pending      prometheus.Gauge
	ackPending   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	const ns, sub = "airtally", "loader"
	m := &metrics{
		loaded: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "events_loaded_total", Help: "Events inserted into ClickHouse (a redelivered event counts again)."}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "batches_total", Help: "Batch inserts that succeeded."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "batch_size", Help: "Rows per successful batch insert.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10)}),
		insertTime: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "insert_seconds", Help: "Duration of batch insert attempts, failed ones included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		insertErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "insert_errors_total", Help: "Batch insert attempts that failed (each is retried)."}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "dead_letters_total", Help: "Messages dead-lettered, by reason class."}, []string{"reason"}),
		redeliveries: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "redeliveries_total", Help: "Messages received that had been delivered before."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "consumer_pending", Help: "Messages in the stream not yet delivered to the consumer (lag)."}),
		ackPending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "consumer_ack_pending", Help: "Messages delivered to the consumer and not yet acknowledged."}),
	}
	var err error
	m.loaded = promreg.Register(reg, m.loaded, &err)
	m.batches = promreg.Register(reg, m.batches, &err)
	m.batchSize = promreg.Register(reg, m.batchSize, &err)
	m.insertTime = promreg.Register(reg, m.insertTime, &err)
	m.insertErrors = promreg.Register(reg, m.insertErrors, &err)
	m.deadLetters = promreg.Register(reg, m.deadLetters, &err)
	m.redeliveries = promreg.Register(reg, m.redeliveries, &err)
	m.pending = promreg.Register(reg, m.pending, &err)
	m.ackPending = promreg.Register(reg, m.ackPending, &err)
	if err != nil {
		return nil, fmt.Errorf("loader: register metrics: %w", err)
	}
	return m, nil
}

func (m *metrics) batchLoaded(rows int) {
	if m == nil {
		return
	}
	m.loaded.Add(float64(rows))
	m.batches.Inc()
	m.batchSize.Observe(float64(rows))
}

func (m *metrics) insertAttempt(seconds float64, err error) {
	if m == nil {
		return
	}
	m.insertTime.Observe(seconds)
	if err != nil {
		m.insertErrors.Inc()
	}
}

func (m *metrics) deadLetter(class string) {
	if m != nil {
		m.deadLetters.WithLabelValues(class).Inc()
	}
}

func (m *metrics) redelivered() {
	if m != nil {
		m.redeliveries.Inc()
	}
}

func (m *metrics) lag(pending, ackPending int) {
	if m != nil {
		m.pending.Set(float64(pending))
		m.ackPending.Set(float64(ackPending))
	}
}
