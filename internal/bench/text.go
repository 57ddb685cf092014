package bench

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/airtally/airtally/consumers/loader"
)

// WriteText writes the report as a table, the sync settings side by side,
// followed by notes on what each figure measures.
func (r Report) WriteText(w io.Writer) error {
	m, p := r.Machine, r.Params
	var b strings.Builder
	fmt.Fprintf(&b, "airtally bench, %s UTC, %.0f s\n", r.Started.Format("2006-01-02 15:04"), r.Seconds)
	cpu := ""
	if m.CPU != "" {
		cpu = ", " + m.CPU
	}
	load := ""
	if m.LoadAverage != "" {
		load = ", load average at start " + m.LoadAverage
	}
	fmt.Fprintf(&b, "machine: %d cores (GOMAXPROCS %d)%s, %s%s\n", m.Cores, m.GOMAXPROCS, cpu, m.OS, load)
	fmt.Fprintf(&b, "software: Go %s, NATS server %s (embedded, file store), ClickHouse %s (local server)\n", m.GoVersion, m.NATSVersion, m.ClickHouseVersion)
	fmt.Fprintf(&b, "stores in: %s\n\n", m.Dir)

	var t table
	row := func(label string, f func(Result) string) {
		cells := []string{label}
		for _, res := range r.Results {
			cells = append(cells, f(res))
		}
		t.rows = append(t.rows, cells)
	}
	head := func(title string) { t.rows = append(t.rows, []string{title}) }
	row("JetStream sync setting", func(res Result) string { return res.Description })
	head(fmt.Sprintf("Raw limits, %s events each", count(p.Events)))
	row(fmt.Sprintf("  JetStream publish alone (async, window %d)", p.Window), func(res Result) string { return rate(res.RawPublish.PerSecond, "ev/s") })
	row(fmt.Sprintf("  JetStream fetch alone (ordered consumer, pulls of %d)", loader.DefaultReplayPullMessages), func(res Result) string { return rate(res.RawFetch.PerSecond, "msg/s") })
	row(fmt.Sprintf("  ClickHouse insert alone (batches of %d)", p.InsertBatch), func(res Result) string { return rate(res.RawInsert.PerSecond, "rows/s") })
	row(fmt.Sprintf("  ClickHouse insert alone (batches of %s, the replay's)", count(p.ReplayBatch)), func(res Result) string {
		return rate(res.RawInsertReplayBatch.PerSecond, "rows/s")
	})
	head(fmt.Sprintf("End to end, %s events: publisher → JetStream → loader → queryable", count(p.Events)))
	row("  sustained throughput", func(res Result) string { return rate(res.EndToEnd.PerSecond, "ev/s") })
	row(fmt.Sprintf("  ÷ slower raw limit (target ≥ %.0f%%)", 100*TargetRatio), func(res Result) string {
		return fmt.Sprintf("%.0f%% of %s: %s", 100*res.EndToEnd.Ratio, res.EndToEnd.Limit, met(res.EndToEnd.TargetMet))
	})
	row("  all acked / all queryable after", func(res Result) string {
		return fmt.Sprintf("%.2f s / %.2f s", res.EndToEnd.PublishSeconds, res.EndToEnd.Seconds)
	})
	row("  loaded (count FINAL) / spooled", func(res Result) string {
		return fmt.Sprintf("%s / %d", count(int(res.EndToEnd.Loaded)), res.EndToEnd.Spooled)
	})
	row("  loader: batches / redelivered / inserting", func(res Result) string {
		l := res.EndToEnd.Loader
		return fmt.Sprintf("%d / %d / %.1f s", l.Batches, l.Redelivered, l.InsertSeconds)
	})
	head(fmt.Sprintf("Replay, %s events in the stream → a fresh database (batches of %s)", count(p.Events), count(p.ReplayBatch)))
	row("  replay rate", func(res Result) string { return rate(res.Replay.PerSecond, "ev/s") })
	row(fmt.Sprintf("  ÷ raw fetch (target ≥ %.0f%%)", 100*ReplayTargetRatio), func(res Result) string {
		return fmt.Sprintf("%.0f%%: %s", 100*res.Replay.Ratio, met(res.Replay.TargetMet))
	})
	row("  ÷ raw insert in batches of the replay's size", func(res Result) string {
		return fmt.Sprintf("%.0f%%", 100*res.Replay.PerSecond/res.RawInsertReplayBatch.PerSecond)
	})
	row("  batches / waiting for inserts", func(res Result) string {
		return fmt.Sprintf("%d / %.1f s", res.Replay.Batches, res.Replay.InsertSeconds)
	})
	row("  parts created / active after / merges (rows)", func(res Result) string {
		return fmt.Sprintf("%d / %d / %d (%s)", res.Replay.PartsCreated, res.Replay.ActiveParts, res.Replay.Merges, count(int(res.Replay.MergedRows)))
	})
	row("  peak memory (process / ClickHouse)", func(res Result) string {
		return mib(res.Replay.Peak.Process) + " / " + mib(res.Replay.Peak.ClickHouse)
	})
	head("Processor time per event while it ran: this process (NATS, publishers, loader) / ClickHouse server")
	perEvent := func(tp Throughput) string {
		proc, ch := tp.CPU.PerEvent(tp.Events)
		return fmt.Sprintf("%.1f / %.1f µs", proc, ch)
	}
	row("  raw publish", func(res Result) string { return perEvent(res.RawPublish) })
	row("  raw fetch", func(res Result) string { return perEvent(res.RawFetch) })
	row("  raw insert / in the replay's batches", func(res Result) string {
		return perEvent(res.RawInsert) + ", " + perEvent(res.RawInsertReplayBatch)
	})
	row("  end to end", func(res Result) string { return perEvent(res.EndToEnd.Throughput) })
	row("  replay", func(res Result) string { return perEvent(res.Replay.Throughput) })
	row(fmt.Sprintf("  bound at that cost on %d cores: end to end / replay", m.Cores), func(res Result) string {
		return count(int(costBound(m.Cores, res.EndToEnd.Throughput))) + " / " + rate(costBound(m.Cores, res.Replay.Throughput), "ev/s")
	})
	row("  bound by the raw costs alone: end to end (publish + fetch + insert)", func(res Result) string {
		return fmt.Sprintf("%s: %.0f%% of %s", rate(res.EndToEnd.CostBound, "ev/s"), 100*res.EndToEnd.CostBound/slower(res), res.EndToEnd.Limit)
	})
	row("  bound by the raw costs alone: replay (fetch + insert)", func(res Result) string {
		return fmt.Sprintf("%s: %.0f%% of raw fetch", rate(res.Replay.CostBound, "ev/s"), 100*res.Replay.CostBound/res.RawFetch.PerSecond)
	})
	head(fmt.Sprintf("Latency at %s ev/s for %gs: publish call → visible", count(p.Rate), p.DurationSeconds))
	row("  achieved rate", func(res Result) string { return rate(res.Latency.AchievedRate, "ev/s") })
	row("  p50", func(res Result) string { return ms(res.Latency.P50Millis) })
	row("  p99 (target < 1 s at 1,000 ev/s)", func(res Result) string {
		return ms(res.Latency.P99Millis) + ": " + met(res.Latency.TargetMet)
	})
	row("  max", func(res Result) string { return ms(res.Latency.MaxMillis) })
	row("  loader: batches / redelivered", func(res Result) string {
		return fmt.Sprintf("%d / %d", res.Latency.Loader.Batches, res.Latency.Loader.Redelivered)
	})
	peakNote := "reset at each phase's start"
	if !r.PeaksPerPhase {
		peakNote = "since the run started: resetting failed"
	}
	head(fmt.Sprintf("Peak memory while the pipeline runs (VmHWM, %s)", peakNote))
	row("  this process: NATS + publishers + loader", func(res Result) string { return mib(res.Peak.Process) })
	row("  ClickHouse server", func(res Result) string { return mib(res.Peak.ClickHouse) })
	row("  end-to-end phase (process / ClickHouse)", func(res Result) string {
		return mib(res.EndToEnd.Peak.Process) + " / " + mib(res.EndToEnd.Peak.ClickHouse)
	})
	row("  latency phase (process / ClickHouse)", func(res Result) string {
		return mib(res.Latency.Peak.Process) + " / " + mib(res.Latency.Peak.ClickHouse)
	})
	t.write(&b)

	fmt.Fprintf(&b, "\nNotes\n")
	notes := []string{
		fmt.Sprintf("Raw publish: %s pre-encoded events (the same mix and sizes as real ones) published asynchronously with at most %d awaiting their ack, until every ack arrived.", count(p.Events), p.Window),
		fmt.Sprintf("Raw fetch: %s events stored first, then read back with an ordered consumer (the one replay uses, pulls of %d messages), nothing done with them.", count(p.Events), loader.DefaultReplayPullMessages),
		fmt.Sprintf("Replay: %s events stored first, then airtally replay's code (loader.Replay: read, decode and insert overlapped, one insert in flight, %s messages per insert) into a fresh database, until it returned with every event in ClickHouse (checked with count() FINAL). Merges are ClickHouse's own counters over the phase.", count(p.Events), count(p.ReplayBatch)),
		fmt.Sprintf("Raw insert: the same events as rows of the events table, PrepareBatch naming the columns, %d rows per insert, one insert at a time.", p.InsertBatch),
		fmt.Sprintf("End to end: %d sources, each its own publisher and NATS connection, build and PublishBatch %d events at a time; one loader (batch %d, flush interval %gms) inserts; the clock stops at the first count() that reaches the total (polled every %s).", p.Sources, p.PublishBatch, p.LoaderBatch, p.FlushMillis, countPoll),
		fmt.Sprintf("Latency: one source publishes what is due every %s through PublishBatch; a poller reads max(source_seq) every %gms. Latency runs from the PublishBatch call that carried an event to the return of the first poll that saw it, so the poll interval (plus the poll's own time) bounds the resolution.", pacerTick, p.PollMillis),
		fmt.Sprintf("Loader flush interval: %gms in both loader phases (the loader's default is 1s). A batch waits at most that long for more events, so at 1,000 ev/s it inserts about every %gms: lower latency for more and smaller inserts, i.e. more parts for ClickHouse to merge. At high rates batches fill (%d events) before the interval ends.", p.FlushMillis, p.FlushMillis, p.LoaderBatch),
		"Peak memory: VmHWM of this process (embedded NATS server, publishers, loader, poller) and of the ClickHouse server over the end-to-end and latency phases, reset at each phase's start. The raw phases' peaks (in --format json) include the benchmark's pre-built events or rows.",
		"Processor time: user and system time of this process and of the ClickHouse server (/proc/PID/stat) over each phase's timed part, divided by its events; ClickHouse's includes its background merges. The bound is the machine's cores divided by the sum: the rate at which that work would use every core, which no overlap can exceed. The bounds by the raw costs add up what one event costs in the raw phases alone (one publish, one fetch, one insert; no decoding, no read-back, no acks): no pipeline doing at least that work on these cores can be faster, whatever its design.",
		"Loader redeliveries are messages that came back after a delivery that was never acknowledged (AckWait is 2m by default); a long tail between all acked and all queryable with redeliveries points at them.",
	}
	for _, n := range notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// table lays out rows: the first column left-aligned, the others right-
// aligned; a row of one cell is a heading.
type table struct{ rows [][]string }

func (t table) write(b *strings.Builder) {
	var widths []int
	for _, r := range t.rows {
		if len(r) == 1 {
			continue
		}
		for i, c := range r {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range t.rows {
		if len(r) == 1 {
			b.WriteString(r[0] + "\n")
			continue
		}
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("   " + pad + c)
			}
		}
		b.WriteString("\n")
	}
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func rate(v float64, unit string) string { return count(int(v+0.5)) + " " + unit }

func ms(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

func mib(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// count writes n with thousands separators.
func count(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// slower is the slower raw limit of the end-to-end ratio.
func slower(res Result) float64 {
	if res.EndToEnd.Limit == "insert" {
		return res.RawInsert.PerSecond
	}
	return res.RawPublish.PerSecond
}
