package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Fault is a kind of fault the injector plays.
type Fault string

// The faults. Each is repaired by the injector after a random while.
const (
	// FaultLoaderKill kills the loader process with SIGKILL and starts it
	// again; its peer in this process takes over meanwhile.
	FaultLoaderKill Fault = "loader kill -9"
	// FaultNATSKill kills one NATS node's process with SIGKILL (its page
	// cache survives, its memory does not) and starts it again on the same
	// store; the next NATS kill waits until it has caught up.
	FaultNATSKill Fault = "NATS node kill -9"
	// FaultGatewayKill kills the HTTP gateway's process with SIGKILL and
	// starts it again on the same spool.
	FaultGatewayKill Fault = "gateway kill -9"
	// FaultClickHouseStop stops ClickHouse (SIGTERM) and starts it again.
	FaultClickHouseStop Fault = "ClickHouse stopped"
	// FaultClickHouseKill kills ClickHouse with SIGKILL and starts it again.
	FaultClickHouseKill Fault = "ClickHouse kill -9"
	// FaultProducerCut cuts a publisher's connection to NATS (it spools).
	FaultProducerCut Fault = "producer cut from NATS"
	// FaultSlowClickHouse delays every write of the in-process loader to
	// ClickHouse beyond the consumer's AckWait.
	FaultSlowClickHouse Fault = "slow ClickHouse"
	// FaultLoaderStartCHDown is a start-up fault: ClickHouse is stopped,
	// the loader process killed with SIGKILL and started again at once,
	// while ClickHouse is down; ClickHouse comes back later. The loader
	// must wait for it, not exit.
	FaultLoaderStartCHDown Fault = "loader restarted while ClickHouse is down"
	// FaultPowerCut is the morning after a power cut: every process of
	// the chain (the three NATS nodes, ClickHouse, the gateway, the
	// loader, the detector) killed with SIGKILL at once, then started
	// again one by one in a random order, with random gaps. Each must wait
	// for what it needs, not exit. (A kill keeps the page cache: this is a
	// power cut of the processes, not of the machines' memory.)
	FaultPowerCut Fault = "power cut (all restarted in random order)"
)

// Faults lists every fault in the order the account prints them.
var Faults = []Fault{FaultLoaderKill, FaultNATSKill, FaultGatewayKill, FaultClickHouseStop, FaultClickHouseKill, FaultProducerCut, FaultSlowClickHouse, FaultLoaderStartCHDown, FaultPowerCut}

// The parts a power cut restarts, in the order of Step.PowerOrder's
// indices.
const (
	partNATS1 = iota
	partNATS2
	partNATS3
	partClickHouse
	partGateway
	partLoader
	partDetector
	powerParts
)

var partNames = [powerParts]string{"NATS-1", "NATS-2", "NATS-3", "ClickHouse", "gateway", "loader", "detector"}

// slowInsertDelay is the slow ClickHouse's delay: more than the loaders'
// AckWait of 2s.
const slowInsertDelay = 2500 * time.Millisecond

// overlapChance is the chance that a step starts a second fault while its
// first is in progress.
const overlapChance = 0.35

// Step is one step of the fault schedule: a fault held for a while,
// perhaps a second fault started and repaired while the first is in
// progress, then a calm.
type Step struct {
	N      int
	Fault  Fault
	Target int // the NATS node (0-based) for FaultNATSKill, else 0
	Hold   time.Duration
	// Overlap, if not empty, starts OverlapAfter the first fault began and
	// is repaired OverlapHold later, before the first fault is.
	Overlap       Fault
	OverlapTarget int
	OverlapAfter  time.Duration
	OverlapHold   time.Duration
	// Calm is the pause after the flow resumed, before the next step.
	Calm time.Duration
	// PowerOrder is the order a power cut restarts the parts in (indices
	// of partNames), PowerGaps the pause before each start.
	PowerOrder [powerParts]int
	PowerGaps  [powerParts]time.Duration
}

func (s Step) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "step %d: %s for %.1fs", s.N, s.label(s.Fault, s.Target), s.Hold.Seconds())
	if s.Overlap != "" {
		fmt.Fprintf(&b, "; overlapping from +%.1fs: %s for %.1fs", s.OverlapAfter.Seconds(), s.label(s.Overlap, s.OverlapTarget), s.OverlapHold.Seconds())
	}
	if s.Fault == FaultPowerCut {
		b.WriteString("; back in order:")
		for i, part := range s.PowerOrder {
			fmt.Fprintf(&b, " +%.1fs %s", s.PowerGaps[i].Seconds(), partNames[part])
		}
	}
	fmt.Fprintf(&b, "; calm %.1fs", s.Calm.Seconds())
	return b.String()
}

func (s Step) label(f Fault, target int) string {
	if f == FaultNATSKill {
		return fmt.Sprintf("%s (%s-%d)", f, clusterName, target+1)
	}
	return string(f)
}

