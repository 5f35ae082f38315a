package procs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sockscope/sockscope/pkg/nstest"
)

// listen opens a loopback TCP listener closed at the end of the test and
// returns it with its socket inode.
func listen(t *testing.T) (*net.TCPListener, uint32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	tl := l.(*net.TCPListener)
	return tl, inodeOf(t, tl)
}

func inodeOf(t *testing.T, l *net.TCPListener) uint32 {
	t.Helper()
	rc, err := l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Ino == 0 {
		t.Fatalf("listener fd is not a socket with an inode: mode %o ino %d", st.Mode, st.Ino)
	}
	return uint32(st.Ino)
}

func selfComm(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(b), "\n")
}

func TestLookupOwnListener(t *testing.T) {
	_, inode := listen(t)
	p, ok := New("/proc").Lookup(inode)
	if !ok {
		t.Fatalf("Lookup(%d) found no owner for our own listener", inode)
	}
	want := Process{PID: os.Getpid(), Command: selfComm(t)}
	if p != want {
		t.Errorf("Lookup(%d) = %+v, want %+v", inode, p, want)
	}
}

func TestLookupUnknown(t *testing.T) {
	// A closed socket's inode is known to be held by no one, and the kernel
	// does not hand it out again soon.
	l, gone := listen(t)
	l.Close()

	tb := New("/proc")
	if p, ok := tb.Lookup(gone); ok {
		t.Errorf("Lookup(closed socket %d) = %+v, want not found", gone, p)
	}
	if p, ok := tb.Lookup(0); ok {
		t.Errorf("Lookup(0) = %+v, want not found", p)
	}
}

func TestInodeZeroNeverScans(t *testing.T) {
	tb := New("/proc")
	tb.Lookup(0)
	if tb.scans != 0 {
		t.Errorf("Lookup(0) scanned %d times, want 0", tb.scans)
	}
}

func TestRescanRateLimit(t *testing.T) {
	// Closed at once, so looking it up is always a miss.
	l, missing := listen(t)
	l.Close()

	clock := time.Unix(1_000_000, 0)
	tb := New("/proc")
	tb.now = func() time.Time { return clock }

	if _, ok := tb.Lookup(missing); ok {
		t.Fatalf("closed socket %d found", missing)
	}
	if tb.scans != 1 {
		t.Fatalf("first miss: %d scans, want 1", tb.scans)
	}

	// A socket opened after the scan is unknown, and asking for it again
	// before minRescan has passed must not walk /proc again.
	_, fresh := listen(t)
	clock = clock.Add(tb.minRescan - time.Millisecond)
	if _, ok := tb.Lookup(fresh); ok {
		t.Fatalf("socket %d opened after the scan found without a rescan", fresh)
	}
	if _, ok := tb.Lookup(missing); ok {
		t.Fatalf("closed socket %d found", missing)
	}
	if tb.scans != 1 {
		t.Fatalf("misses within minRescan: %d scans, want 1", tb.scans)
	}

	// Refresh is not rate limited, and sees the new socket.
	if err := tb.Refresh(); err != nil {
		t.Fatal(err)
	}
	if tb.scans != 2 {
		t.Fatalf("after Refresh: %d scans, want 2", tb.scans)
	}
	if p, ok := tb.Lookup(fresh); !ok || p.PID != os.Getpid() {
		t.Fatalf("after Refresh, Lookup(%d) = %+v, %v; want pid %d", fresh, p, ok, os.Getpid())
	}
	if tb.scans != 2 {
		t.Fatalf("cache hit scanned: %d scans, want 2", tb.scans)
	}

	// Once minRescan has passed since the last scan, a miss scans again.
	clock = clock.Add(tb.minRescan)
	tb.Lookup(missing)
	if tb.scans != 3 {
		t.Fatalf("miss after minRescan: %d scans, want 3", tb.scans)
	}
}

// fakeProc builds a proc tree under a temporary directory from pid to
// (comm, fd links); a nil links map leaves out the fd directory, as for a
// process that exited.
type fakeProcess struct {
	comm  string
	links map[string]string // fd name -> link target
}

