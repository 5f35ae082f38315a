package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sockscope/sockscope/pkg/kstat"
	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/nsfind"
	"github.com/sockscope/sockscope/pkg/render"
	"github.com/sockscope/sockscope/pkg/session"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/tablecount"
	"github.com/spf13/cobra"
)

// netnsStates are the counts the summary shows, in order; the other
// states add up in OTHER.
var netnsStates = []sock.State{sock.Listen, sock.Established, sock.TimeWait, sock.CloseWait}

func newNetnsCmd(a *app) *cobra.Command {
	var (
		o       options
		sortBy  string
		podLogs string
	)
	cmd := &cobra.Command{
		Use:   "netns [flags] [FILTER]",
		Short: "every network namespace on the host: who holds it, and its sockets by state",
		Long: withFilterHelp(`One line per network namespace on the host, found through every process,
the ip netns names, nsfs mounts and open descriptors: who it belongs to
(host, an ip netns name, a container or pod from its processes' cgroups,
a mount, a process) and how many of its TCP sockets that match FILTER are
in each state. --sort puts the namespaces with the most sockets in that
state first: which container holds the TIME_WAIT or leaks CLOSE_WAIT.`),
		RunE: func(cmd *cobra.Command, args []string) error {
			by, ok := sortKey(sortBy)
			if !ok {
				return usagef("netns: invalid --sort value %q (want listen, established, time-wait, close-wait or total)", sortBy)
			}
			if err := o.prepare(cmd, args, false); err != nil {
				return err
			}
			return runNetns(a, &o, by, podLogs)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&sortBy, "sort", "total", "first the namespaces with the most sockets in `STATE` (or total)")
	fs.StringVar(&podLogs, "pod-logs", "/var/log/pods", "the kubelet's pod log `DIR`, which names pods")
	fs.BoolVarP(&o.noHeader, "no-header", "H", false, "no column titles")
	fs.BoolVar(&o.json, "json", false, "one JSON object per namespace per line")
	mustComplete(cmd, "sort", fixedWords("total", "listen", "established", "time-wait", "close-wait"))
	cmd.ValidArgsFunction = completeFilter
	return cmd
}

// sortKey reads --sort: a state's number, or -1 for the total.
func sortKey(s string) (int, bool) {
	if s == "total" {
		return -1, true
	}
	for _, st := range netnsStates {
		if strings.EqualFold(strings.ReplaceAll(s, "-", "_"), st.String()) {
			return int(st), true
		}
	}
	return 0, false
}

// netnsRow is one namespace of the summary.
type netnsRow struct {
	ns     nsfind.Namespace
	id     nsfind.Identity
	counts [16]int
	total  int
}

func (r *netnsRow) count(by int) int {
	if by < 0 {
		return r.total
	}
	return r.counts[by&15]
}

func runNetns(a *app, o *options, sortBy int, podLogs string) error {
	found, err := nsfind.Scan(nsfind.Options{Descriptors: true})
	if err != nil {
		return err
	}
	var rows []netnsRow
	gone := 0
	var walked map[uint64]*tablecount.Counts
	if o.prog.StatesOnly() {
		var err error
		if walked, err = walkNamespaces(found, o.prog.States); err != nil {
			a.note(fmt.Sprintf("each namespace is dumped on its own: %v", err))
		}
	}
	for i := range found {
		n := &found[i]
		var row netnsRow
		if c := walked[n.Inode]; c != nil {
			row = walkedRow(n, c)
		} else if row, err = countNamespace(a, o, n); err != nil {
			var ne *netns.Error
			if errors.As(err, &ne) || errors.Is(err, os.ErrNotExist) {
				gone++ // it went between the scan and the dump: a container exited
				continue
			}
			return fmt.Errorf("namespace %s: %w", n.Path, err)
		}
		row.id = nsfind.Identify(n, nsfind.IdentifyOptions{PodLogs: podLogs})
		rows = append(rows, row)
	}
	slices.SortStableFunc(rows, func(x, y netnsRow) int {
		if c := y.count(sortBy) - x.count(sortBy); c != 0 {
			return c
		}
		return strings.Compare(x.id.Label, y.id.Label)
	})
	if o.json {
		err = writeNetnsJSON(a.stdout, rows)
	} else {
		err = writeNetnsTable(a.stdout, rows, !o.noHeader)
	}
	if err != nil && !isBrokenPipe(err) {
		return fmt.Errorf("writing the namespaces: %w", err)
	}
	if gone > 0 {
		a.note(fmt.Sprintf("%d namespaces went away before they could be read", gone))
	}
	return nil
}

// walkNamespaces counts the sockets in these states, in one walk of the
// kernel's shared tables (tablecount), of the namespaces of found that keep their connections there,
// and the caller's: a dump of each would walk the whole shared table once
// per namespace. It returns the counts it has; the namespaces without them
// are dumped, as they all are when it fails (not root, no BTF), with the
// same answer.
func walkNamespaces(found []nsfind.Namespace, states sock.StateMask) (map[uint64]*tablecount.Counts, error) {
	c, err := tablecount.Open(len(found), nil, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetStates(states)
	inodes := make([]uint32, 0, len(found))
	shared := make(map[uint32]bool, len(found))
	for i := range found {
		ns, err := netns.Resolve(found[i].Path)
		if err != nil {
			continue // gone: its dump says so
		}
		// Unread, it counts as a table of its own: dumped.
		if ok, err := kstat.SharesHostTable(ns); err == nil {
			shared[uint32(ns.Inode)] = ok
		}
		inodes = append(inodes, uint32(ns.Inode))
	}
	w, err := c.Count(inodes)
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]*tablecount.Counts, len(w.Counts))
	for ino, counts := range w.Counts {
		if w.Covers(ino, shared[ino]) {
			out[uint64(ino)] = counts
		}
	}
	return out, nil
}

