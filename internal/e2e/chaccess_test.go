package e2e

import (
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/chlocal"
	"github.com/airtally/airtally/internal/connect"
	"github.com/airtally/airtally/internal/testenv"
	"github.com/airtally/airtally/schema"
)

// deployUsersFile is the compose stack's ClickHouse users configuration.
const deployUsersFile = "../../deploy/clickhouse/users.d/airtally.xml"

// deployProfiles are the settings profiles of deployUsersFile that the
// locked-down test copies.
type deployProfiles struct {
	Profiles struct {
		Writer struct {
			MaxMemoryUsage int64 `xml:"max_memory_usage"`
		} `xml:"airtally_writer"`
		ReadOnly struct {
			ReadOnly         int    `xml:"readonly"`
			MaxExecutionTime int64  `xml:"max_execution_time"`
			MaxMemoryUsage   int64  `xml:"max_memory_usage"`
			MaxRowsToRead    uint64 `xml:"max_rows_to_read"`
			MaxResultRows    uint64 `xml:"max_result_rows"`
		} `xml:"airtally_readonly"`
	} `xml:"profiles"`
}

func readDeployProfiles(t *testing.T) deployProfiles {
	t.Helper()
	b, err := os.ReadFile(deployUsersFile)
	if err != nil {
		t.Fatalf("read deploy users: %v", err)
	}
	var d deployProfiles
	if err := xml.Unmarshal(b, &d); err != nil {
		t.Fatalf("parse %s: %v", deployUsersFile, err)
	}
	ro := d.Profiles.ReadOnly
	if d.Profiles.Writer.MaxMemoryUsage == 0 || ro.ReadOnly == 0 || ro.MaxExecutionTime == 0 || ro.MaxResultRows == 0 || ro.MaxRowsToRead == 0 || ro.MaxMemoryUsage == 0 {
		t.Fatalf("%s lacks a setting the test copies: %+v", deployUsersFile, d.Profiles)
	}
	return d
}

// lockedDatabase is the database of the locked-down ClickHouse.
const lockedDatabase = "airtally"

// lockedServer is the locked-down ClickHouse: its users' passwords by name,
// and the CA that issued its TLS certificate.
type lockedServer struct {
	*chlocal.Server
	pw map[string]string
	ca string
}

// lockedClickHouse starts a ClickHouse 18.16 server of its own with the
// users of deploy/clickhouse/users.d/airtally.xml, translated to what 18.16
// understands (users.xml profiles instead of GRANTs), and a TLS native port
// with a certificate from a test CA; it creates and migrates lockedDatabase
// as "default" (the admin, on the plain loopback port).
func lockedClickHouse(t *testing.T) *lockedServer {
	t.Helper()
	d := readDeployProfiles(t)
	ro := d.Profiles.ReadOnly
	readOnly := &chlocal.Profile{
		// deploy uses readonly 2 with <constraints> capping each limit, so
		// that Grafana's plugin may send settings; 18.16 has no
		// constraints, so readonly 2 would let a client lift every limit.
		// Here the read-only users get readonly 1: no setting can be
		// changed at all.
		ReadOnly:         1,
		MaxExecutionTime: time.Duration(ro.MaxExecutionTime) * time.Second,
		MaxMemoryUsage:   ro.MaxMemoryUsage,
		MaxRowsToRead:    ro.MaxRowsToRead,
		MaxResultRows:    ro.MaxResultRows,
	}
	// The loader: no DDL (deploy: GRANT SELECT, INSERT ON airtally.*).
	// 18.16 checks access to a connection's default database, and
	// connect.OpenClickHouse connects to "default", so that database is
	// allowed too (it holds nothing of airtally's).
	writer := &chlocal.Profile{NoDDL: true, MaxMemoryUsage: d.Profiles.Writer.MaxMemoryUsage}
	dbs := []string{lockedDatabase, "default"}
	pw := map[string]string{"airtally_loader": "loader-pw-1", "grafana": "grafana-pw-2", "analyst": "analyst-pw-3"}
	crt := testenv.NewCerts(t)
	srv, err := chlocal.Start(t.Context(), chlocal.Config{
		Dir: t.TempDir(),
		TLS: &chlocal.TLS{CertFile: crt.ServerCert, KeyFile: crt.ServerKey},
		Users: []chlocal.User{
			{Name: "airtally_loader", Password: pw["airtally_loader"], Profile: writer, Databases: dbs},
			{Name: "grafana", Password: pw["grafana"], Profile: readOnly, Databases: dbs},
			{Name: "analyst", Password: pw["analyst"], Profile: readOnly, Databases: dbs},
		},
	})
	if err != nil {
		t.Fatalf("start ClickHouse: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stop ClickHouse: %v", err)
		}
	})
	admin, err := srv.Open("")
	if err != nil {
		t.Fatalf("open admin: %v", err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, q := range []string{"CREATE DATABASE " + lockedDatabase, "CREATE DATABASE other", "CREATE TABLE other.t (n UInt8) ENGINE = MergeTree() ORDER BY n"} {
		if err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("admin %s: %v", q, err)
		}
	}
	if _, err := schema.Migrate(ctx, admin, lockedDatabase); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return &lockedServer{Server: srv, pw: pw, ca: crt.CA}
}

