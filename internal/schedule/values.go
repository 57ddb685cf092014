package schedule

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/airtally/airtally/internal/airings"
)

// zoneNames maps the time-zone abbreviations schedules use to locations.
// "ET", "CT", "MT", "PT" are wall-clock time in that zone (daylight saving
// time included); "EST", "EDT" and the like are fixed offsets, as written.
var zoneNames = map[string]string{
	"ET": "America/New_York", "EASTERN": "America/New_York",
	"CT": "America/Chicago", "CENTRAL": "America/Chicago",
	"MT": "America/Denver", "MOUNTAIN": "America/Denver",
	"PT": "America/Los_Angeles", "PACIFIC": "America/Los_Angeles",
	"AKT": "America/Anchorage", "HT": "Pacific/Honolulu",
}

var fixedZones = map[string]int{
	"UTC": 0, "GMT": 0, "Z": 0,
	"EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6,
	"PST": -8, "PDT": -7, "AKST": -9, "AKDT": -8, "HST": -10,
}

var offsetRE = regexp.MustCompile(`^(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?$`)

// parseZone reads a time zone: an IANA name, an abbreviation or an offset
// (+05:30, -0500, UTC-5).
func parseZone(s string) (*time.Location, error) {
	s = strings.TrimSpace(s)
	up := strings.ToUpper(s)
	if name, ok := zoneNames[up]; ok {
		return time.LoadLocation(name)
	}
	if h, ok := fixedZones[up]; ok {
		return time.FixedZone(up, h*3600), nil
	}
	if m := offsetRE.FindStringSubmatch(up); m != nil {
		h, _ := strconv.Atoi(m[2])
		mins := 0
		if m[3] != "" {
			mins, _ = strconv.Atoi(m[3])
		}
		if h > 14 || mins > 59 {
			return nil, errors.New("is not a valid UTC offset")
		}
		off := h*3600 + mins*60
		if m[1] == "-" {
			off = -off
		}
		return time.FixedZone(up, off), nil
	}
	if strings.Contains(s, "/") || s == "UTC" {
		if loc, err := time.LoadLocation(s); err == nil {
			return loc, nil
		}
	}
	return nil, errors.New("is not a time zone (use a name such as America/New_York, ET, EST or an offset such as -05:00)")
}

var dateLayouts = []string{"2006-01-02", "01/02/2006", "1/2/2006", "01/02/06", "1/2/06", "20060102", "2006/01/02", "Jan 2 2006", "Jan 2, 2006", "2-Jan-2006", "02-Jan-06", "2 Jan 2006"}

// parseDate reads a calendar date.
func parseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range dateLayouts {
		if d, err := time.Parse(l, s); err == nil {
			return d, nil
		}
	}
	return time.Time{}, errors.New("is not a date (e.g. 2026-11-24 or 11/24/2026)")
}

var (
	clockRE = regexp.MustCompile(`^(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp]\.?[Mm]\.?)?$`)
	hourRE  = regexp.MustCompile(`^(\d{1,2})\s*([AaPp]\.?[Mm]\.?)$`)
)

