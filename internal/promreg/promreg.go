// Package promreg registers Prometheus collectors so that several
// components of one kind in one process (two loaders, two detectors) share
// their metrics instead of failing on the second registration.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg, or returns the collector already
// registered under its name. The first failure is kept in *errp, and once
// it is set Register does nothing, so that a constructor can register all
// its collectors and check one error at the end.
func Register[T prometheus.Collector](reg prometheus.Registerer, c T, errp *error) T {
	if *errp != nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing
			}
		}
		*errp = err
	}
	return c
}
