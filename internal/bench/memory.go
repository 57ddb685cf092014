package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Memory is the peak resident memory (VmHWM) of the two processes over a
// phase, in bytes.
type Memory struct {
	// Process is this process: the embedded NATS server, the publishers and
	// the loader.
	Process uint64 `json:"process_bytes"`
	// ClickHouse is the ClickHouse server process.
	ClickHouse uint64 `json:"clickhouse_bytes"`
}

func (m Memory) max(o Memory) Memory {
	return Memory{Process: max(m.Process, o.Process), ClickHouse: max(m.ClickHouse, o.ClickHouse)}
}

// resetPeaks returns this process's free memory to the OS, then resets the
// peak RSS of this process and of pid to their current RSS (writing "5" to
// /proc/PID/clear_refs, Linux 4.0+). It reports whether both resets took;
// when not, later peaks include earlier phases.
func resetPeaks(pid int) bool {
	debug.FreeOSMemory()
	ok := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	if pid > 0 {
		ok = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil && ok
	}
	return ok
}

// readPeaks reads the peak RSS of this process and of pid.
func readPeaks(pid int) (Memory, error) {
	self, err := vmHWM("/proc/self/status")
	if err != nil {
		return Memory{}, err
	}
	ch, err := vmHWM(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	return Memory{Process: self, ClickHouse: ch}, nil
}

// vmHWM reads the VmHWM line of a /proc status file, in bytes.
func vmHWM(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("bench: read peak memory: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: parse VmHWM in %s: %w", path, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("bench: no VmHWM in %s", path)
}
