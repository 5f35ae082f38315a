package netns_test

import (
	"errors"
	"os"
	"path/filepath"
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
	if !n.IsSelf() || n.Arg != "" || n.Inode != inodeOf(t, "/proc/self/ns/net") {
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
