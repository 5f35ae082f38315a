// Command sockscope shows the kernel's TCP socket table: every connection's
// state, its age, and why a port is or is not free.
//
//	sockscope [flags] [FILTER]        live dashboard, e.g. sockscope :9000
//	sockscope list [flags] [FILTER]   one-shot table or JSON
//	sockscope watch [flags] [FILTER]  one line per state change
//	sockscope timewait [flags] [FILTER]  TIME_WAIT lifetimes and their causes
//
// The command line is a cobra command tree (commands.go); every command
// shares one flag model (flags.go), opens what it reads through
// pkg/session, and hands it to its front end. Bad input prints one line
// naming the bad token and exits with status 2; other failures exit with
// status 1.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/session"
)

func main() {
	if err := preflight(); err != nil {
		os.Exit(exitCode(err, os.Stderr))
	}
	// SIGINT, SIGTERM, SIGHUP (the terminal went away) and SIGQUIT
	// (Ctrl-\) end every command through its context, so the dashboard
	// restores the terminal before the process exits.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	go func() {
		// After the first signal the default action is back: a second
		// Ctrl-C ends a run that is slow to wind down.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is bad input: the message names the bad token. err, when
// set, is the error it came from (a *filter.Error, say).
type usageError struct {
	msg string
	err error
}

func (e *usageError) Error() string { return e.msg }

func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return &usageError{msg: fmt.Sprintf(format, a...)} }

// exitStatus ends a command with a status and no message.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(&app{ctx: ctx, stdout: stdout, stderr: stderr}, args)
	// What cobra writes itself (help, usage, completion scripts) goes
	// through a writer that keeps the first failure: cobra drops it. The
	// commands keep stdout itself, since they ask whether it is a
	// terminal, and report their own write errors.
	out := &errWriter{w: stdout}
	root.SetOut(out)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil && out.err != nil && !isBrokenPipe(out.err) {
		err = fmt.Errorf("writing the output: %w", out.err)
	}
	return exitCode(err, stderr)
}

// errWriter writes to w and keeps the first error, so that no output is
// lost without a word even where the writer's caller ignores it.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// exitCode prints err as one line and maps it to the exit status: 2 for
// bad input (flags, filters, namespaces), 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var status exitStatus
	if errors.As(err, &status) {
		return int(status) // the command already said why
	}
	// One line, whatever the error wraps, with one prefix: a message of
	// the root command (the dashboard) names its command "sockscope"
	// already.
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
	fmt.Fprintf(stderr, "sockscope: %s\n", strings.TrimPrefix(msg, "sockscope: "))
	var ue *usageError
	var ne *netns.Error
	var fe *session.FilterError
	if errors.As(err, &ue) || errors.As(err, &ne) || errors.As(err, &fe) {
		return 2
	}
	return 1
}

// The least a run needs. Below these the Go runtime itself fails with a
// trace (its poller wants descriptors; every thread reserves address
// space), so they are checked first and said in one line instead.
const (
	minFiles        = 32
	minAddressSpace = 2 << 30
)

// preflight checks the process limits a run needs: too few is the
// machine's fault, exit status 1, never a runtime trace.
func preflight() error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading the descriptor limit: %w", err)
	}
	if lim.Cur < minFiles {
		return fmt.Errorf("only %d file descriptors allowed (ulimit -n); sockscope needs at least %d", lim.Cur, minFiles)
	}
	if err := unix.Getrlimit(unix.RLIMIT_AS, &lim); err != nil {
		return fmt.Errorf("reading the address-space limit: %w", err)
	}
	if lim.Cur != unix.RLIM_INFINITY && lim.Cur < minAddressSpace {
		return fmt.Errorf("address space limited to %d MiB (ulimit -v); sockscope needs at least %d MiB of it (reserved, not used)",
			lim.Cur>>20, minAddressSpace>>20)
	}
	return nil
}
