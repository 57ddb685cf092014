package chaos

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	osproc "github.com/airtally/airtally/internal/proc"
)

// proc is one subcommand of airtally run as a process of its own, in its
// own process group, that can be killed with SIGKILL and started again
// with the same arguments. Its output is appended to Dir/logs/<name>.log.
type proc struct {
	name    string
	command string
	env     []string
	args    []string
	logPath string
	// onExit, if set, is called when the process exits by itself (not
	// killed by kill), with how it ended.
	onExit func(p *proc, err error)

	mu  sync.Mutex
	run *osproc.Process // nil when not started or killed
}

func newProc(cfg *Config, name string, args ...string) *proc {
	return &proc{
		name:    name,
		command: cfg.Command,
		env:     append(os.Environ(), cfg.CommandEnv...),
		args:    args,
		logPath: filepath.Join(cfg.Dir, "logs", name+".log"),
		onExit:  cfg.onExit,
	}
}

// start launches the process; starting a running process does nothing.
// The process is in its own process group, so that a kill reaches
// anything it starts, and the kernel kills it if this process dies
// without cleaning up (package proc).
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p.logPath), 0o750); err != nil {
		return fmt.Errorf("chaos: %s: log folder: %w", p.name, err)
	}
	out, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("chaos: %s: log file: %w", p.name, err)
	}
	fmt.Fprintf(out, "--- chaos: start %s at %s\n", p.name, time.Now().UTC().Format(time.RFC3339Nano))
	if err := out.Close(); err != nil {
		return fmt.Errorf("chaos: %s: log file: %w", p.name, err)
	}
	run, err := osproc.Start(osproc.Spec{Bin: p.command, Args: p.args, Env: p.env, Output: p.logPath})
	if err != nil {
		return fmt.Errorf("chaos: start %s: %w", p.name, err)
	}
	p.run = run
	go p.watchExit(run)
	return nil
}

// watchExit reports run's exit to onExit unless kill ended it: kill holds
// mu until the process is reaped and then forgets it.
func (p *proc) watchExit(run *osproc.Process) {
	<-run.Done()
	p.mu.Lock()
	byItself := p.run == run
	p.mu.Unlock()
	if byItself && p.onExit != nil {
		p.onExit(p, run.Err())
	}
}

// kill sends SIGKILL to the process group, as a crash would, and waits
// until the process is reaped. Killing a stopped process does nothing.
func (p *proc) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run == nil {
		return
	}
	_ = p.run.KillWait()
	p.run = nil
}

// tail is the last n bytes of the process's log.
func (p *proc) tail(n int64) string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// waitTCP waits until addr accepts connections, ctx ends or timeout.
func waitTCP(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var d netDialer
	for {
		err := d.dial(ctx, addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: %s not accepting connections after %s: %w", addr, timeout, err)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
