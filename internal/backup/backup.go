package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"

	"github.com/airtally/airtally/schema"
)

// ManifestFile is the name of the manifest in a backup folder.
const ManifestFile = "manifest.json"

// FormatVersion is the version of the backup layout this package writes.
const FormatVersion = 1

// Manifest describes a complete backup; it is written last.
type Manifest struct {
	Format    int       `json:"format"`
	CreatedAt time.Time `json:"created_at"`
	// Streams are the JetStream snapshots, the events stream first.
	Streams []StreamFile `json:"streams"`
	// Database is the database backed up; Migrations its applied
	// migration versions.
	Database   string      `json:"database"`
	Migrations []int       `json:"migrations"`
	Tables     []TableFile `json:"tables"`
}

// StreamFile is one stream's snapshot.
type StreamFile struct {
	Stream string `json:"stream"`
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	Bytes  int64  `json:"bytes"`
	// Messages, FirstSeq and LastSeq are the stream's state at the
	// snapshot.
	Messages uint64 `json:"messages"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	// Config and State are the server's, passed back on restore.
	Config json.RawMessage `json:"config"`
	State  json.RawMessage `json:"state"`
}

// TableFile is one table's rows.
type TableFile struct {
	Table   string   `json:"table"`
	File    string   `json:"file"`
	SHA256  string   `json:"sha256"`
	Bytes   int64    `json:"bytes"`
	Rows    int64    `json:"rows"`
	Columns []Column `json:"columns"`
}

// Backup snapshots the events and dead-letter streams, then dumps every
// table of cfg.Database, into the new folder cfg.Dir. The streams come
// first: whatever the loader had acknowledged by then is in the tables
// dumped after, so a restore with the consumers' positions loses nothing
// (the rest is delivered again and collapses).
func Backup(ctx context.Context, nc *nats.Conn, conn driver.Conn, cfg Config) (*Manifest, error) {
	if nc == nil || conn == nil {
		return nil, errors.New("backup: a NATS and a ClickHouse connection are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	log := cfg.Logger.With("component", "backup", "dir", cfg.Dir)
	if _, err := os.Stat(filepath.Join(cfg.Dir, ManifestFile)); err == nil {
		return nil, fmt.Errorf("backup: %s already holds a backup", cfg.Dir)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("backup: create %s: %w", cfg.Dir, err)
	}
	m := &Manifest{Format: FormatVersion, CreatedAt: time.Now().UTC(), Database: cfg.Database}

	for _, stream := range []string{cfg.Streams.EventsStream, cfg.Streams.DLQStream} {
		sf := StreamFile{Stream: stream, File: "stream-" + stream + ".snapshot"}
		var conf, state json.RawMessage
		sum, size, err := writeFile(filepath.Join(cfg.Dir, sf.File), func(w io.Writer) error {
			var err error
			conf, state, err = snapshotStream(ctx, nc, cfg, stream, w)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		var st streamState
		if err := json.Unmarshal(state, &st); err != nil {
			return nil, fmt.Errorf("backup: snapshot %s: decode state: %w", stream, err)
		}
		sf.SHA256, sf.Bytes, sf.Config, sf.State = sum, size, conf, state
		sf.Messages, sf.FirstSeq, sf.LastSeq = st.Msgs, st.FirstSeq, st.LastSeq
		m.Streams = append(m.Streams, sf)
		log.Info("stream snapshot written", "stream", stream, "messages", st.Msgs, "bytes", size)
	}

	applied, err := schema.Applied(ctx, conn, cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if len(applied) == 0 {
		return nil, fmt.Errorf("backup: database %s has no applied migrations", cfg.Database)
	}
	m.Migrations = applied
	tables, err := listTables(ctx, conn, cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	for _, table := range tables {
		if table == migrationsTable {
			continue
		}
		tf := TableFile{Table: table, File: "table-" + table + ".jsonl"}
		sum, size, err := writeFile(filepath.Join(cfg.Dir, tf.File), func(w io.Writer) error {
			var err error
			tf.Columns, tf.Rows, err = dumpTable(ctx, conn, cfg.Database, table, w)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		tf.SHA256, tf.Bytes = sum, size
		m.Tables = append(m.Tables, tf)
		log.Info("table written", "table", table, "rows", tf.Rows, "bytes", size)
	}

	if _, _, err := writeFile(filepath.Join(cfg.Dir, ManifestFile), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}); err != nil {
		return nil, fmt.Errorf("backup: write manifest: %w", err)
	}
	return m, nil
}

// Restore checks every file of the backup in cfg.Dir against its
// checksum, restores the streams into the NATS server of nc (they must not
// exist there), migrates cfg.Database (its tables must be empty) and loads
// the tables into it. cfg.SkipStreams or cfg.SkipTables leave out one
// half; nc is not used when the streams are skipped.
func Restore(ctx context.Context, nc *nats.Conn, conn driver.Conn, cfg Config) (*Manifest, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if conn == nil && !cfg.SkipTables || nc == nil && !cfg.SkipStreams {
		return nil, errors.New("restore: a ClickHouse connection (for the tables) and a NATS connection (for the streams) are required")
	}
	log := cfg.Logger.With("component", "restore", "dir", cfg.Dir, "database", cfg.Database)
	m, err := ReadManifest(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if err := Verify(cfg.Dir, m); err != nil {
		return nil, err
	}

	for _, sf := range m.Streams {
		if cfg.SkipStreams {
			break
		}
		err := readFile(filepath.Join(cfg.Dir, sf.File), func(r io.Reader) error {
			return restoreStream(ctx, nc, cfg, sf.Stream, sf.Config, sf.State, r)
		})
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		log.Info("stream restored", "stream", sf.Stream, "messages", sf.Messages)
	}
	if cfg.SkipTables {
		return m, nil
	}

	if _, err := schema.MigrateCluster(ctx, conn, cfg.Database, cfg.Cluster); err != nil {
		return nil, fmt.Errorf("restore: migrate %s: %w", cfg.Database, err)
	}
	applied, err := schema.Applied(ctx, conn, cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	for _, v := range m.Migrations {
		if !slices.Contains(applied, v) {
			return nil, fmt.Errorf("restore: the backup has migration %04d, which this airtally does not know: restore with the version that made it", v)
		}
	}
	for _, tf := range m.Tables {
		n, err := countRows(ctx, conn, cfg.Database, tf.Table)
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		if n > 0 {
			return nil, fmt.Errorf("restore: table %s.%s already holds %d rows: restore into a fresh database", cfg.Database, tf.Table, n)
		}
	}
	for _, tf := range m.Tables {
		var n int64
		err := readFile(filepath.Join(cfg.Dir, tf.File), func(r io.Reader) error {
			var err error
			n, err = loadTable(ctx, conn, cfg.Database, tf, cfg.BatchSize, r)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		if n != tf.Rows {
			return nil, fmt.Errorf("restore: table %s: loaded %d rows, the manifest says %d", tf.Table, n, tf.Rows)
		}
		log.Info("table restored", "table", tf.Table, "rows", n)
	}
	return m, nil
}

// ReadManifest reads the manifest of the backup in dir.
func ReadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("restore: read manifest (is %s a complete backup?): %w", dir, err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("restore: decode manifest: %w", err)
	}
	if m.Format != FormatVersion {
		return nil, fmt.Errorf("restore: manifest format %d, this airtally reads %d", m.Format, FormatVersion)
	}
	return &m, nil
}

// Verify checks the size and SHA-256 of every file m lists.
func Verify(dir string, m *Manifest) error {
	type entry struct {
		file, sum string
		size      int64
	}
	var files []entry
	for _, s := range m.Streams {
		files = append(files, entry{s.File, s.SHA256, s.Bytes})
	}
	for _, t := range m.Tables {
		files = append(files, entry{t.File, t.SHA256, t.Bytes})
	}
	for _, f := range files {
		if f.file != filepath.Base(f.file) {
			return fmt.Errorf("verify: manifest names file %q outside the backup folder", f.file)
		}
		h := sha256.New()
		var size int64
		err := readFile(filepath.Join(dir, f.file), func(r io.Reader) error {
			var err error
			size, err = io.Copy(h, r)
			return err
		})
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != f.sum || size != f.size {
			return fmt.Errorf("verify: %s is damaged: %d bytes with SHA-256 %s, the manifest says %d bytes with %s", f.file, size, got, f.size, f.sum)
		}
	}
	return nil
}

// writeFile creates path, lets fill write it, fsyncs it and returns its
// SHA-256 and size.
func writeFile(path string, fill func(io.Writer) error) (sum string, size int64, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return "", 0, fmt.Errorf("create %s: %w", path, err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close %s: %w", path, cerr)
		}
	}()
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(f, h)}
	if err := fill(cw); err != nil {
		return "", 0, err
	}
	if err := f.Sync(); err != nil {
		return "", 0, fmt.Errorf("sync %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), cw.n, nil
}

// readFile opens path for read.
func readFile(path string, use func(io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	return use(f)
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
