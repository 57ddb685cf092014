package report

import (
	"context"
	"fmt"

	"github.com/airtally/airtally/internal/chsql"
)

// Reach reads how long, at most, an airing's response lasts after its
// air time (reach: the longest air window not yet post-logged plus the
// longest response window) and the longest response window (window), in
// ms: how far around an event the figures it can change lie.
func Reach(ctx context.Context, q Querier, database string) (reach, window int64, err error) {
	ident, err := chsql.Ident(database)
	if err != nil {
		return 0, 0, fmt.Errorf("report: reach: database: %w", err)
	}
	rows, err := q.Query(ctx, "SELECT toInt64((SELECT max(greatest(aired_until_ms - aired_at_ms, 0)) FROM "+ident+".airings)) AS spread,"+
		" toInt64(greatest((SELECT max(window_minutes) FROM "+ident+".offers), "+chsql.Int(DefaultWindowMinutes)+")) AS window_minutes")
	if err != nil {
		return 0, 0, fmt.Errorf("report: read the longest response: %w", err)
	}
	if len(rows) != 1 {
		return 0, 0, fmt.Errorf("report: read the longest response: %d rows", len(rows))
	}
	spread, err1 := asInt(rows[0]["spread"])
	minutes, err2 := asInt(rows[0]["window_minutes"])
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("report: read the longest response: %v %v", err1, err2)
	}
	window = minutes * 60_000
	return spread + window, window, nil
}

// ServerNow reads the server's time, Unix seconds: the clock the
// projections' marks and computations are stamped with.
func ServerNow(ctx context.Context, q Querier) (int64, error) {
	rows, err := q.Query(ctx, "SELECT toInt64(toUInt32(now())) AS t")
	if err != nil {
		return 0, fmt.Errorf("report: server time: %w", err)
	}
	if len(rows) != 1 {
		return 0, fmt.Errorf("report: server time: %d rows", len(rows))
	}
	return asInt(rows[0]["t"])
}
