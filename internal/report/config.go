package report

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/airtally/airtally/internal/chsql"
)

// Defaults of Config.
const (
	DefaultTimeZone        = "America/New_York"
	DefaultDayStart        = 6 * time.Hour
	DefaultWeekStart       = 1 // Monday (ISO weekday)
	DefaultWindowMinutes   = 60
	DefaultBaselineMinutes = 60
)

// Daypart is a named part of the broadcast day: it starts at Start (time
// since local midnight, whole minutes) and runs until the next daypart's
// start, wrapping past midnight.
type Daypart struct {
	Name  string
	Start time.Duration
}

// DefaultDayparts are the national cable dayparts (Eastern time by
// default), as documented in docs/airings.md.
var DefaultDayparts = []Daypart{
	{"overnight", 1 * time.Hour},
	{"early_morning", 6 * time.Hour},
	{"daytime", 9 * time.Hour},
	{"early_fringe", 16 * time.Hour},
	{"prime_access", 19 * time.Hour},
	{"prime", 20 * time.Hour},
	{"late_fringe", 23 * time.Hour},
}

// Config shapes the figures: where days, weeks and dayparts fall, and the
// attribution defaults. The views shipped in the schema use the defaults.
type Config struct {
	// TimeZone of broadcast days and weeks (IANA name); default
	// America/New_York.
	TimeZone string
	// DaypartTimeZone of the dayparts; default TimeZone.
	DaypartTimeZone string
	// DayStart is when the broadcast day starts, after local midnight;
	// default 06:00 (a day runs 06:00 to 05:59 the next morning).
	DayStart time.Duration
	// WeekStart is the first broadcast day of the week as an ISO weekday,
	// 1 (Monday) to 7 (Sunday); 0 means the default, Monday (a week then
	// runs Monday 06:00 to the next Monday 05:59).
	WeekStart int
	// Dayparts; default DefaultDayparts. Names must be unique, starts
	// whole minutes below 24 h and unique.
	Dayparts []Daypart
	// WindowMinutes is the response window of an offer that configured
	// none; default 60.
	WindowMinutes int
	// BaselineMinutes is how far before air time the baseline rate is
	// measured; default 60.
	BaselineMinutes int
}

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.TimeZone == "" {
		c.TimeZone = DefaultTimeZone
	}
	if c.DaypartTimeZone == "" {
		c.DaypartTimeZone = c.TimeZone
	}
	if c.DayStart == 0 {
		c.DayStart = DefaultDayStart
	}
	if c.WeekStart == 0 {
		c.WeekStart = DefaultWeekStart
	}
	if c.Dayparts == nil {
		c.Dayparts = DefaultDayparts
	}
	if c.WindowMinutes == 0 {
		c.WindowMinutes = DefaultWindowMinutes
	}
	if c.BaselineMinutes == 0 {
		c.BaselineMinutes = DefaultBaselineMinutes
	}
	return c
}

// DefaultConfig is the configuration of the shipped views.
func DefaultConfig() Config { return Config{}.WithDefaults() }

var daypartNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// Validate reports the first field that is wrong (defaults applied first).
func (c Config) Validate() error {
	c = c.WithDefaults()
	for _, tz := range []struct{ field, name string }{{"time zone", c.TimeZone}, {"daypart time zone", c.DaypartTimeZone}} {
		if _, err := time.LoadLocation(tz.name); err != nil || tz.name == "Local" {
			return fmt.Errorf("report: %s %q is not an IANA time zone name", tz.field, tz.name)
		}
	}
	if c.DayStart < 0 || c.DayStart >= 24*time.Hour || c.DayStart%time.Minute != 0 {
		return errors.New("report: day start must be whole minutes between 00:00 and 23:59")
	}
	if c.WeekStart < 1 || c.WeekStart > 7 {
		return errors.New("report: week start must be an ISO weekday, 1 (Monday) to 7 (Sunday)")
	}
	if len(c.Dayparts) == 0 {
		return errors.New("report: at least one daypart is needed")
	}
	names, starts := map[string]bool{}, map[time.Duration]bool{}
	for _, d := range c.Dayparts {
		if !daypartNameRE.MatchString(d.Name) {
			return fmt.Errorf("report: daypart name %q must be 1-32 characters of a-z, 0-9 and _", d.Name)
		}
		if d.Start < 0 || d.Start >= 24*time.Hour || d.Start%time.Minute != 0 {
			return fmt.Errorf("report: daypart %s must start at whole minutes between 00:00 and 23:59", d.Name)
		}
		if names[d.Name] || starts[d.Start] {
			return fmt.Errorf("report: daypart %s repeats a name or a start", d.Name)
		}
		names[d.Name], starts[d.Start] = true, true
	}
	if c.WindowMinutes < 1 || c.WindowMinutes > 7*24*60 {
		return errors.New("report: default response window must be 1 to 10080 minutes")
	}
	if c.BaselineMinutes < 1 || c.BaselineMinutes > 24*60 {
		return errors.New("report: baseline must be 1 to 1440 minutes")
	}
	return nil
}

// sortedDayparts returns the dayparts by start.
func (c Config) sortedDayparts() []Daypart {
	ds := slices.Clone(c.Dayparts)
	slices.SortFunc(ds, func(a, b Daypart) int { return int(a.Start - b.Start) })
	return ds
}

// DaypartAt returns the daypart of a local minute of the day (0-1439).
func (c Config) DaypartAt(minute int) string {
	ds := c.WithDefaults().sortedDayparts()
	name := ds[len(ds)-1].Name // before the first start: the last one, wrapped
	for _, d := range ds {
		if time.Duration(minute)*time.Minute >= d.Start {
			name = d.Name
		}
	}
	return name
}

// BroadcastDay returns the broadcast day of t: its local date in the time
// zone, the day before when t is before the day start.
func (c Config) BroadcastDay(t time.Time) time.Time {
	c = c.WithDefaults()
	loc, _ := time.LoadLocation(c.TimeZone)
	lt := t.In(loc)
	d := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, time.UTC)
	if time.Duration(lt.Hour())*time.Hour+time.Duration(lt.Minute())*time.Minute < c.DayStart {
		d = d.AddDate(0, 0, -1)
	}
	return d
}

// BroadcastWeek returns the first broadcast day of t's broadcast week.
func (c Config) BroadcastWeek(t time.Time) time.Time {
	c = c.WithDefaults()
	d := c.BroadcastDay(t)
	iso := (int(d.Weekday())+6)%7 + 1
	back := (iso - c.WeekStart + 7) % 7
	return d.AddDate(0, 0, -back)
}

// DayStartAt returns when broadcast day day (a date; its year, month and
// day count) starts, in UTC.
func (c Config) DayStartAt(day time.Time) time.Time {
	c = c.WithDefaults()
	loc, _ := time.LoadLocation(c.TimeZone)
	h, m := int(c.DayStart/time.Hour), int(c.DayStart%time.Hour/time.Minute)
	return time.Date(day.Year(), day.Month(), day.Day(), h, m, 0, 0, loc).UTC()
}

// tzLiteral is the quoted time zone name.
func tzLiteral(name string) string { return chsql.String(name) }
