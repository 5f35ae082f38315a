package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/kstat"
	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/session"
	"github.com/spf13/cobra"
)

func newStatsCmd(a *app) *cobra.Command {
	var o options
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stats [-N NETNS] [-i INTERVAL] [--json]",
		Short: "the kernel's TCP counters (resets, overflows, opens)",
		Long: `The TCP counters that explain what the socket table shows, from
/proc/net/snmp and /proc/net/netstat of the namespace. With -i, a table
every INTERVAL with per-second rates, until Ctrl-C or --for.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.runFor > 0 && o.interval == 0 {
				return usagef("stats: --for %v needs -i: without it stats reads the counters once", o.runFor)
			}
			nss, err := resolveAll(cmd.Name(), o.netnsArgs, false)
			if err != nil {
				return err
			}
			a.note(repeatedFlags(cmd)...)
			return runStats(a, nss[0], o.interval, o.runFor, asJSON)
		},
	}
	cmd.Flags().StringArrayVarP(&o.netnsArgs, "netns", "N", nil, "read the namespace `NAME` (under /run/netns) or PATH")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per reading")
	o.liveFlags(cmd, 0) // once, unless -i
	mustComplete(cmd, "netns", completeNetns)
	return cmd
}

func runStats(a *app, ns netns.NS, interval, dur time.Duration, asJSON bool) error {
	ctx, stdout := a.ctx, a.stdout
	s, err := session.Open(ctx, session.Config{Namespaces: []netns.NS{ns}, Program: filter.Compile(nil, filter.Options{})})
	if err != nil {
		return err
	}
	defer s.Close()
	r, err := s.Stat()
	if err != nil {
		return err
	}
	out := bufio.NewWriter(stdout)
	prev, err := r.Counters()
	if err != nil {
		return err
	}
	if interval == 0 {
		if err := writeStats(out, prev, nil, 0, asJSON); err != nil {
			return fmt.Errorf("writing the counters: %w", err)
		}
		return flush(out, "the counters")
	}
	ctx, cancel := withFor(ctx, dur)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			cur, err := r.Counters()
			if err != nil {
				return err
			}
			if err := writeStats(out, cur, prev, now.Sub(last), asJSON); err != nil {
				return fmt.Errorf("writing the counters: %w", err)
			}
			if err := out.Flush(); err != nil {
				if isBrokenPipe(err) {
					return nil // the reader went away: stop
				}
				return fmt.Errorf("writing the counters: %w", err)
			}
			prev, last = cur, now
		}
	}
}

// writeStats writes one reading; with prev, rates over dt too.
func writeStats(w *bufio.Writer, cur, prev map[string]int64, dt time.Duration, asJSON bool) error {
	if asJSON {
		type counter struct {
			Value int64    `json:"value"`
			Rate  *float64 `json:"per_second,omitempty"`
		}
		obj := struct {
			Time     time.Time          `json:"time"`
			Counters map[string]counter `json:"counters"`
		}{Time: time.Now(), Counters: map[string]counter{}}
		for _, c := range kstat.TCPCounters {
			v, ok := cur[c.Name]
			if !ok {
				continue
			}
			ct := counter{Value: v}
			if prev != nil {
				rate := float64(v-prev[c.Name]) / dt.Seconds()
				ct.Rate = &rate
			}
			obj.Counters[c.Name] = ct
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	}
	if prev != nil {
		fmt.Fprintf(w, "%s, over %s:\n", time.Now().Format("15:04:05"), dt.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "%-20s %12s", "Counter", "Value")
	if prev != nil {
		fmt.Fprintf(w, " %10s", "Per s")
	}
	fmt.Fprintf(w, "  %s\n", "Counts")
	for _, c := range kstat.TCPCounters {
		v, ok := cur[c.Name]
		if !ok {
			continue // an older kernel without it
		}
		fmt.Fprintf(w, "%-20s %12d", c.Name, v)
		if prev != nil {
			fmt.Fprintf(w, " %10.1f", float64(v-prev[c.Name])/dt.Seconds())
		}
		fmt.Fprintf(w, "  %s\n", c.Help)
	}
	if prev != nil {
		w.WriteString("\n")
	}
	return nil
}
