// Command sockload builds a large, steady TCP population inside a private
// network namespace on loopback, for benchmarks: ESTABLISHED connections
// spread over several processes (each process may hold 20,000 descriptors
// here), TIME_WAIT entries kept steady by closing connections server-side
// at a fixed rate, CLOSE_WAIT sockets, and a small group on port 9000.
//
//	sockload -netns sockload -established 80000 -timewait 30000
//
// It prints "ready ..." when the population stands, holds it until SIGINT,
// SIGTERM or the end of its standard input, then stops its workers and
// deletes the namespace. Traffic never leaves the namespace's loopback.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sockscope/sockscope/pkg/kstat"
	"github.com/sockscope/sockscope/pkg/netns"
	"golang.org/x/sys/unix"
)

// perWorker is how many connections one process holds: two descriptors
// each, under the 20,000-descriptor limit.
const perWorker = 9000

func main() {
	var (
		ns          = flag.String("netns", "sockload", "name of the namespace to create (deleted on exit)")
		established = flag.Int("established", 80000, "ESTABLISHED sockets (both ends of a connection count)")
		timewait    = flag.Int("timewait", 30000, "steady TIME_WAIT entries (closes timewait/60 connections a second)")
		closewait   = flag.Int("closewait", 2000, "CLOSE_WAIT sockets")
		port9000    = flag.Int("port9000", 20, "ESTABLISHED connections on port 9000")
		fill        = flag.Duration("fill", 75*time.Second, "longest wait for TIME_WAIT to reach its level before saying ready")
		worker      = flag.String("worker", "", "internal: run one worker of this kind")
		n           = flag.Int("n", 0, "internal: the worker's count")
		port        = flag.Int("port", 0, "internal: the worker's port")
	)
	flag.Parse()
	if *worker != "" {
		if err := runWorker(*worker, *n, *port); err != nil {
			fmt.Fprintf(os.Stderr, "sockload worker %s: %v\n", *worker, err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *ns, *established, *timewait, *closewait, *port9000, *fill); err != nil {
		fmt.Fprintf(os.Stderr, "sockload: %v\n", err)
		os.Exit(1)
	}
}

func sh(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func run(ctx context.Context, ns string, established, timewait, closewait, port9000 int, fill time.Duration) error {
	if err := sh("ip", "netns", "add", ns); err != nil {
		return err
	}
	defer sh("ip", "netns", "del", ns)
	for _, c := range [][]string{
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		// Room for many connections to one server port, above the
		// listeners (9000, 19000-20100), which clients must not take.
		{"ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_local_port_range=30000 65000"},
		{"ip", "netns", "exec", ns, "sysctl", "-qw", "net.core.somaxconn=4096"},
		// Room for the TIME_WAIT entries asked for: past the limit the
		// kernel destroys them at once (and counts TCPTimeWaitOverflow).
		{"ip", "netns", "exec", ns, "sysctl", "-qw", fmt.Sprintf("net.ipv4.tcp_max_tw_buckets=%d", max(2*timewait, 262144))},
	} {
		if err := sh(c[0], c[1:]...); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var workers []*exec.Cmd
	defer func() {
		for _, w := range workers {
			w.Process.Signal(syscall.SIGTERM)
			w.Wait()
		}
	}()
	start := func(kind string, n, port int) error {
		cmd := exec.Command("ip", "netns", "exec", ns, self, "-worker", kind, "-n", fmt.Sprint(n), "-port", fmt.Sprint(port))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return fmt.Errorf("worker %s's stdout: %w", kind, err)
		}
		if _, err := cmd.StdinPipe(); err != nil { // closed when we exit: the worker's cue
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		workers = append(workers, cmd)
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "ready") {
			return fmt.Errorf("worker %s: %q %v", kind, line, err)
		}
		return nil
	}
	conns := established / 2
	for i := 0; conns > 0; i++ {
		k := min(conns, perWorker)
		if err := start("established", k, 20000+i); err != nil {
			return err
		}
		conns -= k
	}
	if err := start("closewait", closewait, 19999); err != nil {
		return err
	}
	if err := start("established", port9000, 9000); err != nil {
		return err
	}
	if err := start("timewait", timewait, 19000); err != nil {
		return err
	}
	target, err := netns.Resolve(ns)
	if err != nil {
		return err
	}
	k, err := kstat.Open(target)
	if err != nil {
		return err
	}
	defer k.Close()
	// TIME_WAIT builds up at the churn rate for 60 s, then holds.
	deadline := time.Now().Add(fill)
	for {
		c, err := k.Sockets()
		if err != nil {
			return err
		}
		if c.TimeWait >= timewait*95/100 || time.Now().After(deadline) {
			fmt.Printf("ready netns=%s sockets=%d timewait=%d inuse=%d\n", ns, c.Total(), c.TimeWait, c.InUse4+c.InUse6)
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	held := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(held)
	}()
	select {
	case <-ctx.Done():
	case <-held:
	}
	return nil
}

// runWorker builds its part of the population, says "ready", and holds it
// until its standard input closes or it is told to stop.
func runWorker(kind string, n, port int) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err == nil {
		lim.Cur = lim.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	}
	stop := make(chan struct{})
	var once sync.Once
	end := func() { once.Do(func() { close(stop) }) }
	go func() {
		io.Copy(io.Discard, os.Stdin)
		end()
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() { <-sig; end() }()

	addr := "127.0.0.1"
	if port == 9000 {
		addr = "0.0.0.0"
	}
	switch kind {
	case "established", "closewait":
		lfd, err := listen(netip.AddrPortFrom(netip.MustParseAddr(addr), uint16(port)))
		if err != nil {
			return err
		}
		dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
		for range n {
			c, s, err := connect(lfd, dst)
			if err != nil {
				return err
			}
			if kind == "closewait" {
				unix.Close(c) // the peer closes, this end stays: CLOSE_WAIT
			}
			_ = s // held open until the worker exits
		}
		fmt.Println("ready")
		<-stop
		return nil
	case "timewait":
		// Churn over several server ports so that reused client ports
		// rarely land on a live TIME_WAIT four-tuple.
		var ports, lfds []int
		for i := range 8 {
			p := port + i
			lfd, err := listen(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p)))
			if err != nil {
				return err
			}
			ports, lfds = append(ports, p), append(lfds, lfd)
		}
		fmt.Println("ready")
		perSec := max(n/60, 1)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		carry, i := 0.0, 0
		for {
			select {
			case <-stop:
				return nil
			case <-tick.C:
			}
			carry += float64(perSec) / 100
			for ; carry >= 1; carry-- {
				lfd, p := lfds[i%len(lfds)], ports[i%len(lfds)]
				i++
				c, s, err := connect(lfd, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p)))
				if err != nil {
					if errors.Is(err, unix.EADDRNOTAVAIL) {
						continue // out of ports for a moment
					}
					return err
				}
				unix.Close(s) // the server closes first: TIME_WAIT on its side
				drain(c)
				unix.Close(c)
			}
		}
	}
	return fmt.Errorf("unknown worker kind %q", kind)
}

func listen(ap netip.AddrPort) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		return -1, fmt.Errorf("bind %v: %w", ap, err)
	}
	return fd, unix.Listen(fd, 4096)
}

func connect(lfd int, dst netip.AddrPort) (client, server int, err error) {
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, err
	}
	if err := unix.Connect(c, &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}); err != nil {
		unix.Close(c)
		return -1, -1, fmt.Errorf("connect %v: %w", dst, err)
	}
	s, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	if err != nil {
		unix.Close(c)
		return -1, -1, fmt.Errorf("accept: %w", err)
	}
	return c, s, nil
}

// drain reads until the peer's FIN.
func drain(fd int) {
	buf := make([]byte, 64)
	for {
		n, err := unix.Read(fd, buf)
		if n <= 0 || err != nil {
			return
		}
	}
}
