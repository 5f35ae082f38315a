package sockdiag

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/sock"
	"golang.org/x/sys/unix"
)

// The sock_diag multicast groups that announce freed TCP sockets
// (include/uapi/linux/sock_diag.h). Joining them needs no capability.
const (
	sknlgrpInetTCPDestroy  = 1
	sknlgrpInet6TCPDestroy = 3
)

// Subscription receives the kernel's word that a full TCP socket was freed,
// in one namespace. For an active close that is the moment the socket
// became a TIME_WAIT entry; nothing is announced when a TIME_WAIT entry
// expires. A Subscription is NOT safe for concurrent use, but Close may be
// called from another goroutine while Receive waits for announcements.
//
// Its socket waits in the Go runtime's poller rather than in a blocking
// poll(2): on a busy host announcements come a thousand a second, and each
// return from a blocking call sets the runtime's monitor thread polling
// every 20 µs again, which cost a dashboard a fifth of its CPU.
type Subscription struct {
	file *os.File
	conn syscall.RawConn
	buf  []byte
	ns   uint32 // the namespace's inode, stamped on every socket
}

// announceBufSize holds one announcement: the kernel sends each in a
// datagram of its own, a few hundred bytes. A host of a thousand
// namespaces holds a thousand subscriptions, so each is kept small.
const announceBufSize = 8 << 10

// Subscribe joins the IPv4 and IPv6 TCP destroy groups of namespace ns
// (the zero NS is the caller's own).
func Subscribe(ns netns.NS) (*Subscription, error) {
	s, err := ns.Subscribe(unix.NETLINK_SOCK_DIAG, sknlgrpInetTCPDestroy, sknlgrpInet6TCPDestroy)
	if err != nil {
		return nil, fmt.Errorf("joining the sock_diag destroy groups: %w", err)
	}
	// The memberships belong to the open socket, which a duplicate
	// descriptor keeps: the duplicate goes to the poller, the original
	// is closed.
	fd, err := unix.FcntlInt(uintptr(s.GetFd()), unix.F_DUPFD_CLOEXEC, 0)
	s.Close()
	if err != nil {
		return nil, fmt.Errorf("duplicating the destroy-event socket: %w", err)
	}
	// A burst of closes must not overflow the queue between reads. The
	// kernel clamps the size to net.core.rmem_max rather than failing.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sizing the destroy-event queue: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("destroy-event socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "sock_diag destroy events")
	conn, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("destroy-event socket: %w", err)
	}
	return &Subscription{file: f, conn: conn, buf: make([]byte, announceBufSize), ns: uint32(ns.Inode)}, nil
}

// Close leaves the groups; a Receive in progress returns.
func (s *Subscription) Close() error {
	return s.file.Close()
}

// Interrupt makes a Receive in progress return at once (as on its
// timeout), from any goroutine: a subscription that is no longer wanted
// is closed now, not a timeout later.
func (s *Subscription) Interrupt() error {
	if err := s.file.SetReadDeadline(time.Unix(1, 0)); err != nil {
		return fmt.Errorf("interrupting the destroy events: %w", err)
	}
	return nil
}

// Receive waits up to timeout for announcements and calls fn for each freed
// socket, with the time its message was read. It returns nil on a timeout;
// with a timeout of zero or less it reads what is queued without waiting.
// ENOBUFS means announcements were lost (the reader fell behind); the
// subscription stays usable.
func (s *Subscription) Receive(timeout time.Duration, fn func(s *sock.Socket, at time.Time)) error {
	wait := timeout > 0
	var deadline time.Time // none: the poller would give up before reading
	if wait {
		deadline = time.Now().Add(timeout)
	}
	if err := s.file.SetReadDeadline(deadline); err != nil {
		return fmt.Errorf("waiting for destroy events: %w", err)
	}
	var rerr error
	got := false
	err := s.conn.Read(func(fd uintptr) bool {
		for {
			n, err := recvDontWait(int(fd), s.buf)
			switch {
			case err == unix.EAGAIN:
				return got || !wait // nothing yet: wait in the poller
			case err == unix.EINTR:
				continue
			case err != nil:
				rerr = fmt.Errorf("receiving destroy events: %w", err)
				return true
			}
			got = true
			at := time.Now()
			// Announcements carry sequence number 0 and no DONE message.
			if _, err := parseBatch(s.buf[:n], 0, func(sk *sock.Socket, _ []byte) {
				sk.Netns = s.ns
				fn(sk, at)
			}); err != nil {
				rerr = fmt.Errorf("parsing destroy events: %w", err)
				return true
			}
		}
	})
	switch {
	case rerr != nil:
		return rerr
	case err == nil, errors.Is(err, os.ErrDeadlineExceeded):
		return nil
	}
	return fmt.Errorf("waiting for destroy events: %w", err)
}
