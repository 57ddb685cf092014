package schedule

import (
	"strings"
	"time"

	"github.com/airtally/airtally/internal/airings"
)

// scheduleRow is what one row of a schedule or post-log gives.
type scheduleRow struct {
	line int
	id   string
	// a holds the values of the fields the row gives (see given).
	a     airings.Airing
	given map[string]bool
	// scheduled is the scheduled start (for the natural key); zero when
	// the row gives no time.
	scheduled time.Time
	// moneyCurrency is a currency code written beside the spend.
	moneyCurrency string
	// actualOnly holds an actual air time given without a scheduled start
	// (a post-log that names its airing by id): it is resolved against the
	// airing's current air time.
	actualOnly *stamp
	actualDay  time.Time
	actualCol  string
	loc        *time.Location
	problems   []RowError
}

// Fields a row may give (keys of scheduleRow.given).
const (
	giveTimes = "times"
)

func (r *scheduleRow) fail(t *table, col, reason string) {
	r.problems = append(r.problems, RowError{Line: r.line, Column: t.name(col), Reason: reason})
}

// parseScheduleRow reads one row; problems are collected in the row.
func parseScheduleRow(t *table, rec record, loc *time.Location) *scheduleRow {
	r := &scheduleRow{line: rec.line, given: map[string]bool{}}
	text := func(col string, set *string) {
		if v, ok := t.cell(rec, col); ok {
			*set = v
			r.given[col] = true
		}
	}
	text(colID, &r.id)
	text(colOffer, &r.a.Offer)
	text(colStation, &r.a.Station)
	text(colMarket, &r.a.Market)
	text(colISCI, &r.a.ISCI)
	text(colPromo, &r.a.PromoCode)
	text(colVanity, &r.a.VanityURL)
	r.a.ISCI = strings.ToUpper(r.a.ISCI)
	if v, ok := t.cell(rec, colMedia); ok {
		m, err := parseMediaType(v)
		if err != nil {
			r.fail(t, colMedia, err.Error())
		}
		r.a.MediaType, r.given[colMedia] = m, true
	}
	if v, ok := t.cell(rec, colDNIS); ok {
		d, err := parseDNIS(v)
		if err != nil {
			r.fail(t, colDNIS, err.Error())
		}
		r.a.DNIS, r.given[colDNIS] = d, true
	}
	if v, ok := t.cell(rec, colLength); ok {
		n, err := parseLength(v)
		if err != nil {
			r.fail(t, colLength, err.Error())
		}
		r.a.LengthSeconds, r.given[colLength] = n, true
	}
	if v, ok := t.cell(rec, colSpend); ok {
		cents, cur, err := parseMoney(v)
		if err != nil {
			r.fail(t, colSpend, err.Error())
		}
		r.a.SpendCents, r.moneyCurrency, r.given[colSpend] = cents, cur, true
	}
	if v, ok := t.cell(rec, colCurrency); ok {
		if !currencyRE.MatchString(v) {
			r.fail(t, colCurrency, "must be a three-letter ISO 4217 code, e.g. USD")
		}
		r.a.Currency, r.given[colCurrency] = strings.ToUpper(v), true
	}
	if t.has(colDNR) {
		v, _ := t.cell(rec, colDNR)
		dnr, err := parseFlag(v)
		if err != nil {
			r.fail(t, colDNR, err.Error())
		}
		r.a.DidNotRun, r.given[colDNR] = dnr, true
	}
	if v, ok := t.cell(rec, colStatus); ok {
		dnr, err := parseStatus(v)
		if err != nil {
			r.fail(t, colStatus, err.Error())
		}
		if !r.given[colDNR] || dnr {
			r.a.DidNotRun = dnr
		}
		r.given[colDNR] = true
	}
	r.times(t, rec, loc)
	return r
}