// parseClock reads a time of day as a duration since midnight: 24-hour
// (20:15, 20:15:30), 12-hour (8:15 PM, 8 PM), and broadcast hours past 24
// (25:30 is 01:30 the next day).
func parseClock(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var h, m, sec int
	var ampm string
	if g := clockRE.FindStringSubmatch(s); g != nil {
		h, _ = strconv.Atoi(g[1])
		m, _ = strconv.Atoi(g[2])
		if g[3] != "" {
			sec, _ = strconv.Atoi(g[3])
		}
		ampm = g[4]
	} else if g := hourRE.FindStringSubmatch(s); g != nil {
		h, _ = strconv.Atoi(g[1])
		ampm = g[2]
	} else {
		return 0, errors.New("is not a time of day (e.g. 20:15, 8:15 PM or 25:30 for 01:30 the next day)")
	}
	if m > 59 || sec > 59 {
		return 0, errors.New("has minutes or seconds past 59")
	}
	if ampm != "" {
		if h < 1 || h > 12 {
			return 0, errors.New("has an hour outside 1-12 with AM/PM")
		}
		pm := strings.HasPrefix(strings.ToUpper(ampm), "P")
		h %= 12
		if pm {
			h += 12
		}
	} else if h > 29 {
		return 0, errors.New("has an hour past 29 (broadcast hours run to 29:59)")
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second, nil
}

// stamp is a time as a cell gives it: absolute (it named its zone or
// offset), or a date and a clock time in the row's zone, or only a clock
// time.
type stamp struct {
	abs   time.Time // set when the cell named its zone
	date  time.Time // zero when the cell has no date
	clock time.Duration
	zone  *time.Location // a zone the cell named
}

func (s stamp) hasDate() bool { return !s.abs.IsZero() || !s.date.IsZero() }

// at resolves s on date (when s has none) in loc.
func (s stamp) at(date time.Time, loc *time.Location) time.Time {
	if !s.abs.IsZero() {
		return s.abs
	}
	if s.zone != nil {
		loc = s.zone
	}
	if !s.date.IsZero() {
		date = s.date
	}
	midnight := time.Date(date.Year(), date.Month(), date.Day(), 0, 0, 0, 0, time.UTC)
	days := int(s.clock / (24 * time.Hour))
	rest := s.clock % (24 * time.Hour)
	d := midnight.AddDate(0, 0, days)
	return time.Date(d.Year(), d.Month(), d.Day(), int(rest/time.Hour), int(rest%time.Hour/time.Minute), int(rest%time.Minute/time.Second), 0, loc)
}

// parseStamp reads a date and time ("2026-11-24 20:15", "11/24/2026 8:15
// PM ET", RFC 3339 with an offset) or a time of day alone.
func parseStamp(s string) (stamp, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return stamp{abs: t}, nil
	}
	var st stamp
	// A trailing zone: "... ET", "... -05:00".
	if i := strings.LastIndexAny(s, " "); i > 0 {
		if loc, err := parseZone(s[i+1:]); err == nil {
			st.zone, s = loc, strings.TrimSpace(s[:i])
		}
	}
	if c, err := parseClock(s); err == nil {
		st.clock = c
		return st, nil
	}
	for _, sep := range []string{"T", " "} {
		if i := strings.Index(s, sep); i > 0 {
			d, derr := parseDate(s[:i])
			c, cerr := parseClock(s[i+1:])
			if derr == nil && cerr == nil {
				st.date, st.clock = d, c
				return st, nil
			}
		}
	}
	// "Jan 2 2006 20:15": the date has spaces; try the last word as the time.
	if i := strings.LastIndex(s, " "); i > 0 {
		d, derr := parseDate(s[:i])
		c, cerr := parseClock(s[i+1:])
		if derr == nil && cerr == nil {
			st.date, st.clock = d, c
			return st, nil
		}
	}
	if i := strings.LastIndex(s, " "); i > 0 {
		// "11/24/2026 8:15 PM"
		if j := strings.LastIndex(s[:i], " "); j > 0 {
			d, derr := parseDate(s[:j])
			c, cerr := parseClock(s[j+1:])
			if derr == nil && cerr == nil {
				st.date, st.clock = d, c
				return st, nil
			}
		}
	}
	return stamp{}, errors.New("is not a date and time (e.g. 2026-11-24 20:15, 11/24/2026 8:15 PM ET, 2026-11-24T20:15:00-05:00) or a time of day")
}

var (
	moneyRE    = regexp.MustCompile(`^(\d+)(?:\.(\d{1,2}))?$`)
	currencyRE = regexp.MustCompile(`^[A-Za-z]{3}$`)
)

