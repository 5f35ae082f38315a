package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os/exec"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/sockscope/sockscope/pkg/kevents"
	"github.com/sockscope/sockscope/pkg/netns"
	"golang.org/x/sys/unix"
)

// The -churn run: what sockscope's BPF programs cost the kernel's own
// work, connection churn, in a namespace of its own.
var (
	churn       = flag.Bool("churn", false, "measure what the BPF programs cost connection churn (connect, accept, close on loopback): none, watch's events, the agent")
	churnCycles = flag.Int("churn-cycles", 5000, "-churn: connections per measurement")
)

const churnNS = "sockbench-churn"

// churnBatch is how many connections one timed batch makes: short enough
// (about 15 ms here) that most batches run undisturbed by the host, whose
// other guests take this machine's cores for tens of milliseconds at a
// time (one whole 20,000-connection run varies by 30% from that alone).
const churnBatch = 500

// churnRun times *churnCycles connections (connect, accept, close: the
// server's end closes first, so the client's ports are not held) without
// a program, with an empty one, with the live modes' program and with the
// agent; the configurations alternate, *runs rounds. Each run is timed in
// batches of churnBatch connections and a configuration's figure is the
// lower quartile of all its batches: the cost of the work itself, not of
// the moments the host took the core away. A second "none" is measured
// like the others, so the table shows how finely the run can tell two
// configurations apart.
func churnRun() ([]row, string, error) {
	if out, err := exec.Command("ip", "netns", "add", churnNS).CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("ip netns add %s: %v: %s", churnNS, err, out)
	}
	defer exec.Command("ip", "netns", "del", churnNS).Run()
	if out, err := exec.Command("ip", "-n", churnNS, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("lo up in %s: %v: %s", churnNS, err, out)
	}
	ns, err := netns.Resolve(churnNS)
	if err != nil {
		return nil, "", err
	}
	if st, err := kevents.Status(); err != nil || st.Running {
		return nil, "", fmt.Errorf("an agent runs already (%v): stop it first, it would be measured in every round", err)
	}
	nothing := func() (func() error, error) { return func() error { return nil }, nil }
	configs := []struct {
		name  string
		start func() (stop func() error, err error)
	}{
		{"none", nothing},
		{"none again", nothing},
		{"empty", func() (func() error, error) {
			// The anchor: a program that does nothing, what any program
			// on this tracepoint costs.
			prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp,
				AttachTo: "inet_sock_set_state", License: "GPL", Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
			if err != nil {
				return nil, err
			}
			l, err := link.AttachTracing(link.TracingOptions{Program: prog})
			if err != nil {
				prog.Close()
				return nil, err
			}
			return func() error { return errors.Join(l.Close(), prog.Close()) }, nil
		}},
		{"events elsewhere", func() (func() error, error) {
			// A dashboard of another namespace: the program tells the
			// churn's namespace apart and skips it.
			self, err := netns.Self()
			if err != nil {
				return nil, err
			}
			return startEvents(uint32(self.Inode))
		}},
		{"events", func() (func() error, error) {
			// As the dashboard and watch of this namespace load it.
			return startEvents(uint32(ns.Inode))
		}},
		{"agent", func() (func() error, error) {
			if _, err := kevents.StartAgent(); err != nil {
				return nil, err
			}
			return kevents.StopAgent, nil
		}},
	}
	batches := make([][]float64, len(configs))
	for round := range *runs {
		for i := range configs {
			k := (i + round) % len(configs) // each goes first in turn
			c := configs[k]
			stop, err := c.start()
			if err != nil {
				return nil, "", fmt.Errorf("%s: %w", c.name, err)
			}
			var took []float64
			err = ns.Run(func() error {
				var err error
				took, err = churnOnce(9000+round, *churnCycles)
				return err
			})
			if serr := stop(); serr != nil && err == nil {
				err = serr
			}
			if err != nil {
				return nil, "", fmt.Errorf("%s: %w", c.name, err)
			}
			batches[k] = append(batches[k], took...)
		}
	}
	// The figure is the time of *churnCycles connections at the pace of
	// the lower quartile's batch.
	q1 := func(v []float64) float64 {
		slices.Sort(v)
		return v[len(v)/4] * float64(*churnCycles) / churnBatch
	}
	none := q1(batches[0])
	what := func(s string) string {
		return fmt.Sprintf("connection churn, %d connections: %s vs no program", *churnCycles, s)
	}
	rows := []row{
		{what: what("no program again (the run's resolution)"), a: q1(batches[1]), b: none, unit: "s"},
		{what: what("an empty program on the tracepoint (the anchor: any program's cost)"), a: q1(batches[2]), b: none, unit: "s"},
		{what: what("the live modes' program, of another namespace"), a: q1(batches[3]), b: none, unit: "s", target: 1.03},
		{what: what("the live modes' program, of this namespace (events read)"), a: q1(batches[4]), b: none, unit: "s", target: 1.03},
		{what: what("the agent"), a: q1(batches[5]), b: none, unit: "s", target: 1.03},
	}
	return rows, fmt.Sprintf("Connection churn in namespace %s: connect, accept, close on loopback, the server's end first; "+
		"each figure is the lower quartile of batches of %d connections, scaled to %d.", churnNS, churnBatch, *churnCycles), nil
}

// churnOnce makes n connections to a listener on port and closes them,
// and returns how long each batch of churnBatch took, in seconds.
func churnOnce(port, n int) ([]float64, error) {
	l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(l)
	if err := unix.SetsockoptInt(l, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return nil, fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	sa := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	if err := unix.Bind(l, sa); err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	if err := unix.Listen(l, 128); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	var took []float64
	start := time.Now()
	for i := range n {
		c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("socket: %w", err)
		}
		if err := unix.Connect(c, sa); err != nil {
			unix.Close(c)
			return nil, fmt.Errorf("connect: %w", err)
		}
		s, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
		if err != nil {
			unix.Close(c)
			return nil, fmt.Errorf("accept: %w", err)
		}
		unix.Close(s)
		unix.Close(c)
		if (i+1)%churnBatch == 0 {
			now := time.Now()
			took = append(took, now.Sub(start).Seconds())
			start = now
		}
	}
	if len(took) == 0 {
		return nil, fmt.Errorf("%d connections make no batch of %d", n, churnBatch)
	}
	return took, nil
}

// startEvents loads the live modes' program for one namespace and reads
// its events, as watch and the dashboard do.
func startEvents(ino uint32) (func() error, error) {
	w, err := kevents.Open([]uint32{ino})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func(*kevents.Transition) { n.Add(1) }) }()
	return func() error {
		cancel()
		return errors.Join(<-done, w.Close())
	}, nil
}
