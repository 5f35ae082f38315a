package sockdiag

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/nstest"
	"github.com/sockscope/sockscope/pkg/sock"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite testdata from the running kernel")

func dump(t *testing.T, c *Collector, r *Request) *sock.Snapshot {
	t.Helper()
	var snap sock.Snapshot
	if err := c.Dump(r, &snap); err != nil {
		t.Fatalf("dump: %v", err)
	}
	return &snap
}

func openIn(t *testing.T, ns string) *Collector {
	t.Helper()
	c, err := Open(nstest.Resolve(t, ns))
	if err != nil {
		t.Fatalf("Open(%q): %v", ns, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor dumps until cond holds, for at most two seconds: the last ACK of
// a close travels asynchronously even on loopback.
func waitFor(t *testing.T, c *Collector, r *Request, what string, cond func(*sock.Snapshot) bool) *sock.Snapshot {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		snap := dump(t, c, r)
		if cond(snap) {
			return snap
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s; last dump: %+v", what, snap.Sockets)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func count(snap *sock.Snapshot, st sock.State, localPort uint16) int {
	n := 0
	for _, s := range snap.Sockets {
		if s.State == st && s.Local.Port() == localPort {
			n++
		}
	}
	return n
}

func all() *Request { return &Request{States: sock.AllStates} }

func TestIntegrationSeedExperiment(t *testing.T) {
	ns := nstest.New(t)
	seed := nstest.RunSeed(t, ns, nstest.SeedOptions{})
	c := openIn(t, ns.Name)

	// The CLOSE_WAIT side may delay its ACK of the client's FIN, so the
	// client reaches FIN_WAIT2 a little later than the rest.
	snap := waitFor(t, c, all(), "two TIME_WAIT entries on :9000 and a FIN_WAIT2 client", func(s *sock.Snapshot) bool {
		return count(s, sock.TimeWait, 9000) == 2 && count(s, sock.FinWait2, seedClientPort(s)) == 1
	})
	if got := count(snap, sock.Listen, 9000); got != 2 {
		t.Errorf("LISTEN on :9000: got %d, want 2 (127.0.0.1 and ::1)", got)
	}
	if got := count(snap, sock.CloseWait, 9000); got != 1 {
		t.Errorf("CLOSE_WAIT on :9000: got %d, want 1", got)
	}
	fw2 := 0
	for _, s := range snap.Sockets {
		if s.State == sock.FinWait2 && s.Peer.Port() == 9000 {
			fw2++
		}
	}
	if fw2 != 1 {
		t.Errorf("client side FIN_WAIT2 towards :9000: got %d, want 1", fw2)
	}

	seen := map[uint64]bool{}
	fams := map[sock.Family]int{}
	for _, s := range snap.Sockets {
		if s.Cookie == 0 || seen[s.Cookie] {
			t.Errorf("cookie %#x is zero or seen twice: %+v", s.Cookie, s)
		}
		seen[s.Cookie] = true
		switch s.State {
		case sock.TimeWait:
			fams[s.Family]++
			if s.Timer != sock.TimerTimeWait {
				t.Errorf("TIME_WAIT entry with timer %v: %+v", s.Timer, s)
			}
			if s.Expires > 60000 || s.Expires < 55000 {
				t.Errorf("TIME_WAIT expires in %d ms, want just under 60000", s.Expires)
			}
			if s.Inode != 0 {
				t.Errorf("TIME_WAIT entry owns inode %d, want 0", s.Inode)
			}
		case sock.Listen:
			want, err := nstest.Inode(seed.Listeners[map[bool]int{true: 0, false: 1}[s.Family == sock.IPv4]])
			if err != nil {
				t.Fatal(err)
			}
			if s.Inode != want {
				t.Errorf("LISTEN %v: inode %d, want the listener's %d", s.Local, s.Inode, want)
			}
			if s.Local.Addr().String() != map[sock.Family]string{sock.IPv4: "127.0.0.1", sock.IPv6: "::1"}[s.Family] {
				t.Errorf("LISTEN on %v", s.Local)
			}
			if s.UID != uint32(os.Getuid()) {
				t.Errorf("LISTEN uid %d, want %d", s.UID, os.Getuid())
			}
		case sock.CloseWait:
			want, err := nstest.Inode(seed.HalfClosed)
			if err != nil {
				t.Fatal(err)
			}
			if s.Inode != want {
				t.Errorf("CLOSE_WAIT inode %d, want %d", s.Inode, want)
			}
		}
	}
	if fams[sock.IPv4] != 1 || fams[sock.IPv6] != 1 {
		t.Errorf("TIME_WAIT entries by family: %v, want one IPv4 and one IPv6", fams)
	}

	// The kernel's timer counts down in step with the wall clock: the age
	// derived from it (60 s - expires) grows by the time that passed.
	before := timeWaitExpiry(snap)
	const pause = 300 * time.Millisecond
	time.Sleep(pause)
	after := timeWaitExpiry(dump(t, c, all()))
	for cookie, e0 := range before {
		e1, ok := after[cookie]
		if !ok {
			t.Fatalf("TIME_WAIT entry %#x vanished after %v", cookie, pause)
		}
		grew := time.Duration(e0-e1) * time.Millisecond
		if grew < pause-50*time.Millisecond || grew > pause+500*time.Millisecond {
			t.Errorf("TIME_WAIT %#x aged %v over a %v pause", cookie, grew, pause)
		}
	}
	if *update {
		captureSeed(t, c)
	}
}

func timeWaitExpiry(snap *sock.Snapshot) map[uint64]uint32 {
	m := map[uint64]uint32{}
	for _, s := range snap.Sockets {
		if s.State == sock.TimeWait {
			m[s.Cookie] = s.Expires
		}
	}
	return m
}

// captureSeed stores the raw kernel reply to a full dump with tcp_info as
// testdata for the parser's tests and fuzz seeds.
func captureSeed(t *testing.T, c *Collector) {
	for _, fam := range []sock.Family{sock.IPv4, sock.IPv6} {
		c.seq++
		req, err := appendRequest(nil, c.seq, fam, &Request{States: sock.AllStates, Ext: ExtInfo})
		if err != nil {
			t.Fatal(err)
		}
		if err := sendto(c.fd, req, false); err != nil {
			t.Fatal(err)
		}
		var raw []byte
		for {
			n, err := c.recv(c.fd)
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw, c.buf[:n]...)
			res, err := parseBatch(c.buf[:n], c.seq, func(*sock.Socket, []byte) {})
			if err != nil {
				t.Fatal(err)
			}
			if res == batchDone {
				break
			}
		}
		name := filepath.Join("testdata", "seed-"+fam.String()+".bin")
		if err := os.WriteFile(name, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes, seq %d)", name, len(raw), c.seq)
	}
}

func TestIntegrationStateMaskAndFamily(t *testing.T) {
	ns := nstest.New(t)
	nstest.RunSeed(t, ns, nstest.SeedOptions{})
	c := openIn(t, ns.Name)
	waitFor(t, c, all(), "TIME_WAIT and FIN_WAIT2", func(s *sock.Snapshot) bool {
		return count(s, sock.TimeWait, 9000) == 2 && count(s, sock.FinWait2, seedClientPort(s)) == 1
	})

	for _, tc := range []struct {
		name string
		req  Request
		want func(sock.Socket) bool
		n    int
	}{
		{"time-wait only", Request{States: sock.MaskOf(sock.TimeWait)}, func(s sock.Socket) bool { return s.State == sock.TimeWait }, 2},
		{"listen, IPv6 only", Request{States: sock.MaskOf(sock.Listen), Families: []sock.Family{sock.IPv6}},
			func(s sock.Socket) bool { return s.State == sock.Listen && s.Family == sock.IPv6 }, 1},
		{"close-wait and fin-wait-2", Request{States: sock.MaskOf(sock.CloseWait, sock.FinWait2)},
			func(s sock.Socket) bool { return s.State == sock.CloseWait || s.State == sock.FinWait2 }, 2},
	} {
		snap := dump(t, c, &tc.req)
		if len(snap.Sockets) != tc.n || snap.Dumped != tc.n {
			t.Errorf("%s: got %d sockets (dumped %d), want %d: %+v", tc.name, len(snap.Sockets), snap.Dumped, tc.n, snap.Sockets)
		}
		for _, s := range snap.Sockets {
			if !tc.want(s) {
				t.Errorf("%s: unexpected %v %v", tc.name, s.State, s.Local)
			}
		}
	}
}

func TestIntegrationTCPInfo(t *testing.T) {
	ns := nstest.New(t)
	nstest.RunSeed(t, ns, nstest.SeedOptions{})
	c := openIn(t, ns.Name)
	without := dump(t, c, &Request{States: sock.MaskOf(sock.CloseWait)})
	if len(without.Infos) != 0 || len(without.Sockets) != 1 || without.Sockets[0].Info != -1 {
		t.Fatalf("tcp_info arrived unasked: %+v", without)
	}
	with := dump(t, c, &Request{States: sock.MaskOf(sock.CloseWait), Ext: ExtInfo})
	if len(with.Sockets) != 1 || with.Sockets[0].Info != 0 || len(with.Infos) != 1 {
		t.Fatalf("want one CLOSE_WAIT socket with tcp_info, got %+v", with)
	}
	info := with.Infos[0]
	if info.SndMSS == 0 || info.PMTU != 65535 || info.RTO == 0 {
		t.Errorf("implausible tcp_info for a loopback connection: %+v", info)
	}
	if info.BytesReceived != 1 { // the client's FIN counts as one byte
		t.Errorf("bytes_received %d, want 1 (the FIN)", info.BytesReceived)
	}
}

// The namespace argument must select the namespace, not just open one: the
// library silently dumps the caller's namespace when the family is not named.
func TestIntegrationNetnsIsolation(t *testing.T) {
	ns := nstest.New(t)
	seed := nstest.RunSeed(t, ns, nstest.SeedOptions{})
	inNS := openIn(t, ns.Name)
	here := openIn(t, "")

	// A listener in the caller's namespace.
	lfd, err := nstest.Listen(netipLoopback(0), false)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	hostInode, err := nstest.Inode(lfd)
	if err != nil {
		t.Fatal(err)
	}
	nsInode, err := nstest.Inode(seed.Listeners[0])
	if err != nil {
		t.Fatal(err)
	}

	has := func(snap *sock.Snapshot, inode uint32) bool {
		for _, s := range snap.Sockets {
			if s.Inode == inode {
				return true
			}
		}
		return false
	}
	listen := &Request{States: sock.MaskOf(sock.Listen)}
	a, b := dump(t, inNS, listen), dump(t, here, listen)
	if !has(a, nsInode) || has(a, hostInode) {
		t.Errorf("namespace %s dump: has its own listener %v, has the caller's %v; want true, false", ns.Name, has(a, nsInode), has(a, hostInode))
	}
	if has(b, nsInode) || !has(b, hostInode) {
		t.Errorf("caller's dump: has the namespace's listener %v, has its own %v; want false, true", has(b, nsInode), has(b, hostInode))
	}

	// A container is named by a path such as /proc/PID/ns/net.
	cmd := ns.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	path := "/proc/" + itoa(cmd.Process.Pid) + "/ns/net"
	// ip netns exec switches namespace before exec: wait until it has.
	var want unix.Stat_t
	if err := unix.Stat(ns.Path(), &want); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		var st unix.Stat_t
		if unix.Stat(path, &st) == nil && st.Ino == want.Ino && st.Dev == want.Dev {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never entered namespace %s", path, ns.Name)
		}
		time.Sleep(5 * time.Millisecond)
	}
	viaPath := openIn(t, path)
	if p := dump(t, viaPath, listen); !has(p, nsInode) || has(p, hostInode) {
		t.Errorf("dump via %s: has the namespace's listener %v, has the caller's %v; want true, false: %+v",
			path, has(p, nsInode), has(p, hostInode), p.Sockets)
	}
	// Every socket carries the inode of the namespace it lives in,
	// whichever way the namespace was named.
	for _, snap := range []*sock.Snapshot{a, dump(t, viaPath, listen)} {
		for _, s := range snap.Sockets {
			if uint64(s.Netns) != want.Ino {
				t.Errorf("socket %v carries namespace %d, want %d", s.Local, s.Netns, want.Ino)
			}
		}
	}
	var self unix.Stat_t
	runtime.LockOSThread() // this thread's: /proc/self is the main thread's
	err = unix.Stat("/proc/thread-self/ns/net", &self)
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range b.Sockets {
		if uint64(s.Netns) != self.Ino {
			t.Errorf("caller's socket %v carries namespace %d, want %d", s.Local, s.Netns, self.Ino)
		}
	}
}

// A batch that repeats a socket, as a dump resumed while the table changes
// can, yields it once.
func TestDuplicatesDroppedByCookie(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "seed-inet.bin"))
	if err != nil {
		t.Fatal(err)
	}
	c := &Collector{prev: new(cookieSet), cur: new(cookieSet)}
	var snap sock.Snapshot
	slot, emit, _ := c.into(&snap)
	if _, err := parseBatchInto(raw, 5, slot, true, emit); err != nil {
		t.Fatal(err)
	}
	once := len(snap.Sockets)
	// The next batch starts over with the previous one's tail.
	c.nextBatch()
	if _, err := parseBatchInto(raw, 5, slot, true, emit); err != nil {
		t.Fatal(err)
	}
	if once == 0 || len(snap.Sockets) != once || snap.Dumped != once {
		t.Errorf("%d sockets after one pass, %d (dumped %d) after the same messages again", once, len(snap.Sockets), snap.Dumped)
	}
	for _, s := range snap.Sockets {
		if s.State != sock.TimeWait && (s.Info < 0 || int(s.Info) >= len(snap.Infos)) {
			t.Errorf("%v socket without its tcp_info: index %d of %d", s.State, s.Info, len(snap.Infos))
		}
	}
}

