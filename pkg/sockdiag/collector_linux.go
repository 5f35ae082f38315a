package sockdiag

import (
	"errors"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/sock"
	"golang.org/x/sys/unix"
)

// recvBufSize holds one kernel batch with room to spare: inet_diag fills
// about 32 KiB per receive whatever the buffer size.
const recvBufSize = 64 << 10

// maxPerBatch is the most sockets one receive can bring: every message
// holds at least its header and an inet_diag_msg.
const maxPerBatch = recvBufSize / (sizeofNlmsghdr + sizeofDiagMsg)

// recvTimeout bounds the wait for the kernel's next batch, so a wedged dump
// is reported instead of hanging the caller.
const recvTimeout = 5 * time.Second

// Collector dumps TCP sockets from one network namespace. The receive
// buffer and the de-duplication set are reused between dumps, so a Collector
// is NOT safe for concurrent use: give each goroutine its own.
type Collector struct {
	fd  int    // the netlink socket, outside Go's poller (see Open)
	ns  uint32 // the namespace's inode, stamped on every socket
	seq uint32
	req []byte
	buf []byte
	// Cookies of the previous and the current batch: a duplicate can only
	// repeat the tail of the previous batch (see into).
	prev, cur *cookieSet
	head      bool // still in the head of a batch, where duplicates are
	scratch   sock.Socket
	pfd       [1]unix.PollFd
	// recvFn and timeout are recvDontWait and recvTimeout; tests replace
	// them to inject the kernel's faults.
	recvFn  func(fd int, b []byte) (int, error)
	timeout time.Duration
	// v6 holds the IPv6 sockets of a dump of both families until its end,
	// so that IPv4 comes first, as ss and netstat list them.
	v6 []sock.Socket
	// oneWalk is cleared when the kernel refuses the request for both
	// families at once; Dump then asks for each in turn.
	oneWalk bool
	// streamMin is the fewest sockets Stream hands on at once, but at
	// a dump's end.
	streamMin int
	// sent says a request was answered: the modules are loaded, and
	// later requests are raw calls (see send).
	sent bool
}

// Open returns a Collector for the network namespace ns (the zero NS is
// the caller's own).
func Open(ns netns.NS) (*Collector, error) {
	// Naming NETLINK_INET_DIAG matters: the socket is created inside ns,
	// and the kernel answers for the namespace the socket lives in.
	s, err := ns.Netlink(unix.NETLINK_INET_DIAG)
	if err != nil {
		return nil, fmt.Errorf("opening sock_diag: %w", err)
	}
	// A descriptor of its own, out of the Go runtime's poller: nl
	// registers its sockets there, and the poller then woke an idle
	// thread for every batch the kernel queued (hundreds a dump) and
	// every lookup's answer, most of the dashboard's context switches
	// at 110k sockets. The Collector reads with raw calls and poll(2).
	// Closing nl's socket takes it out of the poller; the duplicate
	// keeps the socket open.
	fd, err := unix.FcntlInt(uintptr(s.GetFd()), unix.F_DUPFD_CLOEXEC, 0)
	s.Close()
	if err != nil {
		return nil, fmt.Errorf("opening sock_diag: duplicating its socket: %w", err)
	}
	return &Collector{
		fd:      fd,
		ns:      uint32(ns.Inode),
		buf:     make([]byte, recvBufSize),
		prev:    new(cookieSet),
		cur:     new(cookieSet),
		recvFn:  recvDontWait,
		timeout: recvTimeout,
		oneWalk: true,
	}, nil
}

// Close releases the netlink socket.
func (c *Collector) Close() error {
	if err := unix.Close(c.fd); err != nil {
		return fmt.Errorf("closing sock_diag: %w", err)
	}
	return nil
}

// OpError is a failed dump, with the family it was for (0: both) and the
// errno kept for errors.Is.
type OpError struct {
	Op     string
	Family sock.Family
	Err    error
}

