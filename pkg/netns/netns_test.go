package netns_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/nstest"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func inodeOf(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestSelf(t *testing.T) {
	n, err := netns.Resolve("")
	if err != nil {
		t.Fatal(err)
	}
	// The calling thread's, not /proc/self's: the namespace is a thread's
	// (Run moves its thread back, TestIntegrationRunLeavesNoThreadBehind).
	runtime.LockOSThread()
	here := inodeOf(t, "/proc/thread-self/ns/net")
	runtime.UnlockOSThread()
	if !n.IsSelf() || n.Arg != "" || n.Inode != here {
		t.Errorf("Resolve(\"\") = %+v, want the caller's namespace with its inode", n)
	}
}

// Every bad argument is an *Error naming it, and none of them waits: a
// FIFO's open() would block until a writer came.
func TestResolveRefusesWhatIsNotANamespace(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{"sockscope-no-such-ns", "/nonexistent/ns", "/etc/hostname", dir, fifo,
		"/proc/self/ns/uts", "/dev/null"} {
		done := make(chan error, 1)
		go func() {
			_, err := netns.Resolve(arg)
			done <- err
		}()
		select {
		case err := <-done:
			var ne *netns.Error
			if !errors.As(err, &ne) || ne.Arg != arg {
				t.Errorf("Resolve(%q): %v, want a *netns.Error naming it", arg, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Resolve(%q) is still waiting", arg)
		}
	}
}

// A name, its path and a process's /proc/PID/ns/net all resolve to the
// same namespace, and Run runs inside it.
func TestIntegrationResolveAndRun(t *testing.T) {
	ns := nstest.New(t)
	want := inodeOf(t, ns.Path())
	for _, arg := range []string{ns.Name, ns.Path()} {
		n, err := netns.Resolve(arg)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", arg, err)
		}
		if n.Arg != arg || n.Path != ns.Path() || n.Inode != want || n.IsSelf() {
			t.Errorf("Resolve(%q) = %+v, want path %s, inode %d", arg, n, ns.Path(), want)
		}
		var inside uint64
		if err := n.Run(func() error {
			h, err := vnetns.Get()
			if err != nil {
				return err
			}
			defer h.Close()
			var st unix.Stat_t
			if err := unix.Fstat(int(h), &st); err != nil {
				return err
			}
			inside = st.Ino
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if inside != want {
			t.Errorf("Run via %q ran in net:[%d], want net:[%d]", arg, inside, want)
		}
		s, err := n.Netlink(unix.NETLINK_ROUTE)
		if err != nil {
			t.Fatalf("Netlink in %q: %v", arg, err)
		}
		s.Close()
	}
	// Run leaves the caller where it was.
	if got := inodeOf(t, "/proc/thread-self/ns/net"); got == want {
		t.Errorf("the calling thread was left inside the namespace")
	}
}

// A name removed and given to a new namespace since it was resolved is an
// error, not a quiet switch to another namespace.
func TestIntegrationReusedNameIsRefused(t *testing.T) {
	ns := nstest.New(t)
	n := ns.NS(t)
	if err := vnetns.DeleteNamed(ns.Name); err != nil {
		t.Fatal(err)
	}
	again := nstest.Named(t, ns.Name)
	if inodeOf(t, again.Path()) == n.Inode {
		t.Fatal("the new namespace has the old one's inode")
	}
	err := n.Run(func() error { return nil })
	if err == nil {
		t.Fatal("Run in a namespace whose name now names another: no error")
	}
	if _, err := os.Stat(again.Path()); err != nil {
		t.Fatal(err)
	}
}

// A namespace held only by a process, or only by a descriptor, resolves
// to the same namespace as its name, through /proc.
func TestIntegrationResolveProcPaths(t *testing.T) {
	ns := nstest.New(t)
	want := inodeOf(t, ns.Path())
	cmd := ns.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	procPath := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
	// ip netns exec enters the namespace, then becomes sleep.
	deadline := time.Now().Add(30 * time.Second)
	for {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
		if strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the process never became sleep (comm %q)", comm)
		}
		time.Sleep(5 * time.Millisecond)
	}
	f, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fdPath := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	for _, arg := range []string{procPath, fdPath} {
		n, err := netns.Resolve(arg)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", arg, err)
		}
		if n.Arg != arg || n.Path != arg || n.Inode != want || n.IsSelf() || n.String() != arg || n.Label() != arg {
			t.Errorf("Resolve(%q) = %+v, want inode %d", arg, n, want)
		}
		if err := n.Run(func() error {
			if got := inodeOf(t, "/proc/thread-self/ns/net"); got != want {
				t.Errorf("Run via %q ran in net:[%d], want net:[%d]", arg, got, want)
			}
			return nil
		}); err != nil {
			t.Errorf("Run via %q: %v", arg, err)
		}
	}
	// The process gone, its path names nothing: bad input, named.
	cmd.Process.Kill()
	<-done
	_, err = netns.Resolve(procPath)
	var ne *netns.Error
	if !errors.As(err, &ne) || ne.Arg != procPath {
		t.Errorf("Resolve(%q) of an exited process: %v, want a *netns.Error naming it", procPath, err)
	}
}

// The caller's own namespace is "self" to people and "" to metrics.
func TestSelfNames(t *testing.T) {
	n, err := netns.Self()
	if err != nil {
		t.Fatal(err)
	}
	if n.String() != "self" || n.Label() != "" || !n.IsSelf() {
		t.Errorf("Self: String %q, Label %q, IsSelf %v", n.String(), n.Label(), n.IsSelf())
	}
	ran := false
	if err := n.Run(func() error { ran = true; return nil }); err != nil || !ran {
		t.Errorf("Run in the caller's namespace: %v, ran %v", err, ran)
	}
}

// Too few descriptors is the machine's fault, not the argument's: not an
// *Error (exit status 1, not 2), and it names the path.
func TestIntegrationResolveOutOfDescriptors(t *testing.T) {
	ns := nstest.New(t)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	top := 0
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil {
			top = max(top, fd)
		}
	}
	low := lim
	low.Cur = uint64(top + 1)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	// Take every descriptor left below the limit.
	var fillers []int
	defer func() {
		for _, fd := range fillers {
			unix.Close(fd)
		}
	}()
	for {
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			if !errors.Is(err, unix.EMFILE) {
				unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
				t.Fatal(err)
			}
			break
		}
		fillers = append(fillers, fd)
	}
	_, err = netns.Resolve(ns.Name)
	if rerr := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); rerr != nil {
		t.Fatal(rerr)
	}
	var ne *netns.Error
	if err == nil || errors.As(err, &ne) || !errors.Is(err, unix.EMFILE) || !strings.Contains(err.Error(), ns.Path()) {
		t.Errorf("Resolve with no descriptor left: %v, want EMFILE naming %s, not a *netns.Error", err, ns.Path())
	}
}

// Run leaves no thread of this process in the namespace it entered: the
// thread goes back before it is unlocked. (A thread left to die there
// could be the main thread, which the Go runtime never ends: the process
// would then show in the namespace and keep it alive.)
func TestIntegrationRunLeavesNoThreadBehind(t *testing.T) {
	ns := nstest.New(t)
	n := ns.NS(t)
	for range 200 {
		if err := n.Run(func() error { return nil }); err != nil {
			t.Fatal(err)
		}
		if err := ns.Do(func() error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/proc/self/task", task.Name(), "ns", "net"), &st) != nil {
			continue // exited meanwhile
		}
		if st.Ino == n.Inode {
			t.Errorf("thread %s of this process is still in %s", task.Name(), ns.Name)
		}
	}
}
