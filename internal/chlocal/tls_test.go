package chlocal_test

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/airtally/airtally/internal/chlocal"
	"github.com/airtally/airtally/internal/testenv"
)

// With Config.TLS the server answers the native protocol over TLS with the
// given certificate: a client that trusts its CA queries; one that does not
// is refused at the handshake.
func TestTLSNativePort(t *testing.T) {
	c := testenv.NewCerts(t)
	s := start(t, chlocal.Config{TLS: &chlocal.TLS{CertFile: c.ServerCert, KeyFile: c.ServerKey}})
	if s.TLSAddr() == "" || s.TLSAddr() == s.Addr() {
		t.Fatalf("TLSAddr %q (plain %q)", s.TLSAddr(), s.Addr())
	}
	dial := func(roots *x509.CertPool) error {
		conn, err := clickhouse.Open(&clickhouse.Options{
			Addr: []string{s.TLSAddr()}, DialTimeout: 5 * time.Second,
			TLS: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		})
		if err != nil {
			return err
		}
		defer conn.Close()
		var one uint8
		return conn.QueryRow(t.Context(), "SELECT 1").Scan(&one)
	}
	if err := dial(c.Pool); err != nil {
		t.Fatalf("TLS query with the server's CA: %v", err)
	}
	if err := dial(x509.NewCertPool()); err == nil {
		t.Fatal("TLS query with an unrelated CA succeeded; want a certificate error")
	}
}
