// Package tablecount counts the TCP sockets of many network namespaces in
// one walk of the kernel's tables.
//
// Every namespace on a host shares the kernel's TCP hash tables unless it
// was made with tables of its own (net.ipv4.tcp_child_ehash_entries in its
// parent). A sock_diag dump, /proc/net/tcp and the BPF TCP iterator all
// answer for one namespace, and each walks the whole shared table to find
// that namespace's sockets: counting 100 namespaces of 1,000 sockets walks
// 100,000 sockets a hundred times. This package walks the shared tables
// once and counts every socket into its own namespace's tally: a BPF
// program (a raw tracepoint program that is never attached, run on demand
// with BPF_PROG_TEST_RUN, under the RCU read lock the kernel's own
// lockless lookups take) visits each bucket of the established and
// listening tables, as inet_diag does, and counts by namespace, state (as
// the dumps report it: request sockets as SYN_RECV, timewait entries by
// their substate), family and local port, and the ages of TIME_WAIT
// entries from their timers.
//
// A chain that is left for another while the walk is on it (a socket freed
// and reused, which the chain's end marker shows) or a read that fails
// makes the whole walk start again; after a few tries, or at once for a
// chain longer than the walk follows (65,536 sockets in one bucket), Count
// returns an error and the caller dumps namespace by namespace.
//
// It needs root (CAP_BPF and CAP_PERFMON) and the kernel's BTF, and is built
// at run time with cilium/ebpf's asm package, like the package kevents.
package tablecount

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/sockscope/sockscope/pkg/sock"
	"golang.org/x/sys/unix"
)

// MaxPorts is how many local ports can be counted apart.
const MaxPorts = 16

// Counts are one namespace's sockets.
type Counts struct {
	// Sockets[slot][family][state]: slot 0 counts the ports not named,
	// slot i the i-th named port; family 0 is IPv4, 1 IPv6; state is the
	// kernel's number (sock.State).
	Sockets [][2][16]uint32
	// TimeWait are the ages of the TIME_WAIT entries, from their timers
	// (sock.Socket.TimeWaitAge); counted only when Open was given bounds.
	TimeWait Ages
}

// Ages are a histogram of TIME_WAIT ages.
type Ages struct {
	N   uint64
	Sum time.Duration
	LE  []uint64 // LE[i]: entries no older than the i-th bound
}

// Each calls fn with every count that is not zero: port is the named
// port (ports as given to Open) or 0 for the others.
func (c *Counts) Each(ports []uint16, fn func(port uint16, fam sock.Family, st sock.State, n uint32)) {
	for slot := range c.Sockets {
		var port uint16
		if slot > 0 {
			port = ports[slot-1]
		}
		for f, fam := range [2]sock.Family{sock.IPv4, sock.IPv6} {
			for st, n := range c.Sockets[slot][f] {
				if n > 0 {
					fn(port, fam, sock.State(st), n)
				}
			}
		}
	}
}

// Walk is what one Count found.
type Walk struct {
	Netns uint32 // the namespace whose tables were walked: the caller's
	// Shared says those tables are the host's shared ones: every
	// namespace that does not have tables of its own is in them.
	Shared bool
	// Counts are the namespaces asked for, each with its counts: zero for
	// a namespace with no socket in the tables walked.
	Counts  map[uint32]*Counts
	Sockets uint64 // sockets visited, every namespace's
	Tries   int    // walks it took (a walk that met a moved chain is made again)
	Took    time.Duration
}

// Covers says whether the walk counted all of a namespace's sockets: the
// namespace with inode ino, whose connections are in the host's shared
// table when sharesHost (kstat.SharesHostTable). The walk read the
// caller's tables: the caller's namespace is covered, and so is every
// namespace in the shared table when the caller's table is that one. A
// namespace with a table of its own is not: only its listeners are in
// the walk, since the listening table is always the host's.
func (w *Walk) Covers(ino uint32, sharesHost bool) bool {
	return ino == w.Netns || (w.Shared && sharesHost)
}

// Counter holds the loaded program. It is NOT safe for concurrent use: a
// walk fills the maps the next one clears.
type Counter struct {
	prog   *ebpf.Program
	ns     *ebpf.Map // inode -> value (valueSize)
	info   *ebpf.Map
	ports  []uint16
	bounds int
	size   int
	have   map[uint32]bool // the inodes in ns
	zero   []byte
	buf    []byte
	keep   sock.StateMask // the states counted (SetStates)
}

