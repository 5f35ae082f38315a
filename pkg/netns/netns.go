// Package netns names a network namespace once, at the command line, and
// gives every part of sockscope what it needs of one: a netlink socket
// inside it, and a function run inside it.
//
// # Values, not strings
//
// A namespace is resolved once, by [Resolve], into an [NS]: the argument as
// the person gave it (a name under /run/netns, or a path such as
// /proc/PID/ns/net or any nsfs bind mount), its path, and its inode, the
// number the kernel knows it by ("net:[4026531840]"). The zero NS is the
// caller's own namespace. Everything below the command line takes an NS;
// nothing else turns a name into a path.
//
// Resolve refuses, as bad input, an argument that names nothing, names a
// file that is not a network namespace, or names something whose open
// would block (a FIFO): it never opens anything but a regular file, and
// opens that without waiting. A namespace this user may not open, or a
// machine out of descriptors, is the environment's failure, not bad
// input. An argument naming the caller's own namespace resolves to it
// (IsSelf), so reading it needs no privilege.
//
// # Threads
//
// Linux keeps the network namespace per thread. [NS.Run] calls a function
// on a thread that joins the namespace and is never handed back to the Go
// scheduler (it exits with its goroutine), so no other goroutine ever runs
// inside the namespace by accident. Sockets and files the function opens
// keep answering for that namespace after it returns.
//
// An NS is a plain value and safe to copy and to use from any goroutine.
package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink/nl"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Dir is where `ip netns add` keeps named namespaces.
const Dir = "/run/netns"

// NS is one network namespace. The zero value is the caller's own.
type NS struct {
	// Arg is the argument as given: "" for the caller's namespace.
	Arg string
	// Path is the file that holds the namespace open: "" for the
	// caller's.
	Path string
	// Inode is the namespace's inode number, the identity the kernel
	// shows as net:[Inode]; for the caller's own it is filled by Self.
	Inode uint64
}

// Error is an argument that names no network namespace: bad input.
type Error struct {
	Arg string
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("network namespace %q: %v", e.Arg, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// PathOf turns an argument into a path: a bare name lives under Dir,
// anything with a slash is a path already.
func PathOf(arg string) string {
	if strings.ContainsRune(arg, '/') {
		return arg
	}
	return Dir + "/" + arg
}

// Resolve checks that arg names a network namespace and returns it. ""
// is the caller's own. A failure that is the argument's fault is an
// *Error; one of the environment (too few descriptors, say) is not.
func Resolve(arg string) (NS, error) {
	if arg == "" {
		return Self()
	}
	path := PathOf(arg)
	bad := func(err error) (NS, error) { return NS{}, &Error{Arg: arg, Err: err} }
	// A namespace file is a regular file (nsfs); checking first means a
	// FIFO or a device is refused without an open that could wait.
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return bad(errors.New("no such namespace"))
	case err != nil && environmental(err):
		return NS{}, fmt.Errorf("network namespace %s: %w", path, err)
	case err != nil:
		return bad(err)
	case !fi.Mode().IsRegular():
		return bad(errors.New("not a network namespace"))
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if environmental(err) {
			return NS{}, fmt.Errorf("opening network namespace %s: %w", path, err)
		}
		return bad(err)
	}
	defer unix.Close(fd)
	ino, err := netInode(fd)
	if err != nil {
		if environmental(err) {
			return NS{}, fmt.Errorf("network namespace %s: %w", path, err)
		}
		return bad(err)
	}
	if self, err := Self(); err == nil && self.Inode == ino {
		// The caller's own, by a path (/proc/self/ns/net, or a name for
		// it): read directly, without entering it, which would need
		// privileges for no purpose.
		return NS{Arg: arg, Inode: ino}, nil
	}
	return NS{Arg: arg, Path: path, Inode: ino}, nil
}

// Self returns the caller's own namespace, with its inode.
//
// It reads the calling thread's namespace, not /proc/self's: /proc/self
// shows the main thread, and a goroutine locked to the main thread by Run
// may have left it in another namespace (Go parks that thread rather than
// ending it). Threads the scheduler runs goroutines on are never moved.
func Self() (NS, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return NS{}, fmt.Errorf("reading this process's network namespace: %w", err)
	}
	return NS{Inode: st.Ino}, nil
}

