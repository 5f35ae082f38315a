package kevents

import (
	"sync"
	"sync/atomic"

	"github.com/sockscope/sockscope/pkg/sock"
)

// Book keeps, for each live socket the kernel changed while it listens,
// what the transitions told: its birth (when it was born meanwhile), its
// last change and its state. It is what the agent's map holds, for one
// run: the live modes date every socket born while they run without an
// agent, and every change of the older ones. Safe for concurrent use.
type Book struct {
	keep func(netns uint32) bool
	mu   sync.Mutex
	m    map[uint64]Stamp
	// n is len(m), for a Lookup without the lock while m is empty: the
	// first frame of a million sockets asks for each one's birth before
	// the kernel's events have told anything.
	n atomic.Int64
}

// NewBook returns a Book of the sockets in the namespaces keep accepts.
func NewBook(keep func(netns uint32) bool) *Book {
	return &Book{keep: keep, m: map[uint64]Stamp{}}
}

// Add records one transition: a birth (from CLOSE, or a listener's child
// made in SYN_RECV), a change, or the close that ends the entry. A change
// of a socket born before the Book keeps no birth (Born is zero).
func (b *Book) Add(t *Transition) {
	// An end is taken whatever its namespace: one kept no more (a
	// Fleet's namespace gone from its list) would keep its sockets'
	// entries for ever.
	if t.To != sock.Close && !b.keep(t.Netns) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case t.To == sock.Close:
		delete(b.m, t.Cookie)
	case t.From == sock.Close || (t.From == sock.Listen && t.To == sock.SynRecv):
		b.m[t.Cookie] = Stamp{Born: t.At, Last: t.At, State: t.To}
	default:
		st := b.m[t.Cookie]
		st.Last, st.State = t.At, t.To
		b.m[t.Cookie] = st
	}
	b.n.Store(int64(len(b.m)))
}

// Lookup returns a socket's stamp, if the Book saw it born or changed.
func (b *Book) Lookup(cookie uint64) (Stamp, bool) {
	if b.n.Load() == 0 {
		return Stamp{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st, ok := b.m[cookie]
	return st, ok
}

// Len is how many live sockets the Book holds.
func (b *Book) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}
