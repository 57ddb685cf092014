package schema

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/internal/chsql"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// ErrChecksum is returned by Migrate when a migration recorded as applied
// no longer matches the embedded file: someone edited an applied migration.
var ErrChecksum = errors.New("schema: applied migration was changed")

// Placeholder is how migration files write the database name.
const Placeholder = "{{db}}"

// Migration is one migration file, rendered for a database.
type Migration struct {
	// Version is the file's number (0001_events.sql → 1).
	Version int
	// Name is the file's name without version and extension ("events").
	Name string
	// Statements are the file's statements with {{db}} replaced by the
	// back-quoted database name, without the trailing ";".
	Statements []string
	// Checksum is the hex SHA-256 of the file as embedded.
	Checksum string
}

var fileRE = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Migrations returns every embedded migration, in version order, rendered
// for database db.
func Migrations(db string) ([]Migration, error) {
	return load(migrationFS, "migrations", db)
}

// load reads the migrations in dir of fsys and renders them for db.
func load(fsys fs.FS, dir, db string) ([]Migration, error) {
	ident, err := chsql.Ident(db)
	if err != nil {
		return nil, fmt.Errorf("schema: database: %w", err)
	}
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("schema: read migrations: %w", err)
	}
	var migs []Migration
	for _, e := range entries {
		m := fileRE.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			return nil, fmt.Errorf("schema: migration file %q: want NNNN_name.sql", e.Name())
		}
		version, _ := strconv.Atoi(m[1]) // four digits always parse
		if version == 0 {
			return nil, fmt.Errorf("schema: migration file %q: versions start at 0001", e.Name())
		}
		body, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("schema: read %s: %w", e.Name(), err)
		}
		stmts, err := split(string(body))
		if err != nil {
			return nil, fmt.Errorf("schema: %s: %w", e.Name(), err)
		}
		for i, s := range stmts {
			s = strings.ReplaceAll(s, Placeholder, ident)
			if strings.Contains(s, "{{") {
				return nil, fmt.Errorf("schema: %s: statement %d: unknown placeholder (only %s is allowed)", e.Name(), i+1, Placeholder)
			}
			stmts[i] = s
		}
		sum := sha256.Sum256(body)
		migs = append(migs, Migration{Version: version, Name: m[2], Statements: stmts, Checksum: hex.EncodeToString(sum[:])})
	}
	slices.SortFunc(migs, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(migs); i++ {
		if migs[i].Version == migs[i-1].Version {
			return nil, fmt.Errorf("schema: two migrations with version %04d (%s, %s)", migs[i].Version, migs[i-1].Name, migs[i].Name)
		}
	}
	return migs, nil
}

// split cuts a migration file into statements: a statement ends with a
// line whose last non-blank character is ";". Blank lines and "--" comment
// lines between statements are dropped.
func split(body string) ([]string, error) {
	var stmts, cur []string
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimRight(line, " \t\r")
		trimmed := strings.TrimSpace(line)
		if len(cur) == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "--")) {
			continue
		}
		cur = append(cur, line)
		if strings.HasSuffix(trimmed, ";") {
			stmt := strings.TrimSpace(strings.TrimSuffix(strings.Join(cur, "\n"), ";"))
			if stmt == "" {
				return nil, errors.New("empty statement")
			}
			stmts = append(stmts, stmt)
			cur = nil
		}
	}
	if len(cur) > 0 {
		return nil, errors.New("last statement does not end with ';' at the end of a line")
	}
	if len(stmts) == 0 {
		return nil, errors.New("no statements")
	}
	return stmts, nil
}

// Migrate creates database db if needed and applies every pending embedded
// migration in version order, recording each in db.schema_migrations. It
// returns the versions it applied (none when the database is up to date).
// It fails with ErrChecksum, before applying anything, when an applied
// migration's recorded checksum differs from the embedded file. Versions
// recorded in the database but unknown to this binary (a newer schema) are
// tolerated.
func Migrate(ctx context.Context, conn driver.Conn, db string) (applied []int, err error) {
	migs, err := Migrations(db)
	if err != nil {
		return nil, err
	}
	return apply(ctx, conn, db, "", migs)
}

// viewRaceWait bounds how long a statement is retried while another
// migrator replaces the views it reads.
const viewRaceWait = 30 * time.Second

