// Package source turns a filter and a namespace into snapshots: it asks the
// kernel for what the compiled filter lets it ask for, then applies the
// part the kernel could not do. Every front end reads the socket table
// through a Kernel source, so they all see the same sockets for the same
// filter; the dashboard takes it through its own small interface, so that
// package never imports netlink.
package source

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/kstat"
	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/prefault"
	"github.com/sockscope/sockscope/pkg/procnet"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/sockdiag"
	"golang.org/x/sys/unix"
)

// Options configures a Kernel source.
type Options struct {
	Netns netns.NS // the zero NS is the caller's namespace
	Info  bool     // ask for tcp_info (costly: only when it is shown)
	// Totals fills Snapshot.Total from /proc/net/sockstat; a one-shot
	// listing does not show it and skips opening those files.
	Totals bool
	// Procfs reads /proc/net/tcp and tcp6 instead of sock_diag, as Open
	// does by itself when sock_diag is not there.
	Procfs bool
	// Beside has Stream run the kernel's walk beside its reader, on a
	// goroutine of its own, when there are two processors (see
	// streamBeside): for a reader with work of its own per socket, as a
	// listing formats and writes each. A reader that only counts (the
	// exporter) would pay the handing over for nothing.
	Beside bool
}

// Kernel reads snapshots from sock_diag. It is NOT safe for concurrent use.
type Kernel struct {
	c *sockdiag.Collector // nil when reading /proc instead
	p *procnet.Reader
	// Notice says what is missing when sock_diag is not used; "" else.
	Notice string
	k      *kstat.Reader
	// prog is the filter. The goroutine of Destroys reads it too, to mark
	// the announcements the filter matches.
	prog  atomic.Pointer[filter.Program]
	req   sockdiag.Request
	opt   Options
	now   func() time.Time
	last  int // sockets in the last dump, to size the next one's slice
	spare []sock.Socket
	batch sock.Snapshot // Stream's, reused
	// beside are the batches streamBeside hands on, reused.
	beside [2]sock.Snapshot
	// destroysErr is why the announcements stopped, when a fault did it.
	destroysErr atomic.Pointer[error]
}

// DestroysErr is why the destroy announcements stopped early; nil when
// they did not (or ended with their context).
func (k *Kernel) DestroysErr() error {
	if p := k.destroysErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Recycle hands back a snapshot nobody holds any more: the next dump
// reuses its socket slice. Its Infos are not reused (frames keep them).
func (k *Kernel) Recycle(snap *sock.Snapshot) {
	if cap(snap.Sockets) >= k.last {
		k.spare = snap.Sockets
	}
	snap.Sockets = nil
}

// Open returns a Kernel source for prog in the namespace opt.Netns.
func Open(prog *filter.Program, opt Options) (*Kernel, error) {
	k := &Kernel{opt: opt, now: time.Now}
	var err error
	if !opt.Procfs {
		k.c, err = sockdiag.Open(opt.Netns)
		if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) || errors.Is(err, unix.ENOMEM) {
			// Too few descriptors or too little memory: /proc would
			// fail the same way, and its message would hide the cause.
			return nil, err
		}
		if err != nil && !opt.Netns.IsSelf() {
			// A namespace that cannot be entered (not root) is the
			// cause, not a missing sock_diag: /proc is read from inside
			// it too. Say only that.
			if nerr := opt.Netns.Run(func() error { return nil }); nerr != nil {
				return nil, nerr
			}
		}
	}
	if opt.Procfs || err != nil {
		why := "asked for"
		if err != nil {
			why = "no sock_diag: " + err.Error()
		}
		if k.p, err = procnet.Open(opt.Netns); err != nil {
			if why != "asked for" {
				return nil, fmt.Errorf("%w (and %s)", err, why)
			}
			return nil, err
		}
		k.Notice = "reading /proc/net/tcp (" + why + "): no socket cookies (ages restart when an address pair is reused), no kernel-side filter, no tcp_info, no destroy events"
	}
	k.SetProgram(prog)
	return k, nil
}

