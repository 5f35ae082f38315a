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

// churnRun times *churnCycles connections (connect, accept, close: the
// server's end closes first, so the client's ports are not held) without
// a program, with the live modes' program read by a reader, and with the
// agent; the three alternate, *runs rounds.
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
	configs := []struct {
		name  string
		start func() (stop func() error, err error)
	}{
		{"none", func() (func() error, error) { return func() error { return nil }, nil }},
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
	times := make([][]float64, len(configs))
	for round := range *runs {
		for i := range configs {
			k := (i + round) % len(configs) // each goes first in turn
			c := configs[k]
			stop, err := c.start()
			if err != nil {
				return nil, "", fmt.Errorf("%s: %w", c.name, err)
			}
			var took time.Duration
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
			times[k] = append(times[k], took.Seconds())
		}
	}
	med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	none := med(times[0])
	what := func(s string) string {
		return fmt.Sprintf("connection churn, %d connections: %s vs no program", *churnCycles, s)
	}
	rows := []row{
		{what: what("an empty program on the tracepoint (the anchor: any program's cost)"), a: med(times[1]), b: none, unit: "s"},
		{what: what("the live modes' program, of another namespace"), a: med(times[2]), b: none, unit: "s", target: 1.03},
		{what: what("the live modes' program, of this namespace (events read)"), a: med(times[3]), b: none, unit: "s", target: 1.03},
		{what: what("the agent"), a: med(times[4]), b: none, unit: "s", target: 1.03},
	}
	return rows, fmt.Sprintf("Connection churn in namespace %s: connect, accept, close on loopback, the server's end first.", churnNS), nil
}

// churnOnce makes n connections to a listener on port and closes them,
// and returns how long that took.
func churnOnce(port, n int) (time.Duration, error) {
	l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(l)
	if err := unix.SetsockoptInt(l, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return 0, fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	sa := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	if err := unix.Bind(l, sa); err != nil {
		return 0, fmt.Errorf("bind: %w", err)
	}
	if err := unix.Listen(l, 128); err != nil {
		return 0, fmt.Errorf("listen: %w", err)
	}
	start := time.Now()
	for range n {
		c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("socket: %w", err)
		}
		if err := unix.Connect(c, sa); err != nil {
			unix.Close(c)
			return 0, fmt.Errorf("connect: %w", err)
		}
		s, _, err := unix.Accept4(l, unix.SOCK_CLOEXEC)
		if err != nil {
			unix.Close(c)
			return 0, fmt.Errorf("accept: %w", err)
		}
		unix.Close(s)
		unix.Close(c)
	}
	return time.Since(start), nil
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
