package sockdiag

import (
	"errors"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/nstest"
	"github.com/sockscope/sockscope/pkg/sock"
	"golang.org/x/sys/unix"
)

// faulty wraps the real receive with one injected fault at call number at.
type faulty struct {
	calls int
	at    int
	fault func(fd int, b []byte) (int, error)
}

func (f *faulty) recv(fd int, b []byte) (int, error) {
	f.calls++
	if f.calls == f.at {
		return f.fault(fd, b)
	}
	return recvDontWait(fd, b)
}

// The kernel's faults are reported, never a hang or a panic, and the next
// dump is whole again.
func TestIntegrationFaults(t *testing.T) {
	ns := nstest.New(t)
	nstest.RunSeed(t, ns, nstest.SeedOptions{})
	c := openIn(t, ns.Name)
	c.timeout = 300 * time.Millisecond
	want := len(waitFor(t, c, all(), "the experiment to settle", func(s *sock.Snapshot) bool {
		return count(s, sock.TimeWait, 9000) == 2 && count(s, sock.FinWait2, seedClientPort(s)) == 1
	}).Sockets)

	for _, tc := range []struct {
		name  string
		fault func(fd int, b []byte) (int, error)
		want  error // nil: the dump succeeds anyway
	}{
		{"EINTR is retried", func(int, []byte) (int, error) { return 0, unix.EINTR }, nil},
		{"ENOBUFS is reported", func(int, []byte) (int, error) { return 0, unix.ENOBUFS }, unix.ENOBUFS},
		{"a truncated message is reported", func(fd int, b []byte) (int, error) {
			n, err := recvDontWait(fd, b)
			if err != nil {
				return n, err
			}
			return n - 7, nil // the last message loses its tail
		}, ErrTruncated},
		{"garbage is reported", func(fd int, b []byte) (int, error) {
			for i := range 40 {
				b[i] = 0xff
			}
			return 40, nil
		}, ErrTruncated},
		{"a dump that stops is reported in time", nil, unix.ETIMEDOUT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &faulty{at: 1, fault: tc.fault}
			c.recvFn = f.recv
			if tc.want == unix.ETIMEDOUT {
				// From the second read on, the kernel says nothing.
				c.recvFn = func(fd int, b []byte) (int, error) {
					if f.calls++; f.calls >= 2 {
						return 0, unix.EAGAIN
					}
					return recvDontWait(fd, b)
				}
			}
			var snap sock.Snapshot
			start := time.Now()
			err := c.Dump(all(), &snap)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("the dump took %v", took)
			}
			switch {
			case tc.want == nil && (err != nil || len(snap.Sockets) != want):
				t.Errorf("got %d sockets, %v; want %d", len(snap.Sockets), err, want)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Errorf("error %v, want %v", err, tc.want)
			}
			// The next dump, without the fault, is whole.
			c.recvFn = recvDontWait
			if got := len(dump(t, c, all()).Sockets); got != want {
				t.Errorf("the dump after the fault has %d sockets, want %d", got, want)
			}
		})
	}
}
