// Package fleet reads many network namespaces as one: the namespaces given
// with -N, or every namespace on the host (--all-netns), found again at
// each rescan as containers come and go.
//
// A Fleet keeps one kernel source per live namespace between polls (one
// netlink socket, and the namespace's /proc files when totals or counters
// are read), opens one for each namespace that appears and closes the
// source of each that goes away, so that sockscope never keeps a dead
// container's namespace alive. Its Snapshot gathers every namespace's
// sockets into one snapshot, each socket stamped with its namespace's
// inode, so the tracker and every front end work on many namespaces as on
// one; Names tells the front ends who each namespace belongs to.
//
// A namespace that vanishes between discovery and its dump (a container
// exits) is skipped without a word; one that cannot be entered (EPERM: not
// root, or without CAP_SYS_ADMIN) is counted and said once; the others are
// read all the same.
//
// A Fleet is NOT safe for concurrent use, except Names, which any
// goroutine may call.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/nsfind"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/source"
	"golang.org/x/sys/unix"
)

// Config says which namespaces a Fleet reads, and how.
type Config struct {
	// Fixed are the namespaces to read (-N). Without All, exactly these;
	// an error in one of them is an error of the Fleet.
	Fixed []netns.NS
	// All reads every namespace on the host, found again at each rescan.
	All bool
	// Program is the filter every source starts with.
	Program *filter.Program
	// Procfs reads /proc/net/tcp instead of sock_diag.
	Procfs bool
	// Totals fills each snapshot's Total with the sum of the namespaces'.
	Totals bool
	// Destroys joins every namespace's destroy announcements (live modes).
	Destroys bool
	// Rescan is how often All looks for namespaces again; 0: at every
	// Snapshot. The descriptor walk, the dearest part of a scan, runs at
	// most every DescriptorsEvery (0: every rescan), and less often when
	// it is slow (maxDescriptorShare).
	Rescan, DescriptorsEvery time.Duration
	// Workers dumps that many namespaces at once (a one-shot listing,
	// whose wall time counts); 0 or 1: one after the other, into one
	// snapshot, which costs no second copy of the table.
	Workers int
	// Scan and Identify say where to look (tests point them at their own
	// trees); zero values are this host's.
	Scan     nsfind.Options
	Identify nsfind.IdentifyOptions
	// ListNS and InodeOfID list the namespaces in use and open one by ID
	// (tests script them); nil: nsfind's, listns(2) where the kernel has
	// it.
	ListNS    func() ([]uint64, error)
	InodeOfID func(id uint64) (uint64, error)
}

// Member is one namespace of the Fleet.
type Member struct {
	NS     netns.NS
	Found  nsfind.Namespace // what holds it (All only)
	ID     nsfind.Identity  // who it belongs to (All only)
	Source *source.Kernel
	// Since is when the Fleet first read it.
	Since time.Time
	last  int   // sockets in its last dump: the room the next one needs
	table uint8 // 0 unread, 1 the host's shared table, 2 one of its own (sharesTable)
	// counted says the latest Snapshot counted it in the walk rather
	// than dumped it (Focus).
	counted bool
	stop    context.CancelFunc // its destroy announcements
	done    <-chan struct{}    // closed once they have stopped (their socket closed)
}

// Fleet is a set of namespaces read as one.
type Fleet struct {
	cfg     Config
	ctx     context.Context
	cancel  context.CancelFunc
	prog    *filter.Program
	info    bool
	members []*Member
	byInode map[uint64]*Member
	names   atomic.Pointer[map[uint32]*nsfind.Name]

	lastScan, lastDescriptors time.Time
	descriptorsTook           time.Duration               // the last descriptor walk's
	found                     map[uint64]nsfind.Namespace // the last descriptor walk's namespaces held only by a descriptor

	// With listns(2): the inode of each namespace ID listed, and the
	// inodes in use that the last descriptor walk did not find either
	// (held by a process this one cannot see).
	ids         map[uint64]uint64
	unreachable map[uint64]bool
	noListns    bool

	destroys chan sock.Destroy
	// dctx holds the members' announcements: StopDestroys ends it, and
	// a namespace found later joins none.
	dctx  context.Context
	dstop context.CancelFunc
	// matching is the filter in force, for Matches on another goroutine.
	matching atomic.Pointer[filter.Program]
	// amu orders Announce against Close, which closes destroys.
	amu     sync.Mutex
	aclosed bool

	notes   []string
	said    map[string]bool
	denied  int // namespaces that could not be entered
	gone    int // namespaces that went away between discovery and their dump
	spare   []sock.Socket
	lastLen int
	now     func() time.Time

	// The one walk that counts the namespaces not shown (SetCounter,
	// Focus); self is the caller's own namespace's inode, once read.
	counter Counter
	focus   uint32
	focused bool
	self    uint32
}

