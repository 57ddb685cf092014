package loader

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/consumers/projector"
)

// markProjection marks the days of the airing projection and the weeks of
// the accountability projection that rows (with their airing and offer
// projection rows) may change. It runs after both are stored and before
// they are acknowledged (consumers/projector).
func markProjection(ctx context.Context, conn driver.Conn, db string, rows []*Row) error {
	if len(rows) == 0 {
		return nil
	}
	touches := make([]projector.Touch, len(rows))
	for i, r := range rows {
		touches[i] = projector.TouchOf(r.ev)
	}
	if err := projector.Mark(ctx, projector.Native(conn), db, touches); err != nil {
		return fmt.Errorf("loader: %w", err)
	}
	return nil
}
