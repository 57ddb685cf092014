package loader

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/consumers/projector"
	"github.com/airtally/airtally/internal/airings"
	"github.com/airtally/airtally/producers/event"
)

// markProjection marks the days of the airing projection and the weeks of
// the accountability projection that rows (events rows of t) and projs
// (their airing and offer rows) may change. It runs
// after both are stored and before they are acknowledged
// (consumers/projector).
func markProjection(ctx context.Context, conn driver.Conn, db string, t *eventsTable, rows [][]any, projs []*projRow) error {
	touches := make([]projector.Touch, 0, len(rows))
	for _, row := range rows {
		kind, _ := row[t.kind].(string)
		at, _ := row[t.occurredMS].(int64)
		switch event.Kind(kind) {
		case event.CallReceived, event.CallAnswered, event.CallAbandoned, event.OrderPlaced, event.OrderCancelled, event.Heartbeat:
			order, _ := row[t.orderID].(string)
			touches = append(touches, projector.Touch{Kind: event.Kind(kind), At: at, OrderID: order})
		case event.SourceDown, event.SourceUp, event.GapOpened, event.GapClosed, event.LineSilent, event.LineRestored, event.DataDelayed:
			tc := projector.Touch{Kind: event.Kind(kind), At: at, Until: at}
			if t.windowStartMS >= 0 && t.windowEndMS >= 0 {
				tc.At, _ = row[t.windowStartMS].(int64)
				tc.Until, _ = row[t.windowEndMS].(int64)
			}
			touches = append(touches, tc)
		default:
			// airings and offers are marked from their rows
		}
	}
	for _, p := range projs {
		switch p.table {
		case airings.AiringsTable:
			id, _ := p.row[0].(string)
			touches = append(touches, projector.Touch{Kind: event.AiringRevised, AiringID: id})
		case airings.OffersTable:
			offer, _ := p.row[0].(string)
			touches = append(touches, projector.Touch{Kind: event.OfferConfigured, Offer: offer})
		}
	}
	if len(touches) == 0 {
		return nil
	}
	if err := projector.Mark(ctx, projector.Native(conn), db, touches); err != nil {
		return fmt.Errorf("loader: %w", err)
	}
	return nil
}