// schedule draws the steps from a seeded RNG: the same seed gives the
// same steps. First faults come from a shuffled deck of every kind,
// reshuffled when empty, so that every kind comes up once per round.
type schedule struct {
	rng   *rand.Rand
	deck  []Fault
	n     int
	nodes int
}

func newSchedule(seed uint64, nodes int) *schedule {
	return &schedule{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), nodes: nodes}
}

func (s *schedule) next() Step {
	if len(s.deck) == 0 {
		s.deck = slices.Clone(Faults)
		s.rng.Shuffle(len(s.deck), func(i, j int) { s.deck[i], s.deck[j] = s.deck[j], s.deck[i] })
	}
	s.n++
	st := Step{N: s.n, Fault: s.deck[0]}
	s.deck = s.deck[1:]
	st.Target = s.target(st.Fault)
	st.Hold = s.hold(st.Fault)
	if st.Fault == FaultPowerCut {
		for i := range st.PowerOrder {
			st.PowerOrder[i] = i
		}
		s.rng.Shuffle(powerParts, func(i, j int) { st.PowerOrder[i], st.PowerOrder[j] = st.PowerOrder[j], st.PowerOrder[i] })
		for i := range st.PowerGaps {
			st.PowerGaps[i] = s.between(100*time.Millisecond, 2500*time.Millisecond)
		}
	}
	var options []Fault
	for _, f := range Faults {
		if compatible(st.Fault, f) {
			options = append(options, f)
		}
	}
	if len(options) > 0 && s.rng.Float64() < overlapChance {
		st.Overlap = options[s.rng.IntN(len(options))]
		st.OverlapTarget = s.target(st.Overlap)
		st.OverlapAfter = s.between(200*time.Millisecond, max(st.Hold/2, 300*time.Millisecond))
		st.OverlapHold = s.hold(st.Overlap)
		st.Hold = max(st.Hold, st.OverlapAfter+st.OverlapHold+200*time.Millisecond)
	}
	st.Calm = s.between(200*time.Millisecond, 1500*time.Millisecond)
	return st
}

// compatible reports whether b may be started while a is in progress: not
// the same kind, and not two faults of ClickHouse at once.
func compatible(a, b Fault) bool {
	if a == FaultPowerCut || b == FaultPowerCut {
		return false // it breaks everything already
	}
	if (a == FaultLoaderStartCHDown && b == FaultLoaderKill) || (b == FaultLoaderStartCHDown && a == FaultLoaderKill) {
		return false // one loader process
	}
	return a != b && !(clickHouseFault(a) && clickHouseFault(b))
}

func clickHouseFault(f Fault) bool {
	return f == FaultClickHouseStop || f == FaultClickHouseKill || f == FaultSlowClickHouse || f == FaultLoaderStartCHDown
}

func (s *schedule) target(f Fault) int {
	if f == FaultNATSKill {
		return s.rng.IntN(s.nodes)
	}
	return 0
}

// hold is how long a fault lasts before it is repaired.
func (s *schedule) hold(f Fault) time.Duration {
	switch f {
	case FaultLoaderKill:
		return s.between(200*time.Millisecond, 1500*time.Millisecond)
	case FaultGatewayKill:
		return s.between(200*time.Millisecond, 2*time.Second)
	case FaultNATSKill, FaultProducerCut:
		return s.between(time.Second, 4*time.Second)
	case FaultClickHouseStop, FaultClickHouseKill:
		return s.between(time.Second, 3*time.Second)
	case FaultSlowClickHouse:
		return s.between(3*time.Second, 6*time.Second)
	case FaultLoaderStartCHDown:
		return s.between(2*time.Second, 5*time.Second)
	case FaultPowerCut:
		return s.between(500*time.Millisecond, 3*time.Second)
	}
	return time.Second
}

// between is a random duration in [lo, hi).
func (s *schedule) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)))
}

