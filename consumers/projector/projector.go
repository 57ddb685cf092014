package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/airtally/airtally/consumers/detector/accountability"
	"github.com/airtally/airtally/internal/chsql"
	"github.com/airtally/airtally/internal/report"
)

// Config configures a Projector.
type Config struct {
	// Database holds the events and the projection; required.
	Database string
	// Interval is the pause between passes that found nothing to do;
	// default 2 s.
	Interval time.Duration
	// MaxDays is the most days one statement computes; default 31.
	MaxDays int
	// MaxDelay bounds how long a day that keeps being marked (a day being
	// loaded) waits: a day is computed once its latest mark is older than
	// report.MarkMarginSeconds (so that one computation covers a burst of
	// inserts, a post-log's included), or once it has waited MaxDelay;
	// default 30 s. Reports compute a waiting day on read.
	MaxDelay time.Duration
	// Refresh is how often a week of the accountability projection that
	// is not settled yet (a response window open, an incident ongoing) is
	// computed again; default 60 s.
	Refresh time.Duration
	// MaxWeeks is the most weeks one accountability computation covers;
	// default 4.
	MaxWeeks int
	// AiringsOnly keeps the airing projection only, not the
	// accountability projection (tests of the airing figures).
	AiringsOnly bool
	// Log receives the projector's progress; default slog.Default().
	Log *slog.Logger
}

// Projector computes the airing projection's dirty days, then the
// accountability projection's dirty weeks. Run one per database
// (two are safe, each computation being versioned, but do the work
// twice).
type Projector struct {
	// mu serializes passes: Run and CatchUp on one Projector are one
	// projector, not two racing.
	mu   sync.Mutex
	db   DB
	cfg  Config
	last uint64
	// dirtySince is when a pass first saw each day that waits dirty
	// (server seconds).
	dirtySince map[int64]int64
}

