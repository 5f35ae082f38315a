// Package kevents reads TCP state changes from the kernel as they happen:
// a BPF program on the tracepoint sock:inet_sock_set_state (a tp_btf
// program, which needs BTF and BPF trampolines, not kprobes) sends each
// change of every TCP socket on the host, in every network namespace,
// through a ring buffer, with the kernel's own clock. A poll sees a socket
// once a second; this sees every step of it, the SYN_SENT and SYN_RECV
// phases and connections that open and close between two polls included.
//
// The program is built at run time with cilium/ebpf's asm package from the
// running kernel's BTF (the offsets of the fields it reads), so no
// compiler is needed to build sockscope and no object file can go stale.
// Loading it needs root (CAP_BPF and CAP_PERFMON); where it cannot load,
// Open says why and the callers go on polling.
package kevents

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/sockscope/sockscope/pkg/sock"
	"golang.org/x/sys/unix"
)

// Transition is one TCP state change the kernel made.
type Transition struct {
	// At is when the kernel made it (its monotonic clock, on the wall).
	At     time.Time
	Cookie uint64 // the socket's cookie, as sock_diag reports it
	Netns  uint32 // inode of the socket's network namespace
	From   sock.State
	To     sock.State
	Family sock.Family
	Local  sock.Endpoint
	Peer   sock.Endpoint
	// IfIndex is the interface the socket is bound to, 0 when none.
	IfIndex uint32
}

// Socket is the socket as the transition left it, for a filter to match.
func (t *Transition) Socket() sock.Socket {
	return sock.Socket{Cookie: t.Cookie, Local: t.Local, Peer: t.Peer, Netns: t.Netns,
		Family: t.Family, State: t.To, IfIndex: t.IfIndex, Info: -1}
}

// Watcher holds the loaded program until Close.
type Watcher struct {
	sync   chan chan struct{} // Sync's requests for Run
	ended  chan struct{}      // closed when Run returns: Sync then waits for nothing
	events *ebpf.Map
	// lost counts the changes the program could not write, the ring
	// being full; read through count, its value mapped read-only, without
	// a system call. countMu keeps Close from unmapping it under a read.
	lost    *ebpf.Map
	countMu sync.RWMutex
	count   []byte
	prog    *ebpf.Program
	link    link.Link
	rd      *ringbuf.Reader
	every   time.Duration // how often Run drains the ring; ReadEvery unless set
	// base is clockOffset when baseAt was: see drain.
	base, baseAt time.Time
}

// ringSize is the ring buffer's size: 1 MiB holds about 13,000 changes,
// some seconds of a busy host's churn if the reader falls behind.
const ringSize = 1 << 20

// Open loads the program and attaches it: for the sockets of the
// namespaces with these inodes, or of every namespace when there are none
// or more than maxOnly. An error that is ErrUnavailable says this kernel or
// this process cannot (not root, no BTF, BPF locked down); it is no fault
// of sockscope's.
func Open(only []uint32) (*Watcher, error) {
	return openSized(only, ringSize)
}