func fakeProc(t *testing.T, procs map[int]fakeProcess) string {
	t.Helper()
	root := t.TempDir()
	for pid, p := range procs {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "comm"), []byte(p.comm+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if p.links == nil {
			continue
		}
		if err := os.Mkdir(filepath.Join(dir, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		for fd, target := range p.links {
			if err := os.Symlink(target, filepath.Join(dir, "fd", fd)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func TestFakeRoot(t *testing.T) {
	root := fakeProc(t, map[int]fakeProcess{
		123: {comm: "daemon", links: map[string]string{
			"0":  "/dev/null",
			"1":  "pipe:[7]",
			"2":  "anon_inode:[eventpoll]",
			"3":  "socket:[42]",
			"4":  "socket:[4294967296]", // overflows an inode: ignored
			"5":  "socket:[]",
			"6":  "socket:[12x]",
			"7":  "/tmp/socket:[8]",
			"8":  "socket:[0]",
			"9":  "socket:[4294967295]",
			"10": "socket:[42]", // the same socket twice in one process
		}},
		// A forked child holding its parent's socket, plus its own; listed
		// on both sides of the parent's pid so directory order cannot decide.
		200: {comm: "worker", links: map[string]string{"3": "socket:[42]", "4": "socket:[43]"}},
		45:  {comm: "other", links: map[string]string{"3": "socket:[44]", "9": "socket:[46]"}},
		46:  {comm: "other-child", links: map[string]string{"9": "socket:[46]"}},
		7:   {comm: "exited"}, // no fd directory: vanished mid-scan
	})
	for _, junk := range []string{"net", "sys"} {
		if err := os.Mkdir(filepath.Join(root, junk), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("123", filepath.Join(root, "self")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "uptime"), []byte("1 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tb := New(root)
	if err := tb.Refresh(); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	for _, c := range []struct {
		inode uint32
		want  Process
		ok    bool
	}{
		{42, Process{123, "daemon"}, true},
		{43, Process{200, "worker"}, true},
		{44, Process{45, "other"}, true},
		{46, Process{45, "other"}, true},
		{4294967295, Process{123, "daemon"}, true},
		{7, Process{}, false}, // the pipe's inode
		{8, Process{}, false}, // a file whose path merely contains socket:[8]
		{12, Process{}, false},
		{1, Process{}, false},
		{0, Process{}, false},
	} {
		p, ok := tb.Lookup(c.inode)
		if ok != c.ok || p != c.want {
			t.Errorf("Lookup(%d) = %+v, %v; want %+v, %v", c.inode, p, ok, c.want, c.ok)
		}
	}
	if len(tb.owners) != 5 {
		t.Errorf("table holds %d inodes, want 5: %v", len(tb.owners), tb.owners)
	}
	if d := tb.Denied(); d != 0 {
		t.Errorf("Denied() = %d, want 0", d)
	}

	// The real /proc was not consulted.
	_, ours := listen(t)
	if p, ok := tb.Lookup(ours); ok {
		t.Errorf("fake table found real socket %d: %+v", ours, p)
	}
}

func TestRefreshErrors(t *testing.T) {
	t.Run("missing root", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "nope")
		tb := New(root)
		err := tb.Refresh()
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), root) {
			t.Errorf("Refresh() = %v, want ENOENT naming %s", err, root)
		}
		if _, ok := tb.Lookup(42); ok {
			t.Error("Lookup found an inode with no root")
		}
	})

	t.Run("fd not a directory", func(t *testing.T) {
		// Not a permission problem, so it must not count as denied; the
		// rest of the table must still be built.
		root := fakeProc(t, map[int]fakeProcess{
			10: {comm: "good", links: map[string]string{"3": "socket:[42]"}},
			11: {comm: "broken"},
		})
		if err := os.WriteFile(filepath.Join(root, "11", "fd"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		tb := New(root)
		err := tb.Refresh()
		if !errors.Is(err, syscall.ENOTDIR) || !strings.Contains(err.Error(), filepath.Join(root, "11", "fd")) {
			t.Errorf("Refresh() = %v, want ENOTDIR naming %s", err, filepath.Join(root, "11", "fd"))
		}
		if d := tb.Denied(); d != 0 {
			t.Errorf("Denied() = %d, want 0", d)
		}
		if p, ok := tb.Lookup(42); !ok || p != (Process{10, "good"}) {
			t.Errorf("Lookup(42) = %+v, %v; want pid 10 despite pid 11's error", p, ok)
		}
	})

	t.Run("comm vanished", func(t *testing.T) {
		// A process whose comm is gone exited after its fds were listed;
		// its sockets are dropped quietly.
		root := fakeProc(t, map[int]fakeProcess{
			10: {comm: "gone", links: map[string]string{"3": "socket:[42]"}},
		})
		if err := os.Remove(filepath.Join(root, "10", "comm")); err != nil {
			t.Fatal(err)
		}
		tb := New(root)
		if err := tb.Refresh(); err != nil {
			t.Errorf("Refresh() = %v, want nil", err)
		}
		if p, ok := tb.Lookup(42); ok {
			t.Errorf("Lookup(42) = %+v, want not found", p)
		}
	})

	t.Run("keeps cache when root unreadable", func(t *testing.T) {
		root := fakeProc(t, map[int]fakeProcess{
			10: {comm: "x", links: map[string]string{"3": "socket:[42]"}},
		})
		tb := New(root)
		if err := tb.Refresh(); err != nil {
			t.Fatal(err)
		}
		tb.root = filepath.Join(root, "gone")
		if err := tb.Refresh(); err == nil {
			t.Fatal("Refresh of a missing root succeeded")
		}
		if _, ok := tb.Lookup(42); !ok {
			t.Error("failed scan of the root emptied the cache")
		}
	})
}

// TestScanAllocations checks the scan does not allocate per descriptor, which
// is what keeps a walk of a 100k-socket server cheap.
func TestScanAllocations(t *testing.T) {
	const fds = 2000
	links := make(map[string]string, fds)
	for i := range fds {
		links[strconv.Itoa(i)] = fmt.Sprintf("socket:[%d]", 1000+i)
	}
	tb := New(fakeProc(t, map[int]fakeProcess{1: {comm: "busy", links: links}}))
	if err := tb.Refresh(); err != nil { // grow the map and slices once
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(5, func() {
		if err := tb.Refresh(); err != nil {
			t.Fatal(err)
		}
	})
	if len(tb.owners) != fds {
		t.Fatalf("scan found %d sockets, want %d", len(tb.owners), fds)
	}
	if allocs > 50 {
		t.Errorf("a scan of %d descriptors made %v allocations; want a few per process, none per descriptor", fds, allocs)
	}
}

const helperEnv = "SOCKSCOPE_PROCS_DENIED_HELPER"

// TestDenied checks that an unprivileged scan counts the processes it may not
// inspect instead of failing, and still finds its own sockets.
func TestDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		// Already unprivileged: test in-process, provided some process
		// belongs to another user.
		if !otherUsersProcess(t) {
			nstest.Unavailable(t, "no process of another user to be denied")
		}
		denied, err := deniedScan()
		if err != nil {
			t.Fatal(err)
		}
		if denied == 0 {
			t.Error("Denied() = 0 as an unprivileged user")
		}
		return
	}

	// As root nothing is denied, so re-run this test binary as nobody. Our
	// own process then belongs to another user and must count.
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("setpriv is required in CI: %v", err)
		}
		t.Skipf("setpriv not found: %v", err)
	}
	// The go build directory is private to root, so nobody could not run
	// the binary where it is.
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "procs.test")
	copyFile(t, os.Args[0], bin)

	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		bin, "-test.run=^TestDeniedHelper$", "-test.count=1", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as nobody: %v\n%s", err, out)
	}
	var denied int
	found := false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "denied="); ok {
			denied, err = strconv.Atoi(n)
			found = err == nil
		}
	}
	if !found {
		t.Fatalf("helper reported no count:\n%s", out)
	}
	if denied == 0 {
		t.Errorf("as nobody, Denied() = 0; want at least our own root-owned process\n%s", out)
	}
}

