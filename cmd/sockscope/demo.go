package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/sockscope/sockscope/pkg/diagnose"
	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

// greeting is what the tutorial's server.c sends.
const greeting = "I sent sth to client!\n"

type demoFlags struct {
	port       int
	addr       string
	netnsArgs  []string
	ns         netns.NS
	n          int
	reuseAddr  bool
	linger0    bool
	noClose    bool
	closeFirst bool
}

const demoLong = `The tutorial's experiment: a server that greets each client with
"I sent sth to client!" and closes, and clients that read it and close.
Watch it with 'sockscope :9000' in another terminal: the server's closes
leave TIME_WAIT entries on port 9000, and a restarted server's bind() fails
until they are gone (or it sets SO_REUSEADDR, as --reuseaddr does).`

func newDemoCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo server|client [flags]",
		Short: "the tutorial's server and client, to try all of the above",
		Long:  demoLong,
		// Anything but server or client lands here, to be named.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return wantSub(cmd, args, "'server' or 'client'")
		},
	}
	cmd.AddCommand(newDemoRoleCmd(a, "server"), newDemoRoleCmd(a, "client"))
	return cmd
}

func newDemoRoleCmd(a *app, role string) *cobra.Command {
	var f demoFlags
	cmd := &cobra.Command{
		Use:  role + " [flags]",
		Long: demoLong,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addr, err := netip.ParseAddr(f.addr)
			if err != nil || addr.Zone() != "" {
				return usagef("demo %s: bad --addr %q: not an IP address", role, f.addr)
			}
			if f.port < 1 || f.port > 65535 {
				return usagef("demo %s: --port %d: not a port (1-65535)", role, f.port)
			}
			if f.n < 0 {
				return usagef("demo %s: --count %d: must be 0 or more", role, f.n)
			}
			nss, err := resolveAll("demo "+role, f.netnsArgs, false)
			if err != nil {
				return err
			}
			f.ns = nss[0]
			a.note(repeatedFlags(cmd)...)
			ap := netip.AddrPortFrom(addr, uint16(f.port))
			out := bufio.NewWriter(a.stdout)
			var werr error
			say := func(format string, a ...any) {
				fmt.Fprintf(out, format+"\n", a...)
				if err := out.Flush(); err != nil && werr == nil && !isBrokenPipe(err) {
					werr = fmt.Errorf("writing the demo's report: %w", err)
				}
			}
			if role == "server" {
				err = demoServer(a.ctx, &f, ap, say)
			} else {
				err = demoClient(a.ctx, &f, ap, say)
			}
			return errors.Join(err, werr)
		},
	}
	if role == "server" {
		cmd.Short = "serve the greeting on --port and close: TIME_WAIT on the server's side"
	} else {
		cmd.Short = "connect to the server, read the greeting and close"
	}
	fs := cmd.Flags()
	fs.IntVar(&f.port, "port", 9000, "TCP port")
	fs.StringArrayVarP(&f.netnsArgs, "netns", "N", nil, "run inside the namespace `NAME` or PATH")
	mustComplete(cmd, "netns", completeNetns)
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
	return cmd
}

func sockaddr(ap netip.AddrPort) (int, unix.Sockaddr) {
	if ap.Addr().Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func demoServer(ctx context.Context, f *demoFlags, ap netip.AddrPort, say func(string, ...any)) error {
	var lfd int
	err := f.ns.Run(func() error {
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
			return errnoErrorf(err, "bind %s: %s%s", ap, diagnose.Errno(err), hint)
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
			if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
				unix.Close(fd)
				return fmt.Errorf("setting SO_LINGER 0: %w", err)
			}
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

func demoClient(ctx context.Context, f *demoFlags, ap netip.AddrPort, say func(string, ...any)) error {
	for range f.n {
		var fd int
		err := f.ns.Run(func() error {
			fam, _ := sockaddr(ap)
			var err error
			// Non-blocking, so that Ctrl-C ends a connect to an address
			// that never answers, rather than the kernel's two minutes.
			fd, err = unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				return fmt.Errorf("socket: %w", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		reset, err := connectCtx(ctx, fd, ap)
		if err != nil {
			unix.Close(fd)
			if ctx.Err() != nil {
				return nil // Ctrl-C
			}
			return err
		}
		local, err := unix.Getsockname(fd)
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("reading the client's address: %w", err)
		}
		got, eof, err := readGreeting(ctx, fd, !f.closeFirst)
		unix.Close(fd)
		if ctx.Err() != nil {
			return nil // Ctrl-C
		}
		how := "the server closed first, then this client"
		switch {
		case reset, errors.Is(err, unix.ECONNRESET):
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

// pollStep is how often the demo's waits look at their context: Ctrl-C
// ends them within it.
const pollStep = 200 * time.Millisecond

// waitFd waits until fd has one of events, ctx ends (false), or the
// deadline passes (an error).
func waitFd(ctx context.Context, fd int, events int16, deadline time.Time) (bool, error) {
	for ctx.Err() == nil {
		if time.Now().After(deadline) {
			return false, errors.New("no answer in 10s")
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
		n, err := unix.Poll(pfd, int(pollStep/time.Millisecond))
		if err == unix.EINTR || n == 0 {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("poll: %w", err)
		}
		return true, nil
	}
	return false, nil
}

// connectCtx connects the non-blocking fd to ap, giving up when ctx ends
// or after 10 seconds. reset reports a connection that was made and reset
// before this looked (the --linger0 server is that quick): reading the
// socket's error consumed the reset, so the caller must remember it.
func connectCtx(ctx context.Context, fd int, ap netip.AddrPort) (reset bool, err error) {
	_, sa := sockaddr(ap)
	err = unix.Connect(fd, sa)
	if err == nil {
		return false, nil
	}
	if err != unix.EINPROGRESS {
		return false, errnoErrorf(err, "connect %s: %s", ap, diagnose.Errno(err))
	}
	ok, err := waitFd(ctx, fd, unix.POLLOUT, time.Now().Add(10*time.Second))
	if err != nil {
		return false, fmt.Errorf("connect %s: %w", ap, err)
	}
	if !ok {
		return false, ctx.Err()
	}
	soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return false, fmt.Errorf("connect %s: %w", ap, err)
	}
	switch unix.Errno(soErr) {
	case 0:
		return false, nil
	case unix.ECONNRESET:
		// A refused connect reads ECONNREFUSED; a reset one was made.
		return true, nil
	}
	return false, errnoErrorf(unix.Errno(soErr), "connect %s: %s", ap, diagnose.Errno(unix.Errno(soErr)))
}

// readGreeting reads the greeting line, then, when toEOF, until the server
// closes; ctx ends it early.
func readGreeting(ctx context.Context, fd int, toEOF bool) (string, bool, error) {
	var got []byte
	buf := make([]byte, 256)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := waitFd(ctx, fd, unix.POLLIN, deadline)
		if err != nil || !ok {
			return string(got), false, err
		}
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR || err == unix.EAGAIN {
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
}

// errnoError says an errno in words (its name, number and text) and keeps
// it for errors.Is.
type errnoError struct {
	msg string
	err error
}

func (e *errnoError) Error() string { return e.msg }

func (e *errnoError) Unwrap() error { return e.err }

func errnoErrorf(err error, format string, a ...any) error {
	return &errnoError{msg: fmt.Sprintf(format, a...), err: err}
}
