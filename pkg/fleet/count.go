package fleet

import (
	"fmt"

	"github.com/sockscope/sockscope/pkg/kstat"
	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/tablecount"
)

// Counter counts many namespaces' sockets in one walk of the kernel's
// tables (tablecount.Counter).
type Counter interface {
	SetStates(sock.StateMask)
	Count(inodes []uint32) (*tablecount.Walk, error)
}

// SetCounter lets Snapshot count the namespaces it need not dump (Focus)
// in one walk of the kernel's tables, rather than dump each: every dump
// of a namespace walks the host's whole shared table, so a hundred
// namespaces cost a hundred walks of every socket on the host. nil: every
// namespace is dumped. The Fleet does not close it.
func (f *Fleet) SetCounter(c Counter) {
	f.counter = c
	if c != nil {
		// Every state, so that the totals come from the walk too; the
		// filter's states are kept here (count).
		c.SetStates(sock.AllStates)
	}
}

// Focus says which namespace's sockets the caller shows (its inode as the
// sockets are stamped), or none (0): with a Counter, and a filter on
// states alone, Snapshot dumps that namespace (and any with a table of
// its own, which the walk cannot count) and counts the others
// (sock.Snapshot.Read and Counted). Without them, or when a walk fails,
// every namespace is dumped as before.
func (f *Fleet) Focus(ino uint32) {
	f.focus, f.focused = ino, true
}

// Unfocus dumps every namespace again.
func (f *Fleet) Unfocus() { f.focused = false }

// counting says whether the next Snapshot counts rather than dumps.
func (f *Fleet) counting() bool {
	return f.focused && f.counter != nil && f.prog.StatesOnly()
}

// walkInode is the inode the walk knows mb's namespace by: the sockets of
// the caller's own namespace are stamped 0, the walk has its real inode.
func (f *Fleet) walkInode(mb *Member) (uint32, error) {
	if !mb.NS.IsSelf() {
		return uint32(mb.NS.Inode), nil
	}
	if f.self == 0 {
		self, err := netns.Self()
		if err != nil {
			return 0, err
		}
		f.self = uint32(self.Inode)
	}
	return f.self, nil
}

// sharesTable reads once whether mb's connections are in the host's
// shared table. What cannot be read counts as a table of its own, which
// is dumped.
func sharesTable(mb *Member) bool {
	if mb.table == 0 {
		mb.table = 2
		if r, err := mb.Source.Stat(); err == nil {
			if shared, err := r.SharesHostTable(); err == nil && shared {
				mb.table = 1
			}
		} else if shared, err := kstat.SharesHostTable(mb.NS); err == nil && shared {
			mb.table = 1
		}
	}
	return mb.table == 1
}

// count walks the kernel's tables once for every member and fills
// snap.Counted with the counts of those it covers and need not dump (each
// marked counted), snap.Read with the others, and snap.Total with the
// counted ones' sockets in any state.
func (f *Fleet) count(snap *sock.Snapshot) error {
	inodes := make([]uint32, len(f.members))
	for i, mb := range f.members {
		ino, err := f.walkInode(mb)
		if err != nil {
			return fmt.Errorf("counting every namespace in one walk: %w", err)
		}
		inodes[i] = ino
	}
	w, err := f.counter.Count(inodes)
	if err != nil {
		return err
	}
	snap.Read = make([]uint32, 0, 1)
	snap.Counted = make(map[uint32]sock.StateCounts, len(f.members))
	for i, mb := range f.members {
		stamp := uint32(mb.NS.Inode)
		c := w.Counts[inodes[i]]
		if stamp == 0 || stamp == f.focus || c == nil || !w.Covers(inodes[i], sharesTable(mb)) {
			snap.Read = append(snap.Read, stamp)
			continue
		}
		var sc sock.StateCounts
		c.Each(nil, func(_ uint16, _ sock.Family, st sock.State, n uint32) {
			if f.prog.States.Has(st) {
				sc[st&15] += int(n)
			}
			snap.Total = max(snap.Total, 0) + int(n)
		})
		snap.Counted[stamp] = sc
		mb.counted = true
	}
	return nil
}
