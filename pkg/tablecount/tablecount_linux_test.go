package tablecount

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/nstest"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/sockdiag"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var testBounds = []time.Duration{time.Millisecond, 30 * time.Second, 60 * time.Second}

func open(t *testing.T, ports []uint16) *Counter {
	t.Helper()
	c, err := Open(64, ports, testBounds)
	if err != nil {
		if os.Getenv("CI") == "true" || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Open: %v", err)
		}
		t.Skipf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// fromDump counts a namespace's sockets as the exporter does from its
// sock_diag dump: the truth the walk must match.
func fromDump(t *testing.T, ns netns.NS, ports []uint16) *Counts {
	t.Helper()
	col, err := sockdiag.Open(ns)
	if err != nil {
		t.Fatalf("sockdiag.Open(%v): %v", ns, err)
	}
	defer col.Close()
	var snap sock.Snapshot
	if err := col.Dump(&sockdiag.Request{States: sock.AllStates}, &snap); err != nil {
		t.Fatalf("dumping %v: %v", ns, err)
	}
	c := &Counts{Sockets: make([][2][16]uint32, len(ports)+1), TimeWait: Ages{LE: make([]uint64, len(testBounds))}}
	for i := range snap.Sockets {
		s := &snap.Sockets[i]
		slot := 0
		for j, p := range ports {
			if s.Local.Port() == p {
				slot = j + 1
			}
		}
		f := 0
		if s.Family == sock.IPv6 {
			f = 1
		}
		c.Sockets[slot][f][s.State]++
		if age, _, ok := s.TimeWaitAge(); ok {
			c.TimeWait.N++
			c.TimeWait.Sum += age
			for k, b := range testBounds {
				if age <= b {
					c.TimeWait.LE[k]++
				}
			}
		}
	}
	return c
}

// populate opens in ns the seed's sockets on port (LISTEN, TIME_WAIT,
// CLOSE_WAIT, FIN_WAIT2, both families) and n more connections on port+1.
func populate(t *testing.T, ns *nstest.NS, port, n int) {
	t.Helper()
	nstest.RunSeed(t, ns, nstest.SeedOptions{Port: port})
	for i := range n {
		ap := netip.MustParseAddrPort(fmt.Sprintf("127.0.0.%d:%d", 1+i%3, port+1+i))
		if i%2 == 1 {
			ap = netip.MustParseAddrPort(fmt.Sprintf("[::1]:%d", port+1+i))
		}
		nstest.Connect(t, ns, ap)
	}
}

// settled waits until two dumps of ns 50 ms apart agree (the seed's last
// close settles, FIN_WAIT1 to FIN_WAIT2, a moment after it returns) and
// returns the counts they agree on.
func settled(t *testing.T, ns *nstest.NS, ports ...uint16) *Counts {
	t.Helper()
	want := fromDump(t, ns.NS(t), ports)
	for deadline := time.Now().Add(5 * time.Second); ; {
		time.Sleep(50 * time.Millisecond)
		again := fromDump(t, ns.NS(t), ports)
		if fmt.Sprint(again.Sockets) == fmt.Sprint(want.Sockets) {
			return again
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not settle: %v, then %v", ns.Name, want.Sockets, again.Sockets)
		}
		want = again
	}
}

func inode(t *testing.T, ns netns.NS) uint32 {
	t.Helper()
	if ns.IsSelf() {
		self, err := netns.Self()
		if err != nil {
			t.Fatal(err)
		}
		return uint32(self.Inode)
	}
	return uint32(ns.Inode)
}

func TestIntegrationCountsMatchTheDumps(t *testing.T) {
	ports := []uint16{9000, 9002}
	c := open(t, ports)
	var spaces []*nstest.NS
	for i := range 4 {
		ns := nstest.New(t)
		populate(t, ns, 9000, 2+3*i)
		spaces = append(spaces, ns)
	}
	// One namespace not asked for: its sockets go to no one's count.
	populate(t, nstest.New(t), 9000, 5)
	for _, ns := range spaces {
		settled(t, ns, ports...) // and every TIME_WAIT entry older than the 1 ms bound
	}

	var inodes []uint32
	for _, ns := range spaces {
		inodes = append(inodes, inode(t, ns.NS(t)))
	}
	before := time.Now()
	w, err := c.Count(inodes)
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	self, err := netns.Self()
	if err != nil {
		t.Fatal(err)
	}
	if w.Netns != uint32(self.Inode) || !w.Shared {
		t.Errorf("walked net:[%d] shared=%v, want the caller's net:[%d], shared", w.Netns, w.Shared, self.Inode)
	}
	if len(w.Counts) != len(inodes) {
		t.Fatalf("%d namespaces counted, want %d", len(w.Counts), len(inodes))
	}
	for i, ns := range spaces {
		got, want := w.Counts[inodes[i]], fromDump(t, ns.NS(t), ports)
		if fmt.Sprint(got.Sockets) != fmt.Sprint(want.Sockets) {
			t.Errorf("%s: walk counted %v, the dump %v", ns.Name, got.Sockets, want.Sockets)
		}
		// The seed leaves two TIME_WAIT entries on port 9000, one per
		// family, and the walk says so.
		if got.Sockets[1][0][sock.TimeWait] != 1 || got.Sockets[1][1][sock.TimeWait] != 1 || got.Sockets[1][0][sock.Listen] != 1 {
			t.Errorf("%s: port 9000 counts %v, want one LISTEN and TIME_WAIT per family", ns.Name, got.Sockets[1])
		}
		if got.TimeWait.N != want.TimeWait.N || fmt.Sprint(got.TimeWait.LE) != fmt.Sprint(want.TimeWait.LE) {
			t.Errorf("%s: TIME_WAIT ages %+v, the dump's %+v", ns.Name, got.TimeWait, want.TimeWait)
		}
		if got.TimeWait.N != 2 || got.TimeWait.LE[0] != 0 || got.TimeWait.LE[1] != 2 {
			t.Errorf("%s: TIME_WAIT histogram %+v, want 2 entries older than 1 ms and younger than 30 s", ns.Name, got.TimeWait)
		}
		// The dump came after the walk: its ages are older by at most the
		// time between them, and a jiffy (4 ms at HZ=250) of rounding.
		slack := time.Duration(want.TimeWait.N) * (time.Since(before) + 10*time.Millisecond)
		if d := want.TimeWait.Sum - got.TimeWait.Sum; d < -slack || d > slack {
			t.Errorf("%s: TIME_WAIT ages sum to %v, the dump's to %v", ns.Name, got.TimeWait.Sum, want.TimeWait.Sum)
		}
	}
	if w.Sockets == 0 || w.Tries < 1 {
		t.Errorf("walk visited %d sockets in %d tries", w.Sockets, w.Tries)
	}

	// A namespace dropped from the list is no longer counted; with
	// states set, only those are, as in a dump that asks for them.
	keep := sock.MaskOf(sock.Listen, sock.CloseWait)
	c.SetStates(keep)
	w, err = c.Count(inodes[:1])
	if err != nil {
		t.Fatalf("Count: %v", err)
	}
	if len(w.Counts) != 1 || w.Counts[inodes[0]] == nil {
		t.Fatalf("second walk counted %d namespaces, want 1", len(w.Counts))
	}
	want := fromDump(t, spaces[0].NS(t), ports)
	for slot := range want.Sockets {
		for f := range 2 {
			for st := range 16 {
				if !keep.Has(sock.State(st)) {
					want.Sockets[slot][f][st] = 0
				}
			}
		}
	}
	got := w.Counts[inodes[0]]
	if fmt.Sprint(got.Sockets) != fmt.Sprint(want.Sockets) || got.TimeWait.N != 0 {
		t.Errorf("LISTEN and CLOSE_WAIT only: walk counted %v and %d TIME_WAIT ages, the dump %v and none",
			got.Sockets, got.TimeWait.N, want.Sockets)
	}
}

// A namespace made with tables of its own (tcp_child_ehash_entries in its
// parent) has its own established table; the listening table stays the
// host's. A walk from outside counts its listeners and none of its
// connections; one from inside counts them all and says the established
// table is its own.
func TestIntegrationOwnTables(t *testing.T) {
	c := open(t, nil)
	parent := nstest.New(t)
	if err := parent.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/tcp_child_ehash_entries", []byte("128"), 0)
	}); err != nil {
		t.Fatalf("setting tcp_child_ehash_entries: %v", err)
	}
	// The child: made by unshare on a thread inside the parent, kept by
	// a descriptor, entered again by setns.
	var child *os.File
	if err := parent.Do(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		f, err := os.Open("/proc/thread-self/ns/net")
		child = f
		return err
	}); err != nil {
		t.Fatalf("making the child namespace: %v", err)
	}
	defer child.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(child.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	ino := uint32(st.Ino)
	in := func(f func() error) error {
		errc := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread dies in the child
			if err := unix.Setns(int(child.Fd()), unix.CLONE_NEWNET); err != nil {
				errc <- err
				return
			}
			errc <- f()
		}()
		return <-errc
	}
	var fds []int
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	if err := in(func() error {
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			return fmt.Errorf("bringing lo up: %w", err)
		}
		for i := range 3 {
			fd, err := nstest.Listen(netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", 7000+i)), false)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
		}
		fd, err := nstest.Dial(netip.MustParseAddrPort("127.0.0.1:7000"))
		if err != nil {
			return err
		}
		fds = append(fds, fd)
		fd, _, err = unix.Accept4(fds[0], unix.SOCK_CLOEXEC)
		if err != nil {
			return fmt.Errorf("accepting: %w", err)
		}
		fds = append(fds, fd)
		return nil
	}); err != nil {
		t.Fatalf("opening sockets in the child: %v", err)
	}

	w, err := c.Count([]uint32{ino})
	if err != nil {
		t.Fatalf("Count from outside: %v", err)
	}
	got := w.Counts[ino].Sockets[0][0]
	if got[sock.Listen] != 3 || got[sock.Established] != 0 || !w.Shared {
		t.Errorf("from outside: %d listeners and %d connections counted in the child, shared=%v; want 3, 0, shared",
			got[sock.Listen], got[sock.Established], w.Shared)
	}
	if err := in(func() error {
		w, err = c.Count([]uint32{ino})
		return err
	}); err != nil {
		t.Fatalf("Count from inside: %v", err)
	}
	got = w.Counts[ino].Sockets[0][0]
	if got[sock.Listen] != 3 || got[sock.Established] != 2 || w.Shared || w.Netns != ino {
		t.Errorf("from inside: %d listeners and %d connections, shared=%v, walked net:[%d]; want 3, 2, own tables, net:[%d]",
			got[sock.Listen], got[sock.Established], w.Shared, w.Netns, ino)
	}
}

