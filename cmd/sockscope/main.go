// Command sockscope shows the kernel's TCP socket table: every connection's
// state, its age, and why a port is or is not free.
//
//	sockscope [flags] [FILTER]        live dashboard, e.g. sockscope :9000
//	sockscope list [flags] [FILTER]   one-shot table or JSON
//	sockscope watch [flags] [FILTER]  one line per state change
//	sockscope timewait [flags] [FILTER]  TIME_WAIT lifetimes and their causes
//
// Bad input prints one line naming the bad token and exits with status 2;
// other failures exit with status 1.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sockscope/sockscope/pkg/netns"
)

func main() {
	// SIGTERM and SIGINT end the dashboard through its context, so the
	// terminal is restored before the process exits.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is bad input: the message names the bad token.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

const usage = `usage: sockscope [flags] [FILTER]          the live dashboard
       sockscope COMMAND [flags] [FILTER]

Commands:
  list      print the TCP sockets that match FILTER, once
  watch     print state changes as they happen, one line each
  timewait  measure how long TIME_WAIT entries last, and why
  bind      say whether bind() to [ADDR]:PORT would succeed, and why not
  demo      the tutorial's server and client, to try all of the above
  stats     the kernel's TCP counters (resets, overflows, opens)
  exporter  serve the table as Prometheus metrics

Run 'sockscope COMMAND --help' for a command's flags and the filter language.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := ""
	if len(args) > 0 {
		cmd = args[0]
	}
	var err error
	switch cmd {
	case "list":
		err = runList(args[1:], stdout, stderr)
	case "watch":
		err = runWatch(ctx, args[1:], stdout, stderr)
	case "timewait":
		err = runTimeWait(ctx, args[1:], stdout, stderr)
	case "bind":
		err = runBind(ctx, args[1:], stdout, stderr)
	case "demo":
		err = runDemo(ctx, args[1:], stdout)
	case "stats":
		err = runStats(ctx, args[1:], stdout)
	case "exporter":
		err = runExporter(ctx, args[1:], stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		// Anything else is the dashboard's flags and filter.
		err = runDashboard(ctx, args, stdout)
	}
	return exitCode(err, stderr)
}

// exitCode prints err as one line and maps it to the exit status: 2 for
// bad input (flags, filters, namespaces), 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	var status exitStatus
	if errors.As(err, &status) {
		return int(status) // the command already said why
	}
	fmt.Fprintf(stderr, "sockscope: %v\n", err)
	var ue *usageError
	var ne *netns.Error
	if errors.As(err, &ue) || errors.As(err, &ne) {
		return 2
	}
	return 1
}