// environmental reports errors that are the machine's, not the
// argument's: the exit status is 1 for these, not 2. A namespace this
// user may not open (another user's /proc/PID/ns/net) is one: the name is
// right, the privilege is missing.
func environmental(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) || errors.Is(err, unix.ENOMEM) ||
		errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)
}

// netInode checks that fd is a network namespace and returns its inode.
func netInode(fd int) (uint64, error) {
	t, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil || t != unix.CLONE_NEWNET {
		if err != nil && environmental(err) {
			return 0, err
		}
		return 0, errors.New("not a network namespace")
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// IsSelf reports whether n is the caller's own namespace, read without
// entering it.
func (n NS) IsSelf() bool { return n.Path == "" }

// String is the argument as given, or "self".
func (n NS) String() string {
	if n.Arg == "" {
		return "self"
	}
	return n.Arg
}

// Label is the namespace as metrics and the status line name it: the
// argument as given, "" for the caller's.
func (n NS) Label() string { return n.Arg }

// handle opens the namespace, checking it is still the one Resolve saw:
// a name re-used for another namespace since is an error, not a silent
// switch. The caller's is vnetns.None().
func (n NS) handle() (vnetns.NsHandle, error) {
	if n.IsSelf() {
		return vnetns.None(), nil
	}
	fd, err := unix.Open(n.Path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return vnetns.None(), fmt.Errorf("opening network namespace %s: %w", n.Path, err)
	}
	ino, err := netInode(fd)
	if err == nil && n.Inode != 0 && ino != n.Inode {
		err = fmt.Errorf("now names net:[%d], not net:[%d]", ino, n.Inode)
	}
	if err != nil {
		unix.Close(fd)
		return vnetns.None(), fmt.Errorf("network namespace %s: %w", n.Path, err)
	}
	return vnetns.NsHandle(fd), nil
}

// Netlink opens a netlink socket of protocol proto inside n. The kernel
// answers a netlink socket for the namespace it was created in.
func (n NS) Netlink(proto int) (*nl.NetlinkSocket, error) {
	h, err := n.handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	s, err := nl.GetNetlinkSocketAt(h, vnetns.None(), proto)
	if err != nil {
		return nil, fmt.Errorf("opening a netlink socket in %s: %w", n, err)
	}
	return s, nil
}

// Subscribe opens a netlink socket of protocol proto inside n that has
// joined the multicast groups.
func (n NS) Subscribe(proto int, groups ...uint) (*nl.NetlinkSocket, error) {
	h, err := n.handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	s, err := nl.SubscribeAt(h, vnetns.None(), proto, groups...)
	if err != nil {
		return nil, fmt.Errorf("joining netlink groups in %s: %w", n, err)
	}
	return s, nil
}

// Run calls f inside n (directly, for the caller's own).
func (n NS) Run(f func() error) error {
	if n.IsSelf() {
		return f()
	}
	h, err := n.handle()
	if err != nil {
		return err
	}
	defer h.Close()
	errc := make(chan error, 1)
	go func() {
		errc <- runLocked(h, n.Path, f)
	}()
	return <-errc
}

// runLocked calls f on this goroutine's thread moved into h, then moves
// the thread back. Only a thread back in its own namespace returns to
// the pool; one that cannot go back stays locked, and dies with the
// goroutine. A thread must not merely be left to die: the runtime may have
// put the goroutine on the main thread, which never dies (the runtime
// parks it for good), and it would stay in the other namespace, keeping
// it alive and showing sockscope's pid in it.
func runLocked(h vnetns.NsHandle, path string, f func() error) error {
	runtime.LockOSThread()
	orig, err := vnetns.Get()
	if err != nil {
		return fmt.Errorf("reading this thread's network namespace: %w", err)
	}
	defer orig.Close()
	if err := vnetns.Set(h); err != nil {
		return fmt.Errorf("entering network namespace %s: %w", path, err)
	}
	// A panic of f is its error: the thread must come back from h all the
	// same, and the panic would end the process on this goroutine of
	// Run's (leaving a dashboard's terminal raw).
	ferr := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("internal error in network namespace %s: %v", path, r)
			}
		}()
		return f()
	}()
	if err := vnetns.Set(orig); err != nil {
		return errors.Join(ferr, fmt.Errorf("leaving network namespace %s: %w", path, err))
	}
	runtime.UnlockOSThread()
	return ferr
}