// Open opens a source in every namespace cfg names, and with cfg.All finds
// them first. The destroy announcements (cfg.Destroys) are delivered until
// ctx ends or Close.
func Open(ctx context.Context, cfg Config) (*Fleet, error) {
	f := &Fleet{cfg: cfg, prog: cfg.Program, byInode: map[uint64]*Member{}, said: map[string]bool{}, now: time.Now}
	if f.cfg.ListNS == nil {
		f.cfg.ListNS = nsfind.ListNet
	}
	if f.cfg.InodeOfID == nil {
		f.cfg.InodeOfID = nsfind.InodeOfID
	}
	f.ctx, f.cancel = context.WithCancel(ctx)
	f.matching.Store(cfg.Program)
	if cfg.Destroys {
		f.destroys = make(chan sock.Destroy, 4096)
		f.dctx, f.dstop = context.WithCancel(f.ctx)
	}
	if cfg.All {
		// A source per namespace: a host with a thousand containers needs
		// a thousand descriptors and more. The hard limit is the
		// administrator's word; the soft one is only a default.
		if err := raiseNoFile(); err != nil {
			f.note(fmt.Sprintf("cannot raise the descriptor limit (%v): a host with many namespaces may not be read whole", err))
		}
		if err := f.rescan(true); err != nil {
			f.Close()
			return nil, err
		}
	} else {
		nss := cfg.Fixed
		if len(nss) == 0 {
			nss = []netns.NS{{}}
		}
		for _, ns := range nss {
			if err := f.add(ns, nil); err != nil {
				f.Close()
				return nil, err
			}
		}
	}
	f.publish(nil)
	return f, nil
}

func (f *Fleet) note(n string) {
	if !f.said[n] {
		f.said[n] = true
		f.notes = append(f.notes, n)
	}
}

// Notes are what a person should know, each said once, and are taken:
// the next call returns only the newer ones.
func (f *Fleet) Notes() []string {
	n := f.notes
	f.notes = nil
	return n
}

// Members are the namespaces read now, the host's first.
func (f *Fleet) Members() []*Member { return f.members }

// Names maps each namespace's inode (sock.Socket.Netns) to its name. It is
// replaced, never changed, at each rescan: safe from any goroutine.
func (f *Fleet) Names() map[uint32]*nsfind.Name {
	if p := f.names.Load(); p != nil {
		return *p
	}
	return nil
}

// List is every namespace read now, and those that went away at the last
// rescan (Gone); safe from any goroutine, like Names.
func (f *Fleet) List() []*nsfind.Name {
	names := f.Names()
	out := make([]*nsfind.Name, 0, len(names))
	for _, n := range names {
		out = append(out, n)
	}
	return out
}

// Name returns the name of the namespace with this inode, if read.
func (f *Fleet) Name(inode uint32) (*nsfind.Name, bool) {
	n, ok := f.Names()[inode]
	return n, ok
}

func (f *Fleet) publish(departed []*Member) {
	m := make(map[uint32]*nsfind.Name, len(f.members)+len(departed))
	for _, mb := range departed {
		n := nameOf(mb)
		n.Gone = true
		m[uint32(mb.NS.Inode)] = n
	}
	for _, mb := range f.members {
		m[uint32(mb.NS.Inode)] = nameOf(mb)
	}
	f.names.Store(&m)
}

