package session_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/nstest"
	"github.com/sockscope/sockscope/pkg/session"
	"github.com/sockscope/sockscope/pkg/sock"
	"golang.org/x/sys/unix"
)

// listenIn opens a listener on ap inside ns until the test ends.
func listenIn(t *testing.T, ns *nstest.NS, ap netip.AddrPort) {
	t.Helper()
	var fd int
	if err := ns.Do(func() error {
		var err error
		fd, err = nstest.Listen(ap, false)
		return err
	}); err != nil {
		t.Fatalf("listening on %v in %s: %v", ap, ns.Name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
}

func listeners(snap *sock.Snapshot) map[uint16]bool {
	ports := map[uint16]bool{}
	for _, s := range snap.Sockets {
		if s.State == sock.Listen {
			ports[s.Local.Port()] = true
		}
	}
	return ports
}

// Two namespaces give two targets, each reading its own namespace: its
// listener and not the other's, every socket stamped with its inode.
func TestIntegrationTwoNamespaces(t *testing.T) {
	for _, procfs := range []bool{false, true} {
		name := "sock_diag"
		if procfs {
			name = "procfs"
		}
		t.Run(name, func(t *testing.T) {
			a, b := nstest.New(t), nstest.New(t)
			listenIn(t, a, netip.MustParseAddrPort("127.0.0.1:9001"))
			listenIn(t, b, netip.MustParseAddrPort("127.0.0.1:9002"))
			nsA, nsB := a.NS(t), b.NS(t)
			s, err := session.Open(context.Background(), session.Config{
				Namespaces: []netns.NS{nsA, nsB},
				Program:    filter.Compile(nil, filter.Options{}),
				Procfs:     procfs,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if len(s.Targets) != 2 || s.Targets[0].NS != nsA || s.Targets[1].NS != nsB {
				t.Fatalf("targets %+v, want %v then %v", s.Targets, nsA, nsB)
			}
			if s.Source() != s.Targets[0].Source {
				t.Error("Source is not the first namespace's")
			}
			for i, want := range []struct {
				port, other uint16
				ns          netns.NS
			}{{9001, 9002, nsA}, {9002, 9001, nsB}} {
				snap, err := s.Targets[i].Source.Snapshot()
				if err != nil {
					t.Fatalf("snapshot of %v: %v", want.ns, err)
				}
				ports := listeners(snap)
				if !ports[want.port] || ports[want.other] {
					t.Errorf("%v: listeners on %v, want %d and not %d", want.ns, ports, want.port, want.other)
				}
				// Every socket carries its namespace, from sock_diag and
				// from /proc alike.
				for _, sk := range snap.Sockets {
					if uint64(sk.Netns) != want.ns.Inode {
						t.Errorf("%v: socket %v %v has Netns %d, want the namespace's inode %d",
							want.ns, sk.State, sk.Local, sk.Netns, want.ns.Inode)
					}
				}
			}
			if procfs {
				// The fallback is said once, not once per namespace.
				n := 0
				for _, note := range s.Notes() {
					if strings.Contains(note, "/proc/net/tcp") {
						n++
					}
				}
				if n != 1 || len(s.Notes()) != 1 {
					t.Errorf("notes %q: want the /proc note once", s.Notes())
				}
			} else if len(s.Notes()) != 0 {
				t.Errorf("notes %q with sock_diag: want none", s.Notes())
			}
		})
	}
}

// Destroys: true joins the announcements of every namespace; a socket
// freed in one is announced on its channel.
func TestIntegrationDestroys(t *testing.T) {
	a, b := nstest.New(t), nstest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := session.Open(ctx, session.Config{
		Namespaces: []netns.NS{a.NS(t), b.NS(t)},
		Program:    filter.Compile(nil, filter.Options{}),
		Destroys:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.Notes()) != 0 {
		t.Errorf("notes %q: want none where destroy events work", s.Notes())
	}
	for _, tg := range s.Targets {
		if tg.Destroys == nil {
			t.Fatalf("%v: nil Destroys with Destroys: true", tg.NS)
		}
	}
	if s.Destroys() != s.Targets[0].Destroys {
		t.Error("Destroys is not the first namespace's")
	}
	// A connection closed in b is announced on b's channel.
	c := nstest.Connect(t, b, netip.MustParseAddrPort("127.0.0.1:9003"))
	c.Close(&c.Client)
	c.Close(&c.Server)
	deadline := time.After(30 * time.Second)
	for {
		select {
		case d, ok := <-s.Targets[1].Destroys:
			if !ok {
				t.Fatal("b's announcements ended")
			}
			if d.Socket.Local.Port() == 9003 || d.Socket.Peer.Port() == 9003 {
				return
			}
		case d := <-s.Targets[0].Destroys:
			t.Fatalf("a socket of b announced on a's channel: %+v", d)
		case <-deadline:
			t.Fatal("no announcement of the closed connection")
		}
	}
}

// Close closes the sources: a snapshot after it fails, and the
// announcements end.
func TestIntegrationClose(t *testing.T) {
	for _, procfs := range []bool{false, true} {
		ns := nstest.New(t)
		s, err := session.Open(context.Background(), session.Config{
			Namespaces: []netns.NS{ns.NS(t)},
			Program:    filter.Compile(nil, filter.Options{}),
			Procfs:     procfs,
			Destroys:   !procfs,
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Source().Snapshot(); err != nil {
			t.Fatalf("procfs %v: snapshot before Close: %v", procfs, err)
		}
		d := s.Destroys()
		if err := s.Close(); err != nil {
			t.Errorf("procfs %v: Close: %v", procfs, err)
		}
		if _, err := s.Source().Snapshot(); err == nil {
			t.Errorf("procfs %v: a snapshot after Close succeeded", procfs)
		}
		if d != nil {
			select {
			case _, ok := <-d:
				for ok {
					_, ok = <-d
				}
			case <-time.After(30 * time.Second):
				t.Errorf("the announcements did not end after Close")
			}
		}
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// A namespace that cannot be opened fails Open, and what was opened for
// the namespaces before it is closed: no descriptor, no goroutine left.
func TestIntegrationOpenFailureLeaksNothing(t *testing.T) {
	good := nstest.New(t)
	goodNS := good.NS(t)
	bad := netns.NS{Arg: "x", Path: "/nonexistent"}
	// Warm up what is opened once per process.
	if s, err := session.Open(context.Background(), session.Config{Namespaces: []netns.NS{goodNS},
		Program: filter.Compile(nil, filter.Options{}), Destroys: true}); err == nil {
		s.Close()
	}
	settle := func(want func() bool) bool {
		deadline := time.Now().Add(30 * time.Second)
		for !want() {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(10 * time.Millisecond)
		}
		return true
	}
	fds, gs := openFDs(t), runtime.NumGoroutine()
	for _, cfg := range []session.Config{
		{Namespaces: []netns.NS{bad}},
		{Namespaces: []netns.NS{goodNS, bad}, Destroys: true},
		{Namespaces: []netns.NS{goodNS, bad}, Procfs: true},
		{Namespaces: []netns.NS{goodNS, goodNS, bad}, Destroys: true, Processes: true},
	} {
		cfg.Program = filter.Compile(nil, filter.Options{})
		s, err := session.Open(context.Background(), cfg)
		if err == nil || s != nil {
			t.Errorf("Open with %v: session %v, error %v; want an error", cfg.Namespaces, s, err)
			if s != nil {
				s.Close()
			}
			continue
		}
		if !strings.Contains(err.Error(), "/nonexistent") && !strings.Contains(err.Error(), `"x"`) {
			t.Errorf("Open with %v: %v does not name the namespace", cfg.Namespaces, err)
		}
		if !settle(func() bool { return openFDs(t) <= fds }) {
			t.Errorf("Open with %v: %d descriptors open after the failure, %d before", cfg.Namespaces, openFDs(t), fds)
		}
		if !settle(func() bool { return runtime.NumGoroutine() <= gs }) {
			t.Errorf("Open with %v: %d goroutines after the failure, %d before", cfg.Namespaces, runtime.NumGoroutine(), gs)
		}
	}
}

// The zero config reads the caller's own namespace.
func TestOpenOwnNamespace(t *testing.T) {
	s, err := session.Open(context.Background(), session.Config{Program: filter.Compile(nil, filter.Options{})})
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			nstest.Unavailable(t, "opening the own namespace: %v", err)
		}
		t.Fatal(err)
	}
	defer s.Close()
	if len(s.Targets) != 1 || !s.Targets[0].NS.IsSelf() || s.Lookup() != nil || s.Destroys() != nil {
		t.Errorf("targets %+v, lookup %v: want one, the caller's namespace, no lookups, no announcements", s.Targets, s.Lookup() != nil)
	}
	if _, err := s.Source().Snapshot(); err != nil {
		t.Errorf("snapshot of the caller's namespace: %v", err)
	}
	if s.ClosingNotes() != nil {
		t.Errorf("closing notes %q without process lookups", s.ClosingNotes())
	}
}

// KernelEnds leaves every namespace's destroy announcements and hands the
// kernel's ends on in their place: on the namespace's channel, stamped as
// its sockets are, matched against the filter in force, and only for the
// namespaces the session reads. The channel stays open until Close.
func TestIntegrationKernelEnds(t *testing.T) {
	e, err := filter.Parse([]string{"sport = :9005"})
	if err != nil {
		t.Fatal(err)
	}
	other := nstest.New(t)
	for _, merge := range []bool{false, true} {
		a, b := nstest.New(t), nstest.New(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s, err := session.Open(ctx, session.Config{
			Namespaces: []netns.NS{a.NS(t), b.NS(t)},
			Program:    filter.Compile(e, filter.Options{}),
			Destroys:   true,
			Merge:      merge,
		})
		if err != nil {
			t.Fatal(err)
		}
		pid := os.Getpid()
		for _, ns := range []*nstest.NS{a, b} {
			if n := ns.Subscriptions(t, pid); n != 1 {
				t.Fatalf("merge %v: %d destroy-event subscriptions in %s before KernelEnds, want 1", merge, n, ns.Name)
			}
		}
		end, err := s.KernelEnds()
		if err != nil || end == nil {
			t.Fatalf("merge %v: KernelEnds: %v (end nil: %v)", merge, err, end == nil)
		}
		deadline := time.Now().Add(10 * time.Second)
		for a.Subscriptions(t, pid)+b.Subscriptions(t, pid) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("merge %v: the subscriptions are still open 10 s after KernelEnds", merge)
			}
			time.Sleep(10 * time.Millisecond)
		}
		bIno := uint32(b.NS(t).Inode)
		at := time.Now()
		peer := sock.MustParseEndpoint("127.0.0.1:40000")
		for cookie, ep := range map[uint64]struct {
			ns   uint32
			port uint16
		}{7: {bIno, 9005}, 8: {bIno, 9006}, 9: {uint32(other.NS(t).Inode), 9005}} {
			end(sock.Socket{Cookie: cookie, Netns: ep.ns, Family: sock.IPv4, State: sock.Close, Info: -1,
				Local: sock.EndpointOf(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ep.port)), Peer: peer}, at)
		}
		ch, elsewhere := s.Destroys(), (<-chan sock.Destroy)(nil)
		if !merge {
			ch, elsewhere = s.Targets[1].Destroys, s.Targets[0].Destroys
		}
		// end sends before it returns: what it sent is there now.
		got := map[uint64]sock.Destroy{}
	drain:
		for {
			select {
			case d, ok := <-ch:
				if !ok {
					t.Fatalf("merge %v: the channel closed after KernelEnds", merge)
				}
				got[d.Cookie] = d
			case d := <-elsewhere:
				t.Fatalf("merge %v: an end in b delivered on a's channel: %+v", merge, d)
			default:
				break drain
			}
		}
		if len(got) != 2 {
			t.Fatalf("merge %v: delivered %v, want cookies 7 and 8 (9 is of a namespace not read)", merge, got)
		}
		if d := got[7]; !d.Matches || d.Socket.Netns != bIno || !d.At.Equal(at) || d.Socket.Local.Port() != 9005 {
			t.Errorf("merge %v: the matching end arrived as %+v", merge, d)
		}
		if got[8].Matches {
			t.Errorf("merge %v: an end on port 9006 matches sport = :9005", merge)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		closed := time.After(10 * time.Second)
		for open := true; open; {
			select {
			case _, open = <-ch:
			case <-closed:
				t.Fatalf("merge %v: the channel did not close with the session", merge)
			}
		}
		end(sock.Socket{Cookie: 10, Netns: bIno, Family: sock.IPv4, State: sock.Close}, at) // after Close: nothing, no panic
	}
}

// The caller's own namespace is read as namespace 0: its ends, which the
// kernel names by the namespace's inode, are stamped so.
func TestIntegrationKernelEndsSelf(t *testing.T) {
	s, err := session.Open(context.Background(), session.Config{Program: filter.Compile(nil, filter.Options{}), Destroys: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	end, err := s.KernelEnds()
	if err != nil || end == nil {
		t.Fatalf("KernelEnds: %v (end nil: %v)", err, end == nil)
	}
	self, err := netns.Self()
	if err != nil {
		t.Fatal(err)
	}
	end(sock.Socket{Cookie: 11, Netns: uint32(self.Inode), Family: sock.IPv4, State: sock.Close}, time.Now())
	select {
	case d := <-s.Destroys():
		if d.Cookie != 11 || d.Socket.Netns != 0 || !d.Matches {
			t.Errorf("got %+v, want cookie 11 in namespace 0, matched", d)
		}
	default:
		t.Fatal("the end of a socket in the caller's namespace was not delivered")
	}
}

// A dev test where /proc/net/tcp is read (asked for here; the same where
// sock_diag is missing) is a FilterError: it could match nothing, or
// everything, without a word. Without dev the same session opens.
func TestDevRefusedFromProcfs(t *testing.T) {
	for _, merge := range []bool{false, true} {
		for _, text := range []string{"dev 1", "not dev 1 or :80"} {
			e, err := filter.Parse([]string{text})
			if err != nil {
				t.Fatal(err)
			}
			nss := []netns.NS{nstest.New(t).NS(t)}
			if merge {
				nss = append(nss, nstest.New(t).NS(t))
			}
			s, err := session.Open(context.Background(), session.Config{Namespaces: nss,
				Merge: merge, Procfs: true, Program: filter.Compile(e, filter.Options{})})
			var fe *session.FilterError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), "dev") {
				t.Errorf("%q from /proc/net/tcp (merge %v): %v, want a FilterError naming dev", text, merge, err)
			}
			if s != nil {
				s.Close()
			}
		}
	}
	s, err := session.Open(context.Background(), session.Config{Procfs: true, Program: filter.Compile(nil, filter.Options{})})
	if err != nil {
		t.Fatalf("no filter from /proc/net/tcp: %v", err)
	}
	s.Close()
}
