package waitfor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airtally/airtally/internal/promreg"
)

// Dependency names, the values of the gauge's "dependency" label.
const (
	NATS       = "nats"
	ClickHouse = "clickhouse"
)

// Status is the state of one component's dependencies: each is up or
// down (down until first reached). It is safe for concurrent use; a nil
// *Status records nothing and is always ready.
type Status struct {
	mu    sync.Mutex
	up    map[string]bool
	deps  []string
	gauge *prometheus.GaugeVec
}

// NewStatus returns the status of deps, all down, exported as the gauge
// airtally_dependency_up{dependency="…"} (1 up, 0 down) on reg when reg is
// not nil.
func NewStatus(reg prometheus.Registerer, deps ...string) (*Status, error) {
	s := &Status{up: map[string]bool{}, deps: slices.Clone(deps)}
	if reg != nil {
		var err error
		s.gauge = promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "airtally", Name: "dependency_up",
			Help: "Whether a dependency (nats, clickhouse) was reachable at the last attempt or check: 1 up, 0 down.",
		}, []string{"dependency"}), &err)
		if err != nil {
			return nil, fmt.Errorf("waitfor: register metrics: %w", err)
		}
	}
	for _, d := range deps {
		s.Set(d, false)
	}
	return s, nil
}

// Set records whether dep is up.
func (s *Status) Set(dep string, up bool) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.deps, dep) {
		s.deps = append(s.deps, dep)
	}
	s.up[dep] = up
	if s.gauge != nil {
		v := 0.0
		if up {
			v = 1
		}
		s.gauge.WithLabelValues(dep).Set(v)
	}
}

// Up reports whether dep is up.
func (s *Status) Up(dep string) bool {
	if s == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up[dep]
}

// Down lists the dependencies that are down, in the order they were named.
func (s *Status) Down() []string {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var down []string
	for _, d := range s.deps {
		if !s.up[d] {
			down = append(down, d)
		}
	}
	return down
}

// Ready reports whether every dependency is up.
func (s *Status) Ready() bool { return len(s.Down()) == 0 }

// readyBody is the JSON answer of the /readyz handler.
type readyBody struct {
	Status string   `json:"status"`
	Down   []string `json:"down,omitempty"`
}

// Handler serves /readyz: 200 {"status":"ready"} when every dependency is
// up, else 503 {"status":"waiting","down":[…]}.
func (s *Status) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		body, code := readyBody{Status: "ready"}, http.StatusOK
		if down := s.Down(); len(down) > 0 {
			body, code = readyBody{Status: "waiting", Down: down}, http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	})
}

// Watch calls probe every interval until ctx ends and records dep up when
// it returns nil, down otherwise: how /readyz follows a dependency lost
// and regained while the component runs. It blocks; run it in a goroutine.
func (s *Status) Watch(ctx context.Context, dep string, interval time.Duration, probe func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, interval)
		err := probe(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.Set(dep, err == nil)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