func (e *OpError) Error() string {
	if e.Family == bothFamilies {
		return fmt.Sprintf("%s TCP sockets: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("%s %s sockets: %v", e.Op, e.Family, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }

func errnoErr(e int32) error { return unix.Errno(e) }

// Dump asks the kernel for the sockets r selects and appends them to
// snap.Sockets (and their tcp_info to snap.Infos when r asks for ExtInfo).
// Sockets seen twice in one dump are dropped by cookie. Of a dump of both
// families, IPv4 comes first, as ss and netstat list them.
func (c *Collector) Dump(r *Request, snap *sock.Snapshot) error {
	return c.dump(r, snap, nil)
}

// Stream is Dump a kernel batch at a time, in memory that does not grow
// with the table: batch receives the sockets of kernel batches (about 300
// each) until it holds min or more, or the dump ends, fn is called with
// it, and batch is emptied for the next one (batch.Dumped keeps
// counting). fn may give batch other slices to fill, empty ones, and keep
// the ones it took. The families come as the kernel's walk meets them,
// IPv4 and IPv6 mixed: holding IPv6 back until the end, as Dump does,
// would hold what Stream exists not to hold. An error from fn ends the
// dump and is returned as it is.
func (c *Collector) Stream(r *Request, batch *sock.Snapshot, min int, fn func(*sock.Snapshot) error) error {
	size := min + maxPerBatch
	batch.Sockets, batch.Infos = room(batch.Sockets, size), batch.Infos[:0]
	c.streamMin = min
	err := c.dump(r, batch, func() error {
		err := fn(batch)
		// fn may have swapped in another buffer (a spare of its own).
		batch.Sockets, batch.Infos = room(batch.Sockets, size), batch.Infos[:0]
		if err != nil {
			return &stopped{err}
		}
		return nil
	})
	if s, ok := errors.AsType[*stopped](err); ok {
		return s.err
	}
	return err
}

// room returns s emptied, with room for size sockets: a stream's batch
// holds its least and at most a kernel batch more. Grown from nothing by
// append, a batch was made again at each doubling, each time cleared
// whole (growslice clears the new capacity): in a one-shot listing every
// page is fresh, and that was a sixth of the page faults of `list state
// time-wait` at 110k sockets (perf record -e page-faults). Made at its
// size, its fresh pages are touched only as sockets fill them.
func room(s []sock.Socket, size int) []sock.Socket {
	if cap(s) < size {
		return make([]sock.Socket, 0, size)
	}
	return s[:0]
}

// stopped carries the error of Stream's callback through the dump, so that
// it is neither wrapped as the kernel's nor retried.
type stopped struct{ err error }

func (s *stopped) Error() string { return s.err.Error() }

// dump runs Dump (flush nil) or Stream (flush hands each batch on).
func (c *Collector) dump(r *Request, snap *sock.Snapshot, flush func() error) error {
	fams := r.Families
	if fams == nil {
		fams = []sock.Family{sock.IPv4, sock.IPv6}
	}
	if !c.oneWalk || len(fams) != 2 || fams[0] == fams[1] {
		return c.dumpEach(fams, r, snap, flush)
	}
	dumped := snap.Dumped
	err := c.dumpFamily(bothFamilies, r, snap, flush)
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*stopped](err); ok {
		return err
	}
	if snap.Dumped != dumped || !refused(err) {
		return &OpError{Op: "dumping", Family: bothFamilies, Err: err}
	}
	// The kernel refused the request kind, or this request (a bytecode
	// it rejects gets EINVAL too): one family at a time tells which.
	if err := c.dumpEach(fams, r, snap, flush); err != nil {
		return err
	}
	c.oneWalk = false // the kernel does not serve the first request
	return nil
}

// dumpEach dumps the families one request each.
func (c *Collector) dumpEach(fams []sock.Family, r *Request, snap *sock.Snapshot, flush func() error) error {
	for _, f := range fams {
		if err := c.dumpFamily(f, r, snap, flush); err != nil {
			if _, ok := errors.AsType[*stopped](err); ok {
				return err
			}
			return &OpError{Op: "dumping", Family: f, Err: err}
		}
	}
	return nil
}

func (c *Collector) dumpFamily(fam sock.Family, r *Request, snap *sock.Snapshot, flush func() error) error {
	c.seq++
	var err error
	c.req, err = appendRequest(c.req[:0], c.seq, fam, r)
	if err != nil {
		return err
	}
	fd := c.fd
	if err := c.send(); err != nil {
		return fmt.Errorf("sending request: %w", err)
	}
	slot, emit, open := c.into(snap)
	c.v6 = c.v6[:0]
	if fam == bothFamilies && flush == nil {
		keep := emit
		emit = func(s *sock.Socket, info []byte) bool {
			if !keep(s, info) {
				return false
			}
			if s.Family == sock.IPv6 {
				// Move it aside; its tcp_info index stays valid.
				n := len(snap.Sockets)
				c.v6 = append(c.v6, snap.Sockets[n-1])
				snap.Sockets = snap.Sockets[:n-1]
			}
			return true
		}
	}
	c.prev.reset()
	c.cur.reset()
	// failed hands on what a stream holds before it reports a fault, as
	// a stream of one kernel batch at a time would have.
	failed := func(err error) error {
		if flush != nil && len(snap.Sockets) > 0 {
			if ferr := flush(); ferr != nil {
				return ferr
			}
		}
		return err
	}
	for {
		n, err := c.recv(fd)
		if err != nil {
			c.drain(fd)
			return failed(err)
		}
		c.nextBatch()
		res, err := parseBatchInto(c.buf[:n], c.seq, slot, r.Ext != 0, emit)
		if *open {
			snap.Sockets = snap.Sockets[:len(snap.Sockets)-1] // decoding it failed
			*open = false
		}
		if err != nil {
			if res != batchDone {
				c.drain(fd)
			}
			return failed(err)
		}
		if flush != nil && len(snap.Sockets) > 0 && (len(snap.Sockets) >= c.streamMin || res == batchDone) {
			if err := flush(); err != nil {
				if res != batchDone {
					c.drain(fd)
				}
				return err
			}
		}
		if res == batchDone {
			snap.Sockets = append(snap.Sockets, c.v6...)
			return nil
		}
	}
}

// refused reports an error with which a kernel turns down a kind of
// request it does not serve.
func refused(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP)
}

// Alive asks the kernel whether the socket s names (by family, addresses,
// ports and cookie) still exists: one round trip, no dump. A TIME_WAIT
// entry counts as alive until the kernel frees it.
func (c *Collector) Alive(s *sock.Socket) (bool, error) {
	c.seq++
	c.req = appendLookup(c.req[:0], c.seq, s)
	fd := c.fd
	if err := c.send(); err != nil {
		return false, fmt.Errorf("sending lookup: %w", err)
	}
	found, answered := false, false
	emit := func(got *sock.Socket, _ []byte) bool {
		found, answered = found || got.Cookie == s.Cookie, true
		return true
	}
	var err error
	// Skip whatever a failed dump left queued: only a reply with this
	// request's sequence number answers it.
	for !answered && err == nil {
		var n int
		if n, err = c.recv(fd); err != nil {
			return false, err
		}
		var res batchResult
		res, err = parseBatchInto(c.buf[:n], c.seq, func() *sock.Socket { return &c.scratch }, false, emit)
		answered = answered || res == batchDone
	}
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ESTALE):
		return false, nil // gone, or its four-tuple now belongs to another socket
	case err != nil:
		return false, fmt.Errorf("looking up a socket: %w", err)
	}
	return found, nil
}

