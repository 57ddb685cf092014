package chaos

import (
	"context"
	"fmt"
	"github.com/airtally/airtally/internal/flowwatch"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/airtally/airtally/producers/publisher"
)

// Result is the account of one run.
type Result struct {
	Seed       uint64
	SyncAlways bool
	// Faulting is how long faults were injected.
	Faulting time.Duration
	// Faults counts the faults injected by kind (overlapping ones
	// included); Overlaps counts the steps that ran two at once.
	Faults   map[Fault]int
	Overlaps int
	// Schedule is every step played, in order: the same Seed replays it.
	Schedule []Step

	// Acknowledged counts the events whose Publish returned a receipt
	// (acked, duplicate or spooled) or that a gateway answer listed as
	// accepted; ByStatus and BySource break it down.
	Acknowledged int
	ByStatus     map[publisher.Status]int
	BySource     map[string]int
	// PresentOnce, Lost and CountedTwice classify the acknowledged events
	// by their rows in events through FINAL (1, 0, more); LostIDs and
	// TwiceIDs are a few of them.
	PresentOnce, Lost, CountedTwice int
	LostIDs, TwiceIDs               []string
	// PhysDup counts events stored more than once before merges (ExtraRows
	// rows beyond the first): the at-least-once copies FINAL removes.
	PhysDup, ExtraRows int
	// Unacknowledged counts distinct stored ids no producer got an
	// acknowledgement for (e.g. a resent request abandoned when the load
	// stopped).
	Unacknowledged int
	// HTTPResends counts gateway requests sent again (no answer, or 503).
	HTTPResends int
	// SlowestPublish is the longest Publish call, of SlowestSource.
	SlowestPublish time.Duration
	SlowestSource  string
	// Stalls are the pauses of a second or more in the flow of loaded
	// rows, longest first.
	Stalls []flowwatch.Stall
	// Inversions counts, per source, rows in the stream before the row of
	// their predecessor in the source's sequence; SequenceGaps counts the
	// gaps and repeats in a source's sequence numbers (FINAL).
	Inversions, SequenceGaps map[string]int
	// Problems lists what else makes the run fail: the flow did not resume
	// or settle, a producer failed, a fault did not bite, a sequence of a
	// library-published source is incomplete or out of order.
	Problems []string
	// Exits lists the processes of the chain that exited by themselves
	// (not killed by a fault), each failing the run.
	Exits []Exit
	// Unsettled is set when the spools and the consumer did not drain
	// before the run gave up waiting (a Problem says what was left): its
	// Lost events may still have been on their way.
	Unsettled bool
	// DetectorRows counts the detector's own events loaded (FINAL): not
	// part of the account, shown as a sign of its life.
	DetectorRows uint64
}

// Exit is a process that exited by itself.
type Exit struct {
	// Process is its name (loader, gateway, detector, airtally-chaos-2).
	Process string
	// At is when, from the start of the run.
	At time.Duration
	// How is how it ended ("exit status 1"); LogTail the end of its log.
	How, LogTail string
}

func (e Exit) String() string {
	return fmt.Sprintf("%s, at %.0f s (%s)", e.Process, e.At.Seconds(), e.How)
}

// OK reports whether nothing acknowledged was lost or counted twice, no
// process exited by itself and nothing else went wrong.
func (r *Result) OK() bool { return len(r.Failures()) == 0 }

// Failures names what made the run fail, shortest first in kind: exits,
// losses, events counted twice, then the other problems' first lines.
func (r *Result) Failures() []string {
	var out []string
	for _, e := range r.Exits {
		out = append(out, "a process exited by itself: "+e.String())
	}
	switch {
	case r.Lost > 0 && r.Unsettled:
		out = append(out, fmt.Sprintf("%d acknowledged events not in ClickHouse when the run stopped settling (lost, or still on their way)", r.Lost))
	case r.Lost > 0:
		out = append(out, fmt.Sprintf("%d acknowledged events lost", r.Lost))
	}
	if r.CountedTwice > 0 {
		out = append(out, fmt.Sprintf("%d events counted twice", r.CountedTwice))
	}
	for _, p := range r.Problems {
		first, _, _ := strings.Cut(p, "\n")
		if len(first) > 160 {
			first = first[:160] + "…"
		}
		out = append(out, first)
	}
	return out
}

