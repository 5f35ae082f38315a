package main

import (
	"context"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/procs"
	"github.com/sockscope/sockscope/pkg/source"
	"github.com/sockscope/sockscope/ui"
	"github.com/spf13/pflag"
)

// memoryLimit is the dashboard's soft memory limit (GOMEMLIMIT overrides).
const memoryLimit = 128 << 20

const dashboardHelp = `usage: sockscope [flags] [FILTER]

Watch the TCP sockets that match FILTER live, e.g. 'sockscope :9000'.
Press ? in the dashboard for its keys.`

// The dashboard reads through the kernel source, behind the UI's interface.
var _ monitor.Source = (*source.Kernel)(nil)

func runDashboard(ctx context.Context, args []string, stdout io.Writer) (err error) {
	var c common
	interval := time.Second
	fs := pflag.NewFlagSet("sockscope", pflag.ContinueOnError)
	c.register(fs)
	fs.VarP(intervalValue(&interval), "interval", "i", "time between polls, e.g. 500ms or 2s")
	prog, err := c.parse(fs, args, dashboardHelp, stdout)
	if err != nil {
		return err
	}
	if !isTerminal(os.Stdout) {
		return usagef("the dashboard needs a terminal; for output to a pipe or file use 'sockscope list'")
	}
	opts := c.sourceOptions()
	opts.Totals = true
	src, err := source.Open(prog, opts)
	if err != nil {
		return err
	}
	defer src.Close()
	if os.Getenv("GOMEMLIMIT") == "" {
		// Frames of a large table are big and short-lived: without a
		// limit the heap doubles before each collection. With one, the
		// dashboard stays near its live data (measured: 240 MB down to
		// 120 MB at 110k sockets, for about 3% more CPU).
		debug.SetMemoryLimit(memoryLimit)
	}
	text, fixed := c.editable()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	destroys, _ := src.Destroys(ctx) // without them, polls date the changes
	stat, err := src.Stat()
	if err != nil {
		return err
	}
	kb := newBaseline(stat)
	return ui.Run(ctx, ui.Config{
		Source:    src,
		Lookup:    procs.New("/proc").Lookup,
		Processes: c.processes,
		Filter:    text,
		Fixed:     fixed,
		Interval:  interval,
		Netns:     c.ns.Label(),
		Destroys:  destroys,
		Notice:    src.Notice,
		TimeWait:  kb.context,
		Counters:  stat.Counters,
	})
}
