// Package nstest gives tests a private network namespace on this host and
// reproduces the tutorial's experiment inside it with real sockets.
//
// Tests that need a namespace call New. It fails the test under CI=true
// when the namespace cannot be made (CI runs as root, so that is a defect)
// and skips elsewhere, so a developer without root can still run the rest.
package nstest

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	sns "github.com/sockscope/sockscope/pkg/netns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NS is a named network namespace that lives until the test ends.
type NS struct {
	Name string
	h    netns.NsHandle
}

var counter atomic.Int64

// New creates a namespace with a unique name, brings lo up in it, and
// deletes it when the test ends.
func New(t testing.TB) *NS {
	t.Helper()
	return Named(t, fmt.Sprintf("sockscope-test-%d-%d", os.Getpid(), counter.Add(1)))
}

// Named is New with a name the test chooses; the namespace is deleted when
// the test ends unless the test deleted it already.
func Named(t testing.TB, name string) *NS {
	t.Helper()
	h, err := create(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("creating network namespace %s: %v", name, err)
		}
		t.Skipf("cannot create a network namespace (needs root): %v", err)
	}
	ns := &NS{Name: name, h: h}
	t.Cleanup(func() {
		h.Close()
		if err := netns.DeleteNamed(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("deleting network namespace %s: %v", name, err)
		}
	})
	return ns
}

func create(name string) (netns.NsHandle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return netns.None(), err
	}
	defer orig.Close()
	defer netns.Set(orig)
	h, err := netns.NewNamed(name) // moves this thread into the new namespace
	if err != nil {
		return netns.None(), err
	}
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		h.Close()
		netns.Set(orig)
		netns.DeleteNamed(name)
		return netns.None(), fmt.Errorf("bringing lo up: %w", err)
	}
	return h, nil
}

// Path is the namespace's bind mount, usable as a -N argument.
func (n *NS) Path() string { return "/run/netns/" + n.Name }

// Do runs f on an OS thread that is inside the namespace, so sockets f
// creates belong to it. Sockets keep their namespace after f returns.
func (n *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread goes back to its own namespace before it is
		// unlocked; one that cannot stays locked and dies with the
		// goroutine. (Left to die in the namespace, the main thread, which
		// the runtime never ends, would stay in it and keep it alive.)
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("reading this thread's namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(n.h); err != nil {
			errc <- fmt.Errorf("entering %s: %w", n.Name, err)
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leaving %s: %w", n.Name, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Listen opens a TCP listener on ap inside the namespace, closed when the
// test ends, and returns its descriptor.
func (n *NS) Listen(t testing.TB, ap netip.AddrPort) int {
	t.Helper()
	var fd int
	if err := n.Do(func() (err error) {
		fd, err = Listen(ap, false)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// Listeners opens n listeners on each of 127.0.0.1 and ::1 inside the
// namespace, on ports 20000 and up, closed when the test ends: a table of
// 2n sockets that stays still.
func (n *NS) Listeners(t testing.TB, count int) {
	t.Helper()
	var fds []int
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	err := n.Do(func() error {
		for i := range count {
			for _, a := range []string{"127.0.0.1", "::1"} {
				fd, err := Listen(netip.AddrPortFrom(netip.MustParseAddr(a), uint16(20000+i)), false)
				if err != nil {
					return err
				}
				fds = append(fds, fd)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Command returns cmd prepared to run inside the namespace.
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Resolve resolves a namespace argument (a name, a path, or "" for the
// caller's) and fails the test when it names no namespace.
func Resolve(t testing.TB, arg string) sns.NS {
	t.Helper()
	n, err := sns.Resolve(arg)
	if err != nil {
		t.Fatalf("resolving network namespace %q: %v", arg, err)
	}
	return n
}

// NS returns the namespace as the value the rest of sockscope takes.
func (n *NS) NS(t testing.TB) sns.NS { return Resolve(t, n.Name) }

// HostLock keeps the tests that read every namespace on the host, or make
// a great many, from running at the same time in different packages (go
// test runs packages side by side): a test reading every namespace while
// another makes and deletes a thousand would see them come and go. It
// takes an exclusive lock on a file shared by all test binaries, and
// releases it when the test ends.
func HostLock(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "sockscope-tests-host.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("the host lock: %v", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("taking the host lock: %v", err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}

// Unavailable ends a test that cannot set up what it needs: it fails under
// CI=true, where the machine is known to provide everything, and skips
// elsewhere.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}
