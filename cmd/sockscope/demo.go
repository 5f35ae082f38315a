package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/sockscope/sockscope/pkg/netns"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/sockscope/sockscope/pkg/diagnose"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

const demoHelp = `usage: sockscope demo server [flags]
       sockscope demo client [flags]

The tutorial's experiment: a server that greets each client with
"I sent sth to client!" and closes, and clients that read it and close.
Watch it with 'sockscope :9000' in another terminal: the server's closes
leave TIME_WAIT entries on port 9000, and a restarted server's bind() fails
until they are gone (or it sets SO_REUSEADDR, as --reuseaddr does).`

// greeting is what the tutorial's server.c sends.
const greeting = "I sent sth to client!\n"

type demoFlags struct {
	port       uint16
	addr       string
	netns      string
	n          int
	reuseAddr  bool
	linger0    bool
	noClose    bool
	closeFirst bool
}

func runDemo(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || (args[0] != "server" && args[0] != "client") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stdout, demoHelp)
			return nil
		}
		got := ""
		if len(args) > 0 {
			got = fmt.Sprintf(", got %q", args[0])
		}
		return usagef("demo: want 'server' or 'client'%s", got)
	}
	role := args[0]
	var f demoFlags
	fs := pflag.NewFlagSet("demo "+role, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Uint16Var(&f.port, "port", 9000, "TCP port")
	fs.StringVarP(&f.netns, "netns", "N", "", "run inside the namespace `NAME` or PATH")
	if role == "server" {
		fs.StringVar(&f.addr, "addr", "0.0.0.0", "address to bind")
		fs.IntVarP(&f.n, "count", "n", 0, "exit after N connections (0: serve until Ctrl-C)")
		fs.BoolVar(&f.reuseAddr, "reuseaddr", false, "set SO_REUSEADDR before bind(), as a fixed server.c does")
		fs.BoolVar(&f.linger0, "linger0", false, "close with RST (SO_LINGER 0): no TIME_WAIT")
		fs.BoolVar(&f.noClose, "no-close", false, "keep connections open: a client that closes leaves them in CLOSE_WAIT")
	} else {
		fs.StringVar(&f.addr, "addr", "127.0.0.1", "server address")
		fs.IntVarP(&f.n, "count", "n", 1, "connections to make, one after another")
		fs.BoolVar(&f.closeFirst, "close-first", false, "close right after the greeting, before the server does")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if err == pflag.ErrHelp {
			fmt.Fprintf(stdout, "%s\n\nFlags:\n%s", demoHelp, fs.FlagUsages())
			return nil
		}
		return usagef("demo %s: %v", role, err)
	}
	if fs.NArg() > 0 {
		return usagef("demo %s: unexpected argument %q", role, fs.Arg(0))
	}
	addr, err := netip.ParseAddr(f.addr)
	if err != nil || addr.Zone() != "" {
		return usagef("demo %s: bad --addr %q: not an IP address", role, f.addr)
	}
	if f.port == 0 || f.n < 0 {
		return usagef("demo %s: --port must be 1-65535 and --count 0 or more", role)
	}
	ap := netip.AddrPortFrom(addr, f.port)
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	say := func(format string, a ...any) {
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
	}
	if role == "server" {
		return demoServer(ctx, &f, ap, say)
	}
	return demoClient(&f, ap, say)
}

// inNetns runs f inside the namespace arg names ("" for the caller's);
// sockets f creates stay there.
func inNetns(arg string, f func() error) error {
	ns, err := netns.Resolve(arg)
	if err != nil {
		return err
	}
	return ns.Run(f)
}

