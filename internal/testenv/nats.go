package testenv

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/airtally/airtally/internal/natsembed"
)

// NATS is an embedded NATS server with JetStream, owned by one test.
type NATS struct {
	// Server is the running server (replaced by Restart).
	Server *natsembed.Server
	// URL is the client URL, e.g. nats://127.0.0.1:41234.
	URL string
	// Dir is the JetStream store folder.
	Dir string
	// Port is the client port; Restart keeps it.
	Port int

	cfg natsembed.Config
}

// StartNATS starts an embedded NATS server with JetStream, storing in
// t.TempDir() unless cfg.Dir is set, and stops it when the test ends.
func StartNATS(t testing.TB, cfg natsembed.Config) *NATS {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	n := &NATS{cfg: cfg}
	n.start(t)
	t.Cleanup(func() {
		if n.Server != nil {
			n.Server.Stop()
		}
	})
	return n
}

func (n *NATS) start(t testing.TB) {
	t.Helper()
	s, err := natsembed.Start(n.cfg)
	if err != nil {
		t.Fatalf("testenv: start nats: %v", err)
	}
	addr, ok := s.Addr().(*net.TCPAddr)
	if !ok {
		s.Stop()
		t.Fatalf("testenv: nats listens on %v, not TCP", s.Addr())
	}
	n.Server, n.URL, n.Dir, n.Port = s, s.ClientURL(), n.cfg.Dir, addr.Port
	n.cfg.Port = addr.Port // a restart comes back on the same port
}

// Restart stops the server and starts it again on the same port and store
// folder, as in an outage. Connections made with Connect reconnect.
func (n *NATS) Restart(t testing.TB) {
	t.Helper()
	n.Server.Stop()
	n.Server = nil
	n.start(t)
}

// Connect connects to url with unlimited reconnects and a short reconnect
// wait, and closes the connection when the test ends.
func Connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url,
		nats.Name("airtally-test"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond),
		nats.ReconnectJitter(10*time.Millisecond, 10*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("testenv: connect to nats %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}
