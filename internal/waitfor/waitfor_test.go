package waitfor

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestBackoffDoublesToItsCapWithJitter(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	ceilings := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for i, c := range ceilings {
		c *= time.Millisecond
		if d := b.Next(); d < c/2 || d > c {
			t.Fatalf("pause %d = %s, want within [%s, %s]", i+1, d, c/2, c)
		}
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Fatalf("after Reset: %s, want at most Min", d)
	}
	var z Backoff
	if d := z.Next(); d < DefaultMin/2 || d > DefaultMin {
		t.Fatalf("zero Backoff's first pause %s, want within [%s, %s]", d, DefaultMin/2, DefaultMin)
	}
}

func TestIsPermanentTellsConfigurationFromOutage(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", fmt.Errorf("connect: clickhouse ping: %w", refused), false},
		{"NATS: no servers", fmt.Errorf("connect: nats: %w", nats.ErrNoServers), false},
		{"name not resolvable yet", &net.DNSError{Err: "no such host", Name: "ch-1", IsNotFound: true}, false},
		{"timeout", context.DeadlineExceeded, false},
		{"ClickHouse network error (210)", &clickhouse.Exception{Code: 210, Message: "connection reset"}, false},
		{"NATS: authorization violation", fmt.Errorf("connect: nats: %w", nats.ErrAuthorization), true},
		{"NATS: permissions violation", fmt.Errorf("%w: Permissions Violation for Publish to \"$JS.API.STREAM.CREATE.DRTV\"", nats.ErrPermissionViolation), true},
		{"ClickHouse: authentication failed (516)", fmt.Errorf("ping: %w", &clickhouse.Exception{Code: 516, Message: "Authentication failed"}), true},
		{"ClickHouse: wrong password (193)", &clickhouse.Exception{Code: 193, Message: "Wrong password for user default"}, true},
		{"ClickHouse: unknown user (192)", &clickhouse.Exception{Code: 192, Message: "Unknown user x"}, true},
		{"TLS: unknown authority", fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), true},
		{"a password file that may not be read", fmt.Errorf("password file: %w", fs.ErrPermission), true},
		{"marked permanent", Permanent(errors.New("schema of the other mode")), true},
		{"nil", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsPermanent(tc.err); got != tc.want {
				t.Fatalf("IsPermanent(%v) = %t, want %t", tc.err, got, tc.want)
			}
		})
	}
}

func TestStatementError(t *testing.T) {
	if !IsPermanent(StatementError(&clickhouse.Exception{Code: 62, Message: "Syntax error"})) {
		t.Fatal("a syntax error is worth retrying")
	}
	if IsPermanent(StatementError(&clickhouse.Exception{Code: 242, Message: "Table is in readonly mode"})) {
		t.Fatal("a read-only replica (Keeper away) is not worth waiting for")
	}
	if StatementError(nil) != nil {
		t.Fatal("StatementError(nil) is not nil")
	}
}

// An unreachable dependency is waited for: the wait is said once (one
// notice, one Warn), the dependency is down meanwhile and up at the end.
func TestDoWaitsSaysSoOnceAndRecordsTheStatus(t *testing.T) {
	reg := prometheus.NewRegistry()
	st, err := NewStatus(reg, ClickHouse, NATS)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var notices []Notice
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	attempts := 0
	err = Do(context.Background(), Options{
		Dependency: ClickHouse, Name: "ClickHouse", Addr: "127.0.0.1:1",
		Backoff: Backoff{Min: time.Millisecond, Max: 4 * time.Millisecond},
		Logger:  slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Status:  st,
		Notify:  func(n Notice) { notices = append(notices, n) },
	}, func(context.Context) error {
		attempts++
		if attempts < 5 {
			if st.Up(ClickHouse) || gaugeValue(t, st, ClickHouse) != 0 {
				t.Errorf("attempt %d: ClickHouse up while unreachable", attempts)
			}
			return fmt.Errorf("ping: %w", refused)
		}
		return nil
	})
	if err != nil || attempts != 5 {
		t.Fatalf("Do = %v after %d attempts, want nil after 5", err, attempts)
	}
	if len(notices) != 2 || notices[0].Back || !notices[1].Back || notices[0].ErrorID == "" || notices[1].Attempts != 5 {
		t.Fatalf("notices %+v, want one for the wait and one for the end", notices)
	}
	if n := strings.Count(logs.String(), `"level":"WARN"`); n != 1 || !strings.Contains(logs.String(), notices[0].ErrorID) || !strings.Contains(logs.String(), "connection refused") || !strings.Contains(logs.String(), "127.0.0.1:1") {
		t.Fatalf("want one Warn with the error id, the address and the error, got %d:\n%s", n, logs.String())
	}
	if !st.Up(ClickHouse) || gaugeValue(t, st, ClickHouse) != 1 {
		t.Fatal("ClickHouse not up after it was reached")
	}
	if st.Ready() || gaugeValue(t, st, NATS) != 0 {
		t.Fatal("ready, or NATS up, though NATS was never reached")
	}
}

