package kevents

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/nstest"
	"github.com/sockscope/sockscope/pkg/sock"
	"golang.org/x/sys/unix"
)

// bpffsMounted reports whether bpffs is mounted at BPFFS.
func bpffsMounted(t *testing.T) bool {
	t.Helper()
	var fs unix.Statfs_t
	return unix.Statfs(BPFFS, &fs) == nil && fs.Type == unix.BPF_FS_MAGIC
}

// startAgent starts the agent for one test and stops it after; the agent
// is the host's, so tests that start it take the host lock.
func startAgent(t *testing.T) AgentStatus {
	t.Helper()
	nstest.HostLock(t)
	wasMounted := bpffsMounted(t)
	st, err := StartAgent()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("starting the agent: %v", err)
		}
		t.Skipf("the agent: %v", err)
	}
	t.Cleanup(func() {
		if err := StopAgent(); err != nil {
			t.Errorf("stopping the agent: %v", err)
		}
		if _, err := os.Stat(AgentDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is left after the agent stopped: %v", AgentDir, err)
		}
		if !wasMounted && bpffsMounted(t) {
			t.Errorf("bpffs is left mounted at %s", BPFFS)
		}
	})
	return st
}

func cookieOf(t *testing.T, fd int) uint64 {
	t.Helper()
	c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The agent stamps a socket's birth in the kernel, where any later reader
// finds it: the listener, both ends of a connection, each within 1 ms of
// the call that made it; a change updates the stamp, a close removes it.
func TestAgentStampsBirths(t *testing.T) {
	started := startAgent(t)
	if !started.Running {
		t.Fatalf("StartAgent: %+v", started)
	}
	if _, err := StartAgent(); !errors.Is(err, ErrAgentRunning) {
		t.Errorf("a second start: %v; want ErrAgentRunning", err)
	}
	ns := nstest.New(t)
	ap := netip.MustParseAddrPort("127.0.0.1:9000")
	var listen, client, server int
	var listenBefore, listenAfter, dialBefore, dialAfter time.Time
	err := ns.Do(func() error {
		var err error
		listenBefore = time.Now()
		if listen, err = nstest.Listen(ap, false); err != nil {
			return err
		}
		listenAfter = time.Now()
		dialBefore = time.Now()
		if client, err = nstest.Dial(ap); err != nil {
			return err
		}
		dialAfter = time.Now()
		server, _, err = unix.Accept4(listen, unix.SOCK_CLOEXEC)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(listen)
	defer unix.Close(server)
	s, err := OpenStamps()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	all, err := s.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		fd     int
		state  sock.State
		lo, hi time.Time
	}{
		{"listener", listen, sock.Listen, listenBefore, listenAfter},
		{"client", client, sock.Established, dialBefore, dialAfter},
		{"server's end", server, sock.Established, dialBefore, dialAfter},
	} {
		cookie := cookieOf(t, c.fd)
		st, ok, err := s.Lookup(cookie)
		if err != nil || !ok {
			t.Errorf("%s (cookie %d): no stamp (%v)", c.name, cookie, err)
			continue
		}
		// Each read turns the kernel's clock into the wall's anew: the
		// same stamp within microseconds.
		if a := all[cookie]; a.State != st.State || a.Born.Sub(st.Born).Abs() > time.Millisecond {
			t.Errorf("%s: All gives %+v, Lookup %+v", c.name, a, st)
		}
		if st.State != c.state || st.Born.Before(c.lo.Add(-time.Millisecond)) || st.Born.After(c.hi.Add(time.Millisecond)) || st.Last.Before(st.Born) {
			t.Errorf("%s: %+v; want %s, born between %s and %s", c.name, st, c.state,
				c.lo.Format("15:04:05.000000"), c.hi.Format("15:04:05.000000"))
		}
	}
	if st, err := Status(); err != nil || !st.Running || st.Stamped < 3 || !st.Since.Equal(started.Since) {
		t.Errorf("status %+v, %v; want running since %s with 3 stamps or more", st, err, started.Since)
	}

	// The client closes: its full socket goes (into a FIN_WAIT2 entry of
	// the TIME_WAIT table), and its stamp with it.
	// The peer's ACK comes through softirq a moment after close returns.
	cookie := cookieOf(t, client)
	unix.Close(client)
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, ok, err := s.Lookup(cookie)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the closed client still has a stamp")
		}
		time.Sleep(time.Millisecond)
	}
	if st, ok, err := s.Lookup(cookieOf(t, server)); !ok || err != nil || st.State != sock.CloseWait || !st.Last.After(st.Born) || st.Last.After(time.Now()) {
		t.Errorf("the server's end after the client's close: %+v, %v, %v; want CLOSE_WAIT, changed after its birth", st, ok, err)
	}
}