func nameOf(mb *Member) *nsfind.Name {
	n := &nsfind.Name{Inode: mb.NS.Inode, Label: mb.ID.Label, Runtime: mb.ID.Runtime, Container: mb.ID.Container,
		Pod: mb.ID.PodName, PodNamespace: mb.ID.PodNamespace, PodUID: mb.ID.PodUID,
		PID: mb.ID.PID, Command: mb.ID.Command, Since: mb.Since, Host: mb.Found.Self}
	if n.Label == "" { // -N: the namespace as the command line named it
		n.Fixed = true
		n.Label = mb.NS.Label()
		if mb.NS.IsSelf() {
			n.Host = true
			if n.Label == "" {
				n.Label = "host"
			}
		}
	}
	return n
}

// add opens a source in ns; found is what discovery saw of it (All).
func (f *Fleet) add(ns netns.NS, found *nsfind.Namespace) error {
	src, err := source.Open(f.prog, source.Options{Netns: ns, Totals: f.cfg.Totals, Procfs: f.cfg.Procfs, Info: f.info, Beside: f.cfg.Workers > 1})
	if err != nil {
		return err
	}
	if src.Notice != "" {
		f.note(src.Notice)
	}
	mb := &Member{NS: ns, Source: src, Since: f.now()}
	if found != nil {
		mb.Found = *found
		mb.ID = nsfind.Identify(found, f.cfg.Identify)
	}
	if f.destroys != nil && f.dctx.Err() == nil {
		ctx, stop := context.WithCancel(f.dctx)
		mb.stop = stop
		// Straight onto the Fleet's channel: a goroutine between them
		// was a second wakeup per freed socket.
		done, err := src.DestroysInto(ctx, f.destroys)
		if err != nil {
			stop()
			if src.Notice == "" { // the /proc notice says so already
				f.note(fmt.Sprintf("no destroy events (%v); times come from polling alone", err))
			}
		} else {
			mb.done = done
		}
	}
	f.members = append(f.members, mb)
	f.byInode[ns.Inode] = mb
	return nil
}

// drop closes a member's source and stops its announcements, and waits
// until their socket is closed too: a namespace that went away must not be
// kept alive by sockscope a moment longer.
func (f *Fleet) drop(mb *Member) error {
	if mb.stop != nil {
		mb.stop()
	}
	delete(f.byInode, mb.NS.Inode)
	err := mb.Source.Close()
	if mb.done != nil {
		<-mb.done
	}
	if err != nil {
		return fmt.Errorf("closing the source of %s: %w", mb.NS, err)
	}
	return nil
}

// maxDescriptorShare bounds the time the descriptor walks take, as a
// fraction of the time between them: on a host whose processes hold
// 84,000 descriptors (a hundred servers of a thousand connections each)
// one walk took 1.2 s, which every 30 s was a fortieth of a core for as
// long as the dashboard ran.
const maxDescriptorShare = 100

// descriptorsEvery is the time between two descriptor walks:
// Config.DescriptorsEvery, or longer when a walk is slow.
func (f *Fleet) descriptorsEvery() time.Duration {
	return max(f.cfg.DescriptorsEvery, maxDescriptorShare*f.descriptorsTook)
}

// Rescan finds the namespaces again (All only): it opens a source in each
// new one and closes the sources of those no longer there.
func (f *Fleet) Rescan() error {
	if !f.cfg.All {
		return nil
	}
	return f.rescan(false)
}

