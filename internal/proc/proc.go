// Package proc runs a local server binary in its own process group, tied to
// the life of the Go process that started it, for the packages that run
// real servers locally (chlocal, zklocal).
package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Process is one run of a binary.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // cmd.Wait's result; read after done is closed
}

// Spec says what to run.
type Spec struct {
	// Bin and Args are the executable and its arguments.
	Bin  string
	Args []string
	// Dir is the working directory.
	Dir string
	// Env, when not nil, is the whole environment (nil inherits ours).
	Env []string
	// Output receives standard output and error, appended; "" discards
	// them.
	Output string
}

// Start starts spec.Bin in its own process group. The process gets SIGKILL
// if the OS thread that started it exits, so the goroutine that starts it
// stays locked to its thread until the process exits: a test binary that
// dies never leaves a server behind.
func Start(spec Spec) (*Process, error) {
	var out *os.File
	if spec.Output != "" {
		f, err := os.OpenFile(spec.Output, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("proc: open %s: %w", spec.Output, err)
		}
		out = f
	}
	p := &Process{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if out != nil {
			defer out.Close()
		}
		cmd := exec.Command(spec.Bin, spec.Args...)
		cmd.Dir, cmd.Env = spec.Dir, spec.Env
		if out != nil {
			cmd.Stdout, cmd.Stderr = out, out
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("proc: run %s: %w", spec.Bin, err)
			return
		}
		p.cmd = cmd
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the process ended (cmd.Wait's result); valid once Done is
// closed.
func (p *Process) Err() error { return p.err }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Pid is the process id (also its process group's id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the whole process group.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("proc: signal %v to %d: %w", sig, p.cmd.Process.Pid, err)
	}
	return nil
}

// KillWait sends SIGKILL to the process group and waits (up to 30 s) for
// the process to exit.
func (p *Process) KillWait() error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("proc: pid %d still alive 30s after SIGKILL", p.cmd.Process.Pid)
	}
}