// While another namespace opens and closes connections as fast as it can
// (sockets freed and reused under the walk), every walk still succeeds and
// a quiet namespace's counts stay those of its dump.
func TestIntegrationCountsUnderChurn(t *testing.T) {
	c := open(t, nil)
	quiet, busy := nstest.New(t), nstest.New(t)
	populate(t, quiet, 9100, 6)
	ino := inode(t, quiet.NS(t))
	want := settled(t, quiet)

	stop, started := make(chan struct{}), make(chan struct{})
	churned := make(chan error, 1)
	go func() {
		churned <- busy.Do(func() error {
			lfd, err := nstest.Listen(netip.MustParseAddrPort("127.0.0.1:9200"), true)
			if err != nil {
				return err
			}
			defer unix.Close(lfd)
			// At most maxChurn connections: the client's TIME_WAIT
			// entries hold ephemeral ports, and a slow run must not run
			// out of them.
			const maxChurn = 4000
			for n := 0; ; n++ {
				select {
				case <-stop:
					return nil
				default:
				}
				if n == 200 {
					close(started) // the walks begin under churn
				}
				if n >= maxChurn {
					<-stop
					return nil
				}
				cfd, err := nstest.Dial(netip.MustParseAddrPort("127.0.0.1:9200"))
				if err != nil {
					return err
				}
				sfd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
				if err != nil {
					unix.Close(cfd)
					return fmt.Errorf("accepting: %w", err)
				}
				// The server closes first half the time: TIME_WAIT
				// entries on both sides come and go.
				if n%2 == 0 {
					unix.Close(sfd)
					unix.Close(cfd)
				} else {
					unix.Close(cfd)
					unix.Close(sfd)
				}
			}
		})
	}()
	select {
	case <-started:
	case err := <-churned:
		t.Fatalf("churn: %v", err)
	}
	retried := 0
	for i := range 50 {
		w, err := c.Count([]uint32{ino})
		if err != nil {
			close(stop)
			<-churned
			t.Fatalf("walk %d under churn: %v", i, err)
		}
		retried += w.Tries - 1
		got := w.Counts[ino]
		if fmt.Sprint(got.Sockets) != fmt.Sprint(want.Sockets) {
			t.Errorf("walk %d: the quiet namespace counted %v, its dump %v", i, got.Sockets, want.Sockets)
		}
	}
	close(stop)
	if err := <-churned; err != nil {
		t.Fatalf("churn: %v", err)
	}
	t.Logf("50 walks under churn, %d of them made again", retried)
}

// Which namespaces a walk covers: the caller's always; the others in the
// shared table when the caller's table is the shared one; a namespace with
// a table of its own never (the caller's excepted).
func TestCovers(t *testing.T) {
	shared := &Walk{Netns: 1, Shared: true}
	own := &Walk{Netns: 1, Shared: false}
	for _, c := range []struct {
		w          *Walk
		ino        uint32
		sharesHost bool
		want       bool
	}{
		{shared, 1, false, true}, // the host's own namespace: its table is the shared one, its sysctl positive
		{shared, 2, true, true},
		{shared, 3, false, false}, // a table of its own
		{own, 1, false, true},     // the caller, inside a namespace with its own table
		{own, 2, true, false},     // the shared table was not walked
		{own, 3, false, false},
	} {
		if got := c.w.Covers(c.ino, c.sharesHost); got != c.want {
			t.Errorf("walk of net:[%d] (shared %v) covers net:[%d] (shares the host's table %v): %v, want %v",
				c.w.Netns, c.w.Shared, c.ino, c.sharesHost, got, c.want)
		}
	}
}
