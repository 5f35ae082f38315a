package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"time"

	"github.com/sockscope/sockscope/pkg/kevents"
	"github.com/sockscope/sockscope/pkg/kstat"
	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/session"
	"github.com/sockscope/sockscope/pkg/source"
	"github.com/sockscope/sockscope/pkg/tablecount"
	"github.com/sockscope/sockscope/ui"
	"github.com/spf13/cobra"
)

// The dashboard's soft memory limit (GOMEMLIMIT overrides): at least
// memoryLimit until the first poll is in, then at least minMemoryLimit and
// liveHeapHeadroom percent of the live heap, with at most maxHeadroom of
// room.
const (
	memoryLimit    = 128 << 20
	minMemoryLimit = 32 << 20
	// Measured at 110k sockets (live heap 76 MB, 1 s polls): 150% kept
	// 131 MB resident, 130% 104 MB for the same CPU (14.7% of a core);
	// at 110% the collector ran without pause (140%). Later, with a live
	// heap of 57 MB and 2.2 MB of garbage a second (GODEBUG=gctrace=1,
	// 40 s, three A/B pairs in tmux 160x50): 130% collected every 3 s,
	// 4.3 ms of CPU a second, 79.2 to 80.0 MB resident; 125% every 2 s,
	// 6.5 ms a second, 76.0 to 77.0 MB; 120% every second, 11.9 ms a
	// second, 74.2 to 74.7 MB.
	liveHeapHeadroom = 125
	// maxHeadroom bounds the room over the live heap: at a million
	// sockets (476 MB live, polls 4 s apart) the garbage grew 3.5 MB a
	// second and a collection took 120 ms, so 30% (143 MB) meant one
	// collection in 40 s and 600 MB resident; 64 MB means one in 18 s.
	maxHeadroom = 64 << 20
)

// The dashboard reads through the kernel source, behind the UI's interface.
var _ monitor.Source = (*source.Kernel)(nil)

func newDashboardCmd(a *app) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Short: "watch the TCP sockets that match FILTER live",
		Long: withFilterHelp(`Watch the TCP sockets that match FILTER live, e.g. 'sockscope :9000'.
Press ? in the dashboard for its keys.`),
		Args: cobra.ArbitraryArgs, // the filter, or a mistyped command
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.prepare(cmd, args, true); err != nil {
				if s := suggest(cmd.Root(), args, err); s != nil {
					return s
				}
				return err
			}
			return runDashboard(a, &o)
		},
	}
	o.selectFlags(cmd, true)
	o.columnsFlag(cmd)
	o.interval = time.Second
	o.intervalFlag(cmd, "time between polls, e.g. 500ms or 2s")
	cmd.Flags().BoolVar(&o.pollOnly, "poll-only", false, "age sockets born while it runs from the poll that saw them, without the kernel's state-change events (BPF)")
	return cmd
}

func runDashboard(a *app, o *options) error {
	if !isTerminal(os.Stdout) {
		return usagef("the dashboard needs a terminal; for output to a pipe or file use 'sockscope list'")
	}
	text, fixed, err := o.editable()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(a.ctx)
	defer cancel()
	cfg := o.sessionConfig()
	cfg.Totals, cfg.Destroys, cfg.Processes = true, true, true // p shows owners any time
	s, err := session.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	stat, err := s.Stat()
	if err != nil {
		return err
	}
	// Closed once the first frame is applied: the memory limit follows
	// the live heap, and the kernel's events load, from then on.
	firstFrame := make(chan struct{})
	if os.Getenv("GOMEMLIMIT") == "" {
		// Frames of a large table are big and short-lived: without a
		// limit the heap doubles before each collection. With one, the
		// dashboard stays near its live data (measured: 240 MB down to
		// 120 MB at 110k sockets, for about 3% more CPU).
		debug.SetMemoryLimit(firstLimit(stat))
		restore := -1
		if os.Getenv("GOGC") == "" {
			// Until the first poll is in, the limit alone paces the
			// collector: growing from nothing to the first poll of a
			// million sockets, the default pacing collected at 8, 16,
			// 32... MB, a fifth of the time to the first frame (perf
			// record). Then the default again, so that a small table
			// keeps a small heap.
			debug.SetGCPercent(-1)
			restore = 100
		}
		go followLiveHeap(ctx, firstFrame, minMemoryLimit, restore)
	}
	// The terminal is the dashboard's: its notes go to the status line.
	notes := append(append([]string(nil), o.notes...), s.Notes()...)
	if s.Fleet != nil && !o.procfs {
		// Many namespaces: the namespace view counts them in one walk
		// of the kernel's tables, and only the namespace opened is
		// dumped (every dump walks the host's whole shared table).
		counter, err := tablecount.Open(maxCounted, nil, nil)
		if err != nil {
			notes = append(notes, fmt.Sprintf("each namespace is dumped at every poll: %v", err))
		} else {
			defer counter.Close()
			s.Fleet.SetCounter(counter)
			s.Fleet.Focus(0)
		}
	}
	kb, err := newBaseline(stat)
	if err != nil {
		notes = append(notes, err.Error())
	}
	births, err := s.Births(true)
	if err != nil {
		notes = append(notes, fmt.Sprintf("the agent's birth dates cannot be read (%v)", err))
	}
	// As root, the kernel's state changes date every socket born while
	// the dashboard runs.
	waitFeed := func() (string, error) { return "", nil }
	var catchUp func()
	var lost func() (uint64, error)
	var ends kernelEnds // its err is set by the feed's goroutine, read after waitFeed
	if !o.procfs && !o.pollOnly {
		inNS, only, err := watchedNamespaces(s)
		if err != nil {
			return err
		}
		book := kevents.NewBook(inNS)
		// Once the program runs, the ends it sees (changes to CLOSE)
		// take the place of the destroy announcements.
		feed := func(tr *kevents.Transition) {
			book.Add(tr)
			ends.add(tr)
		}
		waitFeed, catchUp, lost = asyncKernelFeed(ctx, firstFrame, only, feed, func() { ends.take(s) })
		births = combinedBirths(book, births)
	}
	err = ui.Run(ctx, ui.Config{
		Source:     s.Reader(),
		Lookup:     s.Lookup(),
		Births:     births,
		CatchUp:    catchUp,
		Lost:       lost,
		FirstFrame: func() { close(firstFrame); oneProcessor() },
		Processes:  o.processes,
		Columns:    o.cols,
		Filter:     text,
		Fixed:      fixed,
		Refuse:     s.Refuse,
		Procfs:     s.ReadsProcfs(),
		Interval:   o.interval,
		Netns:      netnsLabel(o),
		Names:      s.Names(),
		Namespaces: s.Namespaces(),
		Destroys:   s.Destroys(),
		Notice:     strings.Join(notes, "; "),
		TimeWait:   kb.context,
		Counters:   stat.Counters,
	})
	cancel()
	note, ferr := waitFeed()
	if note != "" {
		a.note(note)
	}
	if n := ends.note(); n != "" {
		a.note(n)
	}
	if ferr != nil {
		a.note(fmt.Sprintf("the kernel's state-change events stopped: %v", ferr))
	}
	a.note(s.ClosingNotes()...)
	return err
}