// times resolves the row's scheduled start, air time and window end.
func (r *scheduleRow) times(t *table, rec record, loc *time.Location) {
	if v, ok := t.cell(rec, colZone); ok {
		z, err := parseZone(v)
		if err != nil {
			r.fail(t, colZone, err.Error())
			return
		}
		loc = z
	}
	var date time.Time
	if v, ok := t.cell(rec, colDate); ok {
		d, err := parseDate(v)
		if err != nil {
			r.fail(t, colDate, err.Error())
			return
		}
		date = d
	}
	// The scheduled start, and a window's end, from the first time column
	// the row fills.
	var (
		startCol      string
		start, winEnd stamp
		hasEnd        bool
	)
	for _, c := range []string{colStart, colTime, colWindow} {
		v, ok := t.cell(rec, c)
		if !ok {
			continue
		}
		a, b, isRange := splitRange(v)
		if c == colWindow && !isRange {
			r.fail(t, c, "is not a window of two times (e.g. 20:00-21:00)")
			return
		}
		s, err := parseStamp(a)
		if err != nil {
			r.fail(t, c, err.Error())
			return
		}
		startCol, start = c, s
		if isRange {
			e, err := parseStamp(b)
			if err != nil {
				r.fail(t, c, "window end "+err.Error())
				return
			}
			winEnd, hasEnd = e, true
		}
		break
	}
	if startCol == "" {
		if v, ok := t.cell(rec, colActual); ok {
			s, err := parseStamp(v)
			if err != nil {
				r.fail(t, colActual, err.Error())
				return
			}
			if d, ok := t.cell(rec, colActualDay); ok {
				if r.actualDay, err = parseDate(d); err != nil {
					r.fail(t, colActualDay, err.Error())
					return
				}
			} else if d, ok := t.cell(rec, colDate); ok {
				r.actualDay, _ = parseDate(d) // checked above
			}
			r.actualOnly, r.actualCol, r.loc = &s, t.name(colActual), loc
		} else if _, ok := t.cell(rec, colEnd); ok {
			r.fail(t, colTime, "a window end needs its start")
		}
		return
	}
	if !start.hasDate() && date.IsZero() {
		r.fail(t, colDate, "a time of day needs a date (a date column, or a date in the time)")
		return
	}
	r.scheduled = start.at(date, loc).UTC()
	// A window's end or an actual time given as a clock time is in the
	// start's zone.
	loc = start.zoneOr(loc)
	localDate := r.scheduled.In(loc)
	day := time.Date(localDate.Year(), localDate.Month(), localDate.Day(), 0, 0, 0, 0, time.UTC)
	var until time.Time
	if v, ok := t.cell(rec, colEnd); ok && !hasEnd {
		e, err := parseStamp(v)
		if err != nil {
			r.fail(t, colEnd, err.Error())
			return
		}
		winEnd, hasEnd = e, true
		startCol = colEnd
	}
	if hasEnd {
		until = winEnd.at(day, loc).UTC()
		if !winEnd.hasDate() && !until.After(r.scheduled) {
			until = winEnd.at(day.AddDate(0, 0, 1), loc).UTC() // past midnight
		}
		if !until.After(r.scheduled) {
			r.fail(t, startCol, "the window ends before it starts")
			return
		}
	}
	aired := r.scheduled
	if v, ok := t.cell(rec, colActual); ok {
		s, err := parseStamp(v)
		if err != nil {
			r.fail(t, colActual, err.Error())
			return
		}
		actualDay := day
		if d, ok := t.cell(rec, colActualDay); ok {
			if actualDay, err = parseDate(d); err != nil {
				r.fail(t, colActualDay, err.Error())
				return
			}
		}
		_, dated := t.cell(rec, colActualDay)
		aired = nearest(s, actualDay, dated, r.scheduled, loc)
		until = time.Time{} // the exact time is known now
	}
	r.a.AiredAt, r.a.AiredUntil = aired, until
	r.given[giveTimes] = true
}