// The destroy groups announce the moment a full socket is freed: for the
// side that closes first, when it becomes a TIME_WAIT entry, under the same
// cookie.
func TestIntegrationDestroyEvents(t *testing.T) {
	ns := nstest.New(t)
	sub, err := Subscribe(ns.NS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	c := openIn(t, ns.Name)
	conn := nstest.Connect(t, ns, netipLoopback(9000))
	// Dump once so the server end has its cookie before it closes.
	var server sock.Socket
	for _, s := range dump(t, c, &Request{States: sock.MaskOf(sock.Established)}).Sockets {
		if s.Local.Port() == 9000 {
			server = s
		}
	}
	if server.Cookie == 0 {
		t.Fatal("no server end in the dump")
	}
	closed := time.Now()
	conn.Close(&conn.Server)
	conn.Close(&conn.Client)

	got := map[uint64]time.Time{}
	deadline := time.Now().Add(3 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		err := sub.Receive(100*time.Millisecond, func(s *sock.Socket, at time.Time) {
			if s.Local.Port() == 9000 || s.Peer.Port() == 9000 {
				got[s.Cookie] = at
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	at, ok := got[server.Cookie]
	if !ok {
		t.Fatalf("no destroy event for the server end %#x; got %v", server.Cookie, got)
	}
	if d := at.Sub(closed); d < 0 || d > 50*time.Millisecond {
		t.Errorf("destroy event %v after the close, want within 50ms", d)
	}
	tw := dump(t, c, &Request{States: sock.MaskOf(sock.TimeWait)})
	if len(tw.Sockets) != 1 || tw.Sockets[0].Cookie != server.Cookie {
		t.Errorf("TIME_WAIT entries %+v, want the server end's cookie %#x", tw.Sockets, server.Cookie)
	}

	// Without a timeout, Receive reads what is queued and does not wait.
	conn2 := nstest.Connect(t, ns, netipLoopback(9001))
	conn2.Close(&conn2.Server)
	conn2.Close(&conn2.Client)
	time.Sleep(100 * time.Millisecond)
	queued := 0
	begin := time.Now()
	if err := sub.Receive(0, func(*sock.Socket, time.Time) { queued++ }); err != nil || queued == 0 {
		t.Errorf("Receive(0) with announcements queued: %d read, %v", queued, err)
	}
	if err := sub.Receive(0, func(*sock.Socket, time.Time) { queued++ }); err != nil || time.Since(begin) > 50*time.Millisecond {
		t.Errorf("Receive(0) with nothing queued: %v after %v", err, time.Since(begin))
	}

	// A quiet wait ends at its timeout with nothing, and Close ends a wait
	// at once: the socket waits in the runtime's poller, not in poll(2).
	begin = time.Now()
	if err := sub.Receive(200*time.Millisecond, func(s *sock.Socket, _ time.Time) {
		t.Errorf("destroy event for %+v with nothing closed", s)
	}); err != nil || time.Since(begin) < 190*time.Millisecond {
		t.Errorf("quiet Receive: %v after %v, want nil after 200ms", err, time.Since(begin))
	}
	ended := make(chan error, 1)
	go func() { ended <- sub.Receive(time.Minute, func(*sock.Socket, time.Time) {}) }()
	time.Sleep(50 * time.Millisecond)
	sub.Close()
	select {
	case err := <-ended:
		if err == nil {
			t.Error("Receive on a closed subscription returned nil")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a Receive in progress")
	}
}

func TestIntegrationAlive(t *testing.T) {
	ns := nstest.New(t)
	seed := nstest.RunSeed(t, ns, nstest.SeedOptions{})
	c := openIn(t, ns.Name)
	snap := waitFor(t, c, all(), "the experiment to settle", func(s *sock.Snapshot) bool {
		return count(s, sock.TimeWait, 9000) == 2 && count(s, sock.FinWait2, seedClientPort(s)) == 1
	})
	for _, s := range snap.Sockets {
		alive, err := c.Alive(&s)
		if err != nil || !alive {
			t.Errorf("%v %v -> %v: alive %v, %v", s.State, s.Local, s.Peer, alive, err)
		}
		// The same four-tuple under another cookie is not this socket.
		other := s
		other.Cookie++
		if alive, err := c.Alive(&other); err != nil || alive {
			t.Errorf("wrong cookie for %v %v: alive %v, %v", s.State, s.Local, alive, err)
		}
	}
	// All of them at once, each followed by its wrong-cookie twin: one
	// request, answers in the same order.
	var socks []sock.Socket
	for _, s := range snap.Sockets {
		other := s
		other.Cookie++
		socks = append(socks, s, other)
	}
	if len(socks) > MaxAliveAll {
		t.Fatalf("the seed has %d sockets: more than a request takes", len(socks)/2)
	}
	alive, err := c.AliveAll(socks, nil)
	if err != nil || len(alive) != len(socks) {
		t.Fatalf("AliveAll: %v (%d answers for %d)", err, len(alive), len(socks))
	}
	for i := range socks {
		if alive[i] != (i%2 == 0) {
			t.Errorf("AliveAll: %v %v cookie %d alive %v, want %v", socks[i].State, socks[i].Local, socks[i].Cookie, alive[i], i%2 == 0)
		}
	}
	var cw sock.Socket
	for _, s := range snap.Sockets {
		if s.State == sock.CloseWait {
			cw = s
		}
	}
	// Reset the CLOSE_WAIT end: it is freed at once.
	unix.SetsockoptLinger(seed.HalfClosed, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	unix.Close(seed.HalfClosed)
	seed.HalfClosed = -1
	if alive, err := c.Alive(&cw); err != nil || alive {
		t.Errorf("closed socket: alive %v, %v", alive, err)
	}
	// A request that ends with the closed socket, after a live one: both
	// answered, the second gone.
	if alive, err := c.AliveAll([]sock.Socket{snap.Sockets[0], cw}, alive); err != nil || len(alive) != 2 || !alive[0] || alive[1] {
		t.Errorf("AliveAll of a live and a closed socket: %v, %v; want [true false]", alive, err)
	}
	if _, err := c.AliveAll(make([]sock.Socket, MaxAliveAll+1), nil); !errors.Is(err, unix.E2BIG) {
		t.Errorf("AliveAll of %d sockets: %v, want E2BIG", MaxAliveAll+1, err)
	}
}

// A socket is decoded into whatever its slot held before (the snapshot's
// recycled memory): every field must be written, none left from the last
// socket there.
func TestDecodeOverwritesEveryField(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "seed-inet.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var clean []sock.Socket
	if _, err := parseBatch(raw, 5, func(s *sock.Socket, _ []byte) { clean = append(clean, *s) }); err != nil {
		t.Fatal(err)
	}
	junk := sock.Socket{Cookie: ^uint64(0), Local: sock.MustParseEndpoint("[2001:db8::1]:1"),
		Peer: sock.MustParseEndpoint("[2001:db8::2]:2"), IfIndex: 9, Expires: 9, RecvQ: 9, SendQ: 9,
		UID: 9, Inode: 9, Info: 9, Netns: 9, Family: 99, State: 99, Timer: 99, Retrans: 99}
	var slot sock.Socket
	var dirty []sock.Socket
	_, err = parseBatchInto(raw, 5, func() *sock.Socket { slot = junk; return &slot }, true,
		func(s *sock.Socket, _ []byte) bool { dirty = append(dirty, *s); return true })
	if err != nil {
		t.Fatal(err)
	}
	if len(clean) == 0 || !slices.Equal(clean, dirty) {
		t.Errorf("decoded into junk:\n%+v\ninto zero values:\n%+v", dirty, clean)
	}
}
