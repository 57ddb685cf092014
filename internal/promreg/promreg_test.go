package promreg

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterSharesAndKeepsFirstError(t *testing.T) {
	reg := prometheus.NewRegistry()
	var err error
	a := Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"}), &err)
	b := Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"}), &err)
	if err != nil || a != b {
		t.Fatalf("second registration: err %v, shared %v", err, a == b)
	}
	// Same name, another type: an error, kept, and later calls do nothing.
	Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "x_total", Help: "y"}), &err)
	if err == nil {
		t.Fatal("a conflicting registration gave no error")
	}
	first := err
	Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "y", Help: "y"}), &err)
	if err != first {
		t.Fatal("the first error was replaced")
	}
}
