package zklocal_test

import (
	"net"
	"testing"

	"github.com/airtally/airtally/internal/zklocal"
)

// A started server accepts clients; after Kill it does not; Restart
// brings it back on the same address.
func TestStartKillRestart(t *testing.T) {
	zk, err := zklocal.Start(t.Context(), zklocal.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = zk.Stop() })
	dial := func() error {
		c, err := net.Dial("tcp", zk.Addr())
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("dial after Start: %v", err)
	}
	addr := zk.Addr()
	if err := zk.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if err := dial(); err == nil {
		t.Fatal("dial after Kill succeeded")
	}
	if err := zk.Restart(t.Context()); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if zk.Addr() != addr {
		t.Fatalf("address changed from %s to %s", addr, zk.Addr())
	}
	if err := dial(); err != nil {
		t.Fatalf("dial after Restart: %v", err)
	}
}

func TestStartNotInstalled(t *testing.T) {
	_, err := zklocal.Start(t.Context(), zklocal.Config{Dir: t.TempDir(), Script: "/nonexistent/zkServer.sh"})
	if err != zklocal.ErrNotInstalled {
		t.Fatalf("err = %v, want ErrNotInstalled", err)
	}
}
