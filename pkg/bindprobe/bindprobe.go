// Package bindprobe asks the kernel whether a TCP bind() would succeed, by
// doing it: socket, setsockopt, bind, close, inside the target network
// namespace. No listen, no traffic, and nothing else changes in the kernel;
// the answer is the kernel's own, not a model of its rules.
package bindprobe

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/sockscope/sockscope/pkg/netns"
	"golang.org/x/sys/unix"
)

// Way is how a bind is attempted.
type Way int

// The three ways a server can bind.
const (
	Plain     Way = iota // no socket option
	ReuseAddr            // SO_REUSEADDR, as most servers set
	ReusePort            // SO_REUSEPORT, for several listeners on one port
)

func (w Way) String() string {
	return [...]string{"bind()", "with SO_REUSEADDR", "with SO_REUSEPORT"}[w]
}

// Result holds the kernel's answer for each way: nil when bind succeeded,
// else the errno (unix.EADDRINUSE, unix.EADDRNOTAVAIL, ...).
type Result [3]error

// Bindable reports whether a plain bind succeeds.
func (r Result) Bindable() bool { return r[Plain] == nil }

// Probe tries the three binds of ap in the namespace ns (the zero NS is
// the caller's).
func Probe(ns netns.NS, ap netip.AddrPort) (Result, error) {
	var res Result
	try := func() error {
		for w := Plain; w <= ReusePort; w++ {
			err := tryBind(ap, w)
			var errno unix.Errno
			if err != nil && !errors.As(err, &errno) {
				return err
			}
			res[w] = err
		}
		return nil
	}
	return res, ns.Run(try)
}

// tryBind returns the errno of bind(), or an error of another kind when
// the probe itself could not be made.
func tryBind(ap netip.AddrPort, w Way) error {
	fam := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	if a := ap.Addr().Unmap(); a.Is4() {
		fam = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	}
	fd, err := unix.Socket(fam, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %v", err) // not an errno of bind
	}
	defer unix.Close(fd)
	switch w {
	case ReuseAddr:
		err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	case ReusePort:
		err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}
	if err != nil {
		return fmt.Errorf("setsockopt: %v", err) // not an errno of bind
	}
	return unix.Bind(fd, sa)
}
