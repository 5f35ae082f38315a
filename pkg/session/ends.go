package session

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/source"
)

// ends is one Target's channel of announcements: the destroy events'
// subscription feeds it until KernelEnds takes its place.
type ends struct {
	ch     chan sock.Destroy
	src    *source.Kernel
	stop   context.CancelFunc // the subscription
	kernel atomic.Bool        // KernelEnds took over: the channel stays open
	mu     sync.Mutex         // orders send against close
	closed bool
}

// subscribe joins src's announcements onto a channel of the session's.
// The channel closes with the session (ctx), or when a fault ends the
// subscription (the monitor then says why), but not when KernelEnds stops
// the subscription: the kernel's events go on through it.
func subscribe(ctx context.Context, src *source.Kernel) (*ends, error) {
	e := &ends{ch: make(chan sock.Destroy, 4096), src: src}
	sctx, stop := context.WithCancel(ctx)
	done, err := src.DestroysInto(sctx, e.ch)
	if err != nil {
		stop()
		return nil, err
	}
	e.stop = stop
	go func() {
		<-done
		if e.kernel.Load() {
			<-ctx.Done()
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		e.closed = true
		close(e.ch)
	}()
	return e, nil
}

// send hands on d unless the channel is closed or full: the tracker that
// far behind still sees the end at the next poll.
func (e *ends) send(d sock.Destroy) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	select {
	case e.ch <- d:
	default:
	}
}

// KernelEnds is for a live mode whose kernel events (pkg/kevents) run in
// the namespaces it reads: they see every socket's change to CLOSE, dated
// by the kernel, which is what a destroy announcement says (a full socket
// freed), later and by the time it was read. KernelEnds leaves the
// announcements' subscriptions, of every namespace now and of those a
// rescan finds later, and returns the function through which the kernel's
// ends take their place on Destroys: end(sk, at) for a socket sk (its
// namespace's inode in sk.Netns, as the events give it) that closed at at.
// sk is a value: a pointer through a function value escapes, and the
// ends of a busy host came to a quarter of a megabyte of garbage a second.
// Each namespace's subscription woke a reader per freed socket, the
// events' reader wakes on a timer: on a host of 100 namespaces that was
// 800 wakeups a second.
//
// It returns nil when the session delivers no announcements. end is safe
// from any goroutine, and does nothing after Close.
func (s *Session) KernelEnds() (end func(sk sock.Socket, at time.Time), err error) {
	if f := s.Fleet; f != nil {
		if f.Destroys() == nil {
			return nil, nil
		}
		f.StopDestroys()
		var m matcher
		return func(sk sock.Socket, at time.Time) {
			if n, ok := f.Name(sk.Netns); !ok || n.Gone {
				return // a namespace not read (the events may see every one)
			}
			f.Announce(sock.Destroy{Cookie: sk.Cookie, At: at, Socket: sk, Matches: m.match(f.Matches, sk)})
		}, nil
	}
	// A Target's sockets carry its namespace's inode as it was named:
	// none (0) for the caller's own, which the events name by its inode.
	type route struct {
		inode, stamp uint32
		e            *ends
	}
	var routes []route
	for _, t := range s.Targets {
		if t.ends == nil {
			continue
		}
		ino := t.NS.Inode
		if ino == 0 {
			self, err := netns.Self()
			if err != nil {
				return nil, fmt.Errorf("taking ends from the kernel's events: %w", err)
			}
			ino = self.Inode
		}
		routes = append(routes, route{inode: uint32(ino), stamp: uint32(t.NS.Inode), e: t.ends})
	}
	if len(routes) == 0 {
		return nil, nil
	}
	for _, r := range routes {
		r.e.kernel.Store(true)
		r.e.stop()
	}
	var m matcher
	return func(sk sock.Socket, at time.Time) {
		for _, r := range routes {
			if r.inode == sk.Netns {
				sk.Netns = r.stamp
				r.e.send(sock.Destroy{Cookie: sk.Cookie, At: at, Socket: sk, Matches: m.match(r.e.src.Matches, sk)})
				return
			}
		}
	}, nil
}

// matcher matches a socket held by value against a filter, which takes a
// pointer it may keep (an interface call): the socket is copied to a
// scratch one rather than moved to the heap at every end.
type matcher struct {
	mu      sync.Mutex
	scratch sock.Socket
}

func (m *matcher) match(matches func(*sock.Socket) bool, sk sock.Socket) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.scratch = sk
	return matches(&m.scratch)
}