// LongestStall is the longest pause in the flow of loaded rows.
func (r *Result) LongestStall() flowwatch.Stall {
	if len(r.Stalls) == 0 {
		return flowwatch.Stall{}
	}
	return r.Stalls[0]
}

// Write prints the account.
func (r *Result) Write(w io.Writer) error {
	var b strings.Builder
	total := 0
	var faults []string
	for _, f := range Faults {
		faults = append(faults, fmt.Sprintf("%s %d", f, r.Faults[f]))
		total += r.Faults[f]
	}
	verdict := "OK: nothing acknowledged was lost or counted twice, and no process exited by itself"
	if f := r.Failures(); len(f) > 0 {
		verdict = "FAILED: " + strings.Join(f, "; ")
	}
	fmt.Fprintf(&b, "chaos account: sync %s, seed %d, faults injected for %s\n", SyncName(r.SyncAlways), r.Seed, r.Faulting.Round(time.Second))
	fmt.Fprintf(&b, "  faults injected:          %d in %d steps, %d steps with two at once: %s\n", total, len(r.Schedule), r.Overlaps, strings.Join(faults, ", "))
	fmt.Fprintf(&b, "  events acknowledged:      %d (%s), by source %s\n", r.Acknowledged, statusString(r.ByStatus), mapString(r.BySource))
	fmt.Fprintf(&b, "  present once (FINAL):     %d\n", r.PresentOnce)
	fmt.Fprintf(&b, "  lost:                     %d %v\n", r.Lost, r.LostIDs)
	fmt.Fprintf(&b, "  counted twice (FINAL):    %d %v\n", r.CountedTwice, r.TwiceIDs)
	fmt.Fprintf(&b, "  physically duplicated:    %d events with more than one stored row before merge (%d extra rows)\n", r.PhysDup, r.ExtraRows)
	fmt.Fprintf(&b, "  stored, not acknowledged: %d\n", r.Unacknowledged)
	fmt.Fprintf(&b, "  gateway requests resent:  %d\n", r.HTTPResends)
	fmt.Fprintf(&b, "  slowest Publish call:     %.2fs (%s)\n", r.SlowestPublish.Seconds(), r.SlowestSource)
	var stalls []string
	for _, s := range r.Stalls[:min(3, len(r.Stalls))] {
		stalls = append(stalls, s.String())
	}
	fmt.Fprintf(&b, "  longest stalls in loading: %s\n", strings.Join(stalls, "; "))
	fmt.Fprintf(&b, "  stream-order inversions:  %s; sequence gaps/repeats: %s\n", mapString(r.Inversions), mapString(r.SequenceGaps))
	fmt.Fprintf(&b, "  detector events loaded:   %d\n", r.DetectorRows)
	for _, e := range r.Exits {
		fmt.Fprintf(&b, "  exited by itself: %s; its log ends:\n%s\n", e, e.LogTail)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  problem: %s\n", p)
	}
	fmt.Fprintf(&b, "  verdict: %s\n", verdict)
	_, err := io.WriteString(w, b.String())
	return err
}

func mapString(m map[string]int) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func statusString(m map[publisher.Status]int) string {
	s := map[string]int{}
	for k, v := range m {
		s[string(k)] = v
	}
	return mapString(s)
}