func (f *Fleet) rescan(first bool) error {
	now := f.now()
	inUse := f.inUse()
	opt := f.cfg.Scan
	opt.Descriptors = first || f.cfg.DescriptorsEvery == 0 || now.Sub(f.lastDescriptors) >= f.descriptorsEvery()
	start := time.Now()
	found, err := nsfind.Scan(opt)
	if err == nil && !opt.Descriptors && f.unseen(found, inUse) {
		// The kernel lists a namespace that neither this scan nor the
		// last walk found: held only by a descriptor since. Walk the
		// descriptors now rather than at their turn, so that it is read
		// from this poll on.
		opt.Descriptors = true
		found, err = nsfind.Scan(opt)
	}
	if err != nil {
		return fmt.Errorf("finding the network namespaces: %w", err)
	}
	f.lastScan = now
	if opt.Descriptors {
		f.lastDescriptors, f.descriptorsTook = now, time.Since(start)
		// Remember the namespaces only a descriptor holds: the cheaper
		// scans in between do not see them, and they have not gone.
		f.found = map[uint64]nsfind.Namespace{}
		for _, n := range found {
			if len(n.Names) == 0 && len(n.Mounts) == 0 && len(n.PIDs) == 0 && !n.Self {
				f.found[n.Inode] = n
			}
		}
		f.unreachable = map[uint64]bool{}
		have := inodes(found)
		for ino := range inUse {
			if !have[ino] {
				f.unreachable[ino] = true
			}
		}
	} else {
		for ino, n := range f.found {
			if inUse != nil && !inUse[ino] {
				// The kernel no longer lists it: its last descriptor
				// closed, and it goes now, not at the next walk.
				delete(f.found, ino)
				continue
			}
			if !slices.ContainsFunc(found, func(m nsfind.Namespace) bool { return m.Inode == ino }) {
				found = append(found, n)
			}
		}
	}
	live := make(map[uint64]bool, len(found))
	for i := range found {
		n := &found[i]
		live[n.Inode] = true
		if mb, ok := f.byInode[n.Inode]; ok {
			f.refresh(mb, n)
			continue
		}
		if err := f.join(n); err != nil {
			return err
		}
	}
	var departed []*Member
	keep := f.members[:0]
	var errs []error
	for _, mb := range f.members {
		if live[mb.NS.Inode] {
			keep = append(keep, mb)
			continue
		}
		departed = append(departed, mb)
		if err := f.drop(mb); err != nil {
			errs = append(errs, err)
		}
	}
	clear(f.members[len(keep):])
	f.members = keep
	f.publish(departed)
	return errors.Join(errs...)
}

// inUse returns the inodes of the network namespaces the kernel lists as
// in use (listns(2)), or nil where it cannot list them. Each ID is opened
// once in its life, to learn its inode.
func (f *Fleet) inUse() map[uint64]bool {
	if f.noListns {
		return nil
	}
	ids, err := f.cfg.ListNS()
	if err != nil {
		// Without listns (before Linux 6.19) the descriptor walk alone
		// finds the namespaces only a descriptor holds, at its turn.
		f.noListns = errors.Is(err, nsfind.ErrNoListns)
		return nil
	}
	known := make(map[uint64]uint64, len(ids))
	inodes := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		ino, ok := f.ids[id]
		if !ok {
			ino, err = f.cfg.InodeOfID(id)
			switch {
			case errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESTALE):
				continue // gone since it was listed
			case err != nil:
				// Not ours to open (no CAP_SYS_ADMIN): a listing that
				// cannot be matched to inodes is no listing.
				f.noListns = true
				return nil
			}
		}
		known[id] = ino
		inodes[ino] = true
	}
	f.ids = known
	return inodes
}

// unseen reports whether the kernel lists a namespace in use that found,
// the last walk and what it could not reach all lack.
func (f *Fleet) unseen(found []nsfind.Namespace, inUse map[uint64]bool) bool {
	if len(inUse) == 0 {
		return false
	}
	have := inodes(found)
	for ino := range inUse {
		if _, ok := f.found[ino]; !ok && !have[ino] && !f.unreachable[ino] {
			return true
		}
	}
	return false
}

func inodes(found []nsfind.Namespace) map[uint64]bool {
	m := make(map[uint64]bool, len(found))
	for i := range found {
		m[found[i].Inode] = true
	}
	return m
}

// refresh keeps a member's identity current: the process it was named
// after may have exited, and a name or mount may have been added.
func (f *Fleet) refresh(mb *Member, n *nsfind.Namespace) {
	same := slices.Equal(mb.Found.Names, n.Names) && slices.Equal(mb.Found.Mounts, n.Mounts) &&
		(mb.ID.PID == 0 || slices.Contains(n.PIDs, mb.ID.PID)) && (mb.ID.PID != 0 || len(n.PIDs) == 0)
	mb.Found = *n
	if !same {
		mb.ID = nsfind.Identify(n, f.cfg.Identify)
	}
}