// TestDeniedHelper is TestDenied's unprivileged half; it runs only when
// TestDenied starts it.
func TestDeniedHelper(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("run by TestDenied")
	}
	if os.Geteuid() == 0 {
		t.Fatal("helper running as root")
	}
	_, inode := listen(t)
	tb := New("/proc")
	if err := tb.Refresh(); err != nil {
		t.Fatalf("unprivileged Refresh: %v", err)
	}
	if p, ok := tb.Lookup(inode); !ok || p.PID != os.Getpid() {
		t.Errorf("unprivileged Lookup of own socket = %+v, %v; want pid %d", p, ok, os.Getpid())
	}
	fmt.Printf("\ndenied=%d\n", tb.Denied())
}

func deniedScan() (int, error) {
	tb := New("/proc")
	err := tb.Refresh()
	return tb.Denied(), err
}

func otherUsersProcess(t *testing.T) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if _, ok := parsePID([]byte(e.Name())); !ok {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name(), &st) == nil && int(st.Uid) != os.Geteuid() {
			return true
		}
	}
	return false
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestParseSocketLink(t *testing.T) {
	for in, want := range map[string]uint32{
		"socket:[1]":          1,
		"socket:[4294967295]": 4294967295,
		"socket:[4294967296]": 0,
		"socket:[0]":          0,
		"socket:[]":           0,
		"socket:[1":           0,
		"socket:1]":           0,
		"pipe:[1]":            0,
		"socket:[+1]":         0,
		"":                    0,
	} {
		got, ok := parseSocketLink([]byte(in))
		if got != want || ok != (want != 0) {
			t.Errorf("parseSocketLink(%q) = %d, %v; want %d, %v", in, got, ok, want, want != 0)
		}
	}
}