// Procfs says whether k reads /proc/net/tcp (asked for, or no sock_diag).
func (k *Kernel) Procfs() bool { return k.p != nil }

// SetProgram changes the filter for the next snapshots.
func (k *Kernel) SetProgram(prog *filter.Program) {
	k.prog.Store(prog)
	k.req = sockdiag.Request{Families: prog.Families, States: prog.States, Bytecode: prog.Bytecode}
	if k.opt.Info {
		k.req.Ext = sockdiag.ExtInfo
	}
}

// SetInfo asks for tcp_info (the costly extension) or stops asking.
func (k *Kernel) SetInfo(on bool) {
	k.opt.Info = on
	k.SetProgram(k.prog.Load())
}

// Close releases the kernel socket and files.
func (k *Kernel) Close() error {
	var kerr error
	if k.k != nil {
		kerr = k.k.Close()
	}
	if k.p != nil {
		return errors.Join(k.p.Close(), kerr)
	}
	return errors.Join(k.c.Close(), kerr)
}

// Stat returns the reader of the namespace's TCP settings and counters,
// opening it on first use.
func (k *Kernel) Stat() (*kstat.Reader, error) {
	if k.k == nil {
		r, err := kstat.Open(k.opt.Netns)
		if err != nil {
			return nil, err
		}
		k.k = r
	}
	return k.k, nil
}

// Snapshot dumps the sockets the filter selects.
func (k *Kernel) Snapshot() (*sock.Snapshot, error) {
	snap := &sock.Snapshot{Time: k.now(), Total: -1}
	// The namespace's total comes from sockstat: an unfiltered dump would
	// cost as much as the filter saves.
	if k.opt.Totals {
		snap.Total = k.Total()
	}
	prog := k.prog.Load()
	if len(prog.Families) == 0 || prog.States == 0 {
		return snap, nil // the filter can match nothing: no need to ask
	}
	// A recycled slice, or one allocation of about the right size instead
	// of a dozen doublings.
	if cap(k.spare) > 0 {
		snap.Sockets, k.spare = k.spare[:0], nil
	} else {
		size := k.last
		if size == 0 {
			// A first dump: the namespace's socket count (two small
			// /proc reads) beats a dozen doublings of a 10 MB slice.
			size = max(k.Total(), 0)
		}
		snap.Sockets = prefault.Make[sock.Socket](0, size+size/8+64, size)
	}
	if err := k.AppendTo(snap); err != nil {
		return nil, err
	}
	return snap, nil
}

// Total is the namespace's TCP socket count, matching the filter or not
// (/proc/net/sockstat); -1 when it cannot be read.
func (k *Kernel) Total() int {
	r, err := k.Stat()
	if err != nil {
		return -1
	}
	c, err := r.Sockets()
	if err != nil {
		return -1
	}
	return c.Total()
}

// AppendTo dumps the sockets the filter selects and appends them (and
// their tcp_info) to snap, leaving what snap held before untouched: a
// reader of many namespaces gathers them all into one snapshot.
func (k *Kernel) AppendTo(snap *sock.Snapshot) error {
	prog := k.prog.Load()
	if len(prog.Families) == 0 || prog.States == 0 {
		return nil // the filter can match nothing: no need to ask
	}
	start := len(snap.Sockets)
	if k.p != nil {
		if err := k.p.Dump(snap); err != nil {
			return fmt.Errorf("reading the socket table: %w", err)
		}
	} else if err := k.c.Dump(&k.req, snap); err != nil {
		return fmt.Errorf("reading the socket table: %w", err)
	}
	k.last = len(snap.Sockets) - start
	if prog.Residual || k.p != nil { // /proc has no kernel-side filter
		residual(prog, snap, start)
	}
	return nil
}

// residual drops the sockets from index start on that the part of prog the
// kernel could not run rejects.
func residual(prog *filter.Program, snap *sock.Snapshot, start int) {
	keep := snap.Sockets[:start]
	for i := start; i < len(snap.Sockets); i++ {
		if prog.Match(&snap.Sockets[i]) {
			keep = append(keep, snap.Sockets[i])
		}
	}
	snap.Sockets = keep
}