// join opens a source in a namespace discovery found. One that went away
// meanwhile is skipped; one that cannot be entered is counted and said.
func (f *Fleet) join(n *nsfind.Namespace) error {
	ns := netns.NS{Arg: n.Path, Path: n.Path, Inode: n.Inode}
	if n.Self {
		ns = netns.NS{Inode: n.Inode}
	}
	err := f.add(ns, n)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		f.denied++
		if f.denied == 1 { // said once, however many there are
			f.note(fmt.Sprintf("cannot enter some network namespaces (%v); the others are read (entering one needs CAP_SYS_ADMIN)", err))
		}
		return nil
	case errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE):
		f.note(fmt.Sprintf("out of descriptors (%v): some namespaces are not read; raise the hard limit (ulimit -Hn)", err))
		return nil
	case vanished(n):
		f.gone++
		return nil
	}
	return fmt.Errorf("namespace %s: %w", n.Path, err)
}

// vanished reports whether the namespace discovery found is gone: its
// path opens nothing, or another namespace.
func vanished(n *nsfind.Namespace) bool {
	if n.Self {
		return false
	}
	var st unix.Stat_t
	if err := unix.Stat(n.Path, &st); err != nil {
		return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EINVAL)
	}
	return st.Ino != n.Inode
}

// Gone is how many namespaces went away between discovery and their first
// dump since the Fleet opened.
func (f *Fleet) Gone() int { return f.gone }

// Denied is how many namespaces could not be entered.
func (f *Fleet) Denied() int { return f.denied }

// Snapshot rescans when due (All), then dumps every namespace into one
// snapshot, the sockets of each stamped with its inode.
func (f *Fleet) Snapshot() (*sock.Snapshot, error) {
	if f.cfg.All && f.now().Sub(f.lastScan) >= f.cfg.Rescan {
		if err := f.rescan(false); err != nil {
			return nil, err
		}
	}
	snap := &sock.Snapshot{Time: f.now(), Total: -1}
	for _, mb := range f.members {
		mb.counted = false
	}
	if f.counting() {
		if err := f.count(snap); err != nil {
			// This poll dumps every namespace; the next walks again.
			f.note(fmt.Sprintf("every namespace dumped: %v", err))
			snap.Read, snap.Counted, snap.Total = nil, nil, -1
			for _, mb := range f.members {
				mb.counted = false
			}
		}
	}
	if cap(f.spare) > 0 {
		snap.Sockets, f.spare = f.spare[:0], nil
	} else {
		snap.Sockets = make([]sock.Socket, 0, f.lastLen+f.lastLen/8)
	}
	errs := f.dump(snap)
	if err := f.settle(errs); err != nil {
		return nil, err
	}
	if f.cfg.Totals {
		for _, mb := range f.members {
			if mb.counted {
				continue // in the total already
			}
			if t := mb.Source.Total(); t >= 0 {
				snap.Total = max(snap.Total, 0) + t
			}
		}
	}
	f.lastLen = len(snap.Sockets)
	return snap, nil
}

// Stream rescans when due (All), then streams every namespace's sockets,
// one namespace after the other, a kernel batch at a time (see
// source.Kernel.Stream): a one-shot listing of a thousand namespaces holds
// one batch, not the host's table. A namespace that fails is handled as
// Snapshot does; the rows it gave before it failed have been handed on.
func (f *Fleet) Stream(fn func(*sock.Snapshot) error) error {
	if f.cfg.All && f.now().Sub(f.lastScan) >= f.cfg.Rescan {
		if err := f.rescan(false); err != nil {
			return err
		}
	}
	if workers := min(f.cfg.Workers, len(f.members)); workers > 1 {
		return f.streamAhead(fn, workers)
	}
	errs := make([]error, len(f.members))
	for i, mb := range f.members {
		var stop error
		errs[i] = mb.Source.Stream(func(b *sock.Snapshot) error {
			stop = fn(b)
			return stop
		})
		if stop != nil {
			return stop // the caller's own: not this namespace's fault
		}
	}
	return f.settle(errs)
}

// ahead is one namespace dumped ahead of the caller.
type ahead struct {
	snap sock.Snapshot
	err  error
}