func sockaddr(ap netip.AddrPort) (int, unix.Sockaddr) {
	if ap.Addr().Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func demoServer(ctx context.Context, f *demoFlags, ap netip.AddrPort, say func(string, ...any)) error {
	var lfd int
	err := inNetns(f.netns, func() error {
		fam, sa := sockaddr(ap)
		var err error
		if lfd, err = unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		if f.reuseAddr {
			if err := unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
				return fmt.Errorf("setting SO_REUSEADDR: %w", err)
			}
		}
		if err := unix.Bind(lfd, sa); err != nil {
			hint := ""
			if errors.Is(err, unix.EADDRINUSE) {
				hint = fmt.Sprintf("; 'sockscope bind %s' says what holds it and whether SO_REUSEADDR (--reuseaddr) would bind", ap)
			}
			return fmt.Errorf("bind %s: %s%s", ap, diagnose.Errno(err), hint)
		}
		if err := unix.Listen(lfd, 16); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		return nil
	})
	if err != nil {
		if lfd > 0 {
			unix.Close(lfd)
		}
		return err
	}
	defer unix.Close(lfd)
	say("listening on %s (pid %d)", ap, os.Getpid())
	var kept []int
	defer func() {
		for _, fd := range kept {
			unix.Close(fd)
		}
	}()
	for served := 0; f.n == 0 || served < f.n; {
		fd, peer, err := acceptCtx(ctx, lfd)
		if err != nil {
			return err
		}
		if fd < 0 {
			return nil // Ctrl-C
		}
		served++
		if _, err := unix.Write(fd, []byte(greeting)); err != nil {
			say("%s: sending the greeting: %v", peer, err)
		}
		switch {
		case f.noClose:
			kept = append(kept, fd)
			say("%s connected; greeted it and keep the connection open", peer)
		case f.linger0:
			unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
			unix.Close(fd)
			say("%s connected; greeted it and reset the connection (SO_LINGER 0: no TIME_WAIT)", peer)
		default:
			unix.Close(fd)
			say("%s connected; greeted it and closed: TIME_WAIT on this side", peer)
		}
	}
	if len(kept) > 0 {
		say("served %d; holding the connections until Ctrl-C", f.n)
		<-ctx.Done()
	}
	return nil
}

// acceptCtx accepts one connection, giving up when ctx ends (fd -1).
func acceptCtx(ctx context.Context, lfd int) (int, string, error) {
	for ctx.Err() == nil {
		pfd := []unix.PollFd{{Fd: int32(lfd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 200)
		if err == unix.EINTR || n == 0 {
			continue
		}
		if err != nil {
			return -1, "", fmt.Errorf("waiting for a connection: %w", err)
		}
		fd, sa, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			return -1, "", fmt.Errorf("accept: %w", err)
		}
		return fd, sockaddrString(sa), nil
	}
	return -1, "", nil
}

func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port)).String()
	}
	return "?"
}

func demoClient(f *demoFlags, ap netip.AddrPort, say func(string, ...any)) error {
	for range f.n {
		var fd int
		err := inNetns(f.netns, func() error {
			fam, sa := sockaddr(ap)
			var err error
			if fd, err = unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
				return fmt.Errorf("socket: %w", err)
			}
			if err := unix.Connect(fd, sa); err != nil {
				unix.Close(fd)
				return fmt.Errorf("connect %s: %s", ap, diagnose.Errno(err))
			}
			return nil
		})
		if err != nil {
			return err
		}
		local, _ := unix.Getsockname(fd)
		got, eof, err := readGreeting(fd, !f.closeFirst)
		unix.Close(fd)
		how := "the server closed first, then this client"
		switch {
		case errors.Is(err, unix.ECONNRESET):
			how = "the server reset the connection (RST): no TIME_WAIT on either side"
		case err != nil:
			return fmt.Errorf("reading from %s: %w", ap, err)
		case f.closeFirst || !eof:
			how = "this client closed first"
		}
		say("%s: received %q; %s", sockaddrString(local), got, how)
	}
	return nil
}

// readGreeting reads the greeting line, then, when toEOF, until the server
// closes.
func readGreeting(fd int, toEOF bool) (string, bool, error) {
	var got []byte
	buf := make([]byte, 256)
	deadline := time.Now().Add(10 * time.Second)
	tv := unix.NsecToTimeval(int64(10 * time.Second))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	for time.Now().Before(deadline) {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return string(got), false, err
		}
		if n == 0 {
			return string(got), true, nil
		}
		got = append(got, buf[:n]...)
		if !toEOF && len(got) > 0 && got[len(got)-1] == '\n' {
			return string(got), false, nil
		}
	}
	return string(got), false, errors.New("no answer in 10s")
}
