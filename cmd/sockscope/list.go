package main

import (
	"fmt"
	"runtime/debug"

	"github.com/sockscope/sockscope/pkg/render"
	"github.com/sockscope/sockscope/pkg/session"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
	"github.com/spf13/cobra"
)

func newListCmd(a *app) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "list [flags] [FILTER]",
		Short: "print the TCP sockets that match FILTER, once",
		Long: withFilterHelp(`Print the TCP sockets (IPv4 and IPv6) that match FILTER, once, like
'ss -tan' or 'netstat -tan'. TIME_WAIT ages are exact (the kernel's timer);
other sockets predate this run, so their age is not known.`),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.prepare(cmd, args, true); err != nil {
				return err
			}
			return runList(a, &o)
		},
	}
	o.selectFlags(cmd, true)
	o.outputFlags(cmd)
	return cmd
}

// rows is where a listing writes its rows: a table or JSON lines.
type rows interface {
	Write([]track.Entry) error
	Err() error
	Close() error
}

func runList(a *app, o *options) error {
	// A one-shot listing streams the table a kernel batch at a time into
	// the same few pages: it makes no garbage worth collecting. The limit
	// still collects if something does.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(512 << 20)
	defer debug.SetGCPercent(100)
	a.note(o.notes...)
	cfg := o.sessionConfig()
	cfg.Parallel = true // many namespaces: dumped ahead, side by side
	s, err := session.Open(a.ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	a.note(s.Notes()...)
	var out rows
	if o.json {
		out = render.NewJSONWriter(a.stdout, s.Names())
	} else {
		out = render.NewTableWriter(a.stdout, render.TableOptions{
			Header: !o.noHeader, Columns: o.cols, Processes: o.processes, Color: o.useColor(a.stdout), Names: s.Names(),
		})
	}
	var view track.View
	lookup := s.Lookup()
	births := agentBirths(a, s, false)
	err = s.Reader().Stream(func(b *sock.Snapshot) error {
		track.OnceBornInto(&view, b, lookup, births)
		return out.Write(view.Entries)
	})
	if err == nil {
		err = out.Close()
	}
	if werr := out.Err(); werr != nil {
		if isBrokenPipe(werr) {
			return nil // | head: the reader has what it wanted
		}
		return fmt.Errorf("writing the table: %w", werr)
	}
	if err != nil {
		return err
	}
	a.note(s.ClosingNotes()...)
	if s.Fleet != nil && s.Fleet.Gone() > 0 {
		// Said by list alone: the live modes skip such a namespace
		// without a word, as it comes and goes while they watch.
		a.note(fmt.Sprintf("%d namespaces went away before they could be read", s.Fleet.Gone()))
	}
	return nil
}

// agentBirths are the agent's birth dates for a run (see session.Births),
// nil without an agent; an agent this user may not read is said once.
func agentBirths(a *app, s *session.Session, alone bool) track.Births {
	births, err := s.Births(alone)
	if err != nil {
		a.note(fmt.Sprintf("the agent runs, but its birth dates cannot be read (%v): ages of sockets it stamped show as before", err))
	}
	return births
}
