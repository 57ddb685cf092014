package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/internal/connect"
	"github.com/airtally/airtally/internal/streams"
	"github.com/airtally/airtally/internal/waitfor"
	"github.com/airtally/airtally/schema"
)

// watchInterval is how often a running component checks its
// dependencies for /readyz and airtally_dependency_up.
const watchInterval = 2 * time.Second

// waitFlags bound the start-up wait for unreachable dependencies.
type waitFlags struct{ waitFor time.Duration }

func (w *waitFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&w.waitFor, "wait-for", 0, "how long to wait at start-up for NATS and ClickHouse while they are unreachable, retrying with back-off (0: for ever; set it to exit instead, for a supervisor to restart)")
}

// starter waits, at start-up, for what a command needs: it says once
// that it waits (one polite line on stderr, and the log with the address
// and an error id), records each dependency in status, and ends the wait
// at once on a configuration error, or when --wait-for has passed.
type starter struct {
	env      *Env
	status   *waitfor.Status
	waitFor  time.Duration
	deadline time.Time
}

func newStarter(env *Env, wf waitFlags, status *waitfor.Status) *starter {
	s := &starter{env: env, status: status, waitFor: wf.waitFor}
	if wf.waitFor > 0 {
		s.deadline = time.Now().Add(wf.waitFor)
	}
	return s
}

// opts are the wait options for one dependency.
func (s *starter) opts(dep, name, addr string) waitfor.Options {
	return waitfor.Options{
		Dependency: dep, Name: name, Addr: addr, Deadline: s.deadline,
		Logger: s.env.Log, Status: s.status,
		Notify: func(n waitfor.Notice) {
			if n.Back {
				fmt.Fprintf(s.env.Stderr, "airtally %s: %s at %s is reachable after %s; carrying on.\n", s.env.name, n.Name, n.Addr, n.Waited.Round(100*time.Millisecond))
				return
			}
			fmt.Fprintf(s.env.Stderr, "airtally %s: %s at %s is not reachable yet; waiting for it, retrying with back-off (error id %s; the details are in the log).\n", s.env.name, n.Name, n.Addr, n.ErrorID)
		},
	}
}

// failed turns a wait's error into the command's: a user message that
// says whether the wait gave up, or the configuration is wrong; ctx's
// error as it is.
func (s *starter) failed(err error, name, addr, configHint string) error {
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, waitfor.ErrGaveUp):
		return userErr(err, "could not reach %s at %s within %s (--wait-for)", name, addr, s.waitFor)
	default:
		return userErr(err, "%s at %s refused airtally: %s", name, addr, configHint)
	}
}

const (
	chHint   = "a configuration error, not an outage (check --clickhouse-user, --clickhouse-password-file, the user's grants and the TLS flags)"
	natsHint = "a configuration error, not an outage (check the NATS credentials, the user's permissions and the TLS flags)"
)

// clickHouse opens a ClickHouse connection pool, waiting while the server
// is unreachable.
func (s *starter) clickHouse(ctx context.Context, cfg connect.ClickHouse) (driver.Conn, error) {
	cfg = cfg.WithDefaults()
	addr := "[" + strings.Join(cfg.Addrs, " ") + "]"
	conn, err := waitfor.Value(ctx, s.opts(waitfor.ClickHouse, "ClickHouse", addr), func(ctx context.Context) (driver.Conn, error) {
		return connect.OpenClickHouse(ctx, cfg)
	})
	if err != nil {
		return nil, s.failed(err, "ClickHouse", addr, chHint)
	}
	return conn, nil
}