// SetStates counts only the sockets in these states, as a dump asked for
// them counts (sock.AllStates, the default: every one). The TIME_WAIT ages
// are counted only with TIME_WAIT.
func (c *Counter) SetStates(m sock.StateMask) { c.keep = m }

// ErrUnavailable says this kernel or process cannot run the walk.
var ErrUnavailable = errors.New("counting in one walk of the kernel's tables unavailable")

func unavailable(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission) {
		err = fmt.Errorf("%w (loading BPF needs root, or CAP_BPF and CAP_PERFMON)", err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Open loads the program for up to maxNamespaces namespaces a walk, ports
// counted apart (at most MaxPorts) and TIME_WAIT ages counted against
// bounds.
func Open(maxNamespaces int, ports []uint16, bounds []time.Duration) (*Counter, error) {
	if len(ports) > MaxPorts {
		return nil, fmt.Errorf("%w: %d ports, at most %d", ErrUnavailable, len(ports), MaxPorts)
	}
	c := &Counter{ports: ports, bounds: len(bounds), size: valueSize(len(ports), len(bounds)), have: map[uint32]bool{}, keep: sock.AllStates}
	c.zero, c.buf = make([]byte, c.size), make([]byte, c.size)
	// The maps first: without the privilege they fail at once, before the
	// kernel's BTF is read.
	// Not preallocated: the kernel holds memory for the namespaces there
	// are, not for maxNamespaces.
	var err error
	c.ns, err = ebpf.NewMap(&ebpf.MapSpec{Name: "sockscope_nsc", Type: ebpf.Hash, KeySize: 4,
		ValueSize: uint32(c.size), MaxEntries: uint32(max(maxNamespaces, 1)), Flags: unix.BPF_F_NO_PREALLOC})
	if err != nil {
		return nil, unavailable(fmt.Errorf("creating the namespace map: %w", err))
	}
	c.info, err = ebpf.NewMap(&ebpf.MapSpec{Name: "sockscope_nsi", Type: ebpf.Array, KeySize: 4, ValueSize: infoSize, MaxEntries: 1})
	if err != nil {
		c.Close()
		return nil, unavailable(fmt.Errorf("creating the info map: %w", err))
	}
	// TIME_WAIT ages need the length of a jiffy, from the kernel's
	// configuration; without bounds none are counted.
	msPerJiffy := 0
	if len(bounds) > 0 {
		hz, err := kernelHZ()
		if err != nil {
			c.Close()
			return nil, unavailable(err)
		}
		if 1000%hz != 0 {
			c.Close()
			return nil, unavailable(fmt.Errorf("CONFIG_HZ=%d does not divide a second into whole ms", hz))
		}
		msPerJiffy = 1000 / hz
	}
	l, err := kernelLayout()
	if err != nil {
		c.Close()
		return nil, unavailable(err)
	}
	ms := make([]int32, len(bounds))
	for i, b := range bounds {
		ms[i] = int32(b.Milliseconds())
	}
	c.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "sockscope_count", Type: ebpf.RawTracepoint, License: "GPL",
		Instructions: program(l, c.ns.FD(), c.info.FD(), ports, ms, int32(msPerJiffy)),
	})
	if err != nil {
		c.Close()
		return nil, unavailable(fmt.Errorf("loading the program: %w", err))
	}
	return c, nil
}

// Close unloads the program.
func (c *Counter) Close() error {
	var errs []error
	if c.prog != nil {
		errs = append(errs, c.prog.Close())
	}
	for _, m := range []*ebpf.Map{c.ns, c.info} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

// chunk is how many buckets one run walks: the program runs with
// preemption off, so a walk of a large table is cut into runs of about a
// millisecond.
const chunk = 1 << 14

// tries bounds the walks Count makes when chains move under it.
const tries = 4

// Count walks the calling thread's namespace's tables and counts the
// sockets of the namespaces with these inodes.
func (c *Counter) Count(inodes []uint32) (*Walk, error) {
	start := time.Now()
	w := &Walk{}
	for w.Tries < tries {
		w.Tries++
		if err := c.reset(inodes); err != nil {
			return nil, err
		}
		clean, err := c.walk(w)
		if err != nil {
			return nil, err
		}
		if clean {
			break
		}
		if w.Tries == tries {
			return nil, fmt.Errorf("counting the kernel's TCP tables: chains moved under %d walks", tries)
		}
	}
	w.Counts = make(map[uint32]*Counts, len(inodes))
	for _, ino := range inodes {
		if err := c.ns.Lookup(ino, c.buf); err != nil {
			return nil, fmt.Errorf("reading the counts of net:[%d]: %w", ino, err)
		}
		w.Counts[ino] = c.decode(c.buf)
	}
	w.Took = time.Since(start)
	return w, nil
}

// reset gives each inode a zero value and drops the others.
func (c *Counter) reset(inodes []uint32) error {
	want := make(map[uint32]bool, len(inodes))
	for _, ino := range inodes {
		want[ino] = true
	}
	// The namespaces gone first: a full map has room for the new ones.
	for ino := range c.have {
		if !want[ino] {
			if err := c.ns.Delete(ino); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("dropping the counts of net:[%d]: %w", ino, err)
			}
			delete(c.have, ino)
		}
	}
	for _, ino := range inodes {
		if err := c.ns.Update(ino, c.zero, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("preparing the counts of net:[%d]: %w", ino, err)
		}
		c.have[ino] = true
	}
	return nil
}

