// Package procs finds the process that owns a socket, as netstat -p and
// ss -p do.
//
// The kernel's socket dumps name each socket by its inode and say nothing of
// its owner: a socket belongs to whichever processes hold a descriptor for
// it, and the only place that is visible is /proc/PID/fd, whose entries are
// symlinks reading "socket:[INODE]". So ownership is found by walking every
// process's descriptor table and inverting it.
//
// That walk costs one readlink per open descriptor on the machine, far more
// than the socket dump itself, so a Table keeps the inverted map and walks
// again only when asked about an inode it does not know, and then at most
// once per minRescan. Many sockets legitimately have no owner (TIME_WAIT,
// or held by processes we may not inspect); without the rate limit, a dump
// of 100k of them would cost 100k walks instead of one.
//
// Without root, other users' descriptor tables are unreadable. That is the
// normal case for an unprivileged user rather than an error, so a Table
// counts such processes (Denied) and a front end can say once that the
// process column is incomplete instead of failing or complaining per row.
package procs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// defaultMinRescan bounds how often lookup misses may trigger a walk of /proc.
// Half a second is short enough that a socket opened since the last walk shows
// its owner on the next screen refresh, and long enough that one refresh,
// however many unknown sockets it asks about, walks at most once.
const defaultMinRescan = 500 * time.Millisecond

// Process is the owner of a socket.
type Process struct {
	PID     int
	Command string // from /proc/PID/comm, without the trailing newline
}

// Table maps socket inodes to the processes holding them.
//
// A Table is not safe for concurrent use: Lookup may rescan, and the scan
// reuses buffers held in the Table to stay allocation-free per descriptor.
// Callers that share one must serialise access.
//
// A cached entry is trusted until the next scan, even if its socket has since
// been closed. That is safe because the kernel hands out socket inode numbers
// from an increasing counter, so a stale entry is never asked for by a newer
// socket short of the 32-bit counter wrapping between two scans.
type Table struct {
	root      string
	minRescan time.Duration
	now       func() time.Time // a field so tests can move time without sleeping

	owners   map[uint32]Process
	lastScan time.Time // when the last scan finished
	scans    int       // scans attempted, so tests can see the rate limit work
	denied   int
	lastErr  error // the last scan's failure, for Err

	pids  []int    // pids of the scan in progress, kept to reuse the array
	dents []byte   // getdents buffer, shared by every directory read
	link  [32]byte // readlink target; a socket's, "socket:[4294967295]", fits
}

// New returns a Table reading the proc filesystem mounted at root, normally
// "/proc". Taking the root lets tests substitute a fake tree, and lets a
// caller inspect another pid namespace through that namespace's proc mount.
// Nothing is read until the first Lookup or Refresh.
func New(root string) *Table {
	return &Table{
		root:      root,
		minRescan: defaultMinRescan,
		now:       time.Now,
		owners:    make(map[uint32]Process),
		dents:     make([]byte, 32<<10),
	}
}

// Lookup returns the owner of the socket with this inode; ok is false when
// no readable process holds it.
//
// An inode missing from the cache triggers a rescan, unless the last scan
// finished less than minRescan ago: then the miss is answered from the cache,
// because the socket most likely has no visible owner and another walk would
// only find that out again. Inode 0 never matches: the kernel reports it for
// sockets that no longer have a file, such as those in TIME_WAIT.
//
// Lookup's answer to an unreadable /proc is simply "unknown"; the scan's
// error is kept for Err, so a front end can say it once.
func (t *Table) Lookup(inode uint32) (p Process, ok bool) {
	if inode == 0 {
		return Process{}, false
	}
	if p, ok = t.owners[inode]; ok {
		return p, true
	}
	if t.scans > 0 && t.now().Sub(t.lastScan) < t.minRescan {
		return Process{}, false
	}
	t.lastErr = t.Refresh()
	p, ok = t.owners[inode]
	return p, ok
}

// Denied reports how many processes' descriptor tables could not be read on
// the last scan for lack of permission (EACCES or EPERM), so a caller can
// print one notice rather than one error per row.
func (t *Table) Denied() int {
	return t.denied
}

// Err is the failure of the last scan a Lookup started; nil when it
// succeeded.
func (t *Table) Err() error { return t.lastErr }

