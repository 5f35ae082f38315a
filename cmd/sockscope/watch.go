package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/kevents"
	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/render"
	"github.com/sockscope/sockscope/pkg/session"
	"github.com/sockscope/sockscope/pkg/track"
	"github.com/spf13/cobra"
)

func newWatchCmd(a *app) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "watch [flags] [FILTER]",
		Short: "print state changes as they happen, one line each",
		Long: withFilterHelp(`Print one line per socket event as it happens: new (first seen), a state
change with the time spent in the old state, gone with its lifetime. Times
come from the kernel where it tells them (the TIME_WAIT timer, destroy
events, and as root each state change as it happens, from a BPF program
on the kernel's sock:inet_sock_set_state tracepoint, connections that open
and close between two polls included); '~' marks a time measured by
polling, '>=' one that began before the watch. Runs until Ctrl-C or --for.`),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.prepare(cmd, args, true); err != nil {
				return err
			}
			return runWatch(a, &o)
		},
	}
	o.selectFlags(cmd, true)
	o.liveFlags(cmd, time.Second)
	cmd.Flags().BoolVar(&o.json, "json", false, "one JSON object per event per line")
	cmd.Flags().BoolVar(&o.pollOnly, "poll-only", false, "date changes by polling and destroy events alone, without the kernel's state-change events (BPF)")
	return cmd
}

// slowNote says once, on stderr, that polls are spaced out because they
// are slow; it returns whether it has said so.
func slowNote(a *app, f *monitor.Frame, asked time.Duration, said bool) bool {
	if said || f.Every <= asked {
		return said
	}
	a.note(fmt.Sprintf("a poll takes %v: polling every %v instead of every %v, so that polls take at most a quarter of the time",
		f.Took.Round(10*time.Millisecond), f.Every, asked))
	return true
}

// openLive opens the session of a live mode: its source, the destroy
// announcements and the owners, with the notes said once on stderr.
func openLive(ctx context.Context, a *app, o *options, prog *filter.Program) (*session.Session, error) {
	a.note(o.notes...)
	cfg := o.sessionConfig()
	cfg.Program, cfg.Destroys = prog, true
	s, err := session.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a.note(s.Notes()...)
	return s, nil
}

func runWatch(a *app, o *options) error {
	stdout, stderr := a.stdout, a.stderr
	prog := o.prog
	ctx, cancel := withFor(a.ctx, o.runFor)
	defer cancel()
	s, err := openLive(ctx, a, o, prog)
	if err != nil {
		return err
	}
	defer s.Close()

	out := bufio.NewWriter(stdout)
	var netnsCol *render.Column // many namespaces: each event says whose
	if names := s.Names(); names != nil {
		netnsCol = render.NetnsColumn(names)
	}
	var werr error
	var line []byte
	// The poll's events and the kernel's come from two goroutines: one
	// writes at a time.
	var mu sync.Mutex
	write := func(ev *track.Event) {
		line = line[:0]
		if o.json {
			line = render.AppendEventJSONIn(line, ev, netnsCol)
		} else {
			line = render.AppendEventIn(line, ev, o.processes, netnsCol)
		}
		line = append(line, '\n')
		out.Write(line)
		// Flushed per event, so that | grep and | jq see it live.
		if err := out.Flush(); err != nil && werr == nil {
			werr = err
			cancel()
		}
	}
	var feed *kernelFeed
	var ends kernelEnds
	waitFeed, syncFeed := func() error { return nil }, func() {}
	var lost func() (uint64, error) // nil without the kernel's events
	var lostTold uint64
	births := agentBirths(a, s, true)
	if !o.pollOnly && !o.procfs {
		inNS, only, err := watchedNamespaces(s)
		if err != nil {
			return err
		}
		feed = newKernelFeed(prog, inNS, o.processes)
		book := kevents.NewBook(inNS) // the births the tracker asks for
		var note string
		waitFeed, syncFeed, lost, note = startKernelFeed(ctx, only, 0, func(tr *kevents.Transition) {
			book.Add(tr)
			ends.add(tr)
			mu.Lock()
			defer mu.Unlock()
			feed.events(tr, write)
		})
		// The feed's callback may run already: it holds mu.
		mu.Lock()
		feed.lost = lost
		mu.Unlock()
		if note != "" {
			feed, lost = nil, nil
			a.note(note)
		} else {
			births = combinedBirths(book, births)
			// The ends the program sees (changes to CLOSE) take the
			// place of the destroy announcements.
			ends.take(s)
			if n := ends.note(); n != "" {
				a.note(n)
			}
		}
	}
	first, slow := true, false
	// The kernel's news of the changes a poll saw is in before the
	// tracker reads the poll (CatchUp), so that the poll's events are
	// known for what they repeat.
	mon := monitor.New(s.Reader(), monitor.Options{Lookup: s.Lookup(), Processes: o.processes, Interval: o.interval,
		Births: births, CatchUp: syncFeed},
		func(f *monitor.Frame) {
			defer f.Release() // only its events are kept
			mu.Lock()
			defer mu.Unlock()
			if f.Err != nil {
				fmt.Fprintf(stderr, "sockscope: %v\n", f.Err)
				return
			}
			if f.Warn != nil {
				a.note(f.Warn.Error()) // said once by the monitor
			}
			slow = slowNote(a, f, o.interval, slow)
			if first {
				first = false
				if isTerminal(os.Stderr) {
					fmt.Fprintf(stderr, "sockscope: watching %d sockets (filter: %s); Ctrl-C stops\n", len(f.Entries), prog)
				}
			}
			if lost != nil {
				// Read after the poll's CatchUp: a change lost before
				// the poll is one the poll's events now show.
				n, err := lost()
				switch {
				case err != nil:
					a.note(err.Error())
					lost = nil
				case n > lostTold:
					a.note(lostNote(n, lostTold))
					lostTold = n
				}
			}
			for i := range f.Events {
				if feed == nil || feed.adjust(&f.Events[i]) {
					write(&f.Events[i])
				}
			}
			if feed != nil {
				feed.flushHeld(f.Time, write)
				feed.prune(f.Time)
			}
		})
	err = mon.Run(ctx, nil, s.Destroys())
	cancel()
	if ferr := waitFeed(); ferr != nil {
		a.note(fmt.Sprintf("the kernel's state-change events stopped: %v", ferr))
	}
	if feed != nil {
		// The births still waiting for a poll to name their owner: told
		// as the kernel's, not lost with the end.
		feed.flushHeld(time.Now().Add(time.Hour), write)
	}
	if err != nil {
		return err
	}
	a.note(s.ClosingNotes()...)
	if werr != nil && !isBrokenPipe(werr) {
		return fmt.Errorf("writing events: %w", werr)
	}
	return nil
}

// watchedNamespaces says whether a namespace inode is one the session
// reads: the kernel's events come from every namespace on the host. only
// lists them for the kernel to tell apart itself, nil when they come and
// go (a Fleet).
func watchedNamespaces(s *session.Session) (in func(uint32) bool, only []uint32, err error) {
	if names := s.Names(); names != nil {
		return func(ino uint32) bool {
			n, ok := names(ino)
			return ok && !n.Gone
		}, nil, nil
	}
	ns := s.Targets[0].NS
	if ns.IsSelf() {
		self, err := netns.Self()
		if err != nil {
			return nil, nil, err
		}
		ns = self
	}
	ino := uint32(ns.Inode)
	return func(n uint32) bool { return n == ino }, []uint32{ino}, nil
}
