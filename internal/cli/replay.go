package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sys/unix"

	"github.com/airtally/airtally/consumers/loader"
	"github.com/airtally/airtally/internal/chsql"
)

// replayFlags are the replay command's own flags besides --into.
type replayFlags struct {
	fromStart bool
	batchSize int
}

func (f *replayFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.fromStart, "from-start", false, "replay the whole stream even into a database that holds events (default: resume after its highest stream sequence)")
	fs.IntVar(&f.batchSize, "batch-size", loader.DefaultReplayBatchSize, "messages per insert")
}

// config completes cfg with the flags and a progress display on w.
func (f *replayFlags) config(cfg loader.ReplayConfig, w io.Writer) (loader.ReplayConfig, *replayProgress) {
	cfg.FromStart, cfg.BatchSize = f.fromStart, f.batchSize
	p := newReplayProgress(w)
	cfg.Progress, cfg.ProgressInterval = p.update, p.interval
	return cfg, p
}

// replayProgress shows a replay's progress: on a terminal, one line
// rewritten in place about every 250ms; otherwise a line every 5s.
type replayProgress struct {
	w        io.Writer
	tty      bool
	interval time.Duration
	mu       sync.Mutex
	shown    bool // a line is on the terminal, not ended
	said     bool // the resume was announced
}

func newReplayProgress(w io.Writer) *replayProgress {
	p := &replayProgress{w: w, tty: isTerminal(w), interval: 5 * time.Second}
	if p.tty {
		p.interval = 250 * time.Millisecond
	}
	return p
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func (p *replayProgress) update(pr loader.ReplayProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr.ResumedAfter > 0 && !p.said {
		p.said = true
		p.clear()
		fmt.Fprintf(p.w, "the database holds events up to stream sequence %d: resuming after it (--from-start replays everything)\n", pr.ResumedAfter)
	}
	line := progressLine(pr)
	if !p.tty {
		if !pr.Final {
			fmt.Fprintln(p.w, "replay: "+line)
		}
		return
	}
	fmt.Fprintf(p.w, "\r\x1b[Kreplay: %s", line)
	p.shown = true
	if pr.Final {
		p.clear()
	}
}

// clear ends the line being rewritten, if any.
func (p *replayProgress) clear() {
	if p.shown {
		fmt.Fprintln(p.w)
		p.shown = false
	}
}

// done ends the progress display.
func (p *replayProgress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
}

// progressLine is "1,234,567 / 20,000,000 messages (6.2%), 98,765/s, 3m12s left".
func progressLine(pr loader.ReplayProgress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s / %s messages", thousands(pr.Done), thousands(pr.Total))
	if pr.Total > 0 {
		fmt.Fprintf(&b, " (%.1f%%)", 100*float64(pr.Done)/float64(pr.Total))
	}
	fmt.Fprintf(&b, ", %s/s", thousands(uint64(pr.Rate+0.5)))
	if pr.Remaining > 0 {
		fmt.Fprintf(&b, ", %s left", pr.Remaining.Round(time.Second))
	}
	if pr.Invalid > 0 {
		fmt.Fprintf(&b, ", %s invalid skipped", thousands(pr.Invalid))
	}
	return b.String()
}

// writeReplaySummary writes what a replay did, and the parts of the events
// table it left (merges still running take them down).
func writeReplaySummary(ctx context.Context, w io.Writer, conn driver.Conn, stream, db string, s loader.ReplayStats, replayErr error) {
	verb := "replayed"
	if replayErr != nil {
		verb = "stopped replaying"
	}
	fmt.Fprintf(w, "%s stream %s up to sequence %d into %s", verb, stream, s.LastSeq, db)
	if s.ResumedAfter > 0 {
		fmt.Fprintf(w, " (resumed after sequence %d)", s.ResumedAfter)
	}
	fmt.Fprintf(w, ": %d messages, %d loaded, %d invalid (in the dead-letter stream), %d batches\n",
		s.Messages, s.Loaded, s.Invalid, s.Batches)
	rate := 0.0
	if secs := s.Elapsed.Seconds(); secs > 0 {
		rate = float64(s.Messages) / secs
	}
	fmt.Fprintf(w, "  elapsed %s, %s messages/s, %.1f s waiting for inserts; %d parts created", s.Elapsed.Round(10*time.Millisecond), thousands(uint64(rate+0.5)), s.InsertSeconds, s.Parts)
	if n, err := activeParts(ctx, conn, db); err == nil {
		fmt.Fprintf(w, ", %d active now", n)
	}
	fmt.Fprintln(w)
	if replayErr != nil {
		fmt.Fprintf(w, "  run the same command again to resume: every event is loaded once\n")
	}
}

// activeParts counts the active parts of db.events.
func activeParts(ctx context.Context, conn driver.Conn, db string) (uint64, error) {
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var n uint64
	err := conn.QueryRow(qctx, "SELECT count() FROM system.parts WHERE database = "+chsql.String(db)+" AND table = 'events' AND active").Scan(&n)
	return n, err
}

// thousands writes n with thousands separators.
func thousands(n uint64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