// streamAhead is Stream with workers namespaces dumped at once (the
// kernel's walk of its tables is most of a dump's time), each whole into
// a snapshot of its own, then handed on in the members' order, one
// namespace per call. At most workers+1 snapshots exist, reused from
// namespace to namespace: memory grows with the largest namespaces, not
// with the host's table.
func (f *Fleet) streamAhead(fn func(*sock.Snapshot) error, workers int) error {
	n := len(f.members)
	ready := make([]chan *ahead, n)
	for i := range ready {
		ready[i] = make(chan *ahead, 1)
	}
	free := make(chan *ahead, workers+1)
	for range workers + 1 {
		free <- new(ahead)
	}
	done := make(chan struct{})
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				// A snapshot first, then a namespace: the namespace the
				// caller waits for always has a snapshot to fill.
				var a *ahead
				select {
				case a = <-free:
				case <-done:
					return
				}
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				mb := f.members[i]
				a.snap = sock.Snapshot{Time: f.now(), Total: -1, Sockets: a.snap.Sockets[:0], Infos: a.snap.Infos[:0]}
				reserve(&a.snap, mb.last)
				a.err = appendTo(mb.Source, &a.snap)
				mb.last = len(a.snap.Sockets)
				ready[i] <- a
			}
		})
	}
	errs := make([]error, n)
	var stop error
	for i := 0; i < n && stop == nil; i++ {
		a := <-ready[i]
		if errs[i] = a.err; a.err == nil && len(a.snap.Sockets) > 0 {
			stop = fn(&a.snap)
		}
		free <- a
	}
	close(done)
	wg.Wait()
	if stop != nil {
		return stop // the caller's own: not a namespace's fault
	}
	return f.settle(errs)
}

// appendTo is k.AppendTo with a panic made the namespace's error: a fault
// in one namespace's dump, on a worker's goroutine, must not end the
// process (and leave a dashboard's terminal raw) while the others are
// fine.
func appendTo(k *source.Kernel, snap *sock.Snapshot) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error in its dump: %v", r)
		}
	}()
	return k.AppendTo(snap)
}

// settle handles the members' dump errors (errs[i] is member i's): the
// host's, or any when namespaces were picked (not All), is the whole
// read's; another namespace's is noted and the namespace left out until a
// rescan finds it again.
func (f *Fleet) settle(errs []error) error {
	var failed []*Member
	for i, mb := range f.members {
		if err := errs[i]; err != nil {
			if !f.cfg.All || mb.Found.Self {
				return fmt.Errorf("namespace %s: %w", nameOf(mb).Label, err)
			}
			// One container's namespace must not take the host's view
			// down.
			f.note(fmt.Sprintf("namespace %s: %v; left out", nameOf(mb).Label, err))
			failed = append(failed, mb)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	f.members = slices.DeleteFunc(f.members, func(mb *Member) bool { return slices.Contains(failed, mb) })
	var derrs []error
	for _, mb := range failed {
		derrs = append(derrs, f.drop(mb))
	}
	f.publish(failed)
	if err := errors.Join(derrs...); err != nil {
		f.note(err.Error())
	}
	return nil
}

// dump appends the sockets of every member not counted to snap, in the
// members' order, and returns each member's error.
func (f *Fleet) dump(snap *sock.Snapshot) []error {
	errs := make([]error, len(f.members))
	workers := min(f.cfg.Workers, len(f.members))
	if workers <= 1 || snap.Read != nil {
		for i, mb := range f.members {
			if mb.counted {
				continue
			}
			// Room before each namespace, doubling: append's own growth
			// of a large slice (a quarter at a time) would copy it a
			// dozen times, each copy fresh memory.
			reserve(snap, max(mb.last, 256))
			n := len(snap.Sockets)
			errs[i] = appendTo(mb.Source, snap)
			mb.last = len(snap.Sockets) - n
		}
		return errs
	}
	// Each namespace into a snapshot of its own, several at once (the
	// kernel's walk of its socket tables is most of a dump's time), then
	// one copy in order into snap.
	parts := make([]sock.Snapshot, len(f.members))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(f.members) {
					return
				}
				parts[i].Sockets = make([]sock.Socket, 0, max(f.members[i].last, 1024))
				errs[i] = appendTo(f.members[i].Source, &parts[i])
			}
		})
	}
	wg.Wait()
	total := 0
	for i := range parts {
		total += len(parts[i].Sockets)
	}
	reserve(snap, total)
	for i := range parts {
		p := &parts[i]
		base := int32(len(snap.Infos))
		start := len(snap.Sockets)
		snap.Sockets = append(snap.Sockets, p.Sockets...)
		if len(p.Infos) > 0 {
			for j := start; j < len(snap.Sockets); j++ {
				if snap.Sockets[j].Info >= 0 {
					snap.Sockets[j].Info += base
				}
			}
			snap.Infos = append(snap.Infos, p.Infos...)
		}
		snap.Dumped += p.Dumped
		f.members[i].last = len(p.Sockets)
	}
	return errs
}