// MaxAliveAll is the most sockets AliveAll asks about in one request: the
// answers, 100 to 200 bytes each, then fit one read.
const MaxAliveAll = 64

// AliveAll is Alive for each of socks (at most MaxAliveAll), asked in one
// request: the kernel answers the lookups of one message in turn. At 500
// TIME_WAIT ends a second, a system call to send each lookup and one to
// read each answer were 1,200 calls a second. It returns alive with
// alive[i] for socks[i]; a lookup the kernel failed for another reason
// than the socket's absence counts as not alive, and the first such error
// is returned with the answers.
func (c *Collector) AliveAll(socks []sock.Socket, alive []bool) ([]bool, error) {
	if len(socks) > MaxAliveAll {
		return alive[:0], fmt.Errorf("%d lookups in one request: %w", len(socks), unix.E2BIG)
	}
	alive = append(alive[:0], make([]bool, len(socks))...)
	if len(socks) == 0 {
		return alive, nil
	}
	base := c.seq + 1
	c.req = c.req[:0]
	for i := range socks {
		c.seq++
		c.req = appendLookup(c.req, c.seq, &socks[i])
	}
	fd := c.fd
	if err := c.send(); err != nil {
		return alive, fmt.Errorf("sending lookups: %w", err)
	}
	answered := make([]bool, len(socks))
	left := len(socks)
	var failed error
	answer := func(i int, s *sock.Socket, err error) {
		if answered[i] {
			return
		}
		answered[i] = true
		left--
		switch {
		case err == nil:
			alive[i] = s.Cookie == socks[i].Cookie
		case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ESTALE):
			// gone, or its four-tuple now belongs to another socket
		case failed == nil:
			failed = fmt.Errorf("looking up a socket: %w", err)
		}
	}
	for left > 0 {
		n, err := c.recv(fd)
		if err != nil {
			return alive, err
		}
		if err := parseAnswers(c.buf[:n], base, len(socks), &c.scratch, answer); err != nil {
			return alive, fmt.Errorf("looking up sockets: %w", err)
		}
	}
	return alive, failed
}

// nextBatch readies the duplicate check for the next kernel batch.
func (c *Collector) nextBatch() {
	c.prev, c.cur = c.cur, c.prev
	c.cur.reset()
	c.head = true
}

// into returns where a dump into snap decodes each socket and what it
// does with it. slot is the next element of snap.Sockets itself, so a
// socket is decoded where it stays: decoding into a scratch value and
// copying it out read its fresh narrow stores back in wide loads, a stall
// the CPU pays per socket (perf annotate: most of the collector's time).
// emit keeps the socket, or gives its slot back when this dump already
// holds its cookie, and reports whether it kept it; *open says a slot was
// taken and not yet settled by emit (its decoding failed).
//
// Duplicates: the kernel resumes a dump from a (hash bucket, index)
// cursor, so when sockets are added at the head of the bucket it stopped
// in, the next batch starts again with the tail of the previous one. They
// are the head of a batch, repeating the previous batch: the set of the
// previous batch's cookies catches them, and is asked only until the first
// socket it does not hold (a batch is one walk under the buckets' locks,
// and holds no socket twice).
func (c *Collector) into(snap *sock.Snapshot) (slot func() *sock.Socket, emit func(s *sock.Socket, info []byte) bool, open *bool) {
	open = new(bool)
	slot = func() *sock.Socket {
		n := len(snap.Sockets)
		if n == cap(snap.Sockets) {
			snap.Sockets = slices.Grow(snap.Sockets, 1)
		}
		snap.Sockets = snap.Sockets[:n+1]
		*open = true
		return &snap.Sockets[n]
	}
	emit = func(s *sock.Socket, info []byte) bool {
		*open = false
		if c.head {
			if c.prev.has(s.Cookie) {
				snap.Sockets = snap.Sockets[:len(snap.Sockets)-1]
				return false
			}
			c.head = false
		}
		c.cur.add(s.Cookie)
		snap.Dumped++
		s.Netns = c.ns
		if info != nil {
			s.Info = int32(len(snap.Infos))
			snap.Infos = append(snap.Infos, sock.TCPInfo{})
			parseTCPInfo(info, &snap.Infos[s.Info])
		}
		return true
	}
	return slot, emit, open
}

