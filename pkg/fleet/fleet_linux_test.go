package fleet

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/nsfind"
	"github.com/sockscope/sockscope/pkg/nstest"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/tablecount"
	"golang.org/x/sys/unix"
)

// listeners opens n listening sockets on loopback inside ns, from port
// base on, closed when the test ends; it returns their descriptors.
func listeners(t *testing.T, do func(func() error) error, base, n int) map[int]bool {
	t.Helper()
	fds := map[int]bool{}
	err := do(func() error {
		for i := range n {
			fd, err := nstest.Listen(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(base+i)), false)
			if err != nil {
				return err
			}
			fds[fd] = true
			t.Cleanup(func() { unix.Close(fd) })
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	return fds
}

// socketsIn counts this process's sockets that live in the namespace with
// inode ino (SIOCGSKNS names a socket's namespace), leaving out skip.
// Other tests' namespaces, which a fleet of every namespace also reads,
// do not count.
func socketsIn(t *testing.T, ino uint64, skip map[int]bool) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || skip[fd] {
			continue
		}
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || !strings.HasPrefix(l, "socket:") {
			continue
		}
		nsfd, err := unix.IoctlRetInt(fd, unix.SIOCGSKNS)
		if err != nil {
			continue // closed meanwhile, or not a network socket
		}
		var st unix.Stat_t
		if unix.Fstat(nsfd, &st) == nil && st.Ino == ino {
			n++
		}
		unix.Close(nsfd)
	}
	return n
}

// inProcess runs f inside the namespace a process holds.
func inProcess(ns netns.NS) func(func() error) error {
	return func(f func() error) error { return ns.Run(f) }
}

// openFDs counts this process's sockets and open files: what a source
// holds. (A started process's pidfd is neither.)
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && !strings.HasPrefix(l, "anon_inode:") {
			n++
		}
	}
	return n
}

func countBy(snap *sock.Snapshot) map[uint32]int {
	m := map[uint32]int{}
	for i := range snap.Sockets {
		m[snap.Sockets[i].Netns]++
	}
	return m
}