// New returns a projector over db.
func New(db DB, cfg Config) (*Projector, error) {
	if _, err := chsql.Ident(cfg.Database); err != nil {
		return nil, fmt.Errorf("projector: database: %w", err)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.MaxDays <= 0 {
		cfg.MaxDays = 31
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 30 * time.Second
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = accountability.DefaultRefresh * time.Second
	}
	if cfg.MaxWeeks <= 0 {
		cfg.MaxWeeks = 4
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Projector{db: db, cfg: cfg}, nil
}

// PassStats is what one pass did.
type PassStats struct {
	// Days computed, in Statements statements.
	Days, Statements int
	// Weeks of accountability computed, in WeekComputations.
	Weeks, WeekComputations int
	// Waiting are the dirty days left for a later pass (marked too
	// recently).
	Waiting int
	// Bootstrapped: the projection was empty, and the pass marked every
	// day that holds data.
	Bootstrapped bool
	// DaysDone is when, after the pass started, the days were done (the
	// weeks come after); Duration the whole pass.
	DaysDone, Duration time.Duration
}

// Pass computes every day dirty when it starts. Days marked while it runs
// stay dirty for the next pass.
func (p *Projector) Pass(ctx context.Context) (PassStats, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := time.Now()
	var st PassStats
	startedAt, err := p.serverNow(ctx)
	if err != nil {
		return st, err
	}
	built, err := report.Built(ctx, p.db, p.cfg.Database)
	if err != nil {
		return st, err
	}
	if !built {
		if st.Bootstrapped, err = p.bootstrap(ctx); err != nil {
			return st, err
		}
		if st.Bootstrapped {
			// Let the marks age past the margin: one computation then
			// covers them.
			if err := sleep(ctx, (report.MarkMarginSeconds+1)*time.Second); err != nil {
				return st, err
			}
			if startedAt, err = p.serverNow(ctx); err != nil {
				return st, err
			}
		}
	}
	dirty, err := report.DirtyDays(ctx, p.db, p.cfg.Database)
	if err != nil {
		return st, err
	}
	var days []int64
	since := make(map[int64]int64, len(dirty))
	for _, d := range dirty {
		first, ok := p.dirtySince[d.Day]
		if !ok {
			first = startedAt
		}
		if d.MarkedAt < startedAt-report.MarkMarginSeconds || time.Duration(startedAt-first)*time.Second >= p.cfg.MaxDelay {
			days = append(days, d.Day)
		} else {
			since[d.Day] = first
			st.Waiting++
		}
	}
	p.dirtySince = since
	for i := 0; i < len(days); {
		j := i + 1
		for j < len(days) && days[j] == days[j-1]+1 && j-i < p.cfg.MaxDays {
			j++
		}
		if err := report.ComputeDays(ctx, p.db, p.db, p.cfg.Database, days[i], days[j-1], p.version(), startedAt); err != nil {
			return st, fmt.Errorf("projector: %w", err)
		}
		st.Days += j - i
		st.Statements++
		i = j
	}
	st.DaysDone = time.Since(start)
	if !p.cfg.AiringsOnly {
		if err := p.weeks(ctx, startedAt, &st); err != nil {
			return st, err
		}
	}
	st.Duration = time.Since(start)
	return st, nil
}

// weeks computes the accountability projection's dirty weeks, after the
// days: a week reads its airings' figures from the airing projection.
func (p *Projector) weeks(ctx context.Context, startedAt int64, st *PassStats) error {
	states, err := accountability.Weeks(ctx, p.db, p.cfg.Database)
	if err != nil {
		return fmt.Errorf("projector: %w", err)
	}
	var dirty []accountability.WeekState
	for _, w := range states {
		if w.Dirty(startedAt, int64(p.cfg.Refresh/time.Second)) {
			dirty = append(dirty, w)
		}
	}
	const weekMS = 7 * dayMS
	for i := 0; i < len(dirty); {
		j := i + 1
		for j < len(dirty) && dirty[j].Week == dirty[j-1].Week+weekMS && j-i < p.cfg.MaxWeeks {
			j++
		}
		c := accountability.Computation{First: dirty[i].Week, Last: dirty[j-1].Week, Version: p.version(), StartedAt: startedAt, DaysVersion: map[int64]uint64{}}
		for _, w := range dirty[i:j] {
			c.DaysVersion[w.Week] = w.CurrentDaysVersion
		}
		if err := accountability.ComputeWeeks(ctx, p.db, p.cfg.Database, c); err != nil {
			return fmt.Errorf("projector: %w", err)
		}
		st.Weeks += j - i
		st.WeekComputations++
		i = j
	}
	return nil
}

// CatchUp runs passes until no day is dirty (when nothing is being
// loaded meanwhile).
func (p *Projector) CatchUp(ctx context.Context) error {
	for {
		st, err := p.Pass(ctx)
		if err != nil {
			return err
		}
		if st.Days == 0 && st.Waiting == 0 && st.Weeks == 0 {
			return nil
		}
		if st.Days == 0 && st.Weeks == 0 {
			if err := sleep(ctx, 250*time.Millisecond); err != nil {
				return err
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// Run runs passes until ctx is done, pausing Interval after a pass that
// had nothing to do, and retrying after a failure.
func (p *Projector) Run(ctx context.Context) error {
	if !p.cfg.AiringsOnly {
		if err := accountability.DropStaleScratch(ctx, p.db, p.cfg.Database); err != nil {
			p.cfg.Log.Warn("projector: could not drop stale scratch tables", "error", err)
		}
	}
	for ctx.Err() == nil {
		st, err := p.Pass(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			p.cfg.Log.Warn("projector: pass failed; retrying", "error", err)
		case st.Days > 0 || st.Weeks > 0:
			p.cfg.Log.Info("projector: computed", "days", st.Days, "statements", st.Statements, "weeks", st.Weeks, "week_computations", st.WeekComputations,
				"waiting", st.Waiting, "bootstrapped", st.Bootstrapped, "duration", st.Duration)
			if st.Days > 0 {
				continue
			}
		}
		pause := p.cfg.Interval
		if st.Waiting > 0 {
			pause = min(pause, time.Second)
		}
		_ = sleep(ctx, pause)
	}
	return nil
}

// version is a new computation's version: increasing, from the clock.
func (p *Projector) version() uint64 {
	v := max(uint64(time.Now().UnixMicro()), p.last+1)
	p.last = v
	return v
}

func (p *Projector) serverNow(ctx context.Context) (int64, error) {
	t, err := report.ServerNow(ctx, p.db)
	if err != nil {
		return 0, fmt.Errorf("projector: %w", err)
	}
	return t, nil
}

// bootstrap marks every day that holds data (with the reach of a day's
// computation around it), for a projection never computed.
func (p *Projector) bootstrap(ctx context.Context) (bool, error) {
	ident, _ := chsql.Ident(p.cfg.Database)
	rows, err := p.db.Query(ctx, "SELECT toInt64(count()) AS n, toInt64(min(occurred_at_ms)) AS lo, toInt64(max(occurred_at_ms)) AS hi FROM "+ident+".events"+
		" WHERE kind IN ('call.received', 'call.answered', 'call.abandoned', 'order.placed', 'order.cancelled')"+
		" UNION ALL SELECT toInt64(count()) AS n, toInt64(min(aired_at_ms)) AS lo, toInt64(max(greatest(aired_at_ms, aired_until_ms))) AS hi FROM "+ident+".airings")
	if err != nil {
		return false, fmt.Errorf("projector: bootstrap: %w", err)
	}
	var touches []Touch
	for _, r := range rows {
		n, err1 := toInt(r["n"])
		lo, err2 := toInt(r["lo"])
		hi, err3 := toInt(r["hi"])
		if err := errors.Join(err1, err2, err3); err != nil {
			return false, fmt.Errorf("projector: bootstrap: %w", err)
		}
		if n > 0 {
			touches = append(touches, Touch{Kind: "call.received", At: lo}, Touch{Kind: "call.received", At: hi})
		}
	}
	if len(touches) == 0 {
		return false, nil
	}
	lo, hi := touches[0].At, touches[0].At
	for _, t := range touches {
		lo, hi = min(lo, t.At), max(hi, t.At)
	}
	var all []Touch
	for at := lo; at <= hi+dayMS; at += dayMS {
		all = append(all, Touch{Kind: "call.received", At: min(at, hi)})
	}
	if err := Mark(ctx, p.db, p.cfg.Database, all); err != nil {
		return false, fmt.Errorf("projector: bootstrap: %w", err)
	}
	return true, nil
}
