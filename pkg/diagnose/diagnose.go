// Package diagnose explains why a TCP port is or is not free: it pairs
// the kernel's answer to a real bind() (package bindprobe) with the sockets
// that hold the port, and says what it would take to bind.
//
// It is pure: the caller brings the probe's result and the tracked
// sockets, so explanations are tested without a kernel.
package diagnose

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/sockscope/sockscope/pkg/bindprobe"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
	"golang.org/x/sys/unix"
)

// Holder is a socket that holds the port.
type Holder struct {
	track.Entry
	Kind string // "listen", "timewait" or "connection"
}

// Report is the whole answer.
type Report struct {
	Addr     netip.AddrPort
	Result   bindprobe.Result
	Holders  []Holder
	Bindable bool
	// FreeIn is when a plain bind should succeed by itself: the last
	// TIME_WAIT entry's time left, when only TIME_WAIT entries hold the
	// port. Zero when bindable now or when it will not free itself.
	FreeIn time.Duration
	// Advice is what to do, in sentences.
	Advice []string
}

// Explain builds the report for a bind of addr, from the probe's result
// and the sockets on addr's port.
func Explain(addr netip.AddrPort, res bindprobe.Result, entries []track.Entry) *Report {
	r := &Report{Addr: addr, Result: res, Bindable: res.Bindable()}
	for _, e := range entries {
		if e.Local.Port() != addr.Port() || !overlaps(addr.Addr(), e.Socket) {
			continue
		}
		h := Holder{Entry: e, Kind: "connection"}
		switch e.State {
		case sock.Listen:
			h.Kind = "listen"
		case sock.TimeWait:
			h.Kind = "timewait"
		}
		r.Holders = append(r.Holders, h)
	}
	order := map[string]int{"listen": 0, "connection": 1, "timewait": 2}
	slices.SortStableFunc(r.Holders, func(a, b Holder) int { return order[a.Kind] - order[b.Kind] })
	r.advise()
	return r
}

// overlaps reports whether a socket bound to s.Local can stand in the way
// of a bind to a: the same address, or a wildcard on either side. An IPv6
// wildcard socket may be dual-stack (the dump does not say), so it counts
// against IPv4 binds too; the probe has the final word.
func overlaps(a netip.Addr, s *sock.Socket) bool {
	b := s.Local.Addr().Unmap()
	a = a.Unmap()
	switch {
	case a == b:
		return true
	case a.IsUnspecified() && (a.Is4() == b.Is4() || a.Is6()):
		return true
	case b.IsUnspecified() && (a.Is4() == b.Is4() || b.Is6()):
		return true
	}
	return false
}

func (r *Report) count(kind string) (n int, longest time.Duration) {
	for _, h := range r.Holders {
		if h.Kind == kind {
			n++
			longest = max(longest, h.Left())
		}
	}
	return n, longest
}

func (r *Report) advise() {
	listens, _ := r.count("listen")
	conns, _ := r.count("connection")
	tws, longest := r.count("timewait")
	reuseOK := r.Result[bindprobe.ReuseAddr] == nil
	say := func(format string, a ...any) { r.Advice = append(r.Advice, fmt.Sprintf(format, a...)) }
	if r.Bindable {
		if tws+conns+listens > 0 {
			say("The sockets below share the port without blocking this bind.")
		}
		return
	}
	if !errors.Is(r.Result[bindprobe.Plain], unix.EADDRINUSE) {
		say("bind() fails with %s, not because the port is taken.", Errno(r.Result[bindprobe.Plain]))
		if errors.Is(r.Result[bindprobe.Plain], unix.EADDRNOTAVAIL) {
			say("No interface in this namespace has the address %s.", r.Addr.Addr())
		}
		return
	}
	switch {
	case listens > 0:
		say("A process listens on the port: it has to close that socket (or exit) first. SO_REUSEADDR does not help against a live listener.")
		if r.Result[bindprobe.ReusePort] == nil {
			say("SO_REUSEPORT binds, because the listener set it too: both would share the port.")
		}
	case conns > 0:
		say("Connections still use the port (they outlive the listener that accepted them): they end when both sides close.")
		if reuseOK {
			say("With SO_REUSEADDR it binds now: the remaining sockets do not listen.")
		}
	case tws > 0:
		r.FreeIn = longest
		if reuseOK {
			say("Free in %s without SO_REUSEADDR; with SO_REUSEADDR it binds now.", secs(longest))
		} else {
			say("Free in %s. SO_REUSEADDR does not help here: the TIME_WAIT entries come from a socket that did not set it, and the kernel keeps that; set SO_REUSEADDR in the server so its next restart binds at once.", secs(longest))
		}
	default:
		say("No socket in the table explains it: the port may be held by a socket another namespace shares, or was taken between the probe and the dump.")
	}
}

// Errno names a probe's result: "bindable", or "EADDRINUSE (errno 98, address
// already in use)".
func Errno(err error) string {
	if err == nil {
		return "bindable"
	}
	var e unix.Errno
	if errors.As(err, &e) {
		return fmt.Sprintf("%s (errno %d, %s)", unix.ErrnoName(e), int(e), e.Error())
	}
	return err.Error()
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }
