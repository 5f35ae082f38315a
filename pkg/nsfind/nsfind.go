// Package nsfind finds every network namespace on the host, whatever
// holds it alive: a process in it (/proc/PID/ns/net), a name under
// /run/netns, an nsfs bind mount anywhere (/proc/self/mountinfo: Docker's
// /run/docker/netns/*, /var/run/netns/*, others), or only a descriptor a
// process holds open on an nsfs file (/proc/PID/fd/N). Tools that look at
// processes alone miss the last three kinds; a namespace whose sockets
// linger in TIME_WAIT after its last process exited is one of them.
//
// Namespaces are told apart by inode, the number the kernel shows as
// net:[INODE]. Each one found comes with a path that opens it, chosen in
// the order a person recognises: its ip netns name, a mount path, a
// process's /proc/PID/ns/net, a descriptor's /proc/PID/fd/N.
//
// Where the kernel has listns(2) (Linux 6.19), ListNet lists the
// namespaces in use, those only a descriptor holds among them, in one call:
// a caller that scans often without the descriptor walk learns from it
// that a walk is due.
//
// Scan reads only /proc and /run/netns; it opens nothing but directories
// and changes nothing. A namespace it finds may be gone by the time it is
// read (a container exits): callers skip it then.
package nsfind

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Namespace is one network namespace and what holds it.
type Namespace struct {
	// Inode identifies it (net:[Inode]).
	Inode uint64
	// Path opens it: the first of Names (under Dir), Mounts, the first
	// process's /proc/PID/ns/net, or the first descriptor.
	Path string
	// Names are its names under Dir (ip netns), sorted.
	Names []string
	// Mounts are nsfs bind mounts of it elsewhere, sorted.
	Mounts []string
	// PIDs are the processes in it, sorted.
	PIDs []int
	// FDs are /proc/PID/fd/N descriptors held open on it by processes
	// not in it, sorted.
	FDs []string
	// Self is set for the namespace this process is in.
	Self bool
}

// Init reports whether the namespace holds the first process (pid 1) or
// the kernel's threads (kthreadd, pid 2): the host's, as this /proc shows
// it. sockscope itself may run in another (ip netns exec, a pod with the
// host's processes but a network of its own). Both count: pid 1 may be
// closed to a reader (seen: EACCES as root), kthreadd never is.
func (n *Namespace) Init() bool { return len(n.PIDs) > 0 && n.PIDs[0] <= 2 }

// Options say where to look; the zero value is this host's.
type Options struct {
	Proc  string // /proc
	NetNS string // /run/netns
	// Descriptors also walks every process's open descriptors: thorough
	// (a namespace held only by a descriptor is found) but the dearest
	// part of a scan.
	Descriptors bool
	// HostPID is a process in the host's mount namespace (0: pid 1):
	// when it is not this process's, its nsfs mounts are read too, and
	// opened through /proc/HostPID/root.
	HostPID int
}

// Scan finds every network namespace. Processes that exit or that this
// user may not inspect while it reads are skipped; an error means /proc
// itself could not be read.
func Scan(opt Options) ([]Namespace, error) {
	if opt.Proc == "" {
		opt.Proc = "/proc"
	}
	if opt.NetNS == "" {
		opt.NetNS = "/run/netns"
	}
	s := &scan{byIno: map[uint64]*Namespace{}, netnsDir: opt.NetNS}
	self, err := netLink(filepath.Join(opt.Proc, "thread-self", "ns", "net"))
	if err != nil {
		return nil, fmt.Errorf("reading this process's network namespace: %w", err)
	}
	s.get(self).Self = true
	if err := s.names(opt.NetNS); err != nil {
		return nil, err
	}
	if err := s.mounts(filepath.Join(opt.Proc, "self", "mountinfo"), ""); err != nil {
		return nil, err
	}
	if err := s.hostMounts(opt); err != nil {
		return nil, err
	}
	if err := s.processes(opt.Proc, opt.Descriptors); err != nil {
		return nil, err
	}
	out := make([]Namespace, 0, len(s.byIno))
	for _, n := range s.byIno {
		slices.Sort(n.Names)
		slices.Sort(n.Mounts)
		slices.Sort(n.PIDs)
		slices.Sort(n.FDs)
		switch {
		case len(n.Names) > 0:
			n.Path = filepath.Join(opt.NetNS, n.Names[0])
		case len(n.Mounts) > 0:
			n.Path = n.Mounts[0]
		case len(n.PIDs) > 0:
			n.Path = filepath.Join(opt.Proc, strconv.Itoa(n.PIDs[0]), "ns", "net")
		case len(n.FDs) > 0:
			n.Path = n.FDs[0]
		}
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b Namespace) int {
		switch {
		case a.Self != b.Self: // the host's own first
			if a.Self {
				return -1
			}
			return 1
		case a.Inode < b.Inode:
			return -1
		case a.Inode > b.Inode:
			return 1
		}
		return 0
	})
	return out, nil
}

type scan struct {
	path     []byte // reused to build descriptor paths
	byIno    map[uint64]*Namespace
	netnsDir string
}

func (s *scan) get(ino uint64) *Namespace {
	n := s.byIno[ino]
	if n == nil {
		n = &Namespace{Inode: ino}
		s.byIno[ino] = n
	}
	return n
}

// names reads the ip netns names: each a bind mount of an nsfs file.
func (s *scan) names(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil // no names on this host
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, e := range entries {
		ino, ok := nsfsInode(filepath.Join(dir, e.Name()))
		if ok {
			n := s.get(ino)
			n.Names = append(n.Names, e.Name())
		}
	}
	return nil
}

// nsfsInode stats path and returns its inode when it is a network
// namespace: an nsfs file, whose file system magic says so. A file left
// in /run/netns after its mount went is an empty regular file of tmpfs.
func nsfsInode(path string) (uint64, bool) {
	var fs unix.Statfs_t
	if unix.Statfs(path, &fs) != nil || fs.Type != unix.NSFS_MAGIC {
		return 0, false
	}
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return 0, false
	}
	// The name may hold another kind of namespace: only net counts.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	if t, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE); err != nil || t != unix.CLONE_NEWNET {
		return 0, false
	}
	return st.Ino, true
}

// mounts reads the nsfs mounts of network namespaces from mountinfo:
// their root field is net:[INODE], so no file needs opening. root is put
// before each mount point: "" for this process's own mounts, /proc/PID/root
// for those of another mount namespace (the host's, seen from a
// container), where that path opens them.
func (s *scan) mounts(path, root string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		ino, mnt, ok := parseMountinfoLine(sc.Text())
		if !ok {
			continue
		}
		mnt = root + mnt
		n := s.get(ino)
		if !slices.Contains(n.Mounts, mnt) {
			n.Mounts = append(n.Mounts, mnt)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	// A name under the netns directory is a mount too: it is said as a
	// name only.
	for _, n := range s.byIno {
		n.Mounts = slices.DeleteFunc(n.Mounts, func(m string) bool {
			dir := filepath.Dir(m)
			return slices.Contains(n.Names, filepath.Base(m)) && (dir == s.netnsDir || dir == root+s.netnsDir)
		})
	}
	return nil
}

// hostMounts reads the nsfs mounts of the host's mount namespace too, when
// it is not this process's: sockscope in a container with the host's PID
// namespace (a DaemonSet) sees the host's /run/docker/netns and the like
// only through pid 1. Where pid 1 cannot be inspected (no CAP_SYS_PTRACE,
// or no host PID namespace), its mounts are not read, and nothing else
// is lost.
func (s *scan) hostMounts(opt Options) error {
	pid := opt.HostPID
	if pid == 0 {
		pid = 1
	}
	dir := filepath.Join(opt.Proc, strconv.Itoa(pid))
	var own, host, root unix.Stat_t
	if unix.Stat(filepath.Join(opt.Proc, "self", "ns", "mnt"), &own) != nil ||
		unix.Stat(filepath.Join(dir, "ns", "mnt"), &host) != nil || own.Ino == host.Ino ||
		unix.Stat(filepath.Join(dir, "root"), &root) != nil {
		return nil // the same mounts, or none this process may open
	}
	err := s.mounts(filepath.Join(dir, "mountinfo"), filepath.Join(dir, "root"))
	if errors.Is(err, os.ErrPermission) || errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// parseMountinfoLine returns the namespace and mount point of an nsfs
// mount of a network namespace (proc(5): "ID PARENT MAJ:MIN ROOT POINT
// OPTIONS [TAGS...] - FSTYPE SOURCE SUPEROPTS").
func parseMountinfoLine(line string) (uint64, string, bool) {
	pre, post, ok := strings.Cut(line, " - ")
	if !ok {
		return 0, "", false
	}
	if f := strings.Fields(post); len(f) == 0 || f[0] != "nsfs" {
		return 0, "", false
	}
	f := strings.Fields(pre)
	if len(f) < 5 {
		return 0, "", false
	}
	ino, ok := parseNetLink(f[3])
	if !ok {
		return 0, "", false
	}
	return ino, unescapeMount(f[4]), true
}

// unescapeMount undoes mountinfo's octal escapes (\040 is a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseNetLink reads "net:[4026531833]".
func parseNetLink(s string) (uint64, bool) {
	v, ok := strings.CutPrefix(s, "net:[")
	if !ok {
		return 0, false
	}
	v, ok = strings.CutSuffix(v, "]")
	if !ok {
		return 0, false
	}
	ino, err := strconv.ParseUint(v, 10, 64)
	return ino, err == nil
}

// errNotNet is a link that names something else than a network
// namespace: most descriptors (files, sockets, pipes).
var errNotNet = errors.New("not a network namespace")

// netLink reads a /proc ns or fd link that names a network namespace.
func netLink(path string) (uint64, error) {
	var buf [64]byte
	return netLinkBuf(path, buf[:])
}

// netLinkBuf is netLink reading into buf: a host's descriptor walk reads
// tens of thousands of links, and a link that is no namespace costs
// neither a string nor an error.
func netLinkBuf(path string, buf []byte) (uint64, error) {
	n, err := unix.Readlink(path, buf)
	if err != nil {
		return 0, err
	}
	const prefix = "net:["
	b := buf[:n]
	if n == len(buf) || len(b) < len(prefix)+2 || string(b[:len(prefix)]) != prefix || b[n-1] != ']' {
		return 0, errNotNet
	}
	var ino uint64
	for _, c := range b[len(prefix) : n-1] {
		if c < '0' || c > '9' || ino > (1<<63)/10 {
			return 0, errNotNet
		}
		ino = ino*10 + uint64(c-'0')
	}
	return ino, nil
}

// processes reads every process's namespace and, with descriptors, the
// namespaces it holds open.
func (s *scan) processes(proc string, descriptors bool) error {
	entries, err := os.ReadDir(proc)
	if err != nil {
		return fmt.Errorf("reading %s: %w", proc, err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join(proc, e.Name())
		in, err := netLink(filepath.Join(dir, "ns", "net"))
		if err != nil {
			continue // exited, a kernel thread, or not ours to see
		}
		n := s.get(in)
		n.PIDs = append(n.PIDs, pid)
		if descriptors {
			s.descriptors(dir, in)
		}
	}
	return nil
}

// descriptors records the network namespaces a process holds open, other
// than its own.
func (s *scan) descriptors(dir string, own uint64) {
	f, err := os.Open(filepath.Join(dir, "fd"))
	if err != nil {
		return // exited, or not ours to see
	}
	defer f.Close()
	// Names in batches, not a DirEntry each: a process may hold tens of
	// thousands of descriptors, and nearly none is a namespace.
	var link [64]byte
	path := append(s.path[:0], dir...)
	path = append(path, "/fd/"...)
	base := len(path)
	for {
		names, err := f.Readdirnames(1024)
		for _, name := range names {
			path = append(path[:base], name...)
			ino, err := netLinkBuf(string(path), link[:])
			if err != nil || ino == own {
				continue
			}
			n := s.get(ino)
			n.FDs = append(n.FDs, string(path))
		}
		if err != nil || len(names) == 0 {
			break
		}
	}
	s.path = path
}
