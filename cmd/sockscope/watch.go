package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/procs"
	"github.com/sockscope/sockscope/pkg/render"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/source"
	"github.com/sockscope/sockscope/pkg/track"
	"github.com/spf13/pflag"
)

const watchHelp = `usage: sockscope watch [flags] [FILTER]

Print one line per socket event as it happens: new (first seen), a state
change with the time spent in the old state, gone with its lifetime. Times
come from the kernel where it tells them (the TIME_WAIT timer, destroy
events); '~' marks a time measured by polling, '>=' one that began before
the watch. Runs until Ctrl-C or --for.`

// live holds what the live modes share: the kernel source and its destroy
// events for the namespace the flags name.
type live struct {
	src      *source.Kernel
	destroys <-chan sock.Destroy
	lookup   track.Lookup
}

// openLive opens the source and joins the destroy events; where those are
// not available it says so once on stderr and goes on with polling alone.
func openLive(ctx context.Context, c *common, prog *filter.Program, stderr io.Writer) (*live, error) {
	src, err := source.Open(prog, c.sourceOptions())
	if err != nil {
		return nil, err
	}
	l := &live{src: src}
	if src.Notice != "" {
		fmt.Fprintf(stderr, "sockscope: note: %s\n", src.Notice)
	}
	if l.destroys, err = src.Destroys(ctx); err != nil && src.Notice == "" {
		fmt.Fprintf(stderr, "sockscope: note: no destroy events (%v); times come from polling alone\n", err)
	}
	if c.processes {
		l.lookup = procs.New("/proc").Lookup
	}
	return l, nil
}

// registerLive adds the flags of the modes that run until stopped: the
// polling interval and --for.
func registerLive(fs *pflag.FlagSet, interval, runFor *time.Duration) {
	fs.VarP(intervalValue(interval), "interval", "i", "time between polls, e.g. 500ms or 2s")
	fs.Var(spanValue(runFor), "for", "stop after `DURATION` (e.g. 90s); default: until Ctrl-C")
}

func withFor(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	interval, runFor := time.Second, time.Duration(0)
	fs := pflag.NewFlagSet("watch", pflag.ContinueOnError)
	c.register(fs)
	registerLive(fs, &interval, &runFor)
	fs.BoolVar(&c.json, "json", false, "one JSON object per event per line")
	prog, err := c.parse(fs, args, watchHelp, stdout)
	if err != nil {
		return err
	}
	ctx, cancel := withFor(ctx, runFor)
	defer cancel()
	l, err := openLive(ctx, &c, prog, stderr)
	if err != nil {
		return err
	}
	defer l.src.Close()

	out := bufio.NewWriter(stdout)
	var werr error
	var line []byte
	first := true
	mon := monitor.New(l.src, monitor.Options{Lookup: l.lookup, Processes: c.processes, Interval: interval},
		func(f *monitor.Frame) {
			defer f.Release() // only its events are kept
			if f.Err != nil {
				fmt.Fprintf(stderr, "sockscope: %v\n", f.Err)
				return
			}
			if first {
				first = false
				if isTerminal(os.Stderr) {
					fmt.Fprintf(stderr, "sockscope: watching %d sockets (filter: %s); Ctrl-C stops\n", len(f.Entries), prog)
				}
			}
			for i := range f.Events {
				line = line[:0]
				if c.json {
					line = render.AppendEventJSON(line, &f.Events[i])
				} else {
					line = render.AppendEvent(line, &f.Events[i], c.processes)
				}
				line = append(line, '\n')
				out.Write(line)
				// Flushed per event, so that | grep and | jq see it live.
				if err := out.Flush(); err != nil && werr == nil {
					werr = err
					cancel()
				}
			}
		})
	if err := mon.Run(ctx, nil, l.destroys); err != nil {
		return err
	}
	if werr != nil && !isBrokenPipe(werr) {
		return fmt.Errorf("writing events: %w", werr)
	}
	return nil
}
