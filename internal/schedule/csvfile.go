package schedule

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxFileBytes is the largest file read.
const MaxFileBytes = 64 << 20

// RowError is a problem with one cell or row of a file: its line (1 is the
// header), the column as the file names it (or the canonical name of a
// missing column) and the reason. Reasons never repeat the cell's value.
type RowError struct {
	Line   int    `json:"line"`
	Column string `json:"column"`
	Reason string `json:"reason"`
}

func (e RowError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
	}
	return fmt.Sprintf("line %d, column %s: %s", e.Line, e.Column, e.Reason)
}

// ErrFile wraps the errors that stop a whole file from being read (no
// header, no known column, too large, unreadable).
var ErrFile = errors.New("schedule: file cannot be read")

// table is a read CSV file: its header mapped to canonical columns, and
// its rows.
type table struct {
	// col maps a canonical column to its index in the file.
	col map[string]int
	// header is the file's header as written.
	header []string
	// Ignored lists the file's columns that are not read, and why.
	ignored []string
	rows    []record
	// problems are rows that could not be split into cells.
	problems []RowError
}

type record struct {
	line  int
	cells []string
}

// cell returns the trimmed value of canonical column c in r, and whether
// the file has the column and the cell is not blank.
func (t *table) cell(r record, c string) (string, bool) {
	i, ok := t.col[c]
	if !ok || i >= len(r.cells) {
		return "", false
	}
	v := strings.TrimSpace(r.cells[i])
	return v, v != ""
}

// has reports whether the file has canonical column c.
func (t *table) has(c string) bool { _, ok := t.col[c]; return ok }

// name is how the file names canonical column c (c itself when absent).
func (t *table) name(c string) string {
	if i, ok := t.col[c]; ok {
		return t.header[i]
	}
	return c
}

// normalizeHeader reduces a header to lower-case letters and digits:
// "Air Date" → "airdate", "Station/Network" → "stationnetwork".
func normalizeHeader(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// readTable reads a CSV file (comma, semicolon or tab separated, as its
// header line shows; a UTF-8 byte-order mark is skipped) and maps its
// header with aliases (canonical column → accepted normalised headers, in
// order of preference).
func readTable(r io.Reader, aliases []alias) (*table, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFile, err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%w: larger than %d MiB", ErrFile, MaxFileBytes>>20)
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comma = delimiter(data)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: no header line", ErrFile)
	}
	t := &table{col: map[string]int{}, header: header}
	byNorm := map[string]int{}
	for i, h := range header {
		n := normalizeHeader(h)
		if _, dup := byNorm[n]; dup || n == "" {
			t.ignored = append(t.ignored, fmt.Sprintf("%q (repeated or empty header)", h))
			continue
		}
		byNorm[n] = i
	}
	used := map[int]bool{}
	for _, a := range aliases {
		for _, n := range a.names {
			i, ok := byNorm[n]
			if !ok || used[i] {
				continue
			}
			if _, taken := t.col[a.column]; taken {
				t.ignored = append(t.ignored, fmt.Sprintf("%q (%s comes from %q)", header[i], a.column, t.header[t.col[a.column]]))
			} else {
				t.col[a.column] = i
			}
			used[i] = true
		}
	}
	for i, h := range header {
		if !used[i] && normalizeHeader(h) != "" && byNorm[normalizeHeader(h)] == i {
			t.ignored = append(t.ignored, fmt.Sprintf("%q (not a known column)", h))
		}
	}
	if len(t.col) == 0 {
		return nil, fmt.Errorf("%w: no known column in the header (see docs/airings.md for the accepted spellings)", ErrFile)
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := cr.FieldPos(0)
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			t.problems = append(t.problems, RowError{Line: pe.Line, Reason: "cannot be split into cells: " + pe.Err.Error()})
			continue
		} else if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrFile, err)
		}
		if blank(rec) {
			continue
		}
		t.rows = append(t.rows, record{line: line, cells: rec})
	}
	return t, nil
}