// send sends c.req. The kernel answers a request within the call, and
// the first one may load the inet_diag and tcp_diag modules, or sleep on
// their locks: that one is an ordinary system call. Every later one is a
// raw call, made without telling the Go scheduler, as the reads are: an
// ordinary call wakes the runtime's monitor thread whenever the program
// was idle, and the monitor then polls every 20 µs for a millisecond or
// more. The dashboard sends twenty TIME_WAIT lookups a second from idle
// (at 110k sockets: 210 of the monitor's sleeps a second, 70 to 130 with
// raw sends, and 330 of the process's context switches a second, 150 to
// 280).
func (c *Collector) send() error {
	err := sendto(c.fd, c.req, c.sent)
	if err == nil {
		c.sent = true
	}
	return err
}

// sendto sends a request to the kernel (a netlink socket with no
// destination sends to the kernel), which handles it within the call; raw
// makes it a raw system call (see send).
func sendto(fd int, b []byte, raw bool) error {
	for {
		var errno unix.Errno
		// Direct calls: the compiler keeps b alive only for those.
		if raw {
			_, _, errno = unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
				unix.MSG_DONTWAIT, 0, 0)
		} else {
			_, _, errno = unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
				unix.MSG_DONTWAIT, 0, 0)
		}
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return errno
	}
}

// recv reads one batch, waiting at most recvTimeout. The socket is
// non-blocking (the nl package opens it so), hence the poll.
func (c *Collector) recv(fd int) (int, error) {
	deadline := time.Now().Add(c.timeout)
	for {
		n, err := c.recvFn(fd, c.buf)
		switch {
		case err == nil:
			if n == 0 {
				return 0, fmt.Errorf("receiving: %w", unix.ENODATA)
			}
			return n, nil
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			left := time.Until(deadline)
			if left <= 0 {
				return 0, fmt.Errorf("receiving: no answer from the kernel in %v: %w", c.timeout, unix.ETIMEDOUT)
			}
			c.pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
			if _, err := unix.Poll(c.pfd[:], int(left/time.Millisecond)+1); err != nil && err != unix.EINTR {
				return 0, fmt.Errorf("waiting for the kernel: %w", err)
			}
		default:
			// ENOBUFS: the kernel dropped part of the dump. The caller
			// reports it; the next dump starts afresh.
			return 0, fmt.Errorf("receiving: %w", err)
		}
	}
}

// recvDontWait is recvfrom(2) without the sender's address, which
// unix.Recvfrom would allocate on every call: a dump makes hundreds.
//
// It is a raw system call, made without telling the Go scheduler. Each
// read has the kernel fill the next batch, about 100 µs of work that
// never waits for data (MSG_DONTWAIT); made as ordinary calls, every one
// outlasts the scheduler monitor's 20 µs check, which then hands the
// goroutine's processor to another thread for nothing. At worst the
// kernel sleeps briefly on a lock, and this goroutine keeps its processor
// for that long.
func recvDontWait(fd int, b []byte) (int, error) {
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// drain reads what is left of a dump that failed half-way. It must: the
// kernel runs one dump per socket at a time and answers a new request
// with EBUSY until the old one is read to its end. Each read makes the
// kernel produce the next batch, so reading until nothing is left runs the
// old dump out; the deadline bounds it.
func (c *Collector) drain(fd int) {
	deadline := time.Now().Add(c.timeout)
	for time.Now().Before(deadline) {
		_, err := recvDontWait(fd, c.buf)
		switch err {
		case nil, unix.EINTR, unix.ENOBUFS:
		default: // EAGAIN: nothing queued and nothing being dumped
			return
		}
	}
}
