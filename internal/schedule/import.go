package schedule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/airtally/airtally/internal/airings"
	"github.com/airtally/airtally/producers/event"
	"github.com/airtally/airtally/producers/publisher"
)

// Defaults of Config.
const (
	DefaultSystem    = "schedule"
	DefaultTimeZone  = "America/New_York"
	DefaultCurrency  = "USD"
	DefaultBatchSize = 500
)

// Publisher publishes events durably; *publisher.Publisher is one.
// PublishBatch returns one result per event, in order: acked, spooled (to
// be forwarded when NATS is back) or an error.
type Publisher interface {
	PublishBatch(ctx context.Context, evs []*event.Event) []publisher.Result
}

// Store reads the schedule's current projection.
type Store interface {
	// Airings returns the current state of the airings among ids that
	// exist.
	Airings(ctx context.Context, ids []string) (map[string]airings.Airing, error)
	// Offers returns the current settings of every offer.
	Offers(ctx context.Context) (map[airings.OfferKey]airings.Offer, error)
}

// ClickHouseStore is a Store over the airings and offers tables of
// database db.
func ClickHouseStore(conn driver.Conn, db string) Store { return chStore{conn, db} }

type chStore struct {
	conn driver.Conn
	db   string
}

func (s chStore) Airings(ctx context.Context, ids []string) (map[string]airings.Airing, error) {
	return airings.Current(ctx, s.conn, s.db, ids)
}

func (s chStore) Offers(ctx context.Context) (map[airings.OfferKey]airings.Offer, error) {
	return airings.CurrentOffers(ctx, s.conn, s.db)
}

// Config configures an Importer.
type Config struct {
	// Instance names this importer in the events' source
	// ("schedule.<instance>"); required, [a-z0-9][a-z0-9_-]{0,63}.
	Instance string
	// TimeZone of times that do not name theirs; default
	// America/New_York.
	TimeZone string
	// Currency of a spend given without one; default USD.
	Currency string
	// BatchSize is how many events are published at once; default 500.
	BatchSize int
	// Now stamps the events (their occurred_at orders the versions of an
	// airing); default time.Now.
	Now func() time.Time
	// Logger; nil means slog.Default(). Nothing logged holds a cell value.
	Logger *slog.Logger
}

var instanceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.TimeZone == "" {
		c.TimeZone = DefaultTimeZone
	}
	if c.Currency == "" {
		c.Currency = DefaultCurrency
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first field that is wrong.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if !instanceRE.MatchString(c.Instance) {
		return errors.New("schedule: instance must be 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit")
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil {
		return fmt.Errorf("schedule: time zone %q: %w", c.TimeZone, err)
	}
	if !currencyRE.MatchString(c.Currency) || strings.ToUpper(c.Currency) != c.Currency {
		return errors.New("schedule: currency must be a three-letter ISO 4217 code in capitals, e.g. USD")
	}
	if c.BatchSize < 1 {
		return errors.New("schedule: batch size must be at least 1")
	}
	return nil
}

// Importer imports schedule and offer files.
type Importer struct {
	cfg   Config
	loc   *time.Location
	pub   Publisher
	store Store
}

// New returns an Importer that reads the projection from store and
// publishes through pub.
func New(cfg Config, pub Publisher, store Store) (*Importer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	loc, _ := time.LoadLocation(cfg.TimeZone)
	return &Importer{cfg: cfg, loc: loc, pub: pub, store: store}, nil
}

// Summary is what an import did. Rows = New + Revised + Unchanged +
// Rejected + Failed.
type Summary struct {
	Rows      int `json:"rows"`
	New       int `json:"new"`
	Revised   int `json:"revised"`
	Unchanged int `json:"unchanged"`
	Rejected  int `json:"rejected"`
	// Failed rows were valid but their event could be neither published
	// nor spooled.
	Failed int `json:"failed"`
	// Spooled events (counted in New or Revised) wait in the local spool
	// until NATS takes them.
	Spooled int `json:"spooled"`
	// Problems are the rejected and failed rows' problems, by line.
	Problems []RowError `json:"problems,omitempty"`
	// Ignored are the file's columns that were not read, and why.
	Ignored []string `json:"ignored,omitempty"`
}

// Imported reports whether any row was imported (new, revised or already
// current), or the file had no rows.
func (s Summary) Imported() bool { return s.Rows == 0 || s.New+s.Revised+s.Unchanged > 0 }

// pending is an event to publish for a row.
type pending struct {
	line  int
	ev    *event.Event
	isNew bool
}

func (im *Importer) source() event.Source {
	return event.Source{System: DefaultSystem, Instance: im.cfg.Instance}
}

// Schedule imports a schedule or post-log file. It returns an error only
// when the file as a whole cannot be read (see ErrFile), the projection
// cannot be read, or ctx ends; row problems are in the summary.
func (im *Importer) Schedule(ctx context.Context, r io.Reader) (Summary, error) {
	t, err := readTable(r, scheduleAliases)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Rows: len(t.rows) + len(t.problems), Ignored: t.ignored}
	sum.reject(t.problems...)
	rows := make([]*scheduleRow, 0, len(t.rows))
	var ids []string
	for _, rec := range t.rows {
		row := parseScheduleRow(t, rec, im.loc)
		if len(row.problems) == 0 && row.id == "" {
			if row.scheduled.IsZero() || row.a.Station == "" {
				row.fail(t, colID, "give an airing id, or the station and scheduled start that identify the airing")
			} else {
				row.id = row.naturalID()
			}
		}
		if len(row.problems) > 0 {
			sum.reject(row.problems...)
			continue
		}
		rows = append(rows, row)
		ids = append(ids, row.id)
	}
	current, err := im.store.Airings(ctx, ids)
	if err != nil {
		return sum, fmt.Errorf("schedule: read the current schedule: %w", err)
	}
	now := im.cfg.Now().UTC().Truncate(time.Millisecond)
	firstLine := map[string]int{}
	var out []pending
	for _, row := range rows {
		if first, dup := firstLine[row.id]; dup {
			sum.reject(RowError{Line: row.line, Column: t.name(colID), Reason: fmt.Sprintf("names the same airing as line %d", first)})
			continue
		}
		firstLine[row.id] = row.line
		cur, known := current[row.id]
		a, problem := row.merge(cur, known, im.cfg.Currency)
		if problem != nil {
			sum.reject(*problem)
			continue
		}
		if known && a.Hash() == cur.Hash() {
			sum.Unchanged++
			continue
		}
		ev := a.Event(a.Kind(known), im.source(), now)
		if ps := check(ev); len(ps) > 0 {
			var rs []RowError
			for _, p := range ps {
				rs = append(rs, RowError{Line: row.line, Column: t.name(scheduleColumnOf(p.Field)), Reason: p.Reason})
			}
			sum.reject(rs...)
			continue
		}
		out = append(out, pending{line: row.line, ev: ev, isNew: !known})
	}
	im.publish(ctx, out, &sum)
	sum.sortProblems()
	im.cfg.Logger.Info("schedule imported", "rows", sum.Rows, "new", sum.New, "revised", sum.Revised,
		"unchanged", sum.Unchanged, "rejected", sum.Rejected, "failed", sum.Failed, "spooled", sum.Spooled)
	return sum, ctx.Err()
}