// oneProcessor leaves the dashboard one processor once its first frame
// is drawn, unless GOMAXPROCS says otherwise. Its steady work is a poll
// per interval, most of it in the kernel; with a second processor the Go
// scheduler wakes an idle thread for each goroutine a poll, a probe tick
// or a kernel event readies, and on a virtual machine each wake-up costs
// tens of µs. Measured at 110k sockets on a 2-core guest: 9.7% of a core
// against 10.6% (two A/B runs of 30 s). The first frame keeps both: the
// front end draws it while the tracker takes the first poll in.
func oneProcessor() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

// netnsLabel is what the status line says is read: "" for sockscope's
// own namespace alone.
func netnsLabel(o *options) string {
	switch {
	case o.allNetns:
		return "all"
	case len(o.namespaces) > 1:
		labels := make([]string, len(o.namespaces))
		for i, ns := range o.namespaces {
			labels[i] = ns.String()
		}
		return strings.Join(labels, ",")
	}
	return o.namespaces[0].Label()
}

// liveBytesPerSocket is about what the dashboard holds per socket: the
// snapshot, two frames of entries, the tracker's record.
const liveBytesPerSocket = 800

// firstLimit is the memory limit until followLiveHeap has seen the live
// heap: room for the first poll of the namespace's sockets, and half as
// much again. Under 128 MiB, the first poll of a million sockets made the
// collector run without pause and took 4.3 s to the first frame.
func firstLimit(stat *kstat.Reader) int64 {
	c, err := stat.Sockets()
	if err != nil {
		return memoryLimit // followLiveHeap raises it soon enough
	}
	return max(memoryLimit, int64(c.Total())*liveBytesPerSocket*3/2)
}

// followLiveHeap keeps the soft memory limit above the live heap: a host
// of many namespaces holds more than one namespace's 100k sockets, and a
// limit under the live data makes the collector run without pause (the
// dashboard then spent 60% of its CPU in the garbage collector, measured
// with perf on 100 namespaces). The limit is the larger of base and
// liveHeapHeadroom percent of the live heap (at most maxHeadroom over
// it), so collections stay spaced and memory near the data.
//
// It starts once ready is closed (the first frame is in: the first poll
// of a million sockets took 5 s on a machine of 13 µs pages, and a limit
// set from the live heap of half a poll made the collector run without
// pause until the rest was in). It then sets the collector's percentage
// to gcPercent, unless that is negative, and every 2 s follows the live
// heap (limitFor), but only as measured by a collection since then:
// before one, the live heap the runtime reports is an older, smaller one.
func followLiveHeap(ctx context.Context, ready <-chan struct{}, base int64, gcPercent int) {
	select {
	case <-ctx.Done():
		return
	case <-ready:
	}
	if gcPercent >= 0 {
		debug.SetGCPercent(gcPercent)
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	read := func() (live int64, cycles uint64, ok bool) {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 || sample[1].Value.Kind() != metrics.KindUint64 {
			return 0, 0, false // the runtime no longer offers them: keep the limit
		}
		return int64(sample[0].Value.Uint64()), sample[1].Value.Uint64(), true
	}
	_, since, ok := read()
	if !ok {
		return
	}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		live, cycles, ok := read()
		if !ok {
			return
		}
		if cycles == since {
			continue // no collection since the table came in
		}
		debug.SetMemoryLimit(limitFor(live, base))
	}
}

// limitFor is the soft memory limit for a live heap: liveHeapHeadroom
// percent of it, with at most maxHeadroom of room, and at least base.
func limitFor(live, base int64) int64 {
	return max(base, live+min(live*(liveHeapHeadroom-100)/100, maxHeadroom))
}