// openSized is Open with a ring of size bytes (a power of two pages).
func openSized(only []uint32, size uint32) (*Watcher, error) {
	if len(only) > maxOnly {
		only = nil
	}
	offs, err := kernelOffsets()
	if err != nil {
		return nil, unavailable(err)
	}
	w := &Watcher{sync: make(chan chan struct{}), ended: make(chan struct{})}
	w.events, err = ebpf.NewMap(&ebpf.MapSpec{Name: "sockscope_tcp", Type: ebpf.RingBuf, MaxEntries: size})
	if err != nil {
		return nil, unavailable(fmt.Errorf("creating the ring buffer: %w", err))
	}
	w.lost, err = ebpf.NewMap(&ebpf.MapSpec{Name: "sockscope_lost", Type: ebpf.Array, KeySize: 4, ValueSize: 8,
		MaxEntries: 1, Flags: unix.BPF_F_MMAPABLE})
	if err != nil {
		w.Close()
		return nil, unavailable(fmt.Errorf("creating the count of lost changes: %w", err))
	}
	if w.count, err = unix.Mmap(w.lost.FD(), 0, os.Getpagesize(), unix.PROT_READ, unix.MAP_SHARED); err != nil {
		w.Close()
		return nil, fmt.Errorf("mapping the count of lost changes: %w", err)
	}
	w.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "sockscope_state", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp,
		AttachTo: "inet_sock_set_state", License: "GPL",
		Instructions: program(offs, w.events.FD(), w.lost.FD(), only),
	})
	if err != nil {
		w.Close()
		return nil, unavailable(fmt.Errorf("loading the program: %w", err))
	}
	w.link, err = link.AttachTracing(link.TracingOptions{Program: w.prog})
	if err != nil {
		w.Close()
		return nil, unavailable(fmt.Errorf("attaching to sock:inet_sock_set_state: %w", err))
	}
	w.rd, err = ringbuf.NewReader(w.events)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("reading the ring buffer: %w", err)
	}
	return w, nil
}

// maxOnly is how many namespaces the program tells apart itself, a compare
// each; past that it reports every namespace and the reader sorts.
const maxOnly = 32

// ErrUnavailable says the kernel's events cannot be had here.
var ErrUnavailable = errors.New("kernel TCP events unavailable")

func unavailable(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission) {
		err = fmt.Errorf("%w (loading BPF needs root, or CAP_BPF and CAP_PERFMON)", err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// ReadEvery is how often Run drains the ring buffer unless SetReadEvery
// says otherwise: the program wakes no reader, so a change reaches fn at
// most this late (its time is the kernel's, whenever it is read).
const ReadEvery = 20 * time.Millisecond

// SetReadEvery sets how often Run drains the ring; call it before Run. A
// front end that reads the changes at its polls (Sync) and not as they
// come drains less often: each timer wakes the Go runtime's monitor
// thread too (a dashboard of 110k sockets made 616 context switches a
// second at 20 ms, 370 at 100 ms). The ring holds about 13,000 changes,
// at 100 ms a churn of 130,000 a second.
func (w *Watcher) SetReadEvery(d time.Duration) {
	if d > 0 {
		w.every = d
	}
}

// Run calls fn with each change until ctx ends or Close; fn must not keep
// the Transition. The ring buffer holds seconds of the busiest churn
// between two reads.
//
// It waits on a Go timer, never in a blocking read: a thread parked in
// epoll_wait made the runtime's monitor wake it thousands of times a
// second (measured: 2,000 more context switches a second in a dashboard
// of 110k sockets).
func (w *Watcher) Run(ctx context.Context, fn func(*Transition)) error {
	defer close(w.ended)
	every := w.every
	if every == 0 {
		every = ReadEvery
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var rec ringbuf.Record
	var t Transition
	for {
		var synced chan struct{}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case synced = <-w.sync:
		}
		if err := w.drain(ctx, &rec, &t, fn); err != nil || ctx.Err() != nil {
			return err
		}
		if synced != nil {
			close(synced)
		}
	}
}

// Lost is how many changes the kernel could not hand on since Open, its
// ring being full when they came: the news since has holes, and what a
// poll shows in their place is the poll's to date. It makes no system
// call; it fails once w is closed.
func (w *Watcher) Lost() (uint64, error) {
	w.countMu.RLock()
	defer w.countMu.RUnlock()
	if w.count == nil {
		return 0, errors.New("reading the count of lost changes: the kernel events are closed")
	}
	// The program adds to it atomically, on any processor; the page
	// is aligned, so is the count at its start.
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&w.count[0]))), nil
}