// Stream dumps the sockets the filter selects a kernel batch at a time and
// calls fn with each batch, filtered (see sockdiag.Collector.Stream): a
// one-shot listing's memory then stays that of one batch whatever the
// table's size. With Options.Beside and two processors the walk runs
// beside fn, and a batch is a few kernel batches, three at most alive
// (see streamBeside). Each batch's Time is the dump's start. fn must not
// keep the batch; its error ends the dump and is returned as it is.
// Reading /proc (no sock_diag), the whole table is one batch.
func (k *Kernel) Stream(fn func(*sock.Snapshot) error) error {
	prog := k.prog.Load()
	if len(prog.Families) == 0 || prog.States == 0 {
		return nil
	}
	if k.p != nil {
		snap, err := k.Snapshot()
		if err != nil {
			return err
		}
		return fn(snap)
	}
	batch := &k.batch
	*batch = sock.Snapshot{Time: k.now(), Total: -1, Sockets: batch.Sockets, Infos: batch.Infos}
	each := fn
	if prog.Residual {
		each = func(b *sock.Snapshot) error {
			if residual(prog, b, 0); len(b.Sockets) == 0 {
				return nil
			}
			return fn(b)
		}
	}
	var err error
	if k.opt.Beside && runtime.GOMAXPROCS(0) > 1 {
		err = k.streamBeside(batch, each)
	} else {
		err = k.c.Stream(&k.req, batch, 0, each)
	}
	if err != nil {
		if _, ok := errors.AsType[*sockdiag.OpError](err); ok {
			return fmt.Errorf("reading the socket table: %w", err)
		}
		return err
	}
	return nil
}

// streamBatch is how many sockets streamBeside hands on at once, at
// least: two kernel batches or so. Each handing over wakes the other
// goroutine's thread, and each socket a batch holds is memory both sides
// touch: `list -H` of 110k sockets took 120 ms handing on every kernel
// batch (about 330 sockets), 116 ms at 512, 127 ms at 1024 (200 more page
// faults than 512), 128 ms without the walk beside (perf stat -r 10, two
// rounds).
const streamBatch = 512

// errHandOver stops the walk of streamBeside when its caller's fn failed.
var errHandOver = errors.New("the stream's reader stopped")

// streamBeside is the collector's Stream with the kernel's walk on a
// goroutine of its own, beside fn: while fn formats and writes one batch,
// the kernel fills the next (a listing's time is mostly the kernel's
// walk and its own formatting, and a second core can take one of them).
// Three batches at most exist: the one filled, one handed on, one spare;
// the walk waits for a spare. The batches are fn's until it returns, in
// the walk's order. If fn panics, the walk is stopped and waited for
// before the panic goes on.
func (k *Kernel) streamBeside(batch *sock.Snapshot, fn func(*sock.Snapshot) error) error {
	free := make(chan *sock.Snapshot, len(k.beside))
	for i := range k.beside {
		free <- &k.beside[i]
	}
	full := make(chan *sock.Snapshot, len(k.beside))
	stop := make(chan struct{})
	var walkErr error
	go func() {
		defer close(full)
		walkErr = k.c.Stream(&k.req, batch, streamBatch, func(b *sock.Snapshot) error {
			select {
			case <-stop:
				return errHandOver // before a spare that may be there too
			default:
			}
			var next *sock.Snapshot
			select {
			case next = <-free:
			case <-stop:
				return errHandOver
			}
			filled := *b
			b.Sockets, b.Infos = next.Sockets[:0], next.Infos[:0]
			*next = filled
			full <- next // room for every batch: never waits
			return nil
		})
	}()
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			close(stop)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			halt()
			for b := range full {
				free <- b // the walk may wait for a spare
			}
			panic(r)
		}
	}()
	var err error
	for b := range full {
		if err == nil {
			if err = fn(b); err != nil {
				halt()
			}
		}
		free <- b
	}
	if err != nil {
		return err
	}
	return walkErr
}

