package kevents

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/nstest"
	"github.com/sockscope/sockscope/pkg/sock"
	"golang.org/x/sys/unix"
)

// open loads the program, or fails under CI (root, BTF, trampolines are
// there), or skips where a developer cannot load BPF.
func open(t *testing.T, only []uint32) *Watcher {
	t.Helper()
	return openRing(t, only, ringSize)
}

// openRing is open with a ring of size bytes.
func openRing(t *testing.T, only []uint32, size uint32) *Watcher {
	t.Helper()
	w := load(t, only, size)
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("closing: %v", err)
		}
	})
	return w
}

// A connection that lives 5 ms in a namespace of its own: the kernel
// reports every step of both ends, in its namespace, with its addresses
// and cookies, each dated within 1 ms of this test's clock around it. The
// ends (changes to CLOSE) keep the local port the socket had, which the
// kernel has given back by then.
// load is openRing without closing at the test's end.
func load(t *testing.T, only []uint32, size uint32) *Watcher {
	t.Helper()
	w, err := openSized(only, size)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("loading the kernel events: %v", err)
		}
		t.Skipf("kernel events: %v", err)
	}
	return w
}

func TestTransitionsOfAShortConnection(t *testing.T) {
	ns := nstest.New(t)
	nsIno := uint32(ns.NS(t).Inode)
	w := open(t, nil)
	var (
		mu   sync.Mutex
		seen []Transition
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- w.Run(ctx, func(tr *Transition) {
			if tr.Netns == nsIno {
				mu.Lock()
				seen = append(seen, *tr)
				mu.Unlock()
			}
		})
	}()

	ap := netip.MustParseAddrPort("127.0.0.1:9000")
	var listen, client, server int
	var loIndex uint32
	var listenAt, connectBefore, connectAfter, closeBefore, closeAfter time.Time
	err := ns.Do(func() error {
		var err error
		listenAt = time.Now()
		if listen, err = nstest.Listen(ap, false); err != nil {
			return err
		}
		connectBefore = time.Now()
		if client, err = nstest.Dial(ap); err != nil {
			return err
		}
		connectAfter = time.Now()
		if server, _, err = unix.Accept4(listen, unix.SOCK_CLOEXEC); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
		closeBefore = time.Now()
		unix.Close(client)
		closeAfter = time.Now()
		unix.Close(server)
		unix.Close(listen)
		// A listener bound to lo (SO_BINDTODEVICE): its changes carry
		// lo's index, what a filter's dev test reads.
		bound, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(bound)
		if err := unix.SetsockoptString(bound, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "lo"); err != nil {
			return fmt.Errorf("SO_BINDTODEVICE: %w", err)
		}
		if err := unix.Bind(bound, &unix.SockaddrInet4{Port: 9001, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			return err
		}
		if err := unix.Listen(bound, 1); err != nil {
			return err
		}
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		loIndex = uint32(lo.Index)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = listenAt

	type step struct{ from, to sock.State }
	clientWant := []step{
		{sock.Close, sock.SynSent}, {sock.SynSent, sock.Established},
		{sock.Established, sock.FinWait1}, {sock.FinWait1, sock.FinWait2},
	}
	deadline := time.Now().Add(5 * time.Second)
	var got []Transition
	for {
		mu.Lock()
		got = append(got[:0], seen...)
		mu.Unlock()
		if (countFrom(got, 9000) >= len(clientWant) && closesOf9000(got) >= 2 && boundChanges(got) >= 2) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	var clientSteps []step
	var cookie uint64
	for _, tr := range got {
		if tr.Peer.Port() != 9000 {
			continue
		}
		if tr.Family != sock.IPv4 || tr.Local.Addr() != ap.Addr() || tr.Peer.AddrPort() != ap || tr.Cookie == 0 {
			t.Errorf("client transition %+v: want IPv4 from 127.0.0.1 to %s with a cookie", tr, ap)
		}
		if tr.IfIndex != 0 {
			t.Errorf("client transition %+v: bound to interface %d, want none", tr, tr.IfIndex)
		}
		if cookie != 0 && tr.Cookie != cookie {
			t.Errorf("client cookie changed: %d then %d", cookie, tr.Cookie)
		}
		cookie = tr.Cookie
		clientSteps = append(clientSteps, step{tr.From, tr.To})
		// Within 1 ms of what this test saw around the call that made it.
		var lo, hi time.Time
		switch tr.To {
		case sock.SynSent, sock.Established:
			lo, hi = connectBefore, connectAfter
		default:
			lo, hi = closeBefore, closeAfter
		}
		if tr.At.Before(lo.Add(-time.Millisecond)) || tr.At.After(hi.Add(time.Millisecond)) {
			t.Errorf("%s to %s dated %s; the call ran from %s to %s", tr.From, tr.To,
				tr.At.Format("15:04:05.000000"), lo.Format("15:04:05.000000"), hi.Format("15:04:05.000000"))
		}
	}
	if len(clientSteps) < len(clientWant) {
		t.Fatalf("client's steps %v; want %v first", clientSteps, clientWant)
	}
	for i, s := range clientWant {
		if clientSteps[i] != s {
			t.Errorf("client's steps %v; want %v first", clientSteps, clientWant)
			break
		}
	}
	// The listener and the server's end are there too.
	var listener, serverEnd bool
	for _, tr := range got {
		switch {
		case tr.Local.Port() == 9000 && tr.To == sock.Listen:
			listener = true
		case tr.Local.Port() == 9000 && tr.From == sock.Established && tr.To == sock.CloseWait:
			serverEnd = true
		}
	}
	if !listener || !serverEnd {
		t.Errorf("listener's CLOSE to LISTEN seen %v, server's ESTABLISHED to CLOSE_WAIT seen %v; want both (all: %+v)", listener, serverEnd, got)
	}
	// The listener's end (from LISTEN) and the server end's (from
	// LAST_ACK), with the port they had.
	var listenerClosed, serverClosed bool
	for _, tr := range got {
		if tr.To != sock.Close {
			continue
		}
		switch {
		case tr.From == sock.Listen:
			listenerClosed = listenerClosed || tr.Local.AddrPort() == ap
		case tr.From == sock.LastAck:
			serverClosed = tr.Local.AddrPort() == ap && tr.Peer.Addr() == ap.Addr() && tr.Peer.Port() != 0
		}
		if tr.Local.Port() == 0 {
			t.Errorf("an end without its local port: %+v", tr)
		}
	}
	if !listenerClosed || !serverClosed {
		t.Errorf("ends at %s: the listener's %v, the server end's %v; want both (all: %+v)", ap, listenerClosed, serverClosed, got)
	}
	// The bound listener's two changes, with lo's index.
	var bound []step
	for _, tr := range got {
		if tr.Local.Port() == 9001 {
			bound = append(bound, step{tr.From, tr.To})
			if tr.IfIndex != loIndex || loIndex == 0 {
				t.Errorf("bound listener's %s to %s: interface %d, want lo's (%d)", tr.From, tr.To, tr.IfIndex, loIndex)
			}
		}
	}
	if want := []step{{sock.Close, sock.Listen}, {sock.Listen, sock.Close}}; !slices.Equal(bound, want) {
		t.Errorf("bound listener's steps %v, want %v", bound, want)
	}
}

// boundChanges counts the changes of the sockets on local port 9001.
func boundChanges(trs []Transition) int {
	n := 0
	for _, tr := range trs {
		if tr.Local.Port() == 9001 {
			n++
		}
	}
	return n
}

// closesOf9000 counts the changes to CLOSE of sockets on local port 9000,
// or whose local port is lost (0).
func closesOf9000(trs []Transition) int {
	n := 0
	for _, tr := range trs {
		if tr.To == sock.Close && (tr.Local.Port() == 9000 || tr.Local.Port() == 0) {
			n++
		}
	}
	return n
}

func countFrom(trs []Transition, peerPort uint16) int {
	n := 0
	for _, tr := range trs {
		if tr.Peer.Port() == peerPort {
			n++
		}
	}
	return n
}

// Asked for one namespace, the program reports its sockets and no other
// namespace's.
func TestOnlyTheNamespacesAsked(t *testing.T) {
	a, b := nstest.New(t), nstest.New(t)
	aIno, bIno := uint32(a.NS(t).Inode), uint32(b.NS(t).Inode)
	w := open(t, []uint32{aIno})
	var mu sync.Mutex
	by := map[uint32]int{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- w.Run(ctx, func(tr *Transition) {
			mu.Lock()
			by[tr.Netns]++
			mu.Unlock()
		})
	}()
	for _, ns := range []*nstest.NS{b, a} { // b first: its events come before a's
		if err := ns.Do(func() error {
			fd, err := nstest.Listen(netip.MustParseAddrPort("127.0.0.1:9000"), false)
			if err == nil {
				unix.Close(fd)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := by[aIno]
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if by[aIno] != 2 || len(by) != 1 {
		t.Errorf("events by namespace %v; want the listener's two in net:[%d] alone (not net:[%d])", by, aIno, bIno)
	}
}

// Sync returns once every change made before it has reached fn: no wait
// for the next read of the ring.
func TestSync(t *testing.T) {
	ns := nstest.New(t)
	w := open(t, []uint32{uint32(ns.NS(t).Inode)})
	var n atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func(*Transition) { n.Add(1) }) }()
	for i := range 20 {
		if err := ns.Do(func() error {
			fd, err := nstest.Listen(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(9000+i)), false)
			if err == nil {
				unix.Close(fd)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		w.Sync(ctx)
		if got := n.Load(); got != int32(2*(i+1)) {
			t.Fatalf("after listener %d and Sync: %d changes; want %d", i+1, got, 2*(i+1))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A reader that falls behind loses changes, and knows how many: those it
// read and those it lost are all the kernel made (a listener opened and
// closed is two). Once drained, the ring takes changes again.
func TestLostChangesAreCounted(t *testing.T) {
	ns := nstest.New(t)
	// A ring of one page holds pagesize/80 changes (72 bytes and a
	// header of 8): twice as many overflow it.
	page := os.Getpagesize()
	w := openRing(t, []uint32{uint32(ns.NS(t).Inode)}, uint32(page))
	listen := func(from, n int) {
		t.Helper()
		for i := range n {
			if err := ns.Do(func() error {
				fd, err := nstest.Listen(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(from+i)), false)
				if err == nil {
					unix.Close(fd)
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	lost := func() uint64 {
		t.Helper()
		n, err := w.Lost()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := lost(); n != 0 {
		t.Fatalf("lost %d changes before any was made", n)
	}
	first := 2 * page / 80 // 102 listeners with 4 KiB pages
	listen(9000, first)    // before any read: the ring overflows
	var n atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func(*Transition) { n.Add(1) }) }()
	w.Sync(ctx)
	gone := lost()
	if gone == 0 || uint64(n.Load())+gone != 2*uint64(first) {
		t.Errorf("%d changes read and %d lost; want some lost, %d in all", n.Load(), gone, 2*first)
	}
	read := n.Load()
	listen(30000, 10)
	w.Sync(ctx)
	if got, now := n.Load()-read, lost(); got != 20 || now != gone {
		t.Errorf("after the drain: %d more changes read, %d lost in all; want 20 and still %d", got, now, gone)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Lost says it cannot read once the events are closed, rather than a
// count no longer kept.
func TestLostAfterClose(t *testing.T) {
	w := load(t, []uint32{1}, ringSize)
	if n, err := w.Lost(); err != nil || n != 0 {
		t.Fatalf("Lost before any change: %d, %v; want 0, nil", n, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Lost(); err == nil {
		t.Error("Lost after Close: no error")
	}
}
