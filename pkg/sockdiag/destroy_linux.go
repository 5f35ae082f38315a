package sockdiag

import (
	"fmt"
	"time"

	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
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
// expires. A Subscription is NOT safe for concurrent use.
type Subscription struct {
	sock *nl.NetlinkSocket
	buf  []byte
}

// Subscribe joins the IPv4 and IPv6 TCP destroy groups of namespace ns
// ("" for the caller's).
func Subscribe(ns string) (*Subscription, error) {
	target, err := openNetns(ns)
	if err != nil {
		return nil, err
	}
	defer target.Close()
	s, err := nl.SubscribeAt(target, netns.None(), unix.NETLINK_SOCK_DIAG, sknlgrpInetTCPDestroy, sknlgrpInet6TCPDestroy)
	if err != nil {
		return nil, fmt.Errorf("joining the sock_diag destroy groups: %w", err)
	}
	// A burst of closes must not overflow the queue between reads.
	_ = unix.SetsockoptInt(s.GetFd(), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	return &Subscription{sock: s, buf: make([]byte, recvBufSize)}, nil
}

// Close leaves the groups.
func (s *Subscription) Close() error {
	s.sock.Close()
	return nil
}

// Receive waits up to timeout for announcements and calls fn for each freed
// socket, with the time its message was read. It returns nil on a timeout.
// ENOBUFS means announcements were lost (the reader fell behind); the
// subscription stays usable.
func (s *Subscription) Receive(timeout time.Duration, fn func(s *sock.Socket, at time.Time)) error {
	fd := s.sock.GetFd()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if _, err := unix.Poll(pfd, int(timeout/time.Millisecond)); err != nil && err != unix.EINTR {
		return fmt.Errorf("waiting for destroy events: %w", err)
	}
	for {
		n, _, err := unix.Recvfrom(fd, s.buf, unix.MSG_DONTWAIT)
		switch {
		case err == unix.EAGAIN:
			return nil
		case err == unix.EINTR:
			continue
		case err != nil:
			return fmt.Errorf("receiving destroy events: %w", err)
		}
		at := time.Now()
		// Announcements carry sequence number 0 and no DONE message.
		if _, err := parseBatch(s.buf[:n], 0, func(sk *sock.Socket, _ []byte) { fn(sk, at) }); err != nil {
			return fmt.Errorf("parsing destroy events: %w", err)
		}
	}
}