// Alive asks the kernel whether one socket still exists, without a dump.
func (k *Kernel) Alive(s *sock.Socket) (bool, error) {
	if k.c == nil {
		return false, errors.New("no lookups without sock_diag")
	}
	return k.c.Alive(s)
}

// AliveAll is Alive for each of socks in one request (see
// sockdiag.Collector.AliveAll), MaxAliveAll at most.
func (k *Kernel) AliveAll(socks []sock.Socket, alive []bool) ([]bool, error) {
	if k.c == nil {
		return alive[:0], errors.New("no lookups without sock_diag")
	}
	return k.c.AliveAll(socks, alive)
}

// MaxAliveAll is the most sockets AliveAll takes at once.
func (k *Kernel) MaxAliveAll() int { return sockdiag.MaxAliveAll }

// Destroys joins the kernel's destroy announcements for the source's
// namespace and delivers them until ctx ends, then closes the channel.
// The tracker dates the ends of the sockets it knows by them, and reports
// the others as sockets no poll saw when the filter matches them as
// announced (in state CLOSE: a filter on other states matches none).
// Where they are not available (an old kernel, a sandbox), it returns the
// error and the caller polls without them.
func (k *Kernel) Destroys(ctx context.Context) (<-chan sock.Destroy, error) {
	out := make(chan sock.Destroy, 4096)
	done, err := k.DestroysInto(ctx, out)
	if err != nil {
		return nil, err
	}
	go func() {
		<-done
		close(out)
	}()
	return out, nil
}

// DestroysInto is Destroys onto a channel of the caller's, which it never
// closes: many namespaces share one without a goroutine between each and
// it (a hop is a wakeup per freed socket). done closes once the
// announcements have stopped and their socket is closed: at the end of
// ctx, or at a fault (DestroysErr says which).
func (k *Kernel) DestroysInto(ctx context.Context, out chan<- sock.Destroy) (done <-chan struct{}, err error) {
	if k.c == nil {
		return nil, errors.New("no destroy events without sock_diag")
	}
	sub, err := sockdiag.Subscribe(k.opt.Netns)
	if err != nil {
		return nil, err
	}
	ended := make(chan struct{})
	// The end of ctx wakes a Receive that waits: the subscription closes
	// then, not up to one wait later.
	wake := context.AfterFunc(ctx, func() {
		if err := sub.Interrupt(); err != nil {
			return // closed already: no Receive is waiting
		}
	})
	go func() {
		defer close(ended)
		defer sub.Close()
		defer wake()
		defer func() {
			// Destroy events only sharpen timings: a fault here must not
			// take down a dashboard with its terminal in raw mode. The
			// announcements stop, the monitor goes on polling and reports
			// the fault once (DestroysErr).
			if r := recover(); r != nil {
				err := fmt.Errorf("destroy events stopped: internal error: %v; times come from polling alone", r)
				k.destroysErr.Store(&err)
			}
		}()
		faults := 0 // in a row
		for ctx.Err() == nil {
			err := sub.Receive(200*time.Millisecond, func(s *sock.Socket, at time.Time) {
				d := sock.Destroy{Cookie: s.Cookie, At: at, Socket: *s, Matches: k.Matches(s)}
				select {
				case out <- d:
				case <-ctx.Done():
				}
			})
			switch {
			case err == nil, ctx.Err() != nil:
				faults = 0
				continue
			case errors.Is(err, unix.ENOBUFS):
				// Lost announcements only cost precision: the next
				// poll still sees every change.
				faults = 0
			default:
				// Any other fault (a message that does not parse, a
				// closed socket) is said once it lasts.
				if faults++; faults == maxDestroyFaults {
					err := fmt.Errorf("destroy events stopped: %w; times come from polling alone", err)
					k.destroysErr.Store(&err)
					return
				}
			}
			// A pause, so that a lasting fault does not spin.
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return ended, nil
}

// maxDestroyFaults is how many faults in a row, other than lost
// announcements, stop the destroy events.
const maxDestroyFaults = 5

// Matches says whether the filter in force matches s; safe from any
// goroutine (announcements are matched as they come).
func (k *Kernel) Matches(s *sock.Socket) bool { return k.prog.Load().Match(s) }
