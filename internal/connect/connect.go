// Package connect opens airtally's connections to NATS and ClickHouse from
// one shared configuration (flags or environment variables), with the
// settings every component needs: unlimited NATS reconnects with logged
// disconnects, and ClickHouse over the native protocol with LZ4.
package connect

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
)

// NATS configures a NATS connection. Secrets are read from files, never
// taken on the command line.
type NATS struct {
	// URL is a comma-separated list of servers; default nats://127.0.0.1:4222.
	URL string
	// CredsFile is a NATS credentials file (JWT + nkey seed); optional.
	CredsFile string
	// NkeySeedFile is an nkey seed file; optional.
	NkeySeedFile string
	// User and PasswordFile authenticate with user and password; optional.
	User         string
	PasswordFile string
	// CAFile, CertFile and KeyFile enable TLS (server CA; client cert for
	// mutual TLS); optional.
	CAFile, CertFile, KeyFile string
	// Name identifies the client to the server (shown in monitoring).
	Name string
	// InboxPrefix replaces "_INBOX" as the prefix of reply subjects. Give
	// each NATS user its own (e.g. "_INBOX.loader") and allow it only that
	// prefix: with a shared "_INBOX.>" any user allowed to subscribe there
	// could read what JetStream delivers to others (deploy/nats/permissions.md).
	InboxPrefix string
}

// ConnectNATS connects with unlimited reconnects, so a component rides out
// a NATS restart or a node failover by itself. With RetryOnFailedConnect
// the first connection may also be made later, in the background.
func ConnectNATS(cfg NATS, log *slog.Logger) (*nats.Conn, error) {
	return connectNATS(cfg, log, true)
}

// DialNATS makes one attempt at connecting, with ConnectNATS's settings
// otherwise: it returns the attempt's error (nats.ErrNoServers when no
// server answered, nats.ErrAuthorization when the credentials were
// refused), so that the caller can tell an unreachable server from a
// configuration error and wait (package waitfor). Once connected, the
// connection reconnects without limit, as ConnectNATS's does.
func DialNATS(cfg NATS, log *slog.Logger) (*nats.Conn, error) {
	return connectNATS(cfg, log, false)
}

func connectNATS(cfg NATS, log *slog.Logger, retryFirst bool) (*nats.Conn, error) {
	if log == nil {
		log = slog.Default()
	}
	url := cfg.URL
	if url == "" {
		url = nats.DefaultURL
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(retryFirst),
		// No buffering while disconnected: a publish then fails at once and
		// the publisher spools it, keeping each source's order (buffered
		// messages could be replayed out of order).
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", "server", c.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("nats async error", "subject", subject, "err", err)
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.NkeySeedFile != "" {
		opt, err := nats.NkeyOptionFromSeed(cfg.NkeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("connect: nats nkey seed file: %w", err)
		}
		opts = append(opts, opt)
	}
	if cfg.User != "" {
		pw, err := readSecret(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("connect: nats password file: %w", err)
		}
		opts = append(opts, nats.UserInfo(cfg.User, pw))
	}
	if cfg.CAFile != "" {
		opts = append(opts, nats.RootCAs(cfg.CAFile))
	}
	if cfg.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(cfg.InboxPrefix))
	}
	if cfg.CertFile != "" || cfg.KeyFile != "" {
		opts = append(opts, nats.ClientCert(cfg.CertFile, cfg.KeyFile))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect: nats %s: %w", redactURL(url), redactedError{err})
	}
	return nc, nil
}

// redactedError is an error whose text has the passwords of any URLs in
// it masked (a URL parse error quotes the URL whole).
type redactedError struct{ err error }

func (e redactedError) Error() string { return userInfoRe.ReplaceAllString(e.err.Error(), "://***@") }
func (e redactedError) Unwrap() error { return e.err }

var userInfoRe = regexp.MustCompile(`://[^/@\s"]*@`)

// ClickHouse configures a ClickHouse connection (native protocol).
type ClickHouse struct {
	// Addrs are host:port of the native protocol; default 127.0.0.1:9000.
	// With several, the driver fails over between them.
	Addrs []string
	// Database is the default database; default "airtally".
	Database string
	// User defaults to "default"; PasswordFile holds its password.
	User         string
	PasswordFile string
	// TLS enables TLS; CAFile verifies the server (system roots if empty).
	TLS    bool
	CAFile string
	// DialTimeout defaults to 5s; ReadTimeout (per query) to 5 minutes.
	DialTimeout time.Duration
	ReadTimeout time.Duration
	// MaxOpenConns defaults to 10.
	MaxOpenConns int
}

// WithDefaults returns c with every unset field at its default.
func (c ClickHouse) WithDefaults() ClickHouse {
	if len(c.Addrs) == 0 {
		c.Addrs = []string{"127.0.0.1:9000"}
	}
	if c.Database == "" {
		c.Database = "airtally"
	}
	if c.User == "" {
		c.User = "default"
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 5 * time.Minute
	}
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = 10
	}
	return c
}

// OpenClickHouse opens a connection pool and pings it. Its default database
// is cfg.Database (a user may be allowed that database only); when it does
// not exist yet (migrations create it) the pool connects to "default"
// instead. Every airtally statement names its database.
func OpenClickHouse(ctx context.Context, cfg ClickHouse) (driver.Conn, error) {
	cfg = cfg.WithDefaults()
	conn, err := openClickHouse(ctx, cfg, cfg.Database)
	var exc *clickhouse.Exception
	if errors.As(err, &exc) && exc.Code == codeUnknownDatabase {
		return openClickHouse(ctx, cfg, "default")
	}
	return conn, err
}

// codeUnknownDatabase is ClickHouse's UNKNOWN_DATABASE.
const codeUnknownDatabase = 81

func openClickHouse(ctx context.Context, cfg ClickHouse, database string) (driver.Conn, error) {
	pw, err := readSecret(cfg.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("connect: clickhouse password file: %w", err)
	}
	opts := &clickhouse.Options{
		Protocol:         clickhouse.Native,
		Addr:             cfg.Addrs,
		Auth:             clickhouse.Auth{Database: database, Username: cfg.User, Password: pw},
		DialTimeout:      cfg.DialTimeout,
		ReadTimeout:      cfg.ReadTimeout,
		MaxOpenConns:     cfg.MaxOpenConns,
		MaxIdleConns:     cfg.MaxOpenConns,
		Compression:      &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		ConnOpenStrategy: clickhouse.ConnOpenInOrder,
		Logger:           slog.New(slog.DiscardHandler),
	}
	if cfg.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("connect: clickhouse CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, errors.New("connect: clickhouse CA file holds no PEM certificate")
			}
			tc.RootCAs = pool
		}
		opts.TLS = tc
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("connect: clickhouse %s: %w", strings.Join(cfg.Addrs, ","), err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect: clickhouse ping %s: %w", strings.Join(cfg.Addrs, ","), err)
	}
	return conn, nil
}

// readSecret reads a secret from a file, trimming the trailing newline. An
// empty path means no secret.
func readSecret(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// redactURL drops user information from a NATS URL list for messages.
func redactURL(url string) string {
	parts := strings.Split(url, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if scheme := strings.Index(p, "://"); scheme >= 0 && scheme < at {
				parts[i] = p[:scheme+3] + "***" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// RedactURL returns a comma-separated list of NATS URLs with any user
// information masked, fit for messages and logs.
func RedactURL(url string) string { return redactURL(url) }