// walkedRow is a namespace's row from the walk's counts.
func walkedRow(n *nsfind.Namespace, c *tablecount.Counts) netnsRow {
	row := netnsRow{ns: *n}
	c.Each(nil, func(_ uint16, _ sock.Family, st sock.State, k uint32) {
		row.counts[st&15] += int(k)
		row.total += int(k)
	})
	return row
}

// countNamespace dumps one namespace with the filter and counts its
// sockets by state. A session per namespace, closed before the next, so
// that a thousand namespaces need no more descriptors than one.
func countNamespace(a *app, o *options, n *nsfind.Namespace) (netnsRow, error) {
	row := netnsRow{ns: *n}
	ns, err := netns.Resolve(n.Path)
	if err != nil {
		return row, err
	}
	s, err := session.Open(a.ctx, session.Config{Namespaces: []netns.NS{ns}, Program: o.prog})
	if err != nil {
		return row, err
	}
	defer s.Close()
	snap, err := s.Source().Snapshot()
	if err != nil {
		return row, err
	}
	for i := range snap.Sockets {
		row.counts[snap.Sockets[i].State&15]++
	}
	row.total = len(snap.Sockets)
	return row, nil
}

func writeNetnsTable(w io.Writer, rows []netnsRow, header bool) error {
	// Text columns left, counts right, two spaces between, as list does.
	var table [][]string
	if header {
		h := []string{"NETNS", "INODE", "OWNER", "PROCESS"}
		for _, st := range netnsStates {
			h = append(h, st.String())
		}
		table = append(table, append(h, "OTHER", "TOTAL"))
	}
	for i := range rows {
		r := &rows[i]
		proc := "-"
		if r.id.PID != 0 {
			proc = fmt.Sprintf("%d/%s", r.id.PID, r.id.Command)
		}
		line := []string{r.id.Label, strconv.FormatUint(r.ns.Inode, 10), r.id.Owner(), proc}
		other := r.total
		for _, st := range netnsStates {
			line = append(line, strconv.Itoa(r.counts[st]))
			other -= r.counts[st]
		}
		table = append(table, append(line, strconv.Itoa(other), strconv.Itoa(r.total)))
	}
	const text = 4 // the first four columns are text
	var widths [16]int
	for _, line := range table {
		for c, cell := range line {
			widths[c] = max(widths[c], utf8.RuneCountInString(cell))
		}
	}
	var b []byte
	for _, line := range table {
		for c, cell := range line {
			pad := widths[c] - utf8.RuneCountInString(cell)
			if c >= text {
				b = append(b, strings.Repeat(" ", pad)...)
			}
			b = append(b, render.AppendPrintable(nil, cell)...)
			if c < len(line)-1 {
				if c < text {
					b = append(b, strings.Repeat(" ", pad)...)
				}
				b = append(b, "  "...)
			}
		}
		b = append(b, '\n')
	}
	_, err := w.Write(b)
	return err
}

// netnsJSON is a namespace as JSON shows it.
type netnsJSON struct {
	Netns struct {
		Inode        uint64   `json:"inode"`
		Label        string   `json:"label"`
		Path         string   `json:"path"`
		Names        []string `json:"names,omitempty"`
		Mounts       []string `json:"mounts,omitempty"`
		Runtime      string   `json:"runtime,omitempty"`
		Container    string   `json:"container,omitempty"`
		Pod          string   `json:"pod,omitempty"`
		PodNamespace string   `json:"pod_namespace,omitempty"`
		PodUID       string   `json:"pod_uid,omitempty"`
		Unit         string   `json:"unit,omitempty"`
		PID          int      `json:"pid,omitempty"`
		Command      string   `json:"command,omitempty"`
		Host         bool     `json:"host"`
	} `json:"netns"`
	Counts map[string]int `json:"counts"`
	Total  int            `json:"total"`
}

func writeNetnsJSON(w io.Writer, rows []netnsRow) error {
	enc := json.NewEncoder(w)
	for i := range rows {
		r := &rows[i]
		var j netnsJSON
		n := &j.Netns
		n.Inode, n.Label, n.Path, n.Names, n.Mounts = r.ns.Inode, r.id.Label, r.ns.Path, r.ns.Names, r.ns.Mounts
		n.Runtime, n.Container, n.Unit, n.PID, n.Command, n.Host = r.id.Runtime, r.id.Container, r.id.Unit, r.id.PID, r.id.Command, r.ns.Init()
		n.Pod, n.PodNamespace, n.PodUID = r.id.PodName, r.id.PodNamespace, r.id.PodUID
		j.Counts = map[string]int{}
		for st, c := range r.counts {
			if c > 0 {
				j.Counts[sock.State(st).String()] = c
			}
		}
		j.Total = r.total
		if err := enc.Encode(&j); err != nil {
			return err
		}
	}
	return nil
}
