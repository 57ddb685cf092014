package airings

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/internal/chsql"
)

// latestBy orders the rows of one airing (or offer): the latest event wins,
// ties to the larger event id, so that the choice does not depend on the
// order in which rows were inserted or merged.
const latestBy = "(version, event_id)"

// LatestAiringsSQL selects the latest state of every airing from the
// airings table of database ident (quoted), one row per airing, with the
// columns a_id, a_kind, a_offer, a_station, a_market, a_media_type, a_isci,
// a_aired_at_ms, a_aired_until_ms, a_length_seconds, a_spend_cents,
// a_currency, a_dnis, a_promo_code, a_vanity_url, a_did_not_run and
// a_version. where, if not empty, is a condition on the table's rows (e.g.
// on airing_id). It reads every copy of a row and takes the latest by
// argMax, so copies not merged yet never count twice.
func LatestAiringsSQL(ident, where string) string {
	cols := []struct{ col, alias string }{
		{"kind", "a_kind"}, {"offer", "a_offer"}, {"station", "a_station"}, {"market", "a_market"},
		{"media_type", "a_media_type"}, {"isci", "a_isci"}, {"aired_at_ms", "a_aired_at_ms"},
		{"aired_until_ms", "a_aired_until_ms"}, {"length_seconds", "a_length_seconds"},
		{"spend_cents", "a_spend_cents"}, {"currency", "a_currency"}, {"dnis", "a_dnis"},
		{"promo_code", "a_promo_code"}, {"vanity_url", "a_vanity_url"}, {"did_not_run", "a_did_not_run"},
	}
	// One argMax of the whole row, not one per column: its ordering key is
	// a tuple, which ClickHouse compares generically, so every aggregate
	// of it costs alike.
	var b, row strings.Builder
	b.WriteString("SELECT\n    a_id")
	for i, c := range cols {
		fmt.Fprintf(&b, ",\n    tupleElement(a_row, %d) AS %s", i+1, c.alias)
		if i > 0 {
			row.WriteString(", ")
		}
		row.WriteString(c.col)
	}
	b.WriteString(",\n    a_version\nFROM\n(\n    SELECT\n        airing_id AS a_id,\n")
	fmt.Fprintf(&b, "        argMax((%s), %s) AS a_row,\n", row.String(), latestBy)
	b.WriteString("        max(version) AS a_version\n    FROM " + ident + "." + AiringsTable)
	if where != "" {
		b.WriteString("\n    WHERE " + where)
	}
	b.WriteString("\n    GROUP BY airing_id\n)")
	return b.String()
}

// LatestOffersSQL selects the latest settings of every (offer, media_type)
// from the offers table of database ident (quoted), with the columns
// o_offer, o_media_type, o_currency, o_target_ratio_pct, o_window_minutes
// and o_version.
func LatestOffersSQL(ident string) string {
	return "SELECT\n    offer AS o_offer,\n    media_type AS o_media_type,\n" +
		"    argMax(currency, " + latestBy + ") AS o_currency,\n" +
		"    argMax(target_ratio_pct, " + latestBy + ") AS o_target_ratio_pct,\n" +
		"    argMax(window_minutes, " + latestBy + ") AS o_window_minutes,\n" +
		"    max(version) AS o_version\n" +
		"FROM " + ident + "." + OffersTable + "\nGROUP BY offer, media_type"
}

// idsPerQuery bounds the literal id list of one Current query.
const idsPerQuery = 1000

// Current returns the current state of the airings of database db whose
// ids are in ids (all airings when ids is nil), by id.
func Current(ctx context.Context, conn driver.Conn, db string, ids []string) (map[string]Airing, error) {
	ident, err := chsql.Ident(db)
	if err != nil {
		return nil, fmt.Errorf("airings: current: %w", err)
	}
	out := map[string]Airing{}
	if ids == nil {
		return out, currentInto(ctx, conn, LatestAiringsSQL(ident, ""), out)
	}
	for start := 0; start < len(ids); start += idsPerQuery {
		chunk := ids[start:min(start+idsPerQuery, len(ids))]
		q := LatestAiringsSQL(ident, "airing_id IN ("+strings.Trim(chsql.Strings(chunk), "[]")+")")
		if err := currentInto(ctx, conn, q, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func currentInto(ctx context.Context, conn driver.Conn, q string, out map[string]Airing) error {
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("airings: read current airings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			a                      Airing
			kind                   string
			atMS, untilMS, version int64
			didNotRun              uint8
		)
		if err := rows.Scan(&a.ID, &kind, &a.Offer, &a.Station, &a.Market, &a.MediaType, &a.ISCI, &atMS, &untilMS,
			&a.LengthSeconds, &a.SpendCents, &a.Currency, &a.DNIS, &a.PromoCode, &a.VanityURL, &didNotRun, &version); err != nil {
			return fmt.Errorf("airings: scan current airing: %w", err)
		}
		a.AiredAt, a.AiredUntil, a.DidNotRun = fromMilli(atMS), fromMilli(untilMS), didNotRun == 1
		out[a.ID] = a
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("airings: read current airings: %w", err)
	}
	return nil
}

// CurrentOffers returns the current settings of every offer of database
// db, by offer and media type.
func CurrentOffers(ctx context.Context, conn driver.Conn, db string) (map[OfferKey]Offer, error) {
	ident, err := chsql.Ident(db)
	if err != nil {
		return nil, fmt.Errorf("airings: current offers: %w", err)
	}
	rows, err := conn.Query(ctx, LatestOffersSQL(ident))
	if err != nil {
		return nil, fmt.Errorf("airings: read current offers: %w", err)
	}
	defer rows.Close()
	out := map[OfferKey]Offer{}
	for rows.Next() {
		var (
			o       Offer
			version int64
		)
		if err := rows.Scan(&o.Offer, &o.MediaType, &o.Currency, &o.TargetRatioPct, &o.WindowMinutes, &version); err != nil {
			return nil, fmt.Errorf("airings: scan current offer: %w", err)
		}
		out[o.Key()] = o
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("airings: read current offers: %w", err)
	}
	return out, nil
}

func fromMilli(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}