// Offers imports a file of offer settings.
func (im *Importer) Offers(ctx context.Context, r io.Reader) (Summary, error) {
	t, err := readTable(r, offerAliases)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Rows: len(t.rows) + len(t.problems), Ignored: t.ignored}
	sum.reject(t.problems...)
	current, err := im.store.Offers(ctx)
	if err != nil {
		return sum, fmt.Errorf("schedule: read the current offers: %w", err)
	}
	now := im.cfg.Now().UTC().Truncate(time.Millisecond)
	firstLine := map[airings.OfferKey]int{}
	var out []pending
	for _, rec := range t.rows {
		var problems []RowError
		fail := func(col, reason string) {
			problems = append(problems, RowError{Line: rec.line, Column: t.name(col), Reason: reason})
		}
		var o airings.Offer
		o.Offer, _ = t.cell(rec, colOffer)
		if o.Offer == "" {
			fail(colOffer, "is required")
		}
		if v, ok := t.cell(rec, colMedia); ok {
			m, err := parseMediaType(v)
			if err != nil {
				fail(colMedia, err.Error())
			}
			o.MediaType = m
		}
		cur, known := current[o.Key()]
		if known {
			o = cur
		}
		if v, ok := t.cell(rec, colCurrency); ok {
			if !currencyRE.MatchString(v) {
				fail(colCurrency, "must be a three-letter ISO 4217 code, e.g. USD")
			}
			o.Currency = strings.ToUpper(v)
		}
		if v, ok := t.cell(rec, colTarget); ok {
			pct, err := parseRatio(v)
			if err != nil {
				fail(colTarget, err.Error())
			}
			o.TargetRatioPct = pct
		}
		if v, ok := t.cell(rec, colWindowMins); ok {
			w, err := parseWindow(v)
			if err != nil {
				fail(colWindowMins, err.Error())
			}
			o.WindowMinutes = w
		}
		if len(problems) == 0 {
			if first, dup := firstLine[o.Key()]; dup {
				fail(colOffer, fmt.Sprintf("names the same offer and media type as line %d", first))
			}
		}
		if len(problems) > 0 {
			sum.reject(problems...)
			continue
		}
		firstLine[o.Key()] = rec.line
		if known && o.Hash() == cur.Hash() {
			sum.Unchanged++
			continue
		}
		ev := o.Event(im.source(), now)
		if ps := check(ev); len(ps) > 0 {
			var rs []RowError
			for _, p := range ps {
				rs = append(rs, RowError{Line: rec.line, Column: t.name(offerColumnOf(p.Field)), Reason: p.Reason})
			}
			sum.reject(rs...)
			continue
		}
		out = append(out, pending{line: rec.line, ev: ev, isNew: !known})
	}
	im.publish(ctx, out, &sum)
	sum.sortProblems()
	im.cfg.Logger.Info("offers imported", "rows", sum.Rows, "new", sum.New, "revised", sum.Revised,
		"unchanged", sum.Unchanged, "rejected", sum.Rejected, "failed", sum.Failed, "spooled", sum.Spooled)
	return sum, ctx.Err()
}

// reject counts one rejected row with its problems (all of one line), or,
// for problems of several lines, one row per line.
func (s *Summary) reject(ps ...RowError) {
	lines := map[int]bool{}
	for _, p := range ps {
		if !lines[p.Line] {
			lines[p.Line] = true
			s.Rejected++
		}
	}
	s.Problems = append(s.Problems, ps...)
}

func (s *Summary) sortProblems() {
	sort.SliceStable(s.Problems, func(i, j int) bool { return s.Problems[i].Line < s.Problems[j].Line })
}

// check validates ev as the publisher will (with a placeholder sequence),
// card numbers included.
func check(ev *event.Event) []event.Problem {
	ev.Source.Seq = 1
	defer func() { ev.Source.Seq = 0 }()
	if _, err := ev.Encode(); err != nil {
		if ps := event.Problems(err); len(ps) > 0 {
			return ps
		}
		return []event.Problem{{Reason: "cannot be encoded"}}
	}
	return nil
}

// publish publishes the rows' events in batches and counts the outcome.
func (im *Importer) publish(ctx context.Context, out []pending, sum *Summary) {
	for start := 0; start < len(out); start += im.cfg.BatchSize {
		batch := out[start:min(start+im.cfg.BatchSize, len(out))]
		evs := make([]*event.Event, len(batch))
		for i, p := range batch {
			evs[i] = p.ev
		}
		res := im.pub.PublishBatch(ctx, evs)
		for i, p := range batch {
			var err error
			if i < len(res) {
				err = res[i].Err
			} else {
				err = errors.New("no result")
			}
			if err != nil {
				im.cfg.Logger.Error("schedule: event not published", "line", p.line, "event_id", p.ev.EventID, "err", err)
				sum.Failed++
				sum.Problems = append(sum.Problems, RowError{Line: p.line, Reason: "could not be published nor spooled (see the log)"})
				continue
			}
			if res[i].Receipt.Status == publisher.StatusSpooled {
				sum.Spooled++
			}
			if p.isNew {
				sum.New++
			} else {
				sum.Revised++
			}
		}
	}
}

// scheduleColumnOf maps an event field to the schedule column that gives
// it.
func scheduleColumnOf(field string) string {
	switch field {
	case "airing_id":
		return colID
	case "aired_at":
		return colTime
	case "aired_until":
		return colEnd
	case "offer", "station", "market", "media_type", "isci", "dnis", "promo_code", "vanity_url", "currency", "did_not_run":
		return field
	case "spend_cents":
		return colSpend
	case "length_seconds":
		return colLength
	}
	return field
}

// offerColumnOf maps an event field to the offers column that gives it.
func offerColumnOf(field string) string {
	switch field {
	case "target_ratio_pct":
		return colTarget
	case "window_minutes":
		return colWindowMins
	}
	return field
}