// Every namespace on the host, read as one: each socket carries its
// namespace's inode, each namespace its name, and one that goes away is
// dropped at the next poll, its source closed, without an error.
func TestIntegrationFleetFollowsNamespaces(t *testing.T) {
	nstest.HostLock(t) // it reads every namespace on the host
	named := nstest.New(t)
	listeners(t, named.Do, 7100, 3)
	cmd, held := nstest.Unshared(t)
	own := listeners(t, inProcess(held), 7200, 5)

	prog := filter.Compile(mustParse(t, "state listen"), filter.Options{})
	before := openFDs(t)
	f, err := Open(context.Background(), Config{All: true, Program: prog, Destroys: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	counts := countBy(snap)
	namedIno, heldIno := uint32(named.NS(t).Inode), uint32(held.Inode)
	if counts[namedIno] != 3 || counts[heldIno] != 5 {
		t.Errorf("listeners by namespace %v; want 3 in %s (net:[%d]) and 5 in pid %d's (net:[%d])",
			counts, named.Name, namedIno, cmd.Process.Pid, heldIno)
	}
	if n, ok := f.Name(namedIno); !ok || n.Label != named.Name || n.Gone {
		t.Errorf("name of %s: %+v, %v", named.Name, n, ok)
	}
	if n, ok := f.Name(heldIno); !ok || n.PID != cmd.Process.Pid || n.Command != "sleep" {
		t.Errorf("name of pid %d's namespace: %+v, %v; want its pid and command", cmd.Process.Pid, n, ok)
	}
	self, err := netns.Self()
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := f.Name(uint32(self.Inode)); !ok || !n.Host || n.Label != "host" {
		t.Errorf("name of the host's namespace: %+v, %v", n, ok)
	}
	if n := socketsIn(t, held.Inode, own); n == 0 {
		t.Errorf("the fleet has no socket in pid %d's namespace", cmd.Process.Pid)
	}

	// The process exits: nothing holds its namespace but sockscope's own
	// sockets, which must let go of it.
	cmd.Process.Kill()
	cmd.Wait()
	snap, err = f.Snapshot()
	if err != nil {
		t.Fatalf("a poll after a namespace went away: %v", err)
	}
	if c := countBy(snap)[heldIno]; c != 0 {
		t.Errorf("%d sockets of the namespace that went away", c)
	}
	if n, ok := f.Name(heldIno); !ok || !n.Gone {
		t.Errorf("the namespace that went away is not marked gone: %+v, %v", n, ok)
	}
	if n := socketsIn(t, held.Inode, own); n != 0 {
		t.Errorf("the fleet keeps %d sockets in the namespace that went away: it stays alive", n)
	}
	if c := countBy(snap)[namedIno]; c != 3 {
		t.Errorf("%d listeners in %s after another namespace went away; want 3", c, named.Name)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if after := openFDs(t); after != before {
		t.Errorf("descriptors: %d before the fleet, %d after Close", before, after)
	}
}

// -N given twice: exactly those namespaces, each named as given.
func TestIntegrationFleetFixed(t *testing.T) {
	a, b := nstest.New(t), nstest.New(t)
	listeners(t, a.Do, 7300, 2)
	listeners(t, b.Do, 7300, 4) // the same ports: another namespace
	prog := filter.Compile(mustParse(t, ""), filter.Options{})
	// One after the other, and side by side (a one-shot listing): the
	// same sockets, in the namespaces' order.
	for _, workers := range []int{0, 2} {
		f, err := Open(context.Background(), Config{Fixed: []netns.NS{a.NS(t), b.NS(t)}, Program: prog, Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for range 2 { // the second dump knows each namespace's size
			snap, err := f.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			counts := countBy(snap)
			ai, bi := uint32(a.NS(t).Inode), uint32(b.NS(t).Inode)
			if len(counts) != 2 || counts[ai] != 2 || counts[bi] != 4 {
				t.Errorf("workers %d: sockets by namespace %v; want 2 in net:[%d] and 4 in net:[%d] only", workers, counts, ai, bi)
			}
			for i, s := range snap.Sockets {
				if want := map[bool]uint32{true: ai, false: bi}[i < 2]; s.Netns != want {
					t.Errorf("workers %d: socket %d is in net:[%d], want net:[%d] (the namespaces in order)", workers, i, s.Netns, want)
				}
			}
			if n, _ := f.Name(bi); n == nil || n.Label != b.Name || !n.Fixed {
				t.Errorf("name of %s: %+v", b.Name, n)
			}
			// Streamed: the same sockets, in the namespaces' order,
			// and a stop asked for by the caller comes back as it is.
			var streamed []uint32
			err = f.Stream(func(b *sock.Snapshot) error {
				for _, s := range b.Sockets {
					streamed = append(streamed, s.Netns)
				}
				return nil
			})
			if want := []uint32{ai, ai, bi, bi, bi, bi}; err != nil || !slices.Equal(streamed, want) {
				t.Errorf("workers %d: streamed the namespaces %v (%v), want %v", workers, streamed, err, want)
			}
			enough := errors.New("enough")
			calls := 0
			if err := f.Stream(func(*sock.Snapshot) error { calls++; return enough }); err != enough || calls != 1 {
				t.Errorf("workers %d: a stop: %v after %d calls, want it as it is after 1", workers, err, calls)
			}
		}
	}
}

func mustParse(t *testing.T, s string) filter.Expr {
	t.Helper()
	e, err := filter.Parse(strings.Fields(s))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// threads is how many OS threads this process has.
func threads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads: line in /proc/self/status")
	return 0
}

// A thousand namespaces: the fleet raises the soft descriptor limit (set
// here just above what the test itself holds, as a shell's default 1024
// would be), reads every one of them, and keeps the thread count flat
// (entering a namespace takes a thread that then exits).
func TestIntegrationFleetThousandNamespaces(t *testing.T) {
	nstest.HostLock(t) // a thousand namespaces come and go
	const n = 1000
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < 3*n {
		t.Fatalf("the hard descriptor limit %d is below what %d namespaces need", lim.Max, n)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &lim) })
	want := map[uint32]bool{}
	for range n {
		ns := nstest.New(t)
		want[uint32(ns.NS(t).Inode)] = true
	}
	low := unix.Rlimit{Cur: uint64(openFDs(t) + 64), Max: lim.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	before := threads(t)
	prog := filter.Compile(mustParse(t, ""), filter.Options{})
	f, err := Open(context.Background(), Config{All: true, Program: prog, Destroys: true, Totals: true})
	if err != nil {
		t.Fatalf("opening a fleet of %d namespaces with the soft limit at %d: %v", n, low.Cur, err)
	}
	defer f.Close()
	if notes := f.Notes(); len(notes) > 0 {
		t.Errorf("notes: %q", notes)
	}
	for range 3 {
		if _, err := f.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	read := 0
	for _, mb := range f.Members() {
		if want[uint32(mb.NS.Inode)] {
			read++
		}
	}
	if read != n {
		t.Errorf("the fleet reads %d of the %d namespaces", read, n)
	}
	if after := threads(t); after > before+16 {
		t.Errorf("threads: %d before the fleet, %d with %d namespaces read", before, after, n)
	}
	t.Logf("%d namespaces: %d descriptors open, %d threads", n, openFDs(t), threads(t))
}

// A namespace that went away between discovery and its first dump (its
// path opens nothing, or another namespace) is skipped and counted,
// without a note; the fleet goes on.
func TestVanishedBeforeTheDump(t *testing.T) {
	prog := filter.Compile(mustParse(t, "state listen"), filter.Options{})
	f := &Fleet{cfg: Config{All: true}, prog: prog, byInode: map[uint64]*Member{}, said: map[string]bool{}, now: time.Now}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	defer f.Close()
	self, err := netns.Self()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []nsfind.Namespace{
		{Inode: 1, Path: filepath.Join(t.TempDir(), "gone")}, // nothing there any more
		{Inode: self.Inode + 1, Path: "/proc/self/ns/net"},   // now another namespace
	} {
		if err := f.join(&n); err != nil {
			t.Errorf("join(%+v): %v", n, err)
		}
	}
	if f.Gone() != 2 || len(f.Members()) != 0 || len(f.Notes()) != 0 {
		t.Errorf("gone %d, members %d, notes %q; want 2 gone, none read, no note", f.Gone(), len(f.Members()), f.Notes())
	}
}

// Where the kernel lists the namespaces in use (listns, scripted here), a
// namespace held only by a descriptor is read from the next poll on, not
// at the descriptor walk's turn, and is dropped at the first poll after
// the kernel stops listing it.
func TestIntegrationFleetListedNamespaces(t *testing.T) {
	nstest.HostLock(t)     // it reads every namespace on the host
	const heldID = 1 << 40 // an ID no real namespace has yet
	var (
		listed   []uint64
		idInodes = map[uint64]uint64{}
		opened   []uint64
	)
	prog := filter.Compile(mustParse(t, "state listen"), filter.Options{})
	f, err := Open(context.Background(), Config{All: true, Program: prog, DescriptorsEvery: time.Hour,
		ListNS: func() ([]uint64, error) { return listed, nil },
		InodeOfID: func(id uint64) (uint64, error) {
			opened = append(opened, id)
			if ino, ok := idInodes[id]; ok {
				return ino, nil
			}
			return 0, unix.ESTALE
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// After the first walk: a namespace whose process exits, held from
	// then on only by this test's descriptor.
	cmd, held := nstest.Unshared(t)
	own := listeners(t, inProcess(held), 7400, 2)
	fd, err := unix.Open(held.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	cmd.Process.Kill()
	cmd.Wait()
	heldIno := uint32(held.Inode)

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if c := countBy(snap)[heldIno]; c != 0 {
		t.Fatalf("%d listeners of a namespace held by a descriptor, found without a walk or a listing", c)
	}
	// The kernel lists it: the next poll reads it.
	listed, idInodes[heldID] = []uint64{heldID}, held.Inode
	snap, err = f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if c := countBy(snap)[heldIno]; c != 2 {
		t.Errorf("%d listeners in the namespace the kernel listed; want 2", c)
	}
	// Its ID is opened once, not at every poll.
	if _, err := f.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if len(opened) != 1 {
		t.Errorf("IDs opened %v; want the listed one, once", opened)
	}

	// The descriptor closes and the kernel no longer lists it: gone at
	// the next poll, though the walk is not due for an hour.
	unix.Close(fd)
	fd = -1
	listed = nil
	snap, err = f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if c := countBy(snap)[heldIno]; c != 0 {
		t.Errorf("%d listeners of a namespace the kernel no longer lists", c)
	}
	if n, ok := f.Name(heldIno); !ok || !n.Gone {
		t.Errorf("the namespace no longer listed is not marked gone: %+v, %v", n, ok)
	}
	if n := socketsIn(t, held.Inode, own); n != 0 {
		t.Errorf("the fleet keeps %d sockets in the namespace that went away", n)
	}
}

// failingCounter is a walk that cannot be had.
type failingCounter struct{}

func (failingCounter) SetStates(sock.StateMask) {}
func (failingCounter) Count([]uint32) (*tablecount.Walk, error) {
	return nil, errors.New("chains moved under 4 walks")
}

// With a Counter and a focus, a Snapshot dumps the namespace in focus and
// counts the others in one walk: the counts are those of their dumps.
func TestIntegrationFleetFocus(t *testing.T) {
	a, b, c := nstest.New(t), nstest.New(t), nstest.New(t)
	listeners(t, a.Do, 7400, 2)
	listeners(t, b.Do, 7400, 4)
	listeners(t, c.Do, 7400, 3)
	ai, bi, ci := uint32(a.NS(t).Inode), uint32(b.NS(t).Inode), uint32(c.NS(t).Inode)
	counter, err := tablecount.Open(16, nil, nil)
	if err != nil {
		t.Fatalf("the walk, which the focus needs: %v", err)
	}
	defer counter.Close()
	all := filter.Compile(mustParse(t, ""), filter.Options{})
	f, err := Open(context.Background(), Config{Fixed: []netns.NS{a.NS(t), b.NS(t), c.NS(t)}, Program: all, Totals: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.SetCounter(counter)
	snapshot := func() *sock.Snapshot {
		t.Helper()
		snap, err := f.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	listening := func(snap *sock.Snapshot) map[uint32]int {
		m := countBy(snap)
		for ino, c := range snap.Counted {
			m[ino] = c[sock.Listen]
		}
		return m
	}
	want := map[uint32]int{ai: 2, bi: 4, ci: 3}

	// Nothing in focus: every namespace counted, none dumped.
	f.Focus(0)
	snap := snapshot()
	if len(snap.Sockets) != 0 || snap.Read == nil || len(snap.Read) != 0 {
		t.Errorf("no focus: %d sockets dumped, read %v; want none", len(snap.Sockets), snap.Read)
	}
	if got := listening(snap); !maps.Equal(got, want) || snap.Total != 9 {
		t.Errorf("no focus: listeners %v, total %d; want %v, 9", got, snap.Total, want)
	}
	// b in focus: its sockets, the others' counts.
	f.Focus(bi)
	snap = snapshot()
	if !slices.Equal(snap.Read, []uint32{bi}) || !maps.Equal(countBy(snap), map[uint32]int{bi: 4}) {
		t.Errorf("b in focus: read %v, dumped %v; want b's 4 sockets alone", snap.Read, countBy(snap))
	}
	if _, ok := snap.Counted[bi]; ok || !maps.Equal(listening(snap), want) {
		t.Errorf("b in focus: counted %v; want a's and c's", snap.Counted)
	}
	// A filter on states: the walk counts those states alone.
	f.SetProgram(filter.Compile(mustParse(t, "state established"), filter.Options{}))
	snap = snapshot()
	if len(snap.Sockets) != 0 || snap.Counted[ai][sock.Listen] != 0 || len(snap.Counted) != 2 {
		t.Errorf("state established: dumped %d, counted %v; want no listener anywhere", len(snap.Sockets), snap.Counted)
	}
	if snap.Total != 9 {
		t.Errorf("state established: total %d, want 9 (matching or not)", snap.Total)
	}
	// A filter on ports: every namespace dumped with it.
	f.SetProgram(filter.Compile(mustParse(t, "sport = :7401"), filter.Options{}))
	snap = snapshot()
	if snap.Read != nil || snap.Counted != nil || !maps.Equal(countBy(snap), map[uint32]int{ai: 1, bi: 1, ci: 1}) {
		t.Errorf("a port filter: read %v, counted %v, dumped %v; want one socket per namespace, dumped", snap.Read, snap.Counted, countBy(snap))
	}
	// Out of focus again: every namespace dumped.
	f.SetProgram(all)
	f.Unfocus()
	if snap = snapshot(); snap.Read != nil || !maps.Equal(countBy(snap), want) {
		t.Errorf("unfocused: read %v, dumped %v; want every namespace dumped", snap.Read, countBy(snap))
	}
	// A walk that fails: this poll dumps every namespace, and says so.
	f.SetCounter(failingCounter{})
	f.Focus(0)
	if snap = snapshot(); snap.Read != nil || !maps.Equal(countBy(snap), want) {
		t.Errorf("a failed walk: read %v, dumped %v; want every namespace dumped", snap.Read, countBy(snap))
	}
	if notes := strings.Join(f.Notes(), "; "); !strings.Contains(notes, "every namespace dumped: chains moved") {
		t.Errorf("notes %q: want the failed walk said", notes)
	}
}

// A slow descriptor walk is made less often: at most a hundredth of the
// time goes to it.
func TestDescriptorWalksPaced(t *testing.T) {
	f := &Fleet{cfg: Config{DescriptorsEvery: 30 * time.Second}}
	for _, c := range []struct{ took, want time.Duration }{
		{0, 30 * time.Second},
		{10 * time.Millisecond, 30 * time.Second},
		{1200 * time.Millisecond, 2 * time.Minute},
	} {
		f.descriptorsTook = c.took
		if got := f.descriptorsEvery(); got != c.want {
			t.Errorf("a walk of %v: the next after %v, want %v", c.took, got, c.want)
		}
	}
}
