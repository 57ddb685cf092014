package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config.
const (
	DefaultMaxBodyBytes = 4 << 20
	DefaultMaxEvents    = 1000
	DefaultRetryAfter   = 5 * time.Second
	DefaultMaxSources   = 10000
)

// MinTokenLen is the shortest bearer token accepted in the configuration.
const MinTokenLen = 16

// Any is the wildcard of a Grant's System or Instance: any source name.
const Any = "*"

// Grant is what a bearer token allows. System and Instance are source names
// (see event.Source) or Any; a token can only send events whose source
// matches both.
type Grant struct {
	// Name identifies the token's holder in logs and metrics (never the
	// token itself). Required.
	Name string
	// System the token may send for, or "*".
	System string
	// Instance the token may send for, or "*".
	Instance string
}

// allows reports whether the grant covers a source.
func (g Grant) allows(system, instance string) bool {
	return (g.System == Any || g.System == system) && (g.Instance == Any || g.Instance == instance)
}

var sourceNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func (g Grant) validate() error {
	switch {
	case strings.TrimSpace(g.Name) == "":
		return errors.New("name is required")
	case g.System != Any && !sourceNameRe.MatchString(g.System):
		return errors.New(`system must be "*" or 1-64 characters of a-z, 0-9, '_' or '-'`)
	case g.Instance != Any && !sourceNameRe.MatchString(g.Instance):
		return errors.New(`instance must be "*" or 1-64 characters of a-z, 0-9, '_' or '-'`)
	}
	return nil
}

// Config configures a Gateway. The zero value of every optional field
// means its default.
type Config struct {
	// Tokens maps each bearer token to what it allows. Required: at least
	// one token, each at least MinTokenLen characters without white space.
	// See LoadTokens.
	Tokens map[string]Grant
	// MaxBodyBytes bounds a request body; a larger one is answered 413.
	// Default 4 MiB.
	MaxBodyBytes int64
	// MaxEvents bounds the events of one request; more are answered 413.
	// Default 1000.
	MaxEvents int
	// RetryAfter is what a 503 answer tells the client to wait before it
	// retries (whole seconds, at least 1). Default 5 s.
	RetryAfter time.Duration
	// RatePerSecond bounds the events each token may send per second: a
	// token bucket per token, refilled at this rate, from which every
	// request takes as many as it holds events. A request that finds too
	// few is answered 429 with Retry-After and nothing of it is stored.
	// Default 0: unlimited.
	RatePerSecond float64
	// RateBurst is the size of each token's bucket: the most events a
	// token may send at once after a pause. A request with more events is
	// answered 413. Used only with RatePerSecond; default MaxEvents, so
	// that any request within MaxEvents can pass.
	RateBurst int
	// MaxSources bounds the sources (system, instance) the gateway keeps
	// sequence numbers for: its publisher keeps one per source, for ever.
	// Once that many are known, an event of a new source is rejected
	// (field "source") and known sources go on as before. Only a token
	// granted "*" can create sources at will; this bounds what such a
	// token can make the gateway remember. Needs a Publisher that counts
	// sources (SourceCounter, as publisher.Publisher and Relay do).
	// Default DefaultMaxSources; the bound is approximate under
	// concurrent requests (a few over).
	MaxSources int
	// Logger receives one line per error response (with its error_id) and
	// per request summary; it never receives tokens, payloads or field
	// values. Nil discards logs.
	Logger *slog.Logger
	// Registerer receives the gateway's metrics; nil means no metrics.
	Registerer prometheus.Registerer
}

// WithDefaults returns c with every unset optional field at its default.
func (c Config) WithDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxEvents == 0 {
		c.MaxEvents = DefaultMaxEvents
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.MaxSources == 0 {
		c.MaxSources = DefaultMaxSources
	}
	if c.RatePerSecond > 0 && c.RateBurst == 0 {
		c.RateBurst = c.MaxEvents
	}
	return c
}

// Validate reports the first field that is wrong. Error texts never
// contain a token.
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case len(c.Tokens) == 0:
		return errors.New("gateway: tokens: at least one token is required")
	case c.MaxBodyBytes < 0:
		return errors.New("gateway: max body bytes must be positive")
	case c.MaxEvents < 0:
		return errors.New("gateway: max events must be positive")
	case c.RetryAfter < time.Second:
		return errors.New("gateway: retry after must be at least 1s")
	case c.RatePerSecond < 0:
		return errors.New("gateway: rate per second must be 0 (unlimited) or positive")
	case c.RateBurst < 0:
		return errors.New("gateway: rate burst must be positive")
	case c.MaxSources < 0:
		return errors.New("gateway: max sources must be positive")
	}
	for tok, g := range c.Tokens {
		if err := validToken(tok); err != nil {
			return fmt.Errorf("gateway: token of %q: %w", g.Name, err)
		}
		if err := g.validate(); err != nil {
			return fmt.Errorf("gateway: token of %q: %w", g.Name, err)
		}
	}
	return nil
}

func validToken(tok string) error {
	if len(tok) < MinTokenLen {
		return fmt.Errorf("token must be at least %d characters", MinTokenLen)
	}
	if strings.IndexFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return errors.New("token must not contain white space or control characters")
	}
	return nil
}