// parseMoney reads an amount of money ("$1,234.50", "1234.5", "USD 1200")
// as cents; a three-letter currency code beside the number is returned.
func parseMoney(s string) (cents int64, currency string, err error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-") || strings.HasPrefix(s, "(") {
		return 0, "", errors.New("must not be negative")
	}
	for _, part := range strings.Fields(s) {
		if currencyRE.MatchString(part) {
			currency = strings.ToUpper(part)
			s = strings.Replace(s, part, "", 1)
		}
	}
	s = strings.NewReplacer("$", "", "€", "", "£", "", ",", "", " ", "").Replace(s)
	m := moneyRE.FindStringSubmatch(s)
	if m == nil {
		if strings.Contains(s, ".") {
			return 0, "", errors.New("is not an amount with at most 2 decimals (e.g. 1250.00)")
		}
		return 0, "", errors.New("is not an amount of money (e.g. 1250.00 or $1,250)")
	}
	whole, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || whole > 1e15 {
		return 0, "", errors.New("is too large")
	}
	frac := m[2]
	for len(frac) < 2 {
		frac += "0"
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	return whole*100 + f, currency, nil
}

var lengthRE = regexp.MustCompile(`^(?:(\d+)?:(\d{1,2})|(\d+)\s*(s|sec|secs|seconds|m|min|mins|minutes)?)$`)

// parseLength reads a spot length in seconds: "60", ":60", "1:00", "120s",
// "2 min".
func parseLength(s string) (int64, error) {
	g := lengthRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if g == nil {
		return 0, errors.New("is not a length in seconds (e.g. 60, :60, 1:00 or 2 min)")
	}
	if g[2] != "" { // [m]:ss
		m, _ := strconv.ParseInt("0"+g[1], 10, 64)
		sec, _ := strconv.ParseInt(g[2], 10, 64)
		return m*60 + sec, nil
	}
	n, err := strconv.ParseInt(g[3], 10, 64)
	if err != nil || n > 86400 {
		return 0, errors.New("is longer than a day")
	}
	if strings.HasPrefix(g[4], "m") {
		n *= 60
	}
	return n, nil
}

// phoneLetters maps phoneword letters to keypad digits.
var phoneLetters = strings.NewReplacer(
	"A", "2", "B", "2", "C", "2", "D", "3", "E", "3", "F", "3", "G", "4", "H", "4", "I", "4",
	"J", "5", "K", "5", "L", "5", "M", "6", "N", "6", "O", "6", "P", "7", "Q", "7", "R", "7", "S", "7",
	"T", "8", "U", "8", "V", "8", "W", "9", "X", "9", "Y", "9", "Z", "9")

var dnisCharsRE = regexp.MustCompile(`^[0-9A-Za-z+().\- ]+$`)

// parseDNIS reads a toll-free number as its digits; a phoneword
// (1-800-FLOWERS) becomes its keypad digits.
func parseDNIS(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !dnisCharsRE.MatchString(s) {
		return "", errors.New("is not a phone number")
	}
	var b strings.Builder
	for _, r := range phoneLetters.Replace(strings.ToUpper(s)) {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	if n := b.Len(); n < 4 || n > 15 {
		return "", errors.New("must have 4 to 15 digits")
	}
	return b.String(), nil
}

// parseMediaType reads tv or radio.
func parseMediaType(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "tv", "television", "cable", "broadcast", "broadcast tv", "network tv", "ctv":
		return airings.MediaTV, nil
	case "radio", "am", "fm", "am radio", "fm radio", "satellite radio":
		return airings.MediaRadio, nil
	}
	return "", errors.New("must be tv or radio")
}

// parseFlag reads a did-not-run flag; blank means it ran.
func parseFlag(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "n", "no", "false", "0", "ran", "aired", "ok":
		return false, nil
	case "y", "yes", "true", "1", "x", "dnr", "did not run", "didnotrun", "did_not_run":
		return true, nil
	}
	return false, errors.New("must be yes or no")
}

// parseStatus reads an airing status: aired (ran) or not.
func parseStatus(s string) (didNotRun bool, err error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "aired", "ran", "run", "ok", "cleared", "confirmed", "scheduled", "ordered", "booked", "posted":
		return false, nil
	case "dnr", "did not run", "did_not_run", "not aired", "not run", "missed", "preempted", "pre-empted", "bumped", "cancelled", "canceled", "no air", "makegood due":
		return true, nil
	}
	return false, errors.New("must be aired or did not run (also: ran, missed, preempted, cancelled)")
}

var (
	ratioRE  = regexp.MustCompile(`^(\d+)(?:\.(\d{1,2}))?\s*(x|:1)?$`)
	pctRE    = regexp.MustCompile(`^(\d+)\s*%$`)
	windowRE = regexp.MustCompile(`^(?:(\d+):(\d{2})|(\d+)\s*(m|min|mins|minutes|h|hr|hrs|hour|hours)?)$`)
)

// parseRatio reads a target media ratio ("1.5", "1.50", "1.5x", "1.5:1",
// "150%") as the ratio × 100.
func parseRatio(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if g := pctRE.FindStringSubmatch(s); g != nil {
		n, err := strconv.ParseInt(g[1], 10, 64)
		if err != nil || n > 1e6 {
			return 0, errors.New("is too large")
		}
		return n, nil
	}
	g := ratioRE.FindStringSubmatch(s)
	if g == nil {
		return 0, errors.New("is not a ratio with at most 2 decimals (e.g. 1.5, 1.5x or 150%)")
	}
	whole, err := strconv.ParseInt(g[1], 10, 64)
	if err != nil || whole > 1e4 {
		return 0, errors.New("is too large")
	}
	frac := g[2]
	for len(frac) < 2 {
		frac += "0"
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	return whole*100 + f, nil
}

// parseWindow reads a response window in minutes: "60", "60 min", "1h",
// "1:30".
func parseWindow(s string) (int64, error) {
	g := windowRE.FindStringSubmatch(strings.ToLower(strings.TrimSpace(s)))
	if g == nil {
		return 0, errors.New("is not a number of minutes (e.g. 60, 90 min, 1h or 1:30)")
	}
	var n int64
	if g[1] != "" {
		h, _ := strconv.ParseInt(g[1], 10, 64)
		m, _ := strconv.ParseInt(g[2], 10, 64)
		n = h*60 + m
	} else {
		n, _ = strconv.ParseInt(g[3], 10, 64)
		if strings.HasPrefix(g[4], "h") {
			n *= 60
		}
	}
	if n < 1 || n > 7*24*60 {
		return 0, errors.New("must be 1 minute to 7 days")
	}
	return n, nil
}