// Refresh rescans the proc filesystem now, replacing the cache.
//
// Processes that exit during the scan are skipped silently, and ones we may
// not inspect are only counted (see Denied). Any other failure on a single
// process does not stop the scan: the rest of the table is still worth
// having, so Refresh finishes and then returns the first such error. If the
// root itself cannot be read, the previous cache is kept, since an empty
// table would be no truer.
func (t *Table) Refresh() (err error) {
	t.scans++
	defer func() { t.lastScan = t.now() }()

	rootfd, err := unix.Open(t.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", t.root, err)
	}
	defer unix.Close(rootfd)

	// Collect the pids before scanning any: the directory entries of the root
	// and of each fd directory would otherwise compete for the one buffer.
	t.pids = t.pids[:0]
	err = t.eachEntry(rootfd, func(name []byte) {
		if pid, ok := parsePID(name); ok {
			t.pids = append(t.pids, pid)
		}
	})
	if err != nil {
		return fmt.Errorf("reading %s: %w", t.root, err)
	}

	// clear keeps the map's buckets, so a steady state rescans without
	// growing it again.
	clear(t.owners)
	t.denied = 0
	var first error
	for _, pid := range t.pids {
		if err := t.scanPID(rootfd, pid); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// scanPID records the sockets held by one process. Only /proc/PID/fd is read:
// threads share their process's descriptor table, so the task directories
// would repeat it.
func (t *Table) scanPID(rootfd, pid int) error {
	name := strconv.Itoa(pid)
	dir := name + "/fd"
	dirfd, err := unix.Openat(rootfd, dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if t.expected(err) {
			return nil
		}
		return fmt.Errorf("opening %s: %w", filepath.Join(t.root, dir), err)
	}
	defer unix.Close(dirfd)

	// comm is read once per process, and only for one holding a socket: most
	// processes hold none, and their names would be wasted reads.
	var comm string
	var haveComm, gone bool
	var commErr error
	err = t.eachEntry(dirfd, func(fd []byte) {
		if gone {
			return
		}
		inode, ok := t.readSocket(dirfd, fd)
		if !ok {
			return
		}
		if !haveComm {
			comm, commErr = t.readComm(rootfd, name)
			if commErr != nil && vanished(commErr) {
				// The process exited after we listed its descriptors; what
				// we read of them describes nobody now.
				gone = true
				return
			}
			haveComm = true
		}
		// A forked child shares its parent's sockets. Any choice among the
		// holders is as true as another; the lowest pid makes it repeatable,
		// and is usually the parent that opened the socket.
		if cur, ok := t.owners[inode]; ok && cur.PID < pid {
			return
		}
		t.owners[inode] = Process{PID: pid, Command: comm}
	})
	if err != nil {
		if t.expected(err) {
			return nil
		}
		return fmt.Errorf("reading %s: %w", filepath.Join(t.root, dir), err)
	}
	if commErr != nil && !gone {
		// The sockets stay recorded with an empty command: the pid alone
		// still tells the user whom they belong to.
		return commErr
	}
	return nil
}

// eachEntry calls fn with the name of every entry of the directory open at
// dirfd except "." and "..". name aliases t.dents and is NUL-terminated just
// past its end (name[:len(name)+1] is valid), which lets readSocket hand it
// to the kernel without copying; fn must not keep it.
//
// Reading dirents by hand rather than through os.ReadDir avoids allocating a
// string and a DirEntry per descriptor, which on a busy server means hundreds
// of thousands of allocations per scan.
func (t *Table) eachEntry(dirfd int, fn func(name []byte)) error {
	for {
		n, err := unix.Getdents(dirfd, t.dents)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		// struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type,
		// then the NUL-terminated name, padded to reclen.
		for off := 0; off < n; {
			rec := t.dents[off:n]
			reclen := int(binary.NativeEndian.Uint16(rec[16:18]))
			if reclen < 20 || reclen > len(rec) {
				return fmt.Errorf("malformed dirent (reclen %d)", reclen)
			}
			off += reclen
			name := rec[19:reclen]
			i := bytes.IndexByte(name, 0)
			if i < 0 {
				continue // the kernel always terminates names; never pass an unterminated one on
			}
			name = name[:i]
			if len(name) == 0 || (name[0] == '.' && (len(name) == 1 || string(name) == "..")) {
				continue
			}
			fn(name)
		}
	}
}

// readSocket returns the inode of the socket the descriptor entry name links
// to, and false for any other target (files, pipes, anon inodes) or if the
// descriptor was closed meanwhile.
func (t *Table) readSocket(dirfd int, name []byte) (uint32, bool) {
	// name came from eachEntry and is followed by its NUL in the dirent
	// buffer, so it can go to the kernel as is; unix.Readlinkat would copy it
	// to a fresh C string for every descriptor.
	n, _, errno := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dirfd),
		uintptr(unsafe.Pointer(unsafe.SliceData(name))),
		uintptr(unsafe.Pointer(&t.link[0])), uintptr(len(t.link)), 0, 0)
	if errno != 0 || n >= uintptr(len(t.link)) {
		// A target filling the buffer may have been cut short, and no
		// socket's is that long.
		return 0, false
	}
	return parseSocketLink(t.link[:n])
}

// parseSocketLink parses "socket:[INODE]".
func parseSocketLink(b []byte) (uint32, bool) {
	const prefix = "socket:["
	if len(b) < len(prefix)+2 || string(b[:len(prefix)]) != prefix || b[len(b)-1] != ']' {
		return 0, false
	}
	var v uint64
	for _, c := range b[len(prefix) : len(b)-1] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
		if v > 1<<32-1 {
			return 0, false
		}
	}
	return uint32(v), v != 0
}

// readComm reads /proc/PID/comm, where pid is the pid's directory name.
func (t *Table) readComm(rootfd int, pid string) (string, error) {
	path := pid + "/comm"
	fd, err := unix.Openat(rootfd, path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", filepath.Join(t.root, path), err)
	}
	defer unix.Close(fd)
	// comm is at most TASK_COMM_LEN (16) bytes, but kernel threads may
	// report longer names; anything past the buffer is dropped.
	var buf [64]byte
	n, err := unix.Read(fd, buf[:])
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", filepath.Join(t.root, path), err)
	}
	return string(bytes.TrimSuffix(buf[:n], []byte("\n"))), nil
}

// parsePID accepts the all-digit names that are process directories, which
// leaves out "self", "net" and the rest of /proc's furniture.
func parsePID(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	pid := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		pid = pid*10 + int(c-'0')
	}
	return pid, pid > 0
}

// vanished reports errors meaning the process exited while we looked.
// expected reports whether a scan should pass over err: the process
// exited, or it is another user's (counted, for the notice).
func (t *Table) expected(err error) bool {
	switch {
	case vanished(err):
		return true
	case denied(err):
		t.denied++
		return true
	}
	return false
}

func vanished(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

// denied reports errors meaning we may not look at the process.
func denied(err error) bool {
	return errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)
}
