package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"

	"github.com/airtally/airtally/internal/backup"
	"github.com/airtally/airtally/internal/connect"
)

func init() {
	register(command{name: "backup", summary: "snapshot the JetStream streams and dump the ClickHouse tables into a folder", run: runBackup})
	register(command{name: "restore", summary: "restore a backup folder into NATS without the streams and a fresh database", run: runRestore})
}

// backupFlags are the flags backup and restore share.
type backupFlags struct {
	logs logFlags
	nf   natsFlags
	sf   streamFlags
	cf   chFlags
	dir  string
}

func (b *backupFlags) register(fs *flag.FlagSet, dirUsage string) {
	b.logs.register(fs, "-")
	b.nf.register(fs)
	b.sf.register(fs)
	b.cf.register(fs)
	fs.StringVar(&b.dir, "dir", "", dirUsage)
}

func (b *backupFlags) parse(env *Env, fs *flag.FlagSet, args []string) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := b.logs.setup(env); err != nil {
		return err
	}
	if b.dir == "" {
		return &flagError{msg: "--dir is required: name the backup folder"}
	}
	return nil
}

func runBackup(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "backup")
	var b backupFlags
	var skipConsumers bool
	b.register(fs, "new folder to write the backup in (required)")
	fs.BoolVar(&skipConsumers, "skip-consumers", false, "leave the durable consumers' positions out of the stream snapshots")
	if err := b.parse(env, fs, args); err != nil {
		return err
	}
	chCfg := b.cf.config().WithDefaults()
	conn, err := connect.OpenClickHouse(ctx, chCfg)
	if err != nil {
		return userErr(err, "could not reach ClickHouse at %v", chCfg.Addrs)
	}
	defer conn.Close()
	nc, _, err := jetStream(ctx, env, b.nf, b.sf, "airtally-backup", false)
	if err != nil {
		return err
	}
	defer nc.Close()
	m, err := backup.Backup(ctx, nc, conn, backup.Config{
		Dir: b.dir, Database: chCfg.Database, Streams: b.sf.cfg, SkipConsumers: skipConsumers, Logger: env.Log,
	})
	if err != nil {
		return userErr(err, "the backup into %s did not complete (a folder left without manifest.json is not a backup)", b.dir)
	}
	for _, s := range m.Streams {
		fmt.Fprintf(env.Stdout, "stream %s: %d messages (sequences %d to %d), %d bytes\n", s.Stream, s.Messages, s.FirstSeq, s.LastSeq, s.Bytes)
	}
	for _, t := range m.Tables {
		fmt.Fprintf(env.Stdout, "table %s.%s: %d rows, %d bytes\n", m.Database, t.Table, t.Rows, t.Bytes)
	}
	fmt.Fprintf(env.Stdout, "backup written to %s (migrations %v)\n", b.dir, m.Migrations)
	return nil
}

func runRestore(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "restore")
	var b backupFlags
	var skipStreams, skipTables bool
	b.register(fs, "backup folder to restore (required)")
	fs.BoolVar(&skipStreams, "skip-streams", false, "restore the tables only (e.g. next to an intact stream, then airtally replay)")
	fs.BoolVar(&skipTables, "skip-tables", false, "restore the streams only")
	if err := b.parse(env, fs, args); err != nil {
		return err
	}
	if skipStreams && skipTables {
		return &flagError{msg: "--skip-streams and --skip-tables together leave nothing to restore"}
	}
	chCfg := b.cf.config().WithDefaults()
	// Only what is restored is connected to.
	var conn driver.Conn
	if !skipTables {
		c, err := connect.OpenClickHouse(ctx, chCfg)
		if err != nil {
			return userErr(err, "could not reach ClickHouse at %v", chCfg.Addrs)
		}
		defer c.Close()
		conn = c
	}
	var nc *nats.Conn
	if !skipStreams {
		c, _, err := jetStream(ctx, env, b.nf, b.sf, "airtally-restore", false)
		if err != nil {
			return err
		}
		defer c.Close()
		nc = c
	}
	m, err := backup.Restore(ctx, nc, conn, backup.Config{
		Dir: b.dir, Database: chCfg.Database, Cluster: b.cf.cluster, Streams: b.sf.cfg, SkipStreams: skipStreams, SkipTables: skipTables, Logger: env.Log,
	})
	if err != nil {
		return userErr(err, "the restore from %s did not complete (the streams must not exist yet and the database must be fresh)", b.dir)
	}
	for _, s := range m.Streams {
		if !skipStreams {
			fmt.Fprintf(env.Stdout, "stream %s restored: %d messages\n", s.Stream, s.Messages)
		}
	}
	for _, t := range m.Tables {
		if skipTables {
			break
		}
		fmt.Fprintf(env.Stdout, "table %s.%s restored: %d rows\n", chCfg.Database, t.Table, t.Rows)
	}
	return nil
}