// nearest resolves an actual air time: on day, or, for a clock time
// alone (dated false and no date in s), on the day that puts it nearest
// the reference time (the scheduled start).
func nearest(s stamp, day time.Time, dated bool, ref time.Time, loc *time.Location) time.Time {
	t := s.at(day, loc).UTC()
	if dated || s.hasDate() {
		return t
	}
	switch {
	case ref.Sub(t) > 12*time.Hour:
		return s.at(day.AddDate(0, 0, 1), loc).UTC()
	case t.Sub(ref) > 12*time.Hour:
		return s.at(day.AddDate(0, 0, -1), loc).UTC()
	}
	return t
}

func (s stamp) zoneOr(loc *time.Location) *time.Location {
	if s.zone != nil {
		return s.zone
	}
	if !s.abs.IsZero() {
		return s.abs.Location()
	}
	return loc
}

// splitRange splits "20:00-21:00", "8 PM to 9 PM" or "2026-11-24 20:00 –
// 2026-11-24 21:00" into its two times. A lone time (dates have dashes
// too) is not a range.
func splitRange(v string) (a, b string, ok bool) {
	for _, sep := range []string{" - ", "–", "—", " to ", "-"} {
		i := strings.Index(v, sep)
		if i <= 0 {
			continue
		}
		a, b = strings.TrimSpace(v[:i]), strings.TrimSpace(v[i+len(sep):])
		if sep == "-" {
			// Only between two clock times: "20:00-21:00".
			if _, err := parseClock(a); err != nil {
				continue
			}
			if _, err := parseClock(b); err != nil {
				continue
			}
		}
		return a, b, true
	}
	return v, "", false
}

// naturalID derives the row's id from its natural key.
func (r *scheduleRow) naturalID() string {
	return airings.NaturalID(r.a.Station, r.scheduled, r.a.ISCI, r.a.DNIS)
}

// merge applies the fields the row gives over cur (the airing's current
// state; known false for a new airing).
func (r *scheduleRow) merge(cur airings.Airing, known bool, defaultCurrency string) (airings.Airing, *RowError) {
	a := cur
	a.ID = r.id
	set := func(f string, dst *string, v string) {
		if r.given[f] {
			*dst = v
		}
	}
	set(colOffer, &a.Offer, r.a.Offer)
	set(colStation, &a.Station, r.a.Station)
	set(colMarket, &a.Market, r.a.Market)
	set(colISCI, &a.ISCI, r.a.ISCI)
	set(colMedia, &a.MediaType, r.a.MediaType)
	set(colDNIS, &a.DNIS, r.a.DNIS)
	set(colPromo, &a.PromoCode, r.a.PromoCode)
	set(colVanity, &a.VanityURL, r.a.VanityURL)
	if r.given[colLength] {
		a.LengthSeconds = r.a.LengthSeconds
	}
	if r.given[giveTimes] {
		a.AiredAt, a.AiredUntil = r.a.AiredAt, r.a.AiredUntil
	}
	if r.actualOnly != nil {
		if !known {
			return a, &RowError{Line: r.line, Column: r.actualCol, Reason: "an actual air time of an airing not imported yet needs its scheduled start too (start, or date and time)"}
		}
		ref := cur.AiredAt.In(r.actualOnly.zoneOr(r.loc))
		day := r.actualDay
		if day.IsZero() {
			day = time.Date(ref.Year(), ref.Month(), ref.Day(), 0, 0, 0, 0, time.UTC)
		}
		a.AiredAt, a.AiredUntil = nearest(*r.actualOnly, day, !r.actualDay.IsZero(), cur.AiredAt, r.loc), time.Time{}
	}
	if r.given[colDNR] {
		a.DidNotRun = r.a.DidNotRun
	}
	if r.given[colSpend] {
		a.SpendCents = r.a.SpendCents
		if r.moneyCurrency != "" {
			a.Currency = r.moneyCurrency
		}
	}
	set(colCurrency, &a.Currency, r.a.Currency)
	if a.Currency == "" && a.SpendCents != 0 {
		a.Currency = defaultCurrency
	}
	return a, nil
}