func blank(rec []string) bool {
	for _, c := range rec {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// delimiter picks the separator the header line uses most: comma,
// semicolon or tab.
func delimiter(data []byte) rune {
	line, _, _ := bytes.Cut(data, []byte("\n"))
	best, n := ',', bytes.Count(line, []byte(","))
	for _, d := range []rune{';', '\t'} {
		if c := bytes.Count(line, []byte(string(d))); c > n {
			best, n = d, c
		}
	}
	return best
}

// alias lists the normalised headers accepted for a canonical column, the
// preferred first.
type alias struct {
	column string
	names  []string
}

// HeaderAliases returns, for every canonical column of a schedule file,
// the header spellings it accepts (case, spaces and punctuation are
// ignored: "Air Date", "air_date" and "AIRDATE" are one spelling).
func HeaderAliases() map[string][]string {
	out := map[string][]string{}
	for _, a := range scheduleAliases {
		out[a.column] = a.names
	}
	return out
}

// OfferHeaderAliases is HeaderAliases for offer files.
func OfferHeaderAliases() map[string][]string {
	out := map[string][]string{}
	for _, a := range offerAliases {
		out[a.column] = a.names
	}
	return out
}

// Canonical columns of a schedule file.
const (
	colID        = "airing_id"
	colOffer     = "offer"
	colISCI      = "isci"
	colStation   = "station"
	colMarket    = "market"
	colMedia     = "media_type"
	colDate      = "date"
	colTime      = "time"
	colStart     = "start"
	colEnd       = "end"
	colWindow    = "window"
	colActual    = "actual"
	colActualDay = "actual_date"
	colZone      = "time_zone"
	colLength    = "length_seconds"
	colSpend     = "spend"
	colCurrency  = "currency"
	colDNIS      = "dnis"
	colVanity    = "vanity_url"
	colPromo     = "promo_code"
	colDNR       = "did_not_run"
	colStatus    = "status"
)

var scheduleAliases = []alias{
	{colID, []string{"airingid", "airing", "id", "spotid", "spot", "lineid", "uniqueid", "airingnumber"}},
	{colOffer, []string{"offer", "show", "program", "programme", "product", "campaign", "offername"}},
	{colISCI, []string{"isci", "iscicode", "adcopy", "copy", "creative", "adid", "copycode", "commercial", "spotcode", "adcode"}},
	{colStation, []string{"station", "network", "stationnetwork", "networkstation", "net", "callletters", "outlet", "channel"}},
	{colMarket, []string{"market", "dma", "marketname", "dmaname"}},
	{colMedia, []string{"mediatype", "media", "medium"}},
	{colDate, []string{"date", "airdate", "scheduledate", "scheduleddate", "broadcastdate", "spotdate", "day"}},
	{colTime, []string{"time", "airtime", "scheduledtime", "spottime", "timeslot"}},
	{colStart, []string{"start", "startsat", "starttime", "startdatetime", "scheduled", "scheduledat", "scheduledstart", "scheduleddatetime", "windowstart", "airdatetime", "datetime"}},
	{colEnd, []string{"end", "endsat", "endtime", "enddatetime", "windowend", "until", "aireduntil"}},
	{colWindow, []string{"window", "timewindow", "airwindow"}},
	{colActual, []string{"actual", "actualtime", "actualairtime", "airedat", "airedtime", "actualdatetime", "actualstart", "posttime", "postedtime", "timeaired", "actualairdatetime"}},
	{colActualDay, []string{"actualdate", "actualairdate", "dateaired", "airedon", "postdate", "posteddate"}},
	{colZone, []string{"timezone", "tz", "zone"}},
	{colLength, []string{"length", "lengthseconds", "lengthsec", "len", "duration", "spotlength", "spotlen", "unitlength", "seconds", "secs"}},
	{colSpend, []string{"spend", "netcost", "net", "netrate", "mediacost", "cost", "rate", "spotcost", "spotrate", "amount", "price", "grosscost", "gross", "grossrate"}},
	{colCurrency, []string{"currency", "ccy", "cur", "currencycode"}},
	{colDNIS, []string{"dnis", "tollfree", "tollfreenumber", "tfn", "800number", "800", "phone", "phonenumber", "number", "telephone", "tel", "responsenumber"}},
	{colVanity, []string{"vanityurl", "vanity", "url", "website", "web", "landingpage", "weburl", "promourl"}},
	{colPromo, []string{"promocode", "promo", "code", "offercode", "coupon", "couponcode", "discountcode"}},
	{colDNR, []string{"didnotrun", "dnr", "notaired", "notrun", "missed", "preempted"}},
	{colStatus, []string{"status", "airstatus", "spotstatus", "result"}},
}

// Canonical columns of an offers file.
const (
	colTarget     = "target_ratio"
	colWindowMins = "window_minutes"
)

var offerAliases = []alias{
	{colOffer, []string{"offer", "show", "product", "campaign", "program", "offername"}},
	{colMedia, []string{"mediatype", "media", "medium"}},
	{colCurrency, []string{"currency", "ccy", "cur", "currencycode"}},
	{colTarget, []string{"targetratio", "target", "targetmediaratio", "allowable", "allowableratio", "targetmer", "targetroas", "mer", "roas", "mediaratio", "ratio"}},
	{colWindowMins, []string{"windowminutes", "responsewindow", "responsewindowminutes", "window", "windowmin", "windowmins", "minutes"}},
}
