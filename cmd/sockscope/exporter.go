package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sockscope/sockscope/pkg/exporter"
	"github.com/sockscope/sockscope/pkg/fleet"
	"github.com/sockscope/sockscope/pkg/kevents"
	"github.com/sockscope/sockscope/pkg/kstat"
	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/session"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/tablecount"
	"github.com/spf13/cobra"
)

func newExporterCmd(a *app) *cobra.Command {
	var (
		o        options
		listen   string
		portArgs []string
		trackOn  bool
		rules    bool
	)
	cmd := &cobra.Command{
		Use:   "exporter [--listen ADDR] [--port-series N ...] [-N NETNS ...] [FILTER]",
		Short: "serve the table as Prometheus metrics",
		Long: withFilterHelp(`Serve the socket table as Prometheus metrics on /metrics (text and
OpenMetrics). Each scrape counts what the kernel has then (one dump per
namespace; as root, with no FILTER or one on states alone, the namespaces
in the host's shared table in one walk of it); concurrent scrapes share
it. --port-series N gives port N its own local_port series (only
the ports named: a label per port would explode a fleet's series); --port
selects sockets, as in every command. -N may be given several times: each
namespace gets its netns label. --track adds state transitions and
TIME_WAIT lifetimes, from a tracker that polls every -i (with
--all-netns, one tracker of every namespace). Only GET and HEAD
are answered; idle and slow clients are closed.`),
		RunE: func(cmd *cobra.Command, args []string) error {
			if rules {
				_, err := a.stdout.Write(exporter.Rules)
				if err != nil && !isBrokenPipe(err) {
					return fmt.Errorf("writing the rules: %w", err)
				}
				return nil
			}
			if err := o.prepare(cmd, args, true); err != nil {
				return err
			}
			var ports []uint16
			for _, v := range portArgs {
				for _, p := range strings.Split(v, ",") {
					n, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(p), ":"), 10, 16)
					if err != nil || n == 0 {
						return usagef("exporter: invalid --port-series value %q: not a port from 1 to 65535", p)
					}
					ports = append(ports, uint16(n))
				}
			}
			if err := checkListen(listen); err != nil {
				return usagef("exporter: invalid --listen value %q: %v", listen, err)
			}
			return runExporter(a, &o, listen, ports, trackOn)
		},
	}
	o.selectFlags(cmd, false)
	fs := cmd.Flags()
	fs.StringVar(&listen, "listen", "127.0.0.1:9815", "serve on `ADDR` (another address than loopback is an explicit choice)")
	fs.StringArrayVar(&portArgs, "port-series", nil, "give local port `N[,N...]` its own series (repeatable)")
	fs.BoolVar(&rules, "print-rules", false, "print the alert rules for Prometheus (CLOSE_WAIT growing, TIME_WAIT near its limit) and exit")
	fs.BoolVar(&trackOn, "track", false, "also export transitions and TIME_WAIT lifetimes (a background tracker)")
	o.interval = time.Second
	o.intervalFlag(cmd, "the tracker's polling interval")
	return cmd
}

