package nstest

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Greeting is what the tutorial's server sends before it closes.
const Greeting = "I sent sth to client!\n"

// Seed is the tutorial's experiment, run inside a namespace with raw system
// calls so that socket options are exactly the ones asked for (Go's
// net.Listen would set SO_REUSEADDR on its own).
type Seed struct {
	Port int
	// Listeners are the server's LISTEN sockets: 127.0.0.1 and ::1.
	Listeners []int
	// ClosedAt is when the server closed each greeted connection, in order
	// (first IPv4, then IPv6): the moment its TIME_WAIT clock starts, give
	// or take the final ACK on loopback.
	ClosedAt []time.Time
	// HalfClosed is the server's end of the connection whose client closed
	// first: it stays in CLOSE_WAIT until the test ends.
	HalfClosed int
	// Client is the client's end of that connection (FIN_WAIT2).
	Client int
}

// SeedOptions tunes the experiment.
type SeedOptions struct {
	Port      int  // 9000 when zero
	ReuseAddr bool // set SO_REUSEADDR on the listeners, as a fixed server.c does
	// Tutorial runs the seed exactly: one server on 0.0.0.0, two IPv4
	// clients greeted and closed, no half-closed connection.
	Tutorial bool
}

// RunSeed reproduces ../shared/seeds in ns: a server listening on
// 127.0.0.1:PORT and [::1]:PORT, two clients that it greets and closes
// (two TIME_WAIT entries on the server side), and a third client that
// closes while the server keeps its end open (CLOSE_WAIT). With Tutorial,
// it is the seed to the letter instead (see SeedOptions). Every descriptor
// is closed when the test ends.
func RunSeed(t testing.TB, ns *NS, opt SeedOptions) *Seed {
	t.Helper()
	if opt.Port == 0 {
		opt.Port = 9000
	}
	s := &Seed{Port: opt.Port, HalfClosed: -1, Client: -1}
	t.Cleanup(s.close)
	addrs := []string{"127.0.0.1", "::1"}
	if opt.Tutorial {
		addrs = []string{"0.0.0.0"}
	}
	err := ns.Do(func() error {
		for _, addr := range addrs {
			fd, err := Listen(netip.AddrPortFrom(netip.MustParseAddr(addr), uint16(opt.Port)), opt.ReuseAddr)
			if err != nil {
				return err
			}
			s.Listeners = append(s.Listeners, fd)
		}
		for i := range 2 {
			at, err := greet(s.Listeners[i%len(addrs)], i == 1 && !opt.Tutorial, opt.Port)
			if err != nil {
				return err
			}
			s.ClosedAt = append(s.ClosedAt, at)
		}
		if opt.Tutorial {
			return nil
		}
		c, err := Dial(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(opt.Port)))
		if err != nil {
			return err
		}
		s.Client = c
		srv, _, err := unix.Accept4(s.Listeners[0], unix.SOCK_CLOEXEC)
		if err != nil {
			return fmt.Errorf("accepting: %w", err)
		}
		s.HalfClosed = srv
		// Half-close rather than close: the client stays in FIN_WAIT2 and
		// keeps its descriptor, so the test can still see it.
		return unix.Shutdown(c, unix.SHUT_WR)
	})
	if err != nil {
		t.Fatalf("running the experiment in %s: %v", ns.Name, err)
	}
	return s
}

// greet connects a client, has the server send the greeting and close, then
// lets the client read it and close: the server's end goes to TIME_WAIT.
func greet(lfd int, v6 bool, port int) (time.Time, error) {
	addr := netip.MustParseAddr("127.0.0.1")
	if v6 {
		addr = netip.IPv6Loopback()
	}
	c, err := Dial(netip.AddrPortFrom(addr, uint16(port)))
	if err != nil {
		return time.Time{}, err
	}
	defer unix.Close(c)
	srv, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	if err != nil {
		return time.Time{}, fmt.Errorf("accepting: %w", err)
	}
	if _, err := unix.Write(srv, []byte(Greeting)); err != nil {
		unix.Close(srv)
		return time.Time{}, fmt.Errorf("greeting: %w", err)
	}
	closed := time.Now()
	unix.Close(srv)
	buf := make([]byte, 64)
	got := 0
	for {
		n, err := unix.Read(c, buf[got:])
		if err != nil {
			return time.Time{}, fmt.Errorf("client reading: %w", err)
		}
		if n == 0 {
			break
		}
		got += n
	}
	if string(buf[:got]) != Greeting {
		return time.Time{}, fmt.Errorf("client read %q, want %q", buf[:got], Greeting)
	}
	return closed, nil
}

// Listen opens a TCP listener on ap, with SO_REUSEADDR when reuse is set.
func Listen(ap netip.AddrPort, reuse bool) (int, error) {
	fd, sa, err := socketFor(ap)
	if err != nil {
		return -1, err
	}
	if reuse {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("setting SO_REUSEADDR: %w", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("binding %v: %w", ap, err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listening on %v: %w", ap, err)
	}
	return fd, nil
}

// Dial opens a blocking TCP connection to ap.
func Dial(ap netip.AddrPort) (int, error) {
	fd, sa, err := socketFor(ap)
	if err != nil {
		return -1, err
	}
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connecting to %v: %w", ap, err)
	}
	return fd, nil
}

// TryBind reports what bind() says for a fresh TCP socket on ap, closing
// the socket either way: nil or an errno such as unix.EADDRINUSE.
func TryBind(ap netip.AddrPort, reuse bool) error {
	fd, sa, err := socketFor(ap)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if reuse {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return err
		}
	}
	return unix.Bind(fd, sa)
}

func socketFor(ap netip.AddrPort) (int, unix.Sockaddr, error) {
	var sa unix.Sockaddr
	fam := unix.AF_INET
	if ap.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	} else {
		fam = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("socket: %w", err)
	}
	return fd, sa, nil
}

func (s *Seed) close() {
	for _, fd := range append(s.Listeners, s.HalfClosed, s.Client) {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// CloseListeners closes the LISTEN sockets, as a server that exits does.
func (s *Seed) CloseListeners() {
	for i, fd := range s.Listeners {
		unix.Close(fd)
		s.Listeners[i] = -1
	}
}

// Inode returns the socket inode behind fd, which sock_diag reports too.
func Inode(fd int) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return uint32(st.Ino), nil
}

// Conn is one connection on loopback inside a namespace: its listener and
// both ends, as descriptors. Descriptors the test has not closed itself
// (set to -1) are closed when it ends.
type Conn struct {
	Listener, Client, Server int
}

// Connect listens on ap inside ns (without SO_REUSEADDR), connects to it and
// accepts.
func Connect(t testing.TB, ns *NS, ap netip.AddrPort) *Conn {
	t.Helper()
	c := &Conn{Listener: -1, Client: -1, Server: -1}
	err := ns.Do(func() error {
		var err error
		if c.Listener, err = Listen(ap, false); err != nil {
			return err
		}
		if c.Client, err = Dial(ap); err != nil {
			return err
		}
		c.Server, _, err = unix.Accept4(c.Listener, unix.SOCK_CLOEXEC)
		if err != nil {
			return fmt.Errorf("accepting: %w", err)
		}
		return nil
	})
	t.Cleanup(func() {
		for _, fd := range []int{c.Listener, c.Client, c.Server} {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	})
	if err != nil {
		t.Fatalf("connecting in %s: %v", ns.Name, err)
	}
	return c
}

// Close closes one of the connection's descriptors now.
func (c *Conn) Close(fd *int) {
	unix.Close(*fd)
	*fd = -1
}