// play plays one step: the first fault, the overlapping one if any, the
// repairs. Repairs run even when ctx ends (with a context of their own),
// so that nothing is left broken.
func (r *runner) play(ctx context.Context, st Step) error {
	began := time.Now()
	if err := r.breakIt(st.Fault, st.Target); err != nil {
		return err
	}
	var errs []error
	if st.Overlap != "" {
		_ = sleep(ctx, st.OverlapAfter)
		if err := r.breakIt(st.Overlap, st.OverlapTarget); err != nil {
			errs = append(errs, err)
		} else {
			_ = sleep(ctx, st.OverlapHold)
			errs = append(errs, r.repair(st.Overlap, st.OverlapTarget))
		}
	}
	_ = sleep(ctx, st.Hold-time.Since(began))
	if st.Fault == FaultPowerCut {
		errs = append(errs, r.powerBack(st))
	} else {
		errs = append(errs, r.repair(st.Fault, st.Target))
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// breakIt starts a fault.
func (r *runner) breakIt(f Fault, target int) error {
	r.watch.Mark(string(f))
	r.faults[f]++
	r.log.Info("chaos: fault", "fault", string(f), "target", target)
	switch f {
	case FaultLoaderStartCHDown:
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := r.cfg.ClickHouse.Stop(ctx); err != nil {
			return fmt.Errorf("chaos: %s: %w", f, err)
		}
		r.loaderProc.kill()
		return r.loaderProc.start()
	case FaultPowerCut:
		for _, p := range r.procs() {
			p.kill()
		}
		if err := r.cfg.ClickHouse.Kill(); err != nil {
			return fmt.Errorf("chaos: %s: %w", f, err)
		}
	case FaultLoaderKill:
		r.loaderProc.kill()
	case FaultNATSKill:
		r.nats.kill(target)
	case FaultGatewayKill:
		r.gatewayProc.kill()
	case FaultClickHouseStop:
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := r.cfg.ClickHouse.Stop(ctx); err != nil {
			return fmt.Errorf("chaos: %s: %w", f, err)
		}
	case FaultClickHouseKill:
		if err := r.cfg.ClickHouse.Kill(); err != nil {
			return fmt.Errorf("chaos: %s: %w", f, err)
		}
	case FaultProducerCut:
		r.cuttable.cut(true)
	case FaultSlowClickHouse:
		r.chProxy.delay.Store(int64(slowInsertDelay))
	default:
		return fmt.Errorf("chaos: unknown fault %q", f)
	}
	return nil
}

// repair ends a fault and waits until the broken part is back (a NATS
// node caught up with the cluster, ClickHouse answering).
func (r *runner) repair(f Fault, target int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*r.cfg.FlowTimeout)
	defer cancel()
	defer r.watch.Repaired(string(f))
	switch f {
	case FaultLoaderKill:
		return r.loaderProc.start()
	case FaultNATSKill:
		if err := r.nats.restart(ctx, target); err != nil {
			return err
		}
		// Only one node is ever down: the next may go once this one has
		// caught up.
		return r.waitReplicasCurrent(ctx, fmt.Sprintf("restarting node %d", target+1))
	case FaultGatewayKill:
		if err := r.gatewayProc.start(); err != nil {
			return err
		}
		return waitTCP(ctx, r.gatewayAddr, 30*time.Second)
	case FaultClickHouseStop, FaultClickHouseKill, FaultLoaderStartCHDown:
		if r.cfg.ClickHouse.Running() {
			return nil
		}
		if err := r.restartClickHouse(); err != nil {
			return fmt.Errorf("chaos: restart ClickHouse: %w", err)
		}
	case FaultProducerCut:
		r.cuttable.cut(false)
	case FaultSlowClickHouse:
		r.chProxy.delay.Store(0)
	}
	return nil
}

// powerBack starts every part again after a power cut, in the step's
// order and with its gaps, ClickHouse in the background (it takes
// seconds to start), then waits until the cluster's replicas are current
// and the gateway accepts connections.
func (r *runner) powerBack(st Step) error {
	defer r.watch.Repaired(string(FaultPowerCut))
	ctx, cancel := context.WithTimeout(context.Background(), 2*r.cfg.FlowTimeout)
	defer cancel()
	chDone := make(chan error, 1)
	chStarted := false
	var errs []error
	for i, part := range st.PowerOrder {
		_ = sleep(ctx, st.PowerGaps[i])
		r.log.Info("chaos: power back", "part", partNames[part])
		switch part {
		case partNATS1, partNATS2, partNATS3:
			errs = append(errs, r.nats.nodes[part-partNATS1].start())
		case partClickHouse:
			chStarted = true
			go func() { chDone <- r.restartClickHouse() }()
		case partGateway:
			errs = append(errs, r.gatewayProc.start())
		case partLoader:
			errs = append(errs, r.loaderProc.start())
		case partDetector:
			errs = append(errs, r.detectorProc.start())
		}
	}
	if chStarted {
		if err := <-chDone; err != nil {
			errs = append(errs, fmt.Errorf("chaos: restart ClickHouse after the power cut: %w", err))
		}
	}
	for i := range r.nats.nodes {
		errs = append(errs, r.nats.waitNode(ctx, i))
	}
	errs = append(errs, waitTCP(ctx, r.gatewayAddr, time.Minute))
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return r.waitReplicasCurrent(ctx, "the power cut")
}

// waitReplicasCurrent polls until every stream replica on the cluster's
// nodes is current, or ctx ends; after names what came before, for the
// error.
func (r *runner) waitReplicasCurrent(ctx context.Context, after string) error {
	for {
		ok, desc := r.in.replicasCurrent(ctx, len(r.nats.nodes))
		if ok {
			return nil
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("chaos: replicas not current after %s: %s: %w", after, desc, err)
		}
	}
}