// execRetrying runs one migration statement. A migration that replaces a
// view drops it and creates it again; a migrator running at the same time
// may meanwhile create a view that reads it, and find it missing (60
// UNKNOWN_TABLE) or being dropped (218 TABLE_IS_DROPPED). Those errors
// are retried for a while: every statement is idempotent, and the other
// migrator creates the view again within moments.
func execRetrying(ctx context.Context, conn driver.Conn, stmt string) error {
	deadline := time.Now().Add(viewRaceWait)
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err := conn.Exec(ctx, stmt)
		var exc *clickhouse.Exception
		if err == nil || !errors.As(err, &exc) || (exc.Code != 60 && exc.Code != 218) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// columnsAlreadyAdded reports whether err says that an ALTER TABLE … ADD
// COLUMN found its columns there already: another migrator, running at the
// same time, applied the statement first. ClickHouse 18.16 has no ADD
// COLUMN IF NOT EXISTS, and one ALTER adds all its columns or none.
func columnsAlreadyAdded(stmt string, err error) bool {
	upper := strings.ToUpper(stmt)
	if !strings.Contains(upper, "ALTER TABLE") || !strings.Contains(upper, "ADD COLUMN") {
		return false
	}
	var exc *clickhouse.Exception
	if !errors.As(err, &exc) {
		return false
	}
	// 44 ILLEGAL_COLUMN on 18.16, 15 DUPLICATE_COLUMN on current versions.
	return (exc.Code == 44 || exc.Code == 15) && strings.Contains(exc.Message, "already exists")
}

func apply(ctx context.Context, conn driver.Conn, db, cluster string, migs []Migration) ([]int, error) {
	ident, err := chsql.Ident(db)
	if err != nil {
		return nil, fmt.Errorf("schema: database: %w", err)
	}
	if err := checkMode(ctx, conn, db, cluster); err != nil {
		return nil, err
	}
	boot := bootstrap(ident)
	if cluster != "" {
		clusterIdent, err := chsql.Ident(cluster)
		if err != nil {
			return nil, fmt.Errorf("schema: cluster: %w", err)
		}
		for i, stmt := range boot {
			if boot[i], err = clusterize(stmt, db, clusterIdent); err != nil {
				return nil, fmt.Errorf("schema: bootstrap: %w", err)
			}
		}
	}
	for _, stmt := range boot {
		if err := conn.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("schema: bootstrap %s: %w", db, err)
		}
	}
	recorded, err := records(ctx, conn, ident)
	if err != nil {
		return nil, err
	}
	for _, m := range migs {
		for _, sum := range recorded[m.Version] {
			if sum != m.Checksum {
				return nil, fmt.Errorf("%w: %s migration %04d_%s was applied with checksum %s, the embedded file has %s; add a new migration instead of editing an applied one",
					ErrChecksum, db, m.Version, m.Name, sum, m.Checksum)
			}
		}
	}
	var applied []int
	for _, m := range migs {
		if _, ok := recorded[m.Version]; ok {
			continue
		}
		for i, stmt := range m.Statements {
			if err := execRetrying(ctx, conn, stmt); err != nil && !columnsAlreadyAdded(stmt, err) {
				return applied, fmt.Errorf("schema: %s migration %04d_%s statement %d: %w", db, m.Version, m.Name, i+1, err)
			}
		}
		if err := record(ctx, conn, ident, m); err != nil {
			return applied, err
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

// bootstrap returns the statements that create the database and its
// migration records.
func bootstrap(ident string) []string {
	return []string{
		"CREATE DATABASE IF NOT EXISTS " + ident,
		"CREATE TABLE IF NOT EXISTS " + ident + ".schema_migrations (version UInt32, name String, checksum String, applied_at DateTime('UTC')) ENGINE = MergeTree() ORDER BY version",
	}
}

// records returns the recorded checksums by version (a version may be
// recorded more than once when two processes migrated at once).
func records(ctx context.Context, conn driver.Conn, ident string) (map[int][]string, error) {
	rows, err := conn.Query(ctx, "SELECT version, checksum FROM "+ident+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("schema: read %s.schema_migrations: %w", ident, err)
	}
	defer rows.Close()
	out := map[int][]string{}
	for rows.Next() {
		var (
			version uint32
			sum     string
		)
		if err := rows.Scan(&version, &sum); err != nil {
			return nil, fmt.Errorf("schema: scan %s.schema_migrations: %w", ident, err)
		}
		out[int(version)] = append(out[int(version)], sum)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("schema: read %s.schema_migrations: %w", ident, err)
	}
	return out, nil
}

// record inserts m's record. It uses PrepareBatch naming the columns: a
// plain INSERT through Exec hangs on ClickHouse 18.16.
func record(ctx context.Context, conn driver.Conn, ident string, m Migration) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+ident+".schema_migrations (version, name, checksum, applied_at)")
	if err != nil {
		return fmt.Errorf("schema: record migration %04d: prepare: %w", m.Version, err)
	}
	defer batch.Close()
	if err := batch.Append(uint32(m.Version), m.Name, m.Checksum, time.Now().UTC().Truncate(time.Second)); err != nil {
		return fmt.Errorf("schema: record migration %04d: append: %w", m.Version, err)
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("schema: record migration %04d: send: %w", m.Version, err)
	}
	return nil
}

// Applied returns the versions recorded in db.schema_migrations, in
// increasing order, each once. A database or table that does not exist
// yet has none.
func Applied(ctx context.Context, conn driver.Conn, db string) ([]int, error) {
	ident, err := chsql.Ident(db)
	if err != nil {
		return nil, fmt.Errorf("schema: database: %w", err)
	}
	var n uint64
	q := "SELECT count() FROM system.tables WHERE database = " + chsql.String(db) + " AND name = 'schema_migrations'"
	if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return nil, fmt.Errorf("schema: look for %s.schema_migrations: %w", db, err)
	}
	if n == 0 {
		return nil, nil
	}
	recorded, err := records(ctx, conn, ident)
	if err != nil {
		return nil, err
	}
	versions := make([]int, 0, len(recorded))
	for v := range recorded {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	return versions, nil
}
