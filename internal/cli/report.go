package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/airtally/airtally/consumers/detector/accountability"
	"github.com/airtally/airtally/internal/connect"
	"github.com/airtally/airtally/internal/report"
)

func init() {
	register(command{name: "report", summary: "print the airing report (per airing, or rolled up) as text, CSV or JSON", run: runReport})
}

func runReport(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "report")
	var (
		logs                                 logFlags
		ch                                   chFlags
		from, to, by, format, dayStart, week string
		source                               string
		o                                    report.Options
	)
	fs.StringVar(&from, "from", "", "first broadcast day (YYYY-MM-DD) or an exact start (RFC 3339); required")
	fs.StringVar(&to, "to", "", "last broadcast day, included (YYYY-MM-DD), or an exact end, excluded (RFC 3339); default: --from")
	fs.StringVar(&o.Filter.Offer, "offer", "", "only this offer's airings")
	fs.StringVar(&o.Filter.Station, "station", "", "only this station's or network's airings")
	fs.StringVar(&o.Filter.Market, "market", "", "only this market's airings")
	fs.StringVar(&by, "by", "airing", "rows: airing, or a rollup by offer, station, market, daypart, isci, day or week")
	fs.StringVar(&format, "format", "text", "text, csv or json")
	fs.BoolVar(&o.Curves, "curves", false, "add each airing's minute-by-minute response curve")
	fs.StringVar(&o.Config.TimeZone, "tz", report.DefaultTimeZone, "time zone of broadcast days and weeks")
	fs.StringVar(&o.Config.DaypartTimeZone, "daypart-tz", "", "time zone of the dayparts (default: --tz)")
	fs.StringVar(&dayStart, "day-start", "06:00", "when the broadcast day starts")
	fs.StringVar(&week, "week-start", "monday", "first day of the broadcast week")
	fs.StringVar(&source, "source", string(report.SourceAuto), "auto: the airing projection for the days it has computed, on read for the others; on-read: every figure computed from the events (to audit the projection; the same figures, slower)")
	logs.register(fs, filepath.Join(".airtally", "airtally.log"))
	ch.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := logs.setup(env); err != nil {
		return err
	}
	var err error
	if o.Config.DayStart, err = clockFlag(dayStart); err != nil {
		return &flagError{msg: "--day-start must be HH:MM"}
	}
	if o.Config.WeekStart, err = weekdayFlag(week); err != nil {
		return &flagError{msg: "--week-start must be a weekday, e.g. monday"}
	}
	if err := o.Config.Validate(); err != nil {
		return &flagError{msg: err.Error()}
	}
	if o.Filter.From, o.Filter.To, err = rangeFlags(o.Config, from, to); err != nil {
		return &flagError{msg: err.Error()}
	}
	switch report.By(by) {
	case report.ByAiring:
		o.By = report.ByAiring
	default:
		if !report.Dimension(by).Valid() {
			return &flagError{msg: "--by must be airing, offer, station, market, daypart, isci, day or week"}
		}
		o.By = report.By(by)
	}
	switch o.Source = report.Source(source); o.Source {
	case report.SourceAuto, report.SourceOnRead:
	default:
		return &flagError{msg: "--source must be auto or on-read"}
	}
	f := report.Format(format)
	if f != report.FormatText && f != report.FormatCSV && f != report.FormatJSON {
		return &flagError{msg: "--format must be text, csv or json"}
	}
	cfg := ch.config()
	o.Database = cfg.WithDefaults().Database
	conn, err := connect.OpenClickHouse(ctx, cfg)
	if err != nil {
		return userErr(err, "could not reach ClickHouse at %v", cfg.WithDefaults().Addrs)
	}
	defer conn.Close()
	res, err := report.Run(ctx, report.Native(conn), o)
	if err != nil {
		return userErr(err, "the report could not be computed (is the schema migrated? run 'airtally migrate')")
	}
	env.Log.Info("report: figures read", "days_from_projection", res.Read.DaysFromProjection, "days_on_read", res.Read.DaysOnRead)
	if err := report.Write(env.Stdout, res, f); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	if o.By != report.ByAiring || f != report.FormatText {
		return nil
	}
	// The airings' accountability follows their figures (as CSV or JSON it
	// is 'airtally accountability').
	acc, err := accountability.Query(ctx, report.Native(conn), o.Database, o.Filter.From, o.Filter.To)
	if err != nil {
		return userErr(err, "the airings' accountability could not be computed")
	}
	fmt.Fprintln(env.Stdout, "\nAccountability of the same airings:")
	fmt.Fprintln(env.Stdout)
	return accountability.Write(env.Stdout, acc)
}

// rangeFlags reads --from and --to: broadcast days (the range runs from
// the first day's start to the day after the last one) or RFC 3339 times.
func rangeFlags(cfg report.Config, from, to string) (time.Time, time.Time, error) {
	if from == "" {
		return time.Time{}, time.Time{}, fmt.Errorf("--from is required")
	}
	if to == "" {
		to = from
	}
	fd, ferr := time.Parse(time.DateOnly, from)
	td, terr := time.Parse(time.DateOnly, to)
	if ferr == nil && terr == nil {
		if td.Before(fd) {
			return time.Time{}, time.Time{}, fmt.Errorf("--to is before --from")
		}
		f, t := report.Range(cfg, fd, td)
		return f, t, nil
	}
	f, ferr := time.Parse(time.RFC3339, from)
	t, terr := time.Parse(time.RFC3339, to)
	if ferr != nil || terr != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("--from and --to must both be dates (YYYY-MM-DD) or both RFC 3339 times")
	}
	if !f.Before(t) {
		return time.Time{}, time.Time{}, fmt.Errorf("--to must be after --from")
	}
	return f, t, nil
}

func clockFlag(s string) (time.Duration, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("not HH:MM")
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, nil
}

func weekdayFlag(s string) (int, error) {
	days := []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
	for i, d := range days {
		if strings.EqualFold(s, d) || strings.EqualFold(s, d[:3]) {
			return i + 1, nil
		}
	}
	return 0, fmt.Errorf("not a weekday")
}
