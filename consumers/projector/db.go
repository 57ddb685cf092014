package projector

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/internal/report"
)

// DB runs the projector's queries and statements: a native connection
// (Native), or chDB in tests.
type DB interface {
	report.Querier
	report.Execer
}

// Native is a DB over a clickhouse-go native connection.
func Native(conn driver.Conn) DB { return nativeDB{report.Native(conn), conn} }

type nativeDB struct {
	report.Querier
	conn driver.Conn
}

func (n nativeDB) Exec(ctx context.Context, sql string) error { return n.conn.Exec(ctx, sql) }
