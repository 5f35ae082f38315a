package nsfind

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// listns(2) (Linux 6.19) lists the namespaces that are in use: by a task,
// through a bind mount, or through an open descriptor. Those held only by
// a descriptor are what a scan of /proc finds dearly, by walking every
// process's descriptors; listns names them in one call, by namespace ID (a
// 64-bit number the kernel never reuses, not the inode).
const (
	sysListns = 470 // x86-64, arm64 and every other architecture of the unified table
	// nsIDReqSize is struct ns_id_req: size, spare, ns_id, ns_type,
	// spare2, user_ns_id.
	nsIDReqSize = 32
	// nsGetID is NS_GET_ID, _IOR(0xb7, 0xd, __u64): a namespace
	// descriptor's ID.
	nsGetID = 0x8008b70d
	// fdNsfsRoot is FD_NSFS_ROOT: open_by_handle_at's anchor for nsfs
	// handles (Linux 6.18).
	fdNsfsRoot = -10003
	// fileidNsfs is FILEID_NSFS, the type of an nsfs file handle.
	fileidNsfs = 0xf1
)

// ErrNoListns says the kernel has no listns(2) (before Linux 6.19), or
// does not let this process use it.
var ErrNoListns = errors.New("listns(2) not available")

// ListNet returns the IDs of every network namespace in use on the host,
// in the kernel's order (ascending). Without listns it returns an error
// that is ErrNoListns.
func ListNet() ([]uint64, error) {
	var req [nsIDReqSize]byte
	binary.NativeEndian.PutUint32(req[0:], nsIDReqSize)
	binary.NativeEndian.PutUint32(req[16:], unix.CLONE_NEWNET)
	var out []uint64
	page := make([]uint64, 256)
	for {
		n, _, errno := unix.Syscall6(sysListns, uintptr(unsafe.Pointer(&req[0])),
			uintptr(unsafe.Pointer(&page[0])), uintptr(len(page)), 0, 0, 0)
		switch {
		case errno == unix.ENOSYS || errno == unix.EPERM:
			return nil, fmt.Errorf("%w: %w", ErrNoListns, errno)
		case errno != 0:
			return nil, fmt.Errorf("listns: %w", errno)
		}
		out = append(out, page[:n]...)
		if int(n) < len(page) {
			return out, nil
		}
		// The next page starts after the last ID this one gave.
		binary.NativeEndian.PutUint64(req[8:], page[n-1])
	}
}

// InodeOfID opens the network namespace with this ID (an nsfs file
// handle) and returns its inode, the number sockets and /proc show. An
// error that is os.ErrNotExist or ESTALE says it is gone.
func InodeOfID(id uint64) (uint64, error) {
	var h [16]byte // struct nsfs_file_handle: ns_id, ns_type, ns_inum
	binary.NativeEndian.PutUint64(h[0:], id)
	binary.NativeEndian.PutUint32(h[8:], unix.CLONE_NEWNET)
	fd, err := unix.OpenByHandleAt(fdNsfsRoot, unix.NewFileHandle(fileidNsfs, h[:]), unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return 0, fmt.Errorf("opening network namespace ID %d: %w", id, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("network namespace ID %d: %w", id, err)
	}
	return st.Ino, nil
}

// IDOf returns the ID of the namespace that path opens.
func IDOf(path string) (uint64, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return 0, fmt.Errorf("opening %s: %w", path, err)
	}
	defer unix.Close(fd)
	var id uint64
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), nsGetID, uintptr(unsafe.Pointer(&id))); errno != 0 {
		return 0, fmt.Errorf("the ID of %s: %w", path, errno)
	}
	return id, nil
}
