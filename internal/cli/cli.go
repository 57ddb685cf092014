// Package cli implements the airtally command: one binary with a
// subcommand per component (local mode, gateway, loader, migrations,
// replay, benchmark). Every subcommand is configured by flags, each of
// which also reads an AIRTALLY_* environment variable; secrets are read
// from files.
//
// Failures reach the user as one polite sentence and an error id; the
// detail (wrapped errors, SQL, server messages) goes to the log only, under
// the same id.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/google/uuid"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	// hidden commands are not listed by 'airtally help' (helpers that
	// other commands start as processes).
	hidden bool
	// run parses args and runs; it logs with env.log and writes results to
	// env.stdout.
	run func(ctx context.Context, env *Env, args []string) error
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

// Env is what a subcommand runs with.
type Env struct {
	Stdout io.Writer
	Stderr io.Writer
	// Log is set up by the subcommand's logging flags (see logFlags).
	Log *slog.Logger
	// closeLog closes the log file, if any.
	closeLog func()
	// name is the subcommand's, for messages.
	name string
}

// UserError is an error whose Message may be shown to the user as it is:
// it is written by us, holds no secret, no SQL and no server text. Err is
// the detail, for the log.
type UserError struct {
	Message string
	Err     error
}

func (e *UserError) Error() string {
	if e.Err == nil {
		return e.Message
	}
	return e.Message + ": " + e.Err.Error()
}

func (e *UserError) Unwrap() error { return e.Err }

// userErr wraps err with a message fit for the user.
func userErr(err error, format string, args ...any) error {
	return &UserError{Message: fmt.Sprintf(format, args...), Err: err}
}

// Run runs the airtally command line and returns the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	env := &Env{Stdout: stdout, Stderr: stderr, Log: slog.New(slog.DiscardHandler), closeLog: func() {}}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "airtally: unknown command %q. Run 'airtally help' for the list.\n", args[0])
		return 2
	}
	env.name = cmd.name
	err := cmd.run(ctx, env, args[1:])
	defer env.closeLog()
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var usageErr *flagError
	if errors.As(err, &usageErr) {
		fmt.Fprintf(stderr, "airtally %s: %s\n", cmd.name, usageErr.msg)
		return 2
	}
	id := uuid.Must(uuid.NewV7()).String()
	env.Log.Error("command failed", "command", cmd.name, "error_id", id, "err", err)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		fmt.Fprintf(stderr, "airtally %s: stopped.\n", cmd.name)
		return 130
	}
	msg := fmt.Sprintf("the %s command did not complete", cmd.name)
	var ue *UserError
	if errors.As(err, &ue) {
		msg = ue.Message
	}
	fmt.Fprintf(stderr, "airtally %s: sorry, %s (error id %s; the details are in the log).\n", cmd.name, msg, id)
	return 1
}

// flagError is a usage mistake; its message names the flag.
type flagError struct{ msg string }

func (e *flagError) Error() string { return e.msg }

func usage(w io.Writer) {
	fmt.Fprintln(w, "airtally: every call and order durably recorded, every airing accounted for.")
	fmt.Fprintln(w, "\nUsage: airtally <command> [flags]   (airtally <command> -h for its flags)\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n, c := range commands {
		if !c.hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nEvery flag can also be set by an environment variable: --nats-url is AIRTALLY_NATS_URL, and so on.")
}

// newFlagSet returns a flag set for a subcommand whose errors come back as
// flagErrors instead of exiting.
func newFlagSet(env *Env, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("airtally "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

// parse parses args, then fills every flag not given on the command line
// from its environment variable (AIRTALLY_ + upper-cased name, '-' → '_').
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &flagError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return &flagError{msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		name := EnvName(f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if e := f.Value.Set(v); e != nil {
				err = &flagError{msg: fmt.Sprintf("environment variable %s: invalid value for --%s", name, f.Name)}
			}
		}
	})
	return err
}

// EnvName is the environment variable that sets a flag.
func EnvName(flagName string) string {
	return "AIRTALLY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