func TestDoEndsAtOnceOnAConfigurationError(t *testing.T) {
	attempts := 0
	err := Do(context.Background(), Options{Dependency: NATS}, func(context.Context) error {
		attempts++
		return fmt.Errorf("connect: %w", nats.ErrAuthorization)
	})
	if !errors.Is(err, nats.ErrAuthorization) || attempts != 1 {
		t.Fatalf("Do = %v after %d attempts, want the authorization error after 1", err, attempts)
	}
}

func TestDoGivesUpAtTheDeadline(t *testing.T) {
	attempts := 0
	err := Do(context.Background(), Options{Dependency: NATS, Deadline: time.Now().Add(50 * time.Millisecond), Backoff: Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}},
		func(context.Context) error {
			attempts++
			return nats.ErrNoServers
		})
	if !errors.Is(err, ErrGaveUp) || !errors.Is(err, nats.ErrNoServers) || attempts < 2 {
		t.Fatalf("Do = %v after %d attempts, want ErrGaveUp wrapping the last error after several", err, attempts)
	}
}

func TestDoStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	err := Do(ctx, Options{Dependency: NATS, Backoff: Backoff{Min: time.Hour}}, func(context.Context) error {
		cancel()
		return nats.ErrNoServers
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Do = %v, want context.Canceled", err)
	}
}

func TestReadyHandlerFollowsTheStatus(t *testing.T) {
	st, err := NewStatus(nil, ClickHouse, NATS)
	if err != nil {
		t.Fatal(err)
	}
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		st.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code, strings.TrimSpace(rec.Body.String())
	}
	if code, body := get(); code != http.StatusServiceUnavailable || body != `{"status":"waiting","down":["clickhouse","nats"]}` {
		t.Fatalf("both down: %d %s", code, body)
	}
	st.Set(ClickHouse, true)
	if code, body := get(); code != http.StatusServiceUnavailable || body != `{"status":"waiting","down":["nats"]}` {
		t.Fatalf("NATS down: %d %s", code, body)
	}
	st.Set(NATS, true)
	if code, body := get(); code != http.StatusOK || body != `{"status":"ready"}` {
		t.Fatalf("both up: %d %s", code, body)
	}
	st.Set(NATS, false) // lost while running
	if code, _ := get(); code != http.StatusServiceUnavailable {
		t.Fatalf("NATS lost: %d", code)
	}
}

func TestWatchFollowsAProbe(t *testing.T) {
	st, err := NewStatus(nil, NATS)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var up = make(chan bool, 1)
	up <- true
	state := true
	go st.Watch(ctx, NATS, time.Millisecond, func(context.Context) error {
		select {
		case state = <-up:
		default:
		}
		if state {
			return nil
		}
		return nats.ErrNoServers
	})
	waitUntil(t, func() bool { return st.Up(NATS) }, "NATS up")
	up <- false
	waitUntil(t, func() bool { return !st.Up(NATS) }, "NATS down after the probe failed")
}

func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not reached: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// gaugeValue is airtally_dependency_up{dependency=dep}.
func gaugeValue(t *testing.T, st *Status, dep string) float64 {
	t.Helper()
	var m dto.Metric
	if err := st.gauge.WithLabelValues(dep).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
