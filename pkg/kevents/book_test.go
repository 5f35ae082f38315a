package kevents

import (
	"context"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/sock"
)

// The Book follows a socket from its birth to its close, keeps only the
// namespaces it is asked to, and knows the changes but not the birth of a
// socket born before it.
func TestBook(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	b := NewBook(func(ns uint32) bool { return ns == 7 })
	tr := func(cookie uint64, ns uint32, d time.Duration, from, to sock.State) *Transition {
		return &Transition{At: t0.Add(d), Cookie: cookie, Netns: ns, From: from, To: to}
	}
	b.Add(tr(1, 7, 0, sock.Close, sock.SynSent))
	b.Add(tr(1, 7, time.Millisecond, sock.SynSent, sock.Established))
	b.Add(tr(2, 7, 0, sock.Listen, sock.SynRecv)) // a listener's child
	b.Add(tr(3, 8, 0, sock.Close, sock.Listen))   // another namespace
	b.Add(tr(4, 7, 0, sock.Established, sock.CloseWait))
	if st, ok := b.Lookup(1); !ok || !st.Born.Equal(t0) || !st.Last.Equal(t0.Add(time.Millisecond)) || st.State != sock.Established {
		t.Errorf("cookie 1: %+v, %v", st, ok)
	}
	if st, ok := b.Lookup(2); !ok || st.State != sock.SynRecv {
		t.Errorf("a listener's child: %+v, %v", st, ok)
	}
	if _, ok := b.Lookup(3); ok {
		t.Error("a socket of another namespace is kept")
	}
	if st, ok := b.Lookup(4); !ok || !st.Born.IsZero() || !st.Last.Equal(t0) || st.State != sock.CloseWait {
		t.Errorf("a socket born before the Book: %+v, %v; want its change to CLOSE_WAIT and no birth", st, ok)
	}
	b.Add(tr(1, 7, time.Second, sock.FinWait2, sock.Close))
	if _, ok := b.Lookup(1); ok || b.Len() != 2 {
		t.Errorf("after cookie 1 closed: %d kept", b.Len())
	}
	// Emptied, then told of a birth again: Lookup sees it (an empty Book
	// answers without its lock).
	b.Add(tr(2, 7, time.Second, sock.SynRecv, sock.Close))
	b.Add(tr(4, 7, time.Second, sock.CloseWait, sock.Close))
	if _, ok := b.Lookup(4); ok || b.Len() != 0 {
		t.Errorf("after every socket closed: %d kept", b.Len())
	}
	b.Add(tr(5, 7, 2*time.Second, sock.Close, sock.SynSent))
	if st, ok := b.Lookup(5); !ok || !st.Born.Equal(t0.Add(2*time.Second)) {
		t.Errorf("a birth after the Book emptied: %+v, %v", st, ok)
	}

	// A namespace kept no more (gone from a Fleet's list): its sockets'
	// ends still take them out.
	kept := true
	g := NewBook(func(uint32) bool { return kept })
	g.Add(tr(6, 9, 0, sock.Close, sock.Listen))
	kept = false
	g.Add(tr(6, 9, time.Second, sock.Listen, sock.Close))
	if g.Len() != 0 {
		t.Errorf("the end of a socket of a namespace kept no more: %d kept, want 0", g.Len())
	}
}

// Sync after Run has returned (its context ended, or a read failed)
// returns at once: the poller that asks must not hang on a reader that
// is gone.
func TestSyncAfterRunEnded(t *testing.T) {
	w := &Watcher{sync: make(chan chan struct{}), ended: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx, func(*Transition) {}); err != nil {
		t.Fatal(err)
	}
	w.Sync(context.Background()) // hangs, and the test times out, if it waits
}
