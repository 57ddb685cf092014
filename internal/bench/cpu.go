package bench

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPU is the processor time two processes used over a phase, in seconds
// (user and system, all threads): this process (the embedded NATS server,
// the publishers, the loader or the replay) and the ClickHouse server
// (inserts, queries and its background merges).
type CPU struct {
	Process    float64 `json:"process_seconds"`
	ClickHouse float64 `json:"clickhouse_seconds"`
}

func (c CPU) minus(o CPU) CPU {
	return CPU{Process: c.Process - o.Process, ClickHouse: c.ClickHouse - o.ClickHouse}
}

// PerEvent is c divided over n events, in microseconds each.
func (c CPU) PerEvent(n int) (process, clickhouse float64) {
	if n <= 0 {
		return 0, 0
	}
	return 1e6 * c.Process / float64(n), 1e6 * c.ClickHouse / float64(n)
}

// costBound is the events per second cores could sustain if each event
// cost the sum of what one event (or message, or row) of each of phases
// cost, and nothing else: an upper bound for a pipeline that does at least
// that work per event on the same cores (0 when a cost is unknown).
func costBound(cores int, phases ...Throughput) float64 {
	total := 0.0
	for _, tp := range phases {
		if tp.Events <= 0 {
			return 0
		}
		total += (tp.CPU.Process + tp.CPU.ClickHouse) / float64(tp.Events)
	}
	if total <= 0 {
		return 0
	}
	return float64(cores) / total
}

// readCPU reads the processor time of this process and of pid.
func readCPU(pid int) (CPU, error) {
	self, err := cpuSeconds("/proc/self/stat")
	if err != nil {
		return CPU{}, err
	}
	ch, err := cpuSeconds(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return CPU{}, err
	}
	return CPU{Process: self, ClickHouse: ch}, nil
}

// clockTicks is the unit of /proc/PID/stat's times (USER_HZ, 100 on every
// Linux architecture Go supports).
const clockTicks = 100

// cpuSeconds reads utime + stime of a /proc stat file, in seconds.
func cpuSeconds(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("bench: read processor time: %w", err)
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// after its closing parenthesis (state is field 3, utime 14, stime 15).
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, fmt.Errorf("bench: unexpected %s", path)
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: unexpected %s", path)
	}
	var ticks uint64
	for _, v := range f[11:13] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: parse %s: %w", path, err)
		}
		ticks += n
	}
	return float64(ticks) / clockTicks, nil
}

// timer measures the timed part of a phase: its wall time and the
// processor time of this process and of the ClickHouse server.
type timer struct {
	pid   int
	start time.Time
	cpu   CPU
	err   error
}

func (st *stage) startTimer() *timer {
	t := &timer{pid: st.ch.PID()}
	t.cpu, t.err = readCPU(t.pid)
	t.start = time.Now()
	return t
}

// stop ends the timed part: n events over the time since startTimer.
func (t *timer) stop(n int) (Throughput, error) {
	elapsed := time.Since(t.start)
	cpu, err := readCPU(t.pid)
	if err = errors.Join(t.err, err); err != nil {
		return Throughput{}, err
	}
	tp := throughput(n, elapsed)
	tp.CPU = cpu.minus(t.cpu)
	return tp, nil
}