// openAs connects as user the way the components do (connect.OpenClickHouse,
// password from a file), over TLS verified with the test CA.
func openAs(t *testing.T, srv *lockedServer, user string) driver.Conn {
	t.Helper()
	conn, err := dialAs(srv, user, srv.ca)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// dialAs is openAs with the CA file ca, returning the error.
func dialAs(srv *lockedServer, user, ca string) (driver.Conn, error) {
	file := filepath.Join(srv.Dir(), user+".password")
	if err := os.WriteFile(file, []byte(srv.pw[user]+"\n"), 0o600); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return connect.OpenClickHouse(ctx, connect.ClickHouse{
		Addrs: []string{srv.TLSAddr()}, Database: lockedDatabase, User: user, PasswordFile: file,
		TLS: true, CAFile: ca,
	})
}

// mustFail runs each statement as conn and requires ClickHouse to refuse
// it with an error that says why (want, case-insensitive).
func mustFail(t *testing.T, who string, conn driver.Conn, want string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, q := range stmts {
		err := conn.Exec(ctx, q)
		if err == nil {
			t.Errorf("%s may run %q", who, q)
			continue
		}
		if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(want)) {
			t.Errorf("%s: %q failed with %v, want an error saying %q", who, q, err, want)
		}
	}
}

// On the real 18.16 server, with deploy's users translated to users.xml
// profiles: the loader inserts (the real loader, through JetStream) but
// cannot drop, alter, truncate or create anything nor touch another
// database; Grafana's and the analysts' users read the tables and every
// view but cannot write, run DDL or change a setting, and a query over the
// result-row limit fails with a limit error.
func TestClickHouseUsersLockedDown(t *testing.T) {
	s := newStack(t)
	srv := lockedClickHouse(t)
	admin, err := srv.Open(lockedDatabase)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })

	// The real loader, as the loader user, loads published events.
	js, err := jetstream.New(s.connectNATS("e2e-locked-loader"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := loaderConfig(lockedDatabase)
	cfg.Logger = s.log.With("loader", "locked")
	l, err := loader.New(js, openAs(t, srv, "airtally_loader"), cfg)
	if err != nil {
		t.Fatalf("new loader: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("loader: %v", err)
		}
	})
	pub, _ := s.newPublisher(t.TempDir())
	evs := newEvents(source("acd", "tampa-01"), 40)
	publishAll(t, pub, evs, "")
	count := func(conn driver.Conn, q string) (uint64, error) {
		qctx, qcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer qcancel()
		var n uint64
		err := conn.QueryRow(qctx, q).Scan(&n)
		return n, err
	}
	testenv.Eventually(t, wait, func() bool {
		n, err := count(admin, "SELECT count() FROM airtally.events FINAL")
		return err == nil && n == uint64(len(evs))
	}, "the loader user's loader did not load %d events", len(evs))

	loaderConn := openAs(t, srv, "airtally_loader")
	const ddlRefused = "DDL queries are prohibited"
	mustFail(t, "the loader user", loaderConn, ddlRefused,
		"DROP TABLE airtally.events",
		"DROP DATABASE airtally",
		"TRUNCATE TABLE airtally.events",
		"ALTER TABLE airtally.events DELETE WHERE 1",
		"ALTER TABLE airtally.events ADD COLUMN x UInt8",
		"RENAME TABLE airtally.events TO airtally.gone",
		"CREATE TABLE airtally.x (n UInt8) ENGINE = MergeTree() ORDER BY n",
		"CREATE DATABASE mine",
	)
	mustFail(t, "the loader user", loaderConn, "Access denied to database other",
		"INSERT INTO other.t VALUES (1)",
		"SELECT count() FROM other.t",
	)
	if n, err := count(admin, "SELECT count() FROM airtally.events FINAL"); err != nil || n != uint64(len(evs)) {
		t.Errorf("after the loader user's refused DDL: %d rows (%v), want %d", n, err, len(evs))
	}

	for _, user := range []string{"grafana", "analyst"} {
		t.Run(user, func(t *testing.T) {
			conn := openAs(t, srv, user)
			if n, err := count(conn, "SELECT count() FROM airtally.events FINAL"); err != nil || n != uint64(len(evs)) {
				t.Errorf("SELECT events: %d rows (%v), want %d", n, err, len(evs))
			}
			views := viewNames(t, admin)
			for _, v := range views {
				if _, err := count(conn, "SELECT count() FROM airtally."+quoted(t, v)); err != nil {
					t.Errorf("SELECT from view %s: %v", v, err)
				}
			}
			const readonlyRefused = "readonly mode"
			mustFail(t, user, conn, readonlyRefused,
				"INSERT INTO airtally.dead_letters SELECT * FROM airtally.dead_letters",
				"DROP TABLE airtally.events",
				"ALTER TABLE airtally.events DELETE WHERE 1",
				"CREATE TABLE airtally.x (n UInt8) ENGINE = MergeTree() ORDER BY n",
				"SET max_result_rows = 0",
				"SET readonly = 0",
			)
			// A batch insert (what the loader does) is refused too.
			bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer bcancel()
			if b, err := conn.PrepareBatch(bctx, "INSERT INTO airtally.dead_letters"); err == nil {
				_ = b.Abort()
				t.Error("PrepareBatch INSERT succeeded for a read-only user")
			} else if !strings.Contains(err.Error(), readonlyRefused) {
				t.Errorf("PrepareBatch INSERT: %v, want a read-only refusal", err)
			}
			mustFail(t, user, conn, "Access denied to database other", "SELECT count() FROM other.t")
			// More rows than max_result_rows: a limit error, also when the
			// query asks for a higher limit (18.16 keeps the profile's value
			// for a readonly=1 user).
			limit := readDeployProfiles(t).Profiles.ReadOnly.MaxResultRows
			raised := clickhouse.Context(bctx, clickhouse.WithSettings(clickhouse.Settings{"max_result_rows": int(limit * 10)}))
			for name, qctx := range map[string]context.Context{"as configured": bctx, "asking for a higher limit": raised} {
				err := drain(qctx, conn, "SELECT number FROM system.numbers LIMIT ?", limit+1000)
				if err == nil || !strings.Contains(err.Error(), "Limit for result exceeded") {
					t.Errorf("%s, a query returning %d rows: %v, want max_result_rows's limit error", name, limit+1000, err)
				}
			}
		})
	}
}