// migrate applies the schema migrations, waiting (and trying again) while
// ClickHouse is unreachable or busy. A database of the other mode, an
// applied migration that was changed, or a statement the server refuses
// ends it with its reason.
func (s *starter) migrate(ctx context.Context, conn driver.Conn, addrs []string, db, cluster string) ([]int, error) {
	addr := "[" + strings.Join(addrs, " ") + "]"
	applied, err := waitfor.Value(ctx, s.opts(waitfor.ClickHouse, "ClickHouse", addr), func(ctx context.Context) ([]int, error) {
		applied, err := schema.MigrateCluster(ctx, conn, db, cluster)
		if errors.Is(err, schema.ErrMode) || errors.Is(err, schema.ErrChecksum) {
			return nil, waitfor.Permanent(err)
		}
		return applied, waitfor.StatementError(err)
	})
	switch {
	case err == nil:
		return applied, nil
	case errors.Is(err, schema.ErrMode):
		return nil, userErr(err, "the database %s was created in the other mode (single server or cluster); see --clickhouse-cluster", db)
	case errors.Is(err, waitfor.ErrGaveUp), errors.Is(err, context.Canceled):
		return nil, s.failed(err, "ClickHouse", addr, chHint)
	default:
		return nil, userErr(err, "the schema migrations could not be applied")
	}
}

// nats connects to NATS, waiting while no server is reachable. The
// connection then reconnects by itself for ever.
func (s *starter) nats(ctx context.Context, nf natsFlags, name string) (*nats.Conn, jetstream.JetStream, error) {
	cfg := nf.cfg
	cfg.Name = name
	addr := connect.RedactURL(cmp.Or(cfg.URL, nats.DefaultURL))
	nc, err := waitfor.Value(ctx, s.opts(waitfor.NATS, "NATS", addr), func(context.Context) (*nats.Conn, error) {
		return connect.DialNATS(cfg, s.env.Log)
	})
	if err != nil {
		return nil, nil, s.failed(err, "NATS", addr, natsHint)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, userErr(err, "could not use JetStream on the NATS connection")
	}
	return nc, js, nil
}

// ensureStreams creates or updates the streams, trying again while NATS
// or JetStream does not answer (a server or a cluster still starting). A
// permission refused ends it.
func (s *starter) ensureStreams(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, sf streamFlags) error {
	addr := connect.RedactURL(nc.Opts.Url)
	if len(nc.Opts.Servers) > 0 {
		addr = connect.RedactURL(strings.Join(nc.Opts.Servers, ","))
	}
	err := waitfor.Do(ctx, s.opts(waitfor.NATS, "NATS JetStream", addr), func(ctx context.Context) error {
		ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := streams.Ensure(ectx, js, sf.cfg)
		if err != nil && errors.Is(nc.LastError(), nats.ErrPermissionViolation) && strings.Contains(nc.LastError().Error(), "$JS.API") {
			// The server refused the request asynchronously; the request
			// itself only timed out.
			return waitfor.Permanent(fmt.Errorf("%w (%w)", err, nc.LastError()))
		}
		return err
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, waitfor.ErrGaveUp), errors.Is(err, context.Canceled):
		return s.failed(err, "NATS JetStream", addr, natsHint)
	default:
		return userErr(err, "could not create or update the JetStream streams (is JetStream enabled, and may this user manage streams?)")
	}
}

// watch keeps the status of a running component's dependencies: NATS
// from its connection's state, ClickHouse by a ping, every watchInterval,
// until ctx ends.
func (s *starter) watch(ctx context.Context, nc *nats.Conn, conn driver.Conn) {
	if nc != nil {
		go s.status.Watch(ctx, waitfor.NATS, watchInterval, func(context.Context) error {
			if st := nc.Status(); st != nats.CONNECTED {
				return fmt.Errorf("nats connection %s", st)
			}
			return nil
		})
	}
	if conn != nil {
		go s.status.Watch(ctx, waitfor.ClickHouse, watchInterval, conn.Ping)
	}
}

// orStopped is err, or nil when ctx has ended: a service stopped (SIGTERM,
// Ctrl-C) while it waited for a dependency stops as cleanly as one
// stopped while it worked.
func orStopped(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