// reserve makes room for n more sockets in snap, at least doubling.
func reserve(snap *sock.Snapshot, n int) {
	if cap(snap.Sockets)-len(snap.Sockets) >= n {
		return
	}
	grown := make([]sock.Socket, len(snap.Sockets), max(2*cap(snap.Sockets), len(snap.Sockets)+n))
	copy(grown, snap.Sockets)
	snap.Sockets = grown
}

// Recycle hands back a snapshot nobody holds any more.
func (f *Fleet) Recycle(snap *sock.Snapshot) {
	if cap(snap.Sockets) >= f.lastLen {
		f.spare = snap.Sockets
	}
	snap.Sockets = nil
}

// SetProgram changes the filter of every namespace, and of those to come.
func (f *Fleet) SetProgram(p *filter.Program) {
	f.prog = p
	f.matching.Store(p)
	for _, mb := range f.members {
		mb.Source.SetProgram(p)
	}
}

// SetInfo asks every namespace for tcp_info, or stops asking.
func (f *Fleet) SetInfo(on bool) {
	f.info = on
	for _, mb := range f.members {
		mb.Source.SetInfo(on)
	}
}

// Alive asks the socket's own namespace whether it still exists.
func (f *Fleet) Alive(s *sock.Socket) (bool, error) {
	for _, mb := range f.members {
		if uint32(mb.NS.Inode) == s.Netns {
			return mb.Source.Alive(s)
		}
	}
	return false, nil // its namespace is gone, and the socket with it
}

// Destroys is every namespace's destroy announcements on one channel; nil
// without Config.Destroys. It closes after Close.
func (f *Fleet) Destroys() <-chan sock.Destroy {
	if f.destroys == nil {
		return nil
	}
	return f.destroys
}

// StopDestroys leaves every namespace's destroy announcements, now and at
// later rescans: the kernel's own events tell the ends instead (see
// session.KernelEnds). Destroys stays open until Close. Safe from any
// goroutine.
func (f *Fleet) StopDestroys() {
	if f.dstop != nil {
		f.dstop()
	}
}

// Matches says whether the filter in force matches s; safe from any
// goroutine.
func (f *Fleet) Matches(s *sock.Socket) bool { return f.matching.Load().Match(s) }

// Announce hands the tracker an end the kernel's events saw, on Destroys,
// as if announced; it drops it when the tracker is that far behind (the
// next poll still sees the end) or after Close. Safe from any goroutine.
func (f *Fleet) Announce(d sock.Destroy) {
	f.amu.Lock()
	defer f.amu.Unlock()
	if f.aclosed || f.destroys == nil {
		return
	}
	select {
	case f.destroys <- d:
	default:
	}
}

// Close stops the announcements and closes every source.
func (f *Fleet) Close() error {
	f.cancel()
	var errs []error
	for _, mb := range f.members {
		if err := f.drop(mb); err != nil {
			errs = append(errs, err)
		}
	}
	f.members = nil
	f.amu.Lock()
	defer f.amu.Unlock()
	if !f.aclosed && f.destroys != nil {
		close(f.destroys)
	}
	f.aclosed = true
	return errors.Join(errs...)
}

// raiseNoFile raises the soft descriptor limit to the hard one.
func raiseNoFile() error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur >= lim.Max {
		return nil
	}
	lim.Cur = lim.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("setrlimit: %w", err)
	}
	return nil
}