func runExporter(a *app, o *options, listen string, ports []uint16, trackOn bool) error {
	ctx, cancel := context.WithCancel(a.ctx)
	defer cancel()
	a.note(o.notes...)
	// Scrapes read one session; the tracker's monitors own another, so
	// that a scrape never shares a source with a monitor.
	cfg := o.sessionConfig()
	cfg.Merge = false // a namespace's series are its own
	scrape, err := session.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer scrape.Close()
	a.note(scrape.Notes()...)
	opt := exporter.Options{Ports: ports, Version: versionString()}
	var targets []exporter.Target
	for _, t := range scrape.Targets {
		stat, err := t.Source.Stat()
		if err != nil {
			return err
		}
		et := exporter.Target{Netns: t.NS, Source: t.Source, Counters: stat.Counters, MaxTimeWait: maxTimeWait(stat)}
		tableOf(&et, t.NS, stat)
		targets = append(targets, et)
	}
	if f := scrape.Fleet; f != nil {
		opt.Identity = true
		opt.Discover = func() ([]exporter.Target, error) {
			err := f.Rescan()
			// What the search met (a namespace that cannot be entered)
			// goes to the log once.
			a.note(scrape.LaterNotes()...)
			return fleetTargets(f), err
		}
	}
	if (scrape.Fleet != nil || len(targets) > 1) && !o.procfs && o.prog.StatesOnly() {
		// Many namespaces: count them in one walk of the shared table
		// rather than a dump (a walk of that whole table) each.
		counter, err := tablecount.Open(maxCounted, ports, exporter.AgeBounds())
		if err != nil {
			a.note(fmt.Sprintf("each namespace is dumped on its own at a scrape: %v", err))
		} else {
			defer counter.Close()
			counter.SetStates(o.prog.States)
			opt.Counter = counter
			var once sync.Once
			opt.CounterFailed = func(err error) {
				once.Do(func() { a.note(fmt.Sprintf("a scrape dumped each namespace on its own: %v", err)) })
			}
		}
	}
	exp := exporter.New(targets, opt)
	if trackOn {
		cfg := o.sessionConfig()
		cfg.Destroys = true
		// Namespaces given with -N get a tracker each, like their
		// series; every namespace on the host gets one tracker over a
		// Fleet, which follows them as they come and go.
		cfg.Merge = false
		tracked, err := session.Open(ctx, cfg)
		if err != nil {
			return err
		}
		defer tracked.Close()
		var wait func()
		var inodes []uint32 // the trackers' namespaces, for the kernel's changes
		if f := tracked.Fleet; f != nil {
			live := func(ino uint32) bool {
				n, ok := f.Name(ino)
				return ok && !n.Gone
			}
			wait = exp.TrackAll(ctx, f, f.Destroys(), o.interval, live)
		} else {
			var srcs []monitor.Source
			var destroys []<-chan sock.Destroy
			for _, t := range tracked.Targets {
				srcs = append(srcs, t.Source)
				destroys = append(destroys, t.Destroys)
				ns := t.NS
				if ns.IsSelf() {
					if ns, err = netns.Self(); err != nil {
						return err
					}
				}
				inodes = append(inodes, uint32(ns.Inode))
			}
			wait = exp.Track(ctx, srcs, destroys, o.interval)
		}
		// As root, every change the kernel makes is counted, those
		// between two polls included.
		waitFeed := func() error { return nil }
		if !o.procfs {
			prog := o.prog
			var s sock.Socket
			// Set once the feed runs: a change before that is the polls'.
			var count atomic.Pointer[func(uint32, sock.State, sock.State)]
			var note string
			var lost func() (uint64, error)
			waitFeed, _, lost, note = startKernelFeed(ctx, inodes, 0, func(tr *kevents.Transition) {
				// The filter selects a change into or out of its states.
				s = tr.Socket()
				match := prog.Match(&s)
				if !match {
					s.State = tr.From
					match = prog.Match(&s)
				}
				if c := count.Load(); match && c != nil {
					(*c)(tr.Netns, tr.From, tr.To)
				}
			})
			if note != "" {
				a.note(note) // the polls count the changes, as without BPF
			} else {
				c := exp.KernelTransitions(inodes)
				count.Store(&c)
				exp.KernelLost(lost)
			}
		}
		// Runs before the sessions close: no monitor is left polling a
		// closed source.
		defer func() {
			cancel()
			wait()
			if err := waitFeed(); err != nil {
				a.note(fmt.Sprintf("the kernel's state-change events stopped: %v", err))
			}
		}()
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(exp); err != nil {
		return fmt.Errorf("registering the metrics: %w", err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("exporter: listening on %s: %w", listen, err)
	}
	fmt.Fprintf(a.stderr, "sockscope: exporter serving http://%s/metrics\n", ln.Addr())
	return exporter.Serve(ctx, ln, exporter.Handler(reg), exporter.DefaultLimits)
}

// maxCounted is how many namespaces one walk counts; a scrape of more dumps
// each on its own.
const maxCounted = 1 << 16

// tableOf fills in the target's inode and whether its connections are in
// the host's shared table, for the walk that counts many namespaces. What
// cannot be read leaves the target to be dumped, as without the walk.
func tableOf(t *exporter.Target, ns netns.NS, stat *kstat.Reader) {
	if ns.IsSelf() {
		self, err := netns.Self()
		if err != nil {
			return // inode 0: dumped
		}
		ns = self
	}
	t.Inode = uint32(ns.Inode)
	if shared, err := stat.SharesHostTable(); err == nil {
		t.SharedTable = shared
	}
}

// maxTimeWait reads the namespace's tcp_max_tw_buckets.
func maxTimeWait(r *kstat.Reader) func() (int, error) {
	return func() (int, error) {
		s, err := r.TimeWait()
		return s.MaxBuckets, err
	}
}

// fleetTargets are the namespaces a fleet reads now, as the exporter's
// targets, labelled with who they belong to. Two namespaces with the same
// name (two mounts of one path in turn, say) get their inodes added: equal
// labels would make the scrape fail.
func fleetTargets(f *fleet.Fleet) []exporter.Target {
	members := f.Members()
	out := make([]exporter.Target, 0, len(members))
	seen := make(map[string]bool, len(members))
	for _, mb := range members {
		n, ok := f.Name(uint32(mb.NS.Inode))
		if !ok {
			continue // found by a rescan after the names were published: next scrape
		}
		label := n.Label
		if seen[label] {
			label = fmt.Sprintf("%s net:[%d]", label, n.Inode)
		}
		seen[label] = true
		t := exporter.Target{Netns: mb.NS, Source: mb.Source, Labels: []string{label, n.Container, n.Pod, n.PodNamespace}}
		if stat, err := mb.Source.Stat(); err == nil {
			// Without its /proc files the sockets are still worth having:
			// the counters' absence is the only loss.
			t.Counters, t.MaxTimeWait = stat.Counters, maxTimeWait(stat)
			tableOf(&t, mb.NS, stat)
		}
		out = append(out, t)
	}
	return out
}

// checkListen accepts HOST:PORT with an IP address (or localhost, or
// nothing for every address) and a port number.
func checkListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%q is not an IP address", host)
		}
	}
	return nil
}
