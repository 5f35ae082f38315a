package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/sockscope/sockscope/pkg/procs"
	"github.com/sockscope/sockscope/pkg/render"
	"github.com/sockscope/sockscope/pkg/source"
	"github.com/sockscope/sockscope/pkg/track"
	"github.com/spf13/pflag"
)

const listHelp = `usage: sockscope list [flags] [FILTER]

Print the TCP sockets (IPv4 and IPv6) that match FILTER, once, like
'ss -tan' or 'netstat -tan'. TIME_WAIT ages are exact (the kernel's timer);
other sockets predate this run, so their age is not known.`

func runList(args []string, stdout, stderr io.Writer) error {
	// A one-shot listing lives for a fraction of a second: collecting its
	// garbage would cost more than keeping it. The limit still collects if
	// a huge table needs it.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(512 << 20)
	defer debug.SetGCPercent(100)
	var c common
	fs := pflag.NewFlagSet("list", pflag.ContinueOnError)
	c.register(fs)
	c.registerOutput(fs)
	prog, err := c.parse(fs, args, listHelp, stdout)
	if err != nil {
		return err
	}
	src, err := source.Open(prog, c.sourceOptions())
	if err != nil {
		return err
	}
	defer src.Close()
	if src.Notice != "" {
		fmt.Fprintf(stderr, "sockscope: note: %s\n", src.Notice)
	}
	snap, err := src.Snapshot()
	if err != nil {
		return err
	}
	var lookup track.Lookup
	var pt *procs.Table
	if c.processes {
		pt = procs.New("/proc")
		lookup = pt.Lookup
	}
	view := track.Once(snap, lookup)
	if c.json {
		err = render.JSON(stdout, view)
	} else {
		color := false
		if f, ok := stdout.(*os.File); ok {
			color = c.useColor(f)
		}
		err = render.Table(stdout, view, render.TableOptions{
			Header: !c.noHeader, Processes: c.processes, Color: color,
		})
	}
	if err != nil {
		return fmt.Errorf("writing the table: %w", err)
	}
	if pt != nil && pt.Denied() > 0 {
		fmt.Fprintf(stderr, "sockscope: note: %d processes could not be inspected; their sockets show no owner (run as root to see all)\n", pt.Denied())
	}
	return nil
}
