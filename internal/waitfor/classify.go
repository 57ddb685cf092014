package waitfor

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net/url"
	"slices"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// permanentError marks an error that waiting cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that waiting cannot fix (Do returns it at
// once). Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// natsConfigErrors are NATS errors that mean the configuration is wrong.
var natsConfigErrors = []error{
	nats.ErrAuthorization, nats.ErrAuthExpired, nats.ErrAuthRevoked, nats.ErrAccountAuthExpired,
	nats.ErrPermissionViolation, nats.ErrSecureConnRequired, nats.ErrSecureConnWanted,
	nats.ErrNkeysNotSupported, nats.ErrNoUserCB, jetstream.ErrJetStreamNotEnabledForAccount,
}

// clickHouseConfigCodes are ClickHouse exception codes that mean the
// credentials or the permissions are wrong: UNKNOWN_USER (192),
// WRONG_PASSWORD (193), REQUIRED_PASSWORD (194), IP_ADDRESS_NOT_ALLOWED
// (195), DATABASE_ACCESS_DENIED (291), ACCESS_DENIED (497),
// AUTHENTICATION_FAILED (516), READONLY (164).
var clickHouseConfigCodes = []int32{164, 192, 193, 194, 195, 291, 497, 516}

// IsPermanent reports whether err is one that waiting cannot fix: marked
// with Permanent, or a known configuration error (see the package doc).
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var pe permanentError
	if errors.As(err, &pe) {
		return true
	}
	for _, target := range natsConfigErrors {
		if errors.Is(err, target) {
			return true
		}
	}
	var exc *clickhouse.Exception
	if errors.As(err, &exc) && slices.Contains(clickHouseConfigCodes, exc.Code) {
		return true
	}
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		record    tls.RecordHeaderError
		badURL    *url.Error
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid),
		errors.As(err, &verify), errors.As(err, &record):
		return true // TLS set up wrong on one side
	case errors.As(err, &badURL):
		return true // a URL that does not parse
	case errors.Is(err, fs.ErrPermission), errors.Is(err, fs.ErrNotExist):
		return true // a credentials, key or CA file that cannot be read
	}
	return false
}

// clickHouseTransientCodes are ClickHouse exception codes of a statement
// that may succeed when tried again: the server or its Keeper is busy,
// starting or unreachable. TIMEOUT_EXCEEDED (159), TOO_MANY_SIMULTANEOUS_QUERIES
// (202), SOCKET_TIMEOUT (209), NETWORK_ERROR (210), NO_ZOOKEEPER (225),
// TABLE_IS_READ_ONLY (242), UNFINISHED (341), UNKNOWN_STATUS_OF_INSERT
// (319), ALL_CONNECTION_TRIES_FAILED (279), KEEPER_EXCEPTION (999),
// UNEXPECTED_END_OF_FILE (3), ATTEMPT_TO_READ_AFTER_EOF (32), DEADLOCK_AVOIDED (473).
var clickHouseTransientCodes = []int32{3, 32, 159, 202, 209, 210, 225, 242, 279, 319, 341, 473, 999}

// StatementError classifies the error of a ClickHouse statement that
// should not fail on a healthy server (a migration): a ClickHouse
// exception is permanent unless its code says the server was busy or
// unreachable; any other error (the connection) is left to IsPermanent.
func StatementError(err error) error {
	var exc *clickhouse.Exception
	if errors.As(err, &exc) && !slices.Contains(clickHouseTransientCodes, exc.Code) {
		return Permanent(err)
	}
	return err
}