// walk runs the program over both tables; clean is false when a chain
// moved or a read failed.
func (c *Counter) walk(w *Walk) (clean bool, err error) {
	clean = true
	w.Sockets = 0
	var info [infoSize]byte
	for table := uint64(0); table < 2; table++ {
		buckets := uint64(1) // until the first run says
		for first := uint64(0); first < buckets; first += chunk {
			ret, err := c.prog.Run(&ebpf.RunOptions{Context: []uint64{table, first, chunk}})
			if err != nil {
				return false, fmt.Errorf("walking the kernel's TCP tables: %w", err)
			}
			if ret != 0 {
				return false, errors.New("walking the kernel's TCP tables: the namespace's tables could not be read")
			}
			if err := c.info.Lookup(uint32(0), info[:]); err != nil {
				return false, fmt.Errorf("reading the walk's result: %w", err)
			}
			ne := binary.NativeEndian
			w.Netns = ne.Uint32(info[infoNetns:])
			w.Shared = ne.Uint32(info[infoPernet:]) == 0
			mask := infoEhashMask
			if table == 1 {
				mask = infoLhashMask
			}
			buckets = uint64(ne.Uint32(info[mask:])) + 1
			w.Sockets += ne.Uint64(info[infoSockets:])
			if n := ne.Uint64(info[infoTruncated:]); n > 0 {
				// Walking again would not shorten it.
				return false, fmt.Errorf("walking the kernel's TCP tables: %d chains longer than %d sockets", n, maxChain)
			}
			if ne.Uint64(info[infoFaults:])+ne.Uint64(info[infoMoved:]) > 0 {
				clean = false
			}
		}
	}
	return clean, nil
}

func (c *Counter) decode(b []byte) *Counts {
	ne := binary.NativeEndian
	out := &Counts{Sockets: make([][2][16]uint32, len(c.ports)+1)}
	i := 0
	for slot := range out.Sockets {
		for f := range 2 {
			for st := range 16 {
				if c.keep.Has(sock.State(st)) {
					out.Sockets[slot][f][st] = ne.Uint32(b[i:])
				}
				i += 4
			}
		}
	}
	out.TimeWait.LE = make([]uint64, c.bounds)
	if !c.keep.Has(sock.TimeWait) {
		return out
	}
	h := histOffset(len(c.ports))
	out.TimeWait.N = ne.Uint64(b[h:])
	out.TimeWait.Sum = time.Duration(ne.Uint64(b[h+8:])) * time.Millisecond
	for k := range out.TimeWait.LE {
		out.TimeWait.LE[k] = ne.Uint64(b[h+16+8*k:])
	}
	return out
}

// kernelHZ reads CONFIG_HZ from the kernel's configuration: the
// TIME_WAIT timers count jiffies.
func kernelHZ() (int, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return 0, fmt.Errorf("uname: %w", err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	var errs []error
	for _, p := range []string{"/proc/config.gz", "/boot/config-" + release} {
		hz, err := hzFrom(p)
		if err == nil {
			return hz, nil
		}
		errs = append(errs, err)
	}
	return 0, fmt.Errorf("the kernel's CONFIG_HZ: %w", errors.Join(errs...))
}

func hzFrom(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		z, err := gzip.NewReader(f)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		r = z
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("CONFIG_HZ=")); ok {
			hz, err := strconv.Atoi(string(v))
			if err != nil || hz <= 0 {
				return 0, fmt.Errorf("%s: CONFIG_HZ=%s", path, v)
			}
			return hz, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading %s: %w", path, err)
	}
	return 0, fmt.Errorf("%s: no CONFIG_HZ", path)
}