// drain runs a query and reads every row, returning the first error.
func drain(ctx context.Context, conn driver.Conn, q string, args ...any) error {
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
	}
	return rows.Err()
}

// viewNames lists the views of lockedDatabase.
func viewNames(t *testing.T, admin driver.Conn) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := admin.Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND engine = 'View' ORDER BY name", lockedDatabase)
	if err != nil {
		t.Fatalf("list views: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	if len(out) < 5 {
		t.Fatalf("only %d views in %s: %v", len(out), lockedDatabase, out)
	}
	return out
}

// ClickHouse over TLS: the components verify the server's certificate
// against the CA they are given; with another CA the connection is
// refused.
func TestClickHouseTLSVerified(t *testing.T) {
	srv := lockedClickHouse(t)
	conn := openAs(t, srv, "analyst")
	var n uint64
	if err := conn.QueryRow(t.Context(), "SELECT count() FROM "+lockedDatabase+".events").Scan(&n); err != nil {
		t.Fatalf("query over TLS: %v", err)
	}
	other := testenv.NewCerts(t)
	if c, err := dialAs(srv, "analyst", other.CA); err == nil {
		c.Close()
		t.Fatal("TLS connection verified with an unrelated CA succeeded")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("unrelated CA: %v, want a certificate error", err)
	}
}