// Sync returns once Run has handed fn every change the kernel made before
// the call (a poll's caller, so that the poll's news is not older than
// the kernel's); at once when ctx ends first, or Run has returned (a
// failed read must not stop the poller that asks).
func (w *Watcher) Sync(ctx context.Context) {
	done := make(chan struct{})
	select {
	case w.sync <- done:
	case <-ctx.Done():
		return
	case <-w.ended:
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	case <-w.ended:
	}
}

// drain hands fn what the ring holds now, without waiting.
//
// It makes no system call when the ring has records and its last one is
// complete: it reads while the ring says records wait, not until a read
// fails (the failed read asks epoll), and the clock's offset is read at
// most once a second (the wall clock is slewed by microseconds a second
// at most; a step shows within the second). An ordinary system call from
// an idle program wakes the Go runtime's monitor thread, which then polls
// every 20 µs for a millisecond or more, ten times a second here.
func (w *Watcher) drain(ctx context.Context, rec *ringbuf.Record, t *Transition, fn func(*Transition)) error {
	if w.rd.AvailableBytes() == 0 {
		return nil
	}
	// A deadline already past: read what is there, never wait.
	w.rd.SetDeadline(time.Now())
	if now := time.Now(); now.Sub(w.baseAt) >= time.Second || now.Before(w.baseAt) {
		w.base, w.baseAt = clockOffset(), now
	}
	for w.rd.AvailableBytes() > 0 {
		err := w.rd.ReadInto(rec)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil // a record still being written: the next drain
		}
		if err != nil {
			if errors.Is(err, os.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading kernel events: %w", err)
		}
		if decode(rec.RawSample, t, w.base) {
			fn(t)
		}
	}
	return nil
}

// clockOffset is the wall time minus the monotonic clock, now: the kernel
// stamps events with the latter.
func clockOffset() time.Time {
	var ts unix.Timespec
	now := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return now // not on Linux's vDSO: never here
	}
	return now.Add(-time.Duration(ts.Nano()))
}

// eventSize is the record the program writes; see program.
const eventSize = 72

// decode reads one record; base plus the record's monotonic time is its
// wall time.
func decode(b []byte, t *Transition, base time.Time) bool {
	if len(b) < eventSize {
		return false
	}
	le := binary.LittleEndian
	t.At = base.Add(time.Duration(le.Uint64(b[0:])))
	t.Cookie = le.Uint64(b[8:])
	t.Netns = le.Uint32(b[16:])
	t.From, t.To = sock.State(b[20]), sock.State(b[21])
	t.Family = sock.Family(le.Uint16(b[22:]))
	sport := le.Uint16(b[24:])               // host order (skc_num, or inet_sport at a close)
	dport := binary.BigEndian.Uint16(b[26:]) // network order (skc_dport)
	t.IfIndex = le.Uint32(b[36:])
	switch t.Family {
	case sock.IPv4:
		t.Local = sock.Endpoint4([4]byte(b[28:32]), sport)
		t.Peer = sock.Endpoint4([4]byte(b[32:36]), dport)
	case sock.IPv6:
		t.Local = sock.Endpoint16([16]byte(b[40:56]), sport)
		t.Peer = sock.Endpoint16([16]byte(b[56:72]), dport)
	default:
		return false
	}
	return true
}

// Close detaches the program and frees what Open made.
func (w *Watcher) Close() error {
	var errs []error
	if w.rd != nil {
		errs = append(errs, w.rd.Close())
	}
	if w.link != nil {
		errs = append(errs, w.link.Close())
	}
	if w.prog != nil {
		errs = append(errs, w.prog.Close())
	}
	if w.events != nil {
		errs = append(errs, w.events.Close())
	}
	w.countMu.Lock()
	if w.count != nil {
		if err := unix.Munmap(w.count); err != nil {
			errs = append(errs, fmt.Errorf("unmapping the count of lost changes: %w", err))
		}
		w.count = nil
	}
	w.countMu.Unlock()
	if w.lost != nil {
		errs = append(errs, w.lost.Close())
	}
	return errors.Join(errs...)
}
