package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/kstat"
	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/render"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
	"github.com/sockscope/sockscope/pkg/twstat"
	"github.com/spf13/cobra"
)

func newTimeWaitCmd(a *app) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "timewait [flags] [FILTER] [--for DURATION]",
		Short: "measure how long TIME_WAIT entries last, and why",
		Long: withFilterHelp(`Measure how long TIME_WAIT entries really last: every entry that matches
FILTER is timed from entering TIME_WAIT (the kernel's timer says when) to
leaving it. Prints a line as each one ends, then on Ctrl-C or after --for a
summary: min / median / p99 / max, a histogram, per local port, and the
kernel settings and counters that govern TIME_WAIT.`),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.prepare(cmd, args, true); err != nil {
				return err
			}
			return runTimeWait(a, &o)
		},
	}
	o.selectFlags(cmd, true)
	o.liveFlags(cmd, time.Second)
	cmd.Flags().BoolVar(&o.json, "json", false, "print the summary as one JSON object")
	return cmd
}

// kernelBaseline remembers the counters at the start of a measurement.
type kernelBaseline struct {
	r    *kstat.Reader
	base map[string]int64
}

// newBaseline reads the counters at the start. When they cannot be read,
// the baseline still serves (the changes then read as totals) and the
// error is returned for the caller to say once.
func newBaseline(r *kstat.Reader) (*kernelBaseline, error) {
	b := &kernelBaseline{r: r}
	var err error
	if b.base, err = r.Counters(); err != nil {
		return b, fmt.Errorf("reading the TCP counters at the start (the counts below are totals): %w", err)
	}
	return b, nil
}

// context reads the TIME_WAIT settings and the counters' change since the
// start.
func (b *kernelBaseline) context() (twstat.Context, error) {
	k := twstat.Context{TimeWaitLen: twstat.FixedLength}
	s, err := b.r.TimeWait()
	if err != nil {
		return k, err
	}
	k.FinTimeout, k.Reuse, k.MaxBuckets = s.FinTimeout, s.Reuse, s.MaxBuckets
	if c, err := b.r.Sockets(); err == nil {
		k.Now = c.TimeWait
	}
	now, err := b.r.Counters()
	if err != nil {
		return k, err
	}
	k.Overflow = now["TCPTimeWaitOverflow"] - b.base["TCPTimeWaitOverflow"]
	k.Recycled = now["TWRecycled"] - b.base["TWRecycled"]
	k.Killed = now["TWKilled"] - b.base["TWKilled"]
	return k, nil
}

func runTimeWait(a *app, o *options) error {
	stdout, stderr := a.stdout, a.stderr
	// Only TIME_WAIT entries are timed, so only they are dumped.
	prog := filter.Compile(filter.AndOf(o.expr, filter.StateIn{Mask: sock.MaskOf(sock.TimeWait)}), filter.Options{})
	ctx, cancel := withFor(a.ctx, o.runFor)
	defer cancel()
	s, err := openLive(ctx, a, o, prog)
	if err != nil {
		return err
	}
	defer s.Close()
	stat, err := s.Stat()
	if err != nil {
		return err
	}
	kb, err := newBaseline(stat)
	if err != nil {
		a.note(err.Error())
	}

	out := bufio.NewWriter(stdout)
	var netnsCol *render.Column // many namespaces: each line says whose
	if names := s.Names(); names != nil {
		netnsCol = render.NetnsColumn(names)
	}
	stats := twstat.New()
	start := time.Now()
	var line []byte
	slow := false
	mon := monitor.New(s.Reader(), monitor.Options{Lookup: s.Lookup(), Processes: o.processes, Interval: o.interval},
		func(f *monitor.Frame) {
			defer f.Release() // only its events are kept
			if f.Err != nil {
				fmt.Fprintf(stderr, "sockscope: %v\n", f.Err)
				return
			}
			if f.Warn != nil {
				a.note(f.Warn.Error()) // said once by the monitor
			}
			slow = slowNote(a, f, o.interval, slow)
			stats.Add(f.Events)
			if o.json {
				return
			}
			for i := range f.Events {
				if e := &f.Events[i]; e.Kind == track.EventGone && e.TimeWait != nil {
					line = appendTimeWaitEnd(line[:0], e, netnsCol)
					out.Write(line)
				}
			}
			if out.Flush() != nil {
				cancel() // the reader went away
			}
		})
	if err := mon.Run(ctx, nil, s.Destroys()); err != nil {
		return err
	}
	a.note(s.ClosingNotes()...)
	took := time.Since(start)
	k, err := kb.context()
	if err != nil {
		fmt.Fprintf(stderr, "sockscope: note: reading the kernel's TIME_WAIT settings: %v\n", err)
	}
	sum := stats.Summary()
	if o.json {
		b, err := json.Marshal(struct {
			DurationS float64        `json:"duration_s"`
			Summary   twstat.Summary `json:"summary"`
			Kernel    twstat.Context `json:"kernel"`
		}{took.Seconds(), sum, k})
		if err != nil {
			return err
		}
		out.Write(append(b, '\n'))
	} else {
		out.WriteString("\n")
		if err := twstat.WriteText(out, sum, k, took); err != nil {
			return err
		}
	}
	if err := out.Flush(); err != nil && !isBrokenPipe(err) {
		return fmt.Errorf("writing the summary: %w", err)
	}
	return nil
}

// appendTimeWaitEnd is the live report's line for one entry that left.
func appendTimeWaitEnd(b []byte, e *track.Event, netns *render.Column) []byte {
	b = e.At.AppendFormat(b, "15:04:05.000")
	b = append(b, ' ')
	if netns != nil {
		b = netns.Text(b, &e.Entry)
		b = append(b, ' ')
	}
	b = e.Entry.Local.AppendTo(b)
	b = append(b, ' ')
	b = e.Entry.Peer.AppendTo(b)
	b = append(b, " TIME_WAIT lasted "...)
	b = strconv.AppendFloat(b, e.TimeWait.Length.Seconds(), 'f', 1, 64)
	b = append(b, 's')
	if e.TimeWait.Early {
		b = append(b, " (ended early)"...)
	}
	return append(b, '\n')
}