// account settles and fills res in: every acknowledged event classified,
// the sequences checked, the faults checked to have bitten.
func (r *runner) account(ctx context.Context, res *Result) error {
	l := r.load
	l.mu.Lock()
	acked := slices.Clone(l.sent)
	res.BySource = copyMap(l.counts)
	res.ByStatus = map[publisher.Status]int{}
	for k, v := range l.status {
		res.ByStatus[k] = v
	}
	res.SlowestPublish, res.SlowestSource = l.slowCall, l.slowSrc
	res.HTTPResends = l.httpResends
	for _, e := range l.errs {
		res.Problems = append(res.Problems, "producer: "+e)
	}
	l.mu.Unlock()
	for k, v := range r.faults {
		res.Faults[k] = v
	}
	res.Acknowledged = len(acked)

	if !r.cfg.ClickHouse.Running() {
		// A repair that failed (the flow did not resume) can leave it down:
		// the account is still owed.
		if err := r.restartClickHouse(); err != nil {
			return fmt.Errorf("chaos: start ClickHouse for the account: %w", err)
		}
	}
	if s := r.settle(ctx, acked); s != "" {
		res.Unsettled = true
		res.Problems = append(res.Problems, "did not settle: "+s)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("chaos: stopped while settling: %w", ctx.Err())
	}
	raw, err := r.in.idCounts(ctx, "")
	if err != nil {
		return err
	}
	counted, err := r.in.idCounts(ctx, " FINAL")
	if err != nil {
		return err
	}
	ackSet := make(map[uuid.UUID]bool, len(acked))
	for _, id := range acked {
		if ackSet[id] {
			res.Problems = append(res.Problems, fmt.Sprintf("harness bug: event %s acknowledged twice", id))
		}
		ackSet[id] = true
		switch n := counted[id]; {
		case n == 0:
			res.Lost++
			res.LostIDs = append(res.LostIDs, id.String())
		case n == 1:
			res.PresentOnce++
		default:
			res.CountedTwice++
			res.TwiceIDs = append(res.TwiceIDs, id.String())
		}
	}
	res.LostIDs, res.TwiceIDs = head(res.LostIDs), head(res.TwiceIDs)
	for id, n := range raw {
		if n > 1 {
			res.PhysDup++
			res.ExtraRows += int(n - 1)
		}
		if !ackSet[id] {
			res.Unacknowledged++
		}
	}
	if err := r.checkSequences(ctx, res); err != nil {
		return err
	}
	if res.DetectorRows, err = r.in.detectorCount(ctx); err != nil {
		return err
	}
	// The faults bit.
	if res.Faults[FaultProducerCut] > 0 && res.ByStatus[publisher.StatusSpooled] == 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("a producer was cut from NATS %d times yet nothing was spooled: the fault did not bite", res.Faults[FaultProducerCut]))
	}
	if res.Faults[FaultGatewayKill] > 0 && res.HTTPResends == 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("the gateway was killed %d times yet no request went unanswered: the fault did not bite", res.Faults[FaultGatewayKill]))
	}
	return nil
}

// checkSequences requires each library-published source's rows (FINAL)
// to carry exactly the numbers 1..n of its acknowledged events, in stream
// order. The gateway's source is only counted: a resend after a gateway
// kill gives already published events new numbers (JetStream drops the
// copies, leaving gaps), and PublishBatch may land an event whose ack
// failed after a later one.
func (r *runner) checkSequences(ctx context.Context, res *Result) error {
	rows, err := r.in.sourceRows(ctx)
	if err != nil {
		return err
	}
	bySource := map[string][]sourceRow{}
	for _, row := range rows {
		bySource[row.source] = append(bySource[row.source], row)
	}
	res.Inversions, res.SequenceGaps = map[string]int{}, map[string]int{}
	for src, rows := range bySource {
		want, sent := res.BySource[src]
		if !sent {
			res.Problems = append(res.Problems, fmt.Sprintf("rows of source %s, which sent nothing", src))
			continue
		}
		strict := src != gatewaySource.Key()
		if strict && len(rows) != want {
			res.Problems = append(res.Problems, fmt.Sprintf("source %s: %d rows, want %d", src, len(rows), want))
		}
		for i, row := range rows {
			if i > 0 && row.sourceSeq != rows[i-1].sourceSeq+1 || i == 0 && row.sourceSeq != 1 {
				res.SequenceGaps[src]++
			}
			if i > 0 && row.streamSq < rows[i-1].streamSq {
				res.Inversions[src]++
			}
		}
		if strict && res.SequenceGaps[src] > 0 {
			res.Problems = append(res.Problems, fmt.Sprintf("source %s (published with Publish): %d gaps or repeats in its sequence", src, res.SequenceGaps[src]))
		}
		if strict && res.Inversions[src] > 0 {
			res.Problems = append(res.Problems, fmt.Sprintf("source %s (published with Publish): %d events in the stream before their predecessor", src, res.Inversions[src]))
		}
	}
	return nil
}

func copyMap(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func head(ss []string) []string {
	slices.Sort(ss)
	return ss[:min(len(ss), 5)]
}
