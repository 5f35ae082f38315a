package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/kevents"
	"github.com/sockscope/sockscope/pkg/session"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

// kernelFeed turns the kernel's transitions into watch's events: each
// step of every socket the filter selects in the namespaces read, dated
// by the kernel. The poll's events for the same steps are then redundant:
// redundant says which to leave out. Ends (a change to CLOSE) are left to
// the poll, which says what a socket became (freed, or a TIME_WAIT entry
// the kernel's tracepoint does not show), dated by the same change to
// CLOSE (kernelEnds, in place of the destroy announcements).
type kernelFeed struct {
	start time.Time
	prog  *filter.Program
	inNS  func(ino uint32) bool
	// last is each live socket's last transition, by cookie, from the
	// kernel; a socket leaves it at its change to CLOSE, for closed.
	last map[uint64]told
	// closed are the sockets the kernel closed, until the poll says what
	// each became: a TIME_WAIT entry keeps the socket's cookie, and its
	// change into TIME_WAIT is the close.
	closed map[uint64]closing
	// held are births the kernel told, kept for a poll to name their
	// owner (watch -p): the kernel's event has none. A birth is told as
	// the poll's event, dated by the kernel all the same, or as the
	// kernel's when the socket changes again first, or when a poll
	// after it does not show it.
	held map[uint64]heldBirth
	hold bool
	// lost counts the kernel's lost events (kevents.Watcher.Lost); set
	// once they run. After a loss, a socket the kernel has not told of
	// may be one whose birth was lost: not surely older than the watch.
	lost func() (uint64, error)
	sk   sock.Socket // event's socket, reused
	// prevPoll is the time of the poll prune saw last: a close before it
	// has had that poll and the next to be claimed.
	prevPoll time.Time
}

// told is what the kernel told of a socket: its last change, and every
// state it told the socket came into. A change whose news was lost (a
// full ring) then shows: the poll's change into a state not told.
type told struct {
	at    time.Time
	state sock.State
	into  uint32    // bit s: a change into state s was told
	born  time.Time // its birth, when told (zero: not told)
}

type heldBirth struct {
	ev track.Event
	sk sock.Socket
}

type closing struct {
	at, last time.Time // the close, and the change before it (zero: unknown)
	born     time.Time // the socket's birth, when told
	from     sock.State
	into     uint32 // the states the kernel told it came into (told.into)
	lost     bool   // a change between last and at was lost: no exact time in from
	lossy    bool   // events were lost before it: an unknown last may be a lost birth
}

// twTimerSlack is how far the TIME_WAIT timer's date of an entry may lie
// from the kernel's clock: its milliseconds count jiffies (4 ms at 250 Hz)
// and the timer wheel rounds.
const twTimerSlack = 20 * time.Millisecond

// closedFor is how long a close waits at least for the poll to show what
// it became, and longer when polls are further apart (see prune).
const closedFor = 2 * time.Minute

// newKernelFeed returns the feed of the namespaces inNS accepts; with
// owners (watch -p), births wait for a poll to name theirs (held).
func newKernelFeed(prog *filter.Program, inNS func(uint32) bool, owners bool) *kernelFeed {
	return &kernelFeed{start: time.Now(), prog: prog, inNS: inNS, last: map[uint64]told{}, closed: map[uint64]closing{},
		held: map[uint64]heldBirth{}, hold: owners}
}

// events hands emit the events watch prints for a kernel transition: none,
// one, or a held birth and then the change that ends its wait.
func (k *kernelFeed) events(tr *kevents.Transition, emit func(*track.Event)) {
	if h, ok := k.held[tr.Cookie]; ok {
		delete(k.held, tr.Cookie)
		h.ev.Entry.Socket = &h.sk
		emit(&h.ev)
	}
	ev, ok := k.event(tr, &k.sk)
	if !ok {
		return
	}
	if ev.Kind == track.EventNew && k.hold {
		k.held[tr.Cookie] = heldBirth{ev: ev, sk: *ev.Entry.Socket}
		return
	}
	emit(&ev)
}

// flushHeld tells the births a poll that began at polled did not show
// (one it missed, or its first, which tells no births): as the kernel's.
func (k *kernelFeed) flushHeld(polled time.Time, emit func(*track.Event)) {
	var due []heldBirth
	for cookie, h := range k.held {
		if h.ev.At.Before(polled) {
			delete(k.held, cookie)
			due = append(due, h)
		}
	}
	slices.SortFunc(due, func(a, b heldBirth) int { return a.ev.At.Compare(b.ev.At) })
	for i := range due {
		due[i].ev.Entry.Socket = &due[i].sk
		emit(&due[i].ev)
	}
}

// event returns the event of a kernel transition, and false for one watch
// does not print (another namespace, outside the filter, an end). s is
// where the event's socket is kept: the caller's, reused.
func (k *kernelFeed) event(tr *kevents.Transition, s *sock.Socket) (track.Event, bool) {
	prev, known := k.last[tr.Cookie]
	if tr.To == sock.Close {
		// Whatever its namespace: one watched no more would keep its
		// sockets in last for ever.
		delete(k.last, tr.Cookie)
		if k.inNS(tr.Netns) {
			// A change between the last told and this one was lost
			// when the states differ: the time in From is then at
			// most since the last told.
			k.closed[tr.Cookie] = closing{at: tr.At, last: prev.at, born: prev.born, from: tr.From,
				into: prev.into, lost: known && prev.state != tr.From, lossy: !known && k.lossy()}
		}
		return track.Event{}, false
	}
	if !k.inNS(tr.Netns) {
		return track.Event{}, false
	}
	*s = tr.Socket()
	matches := k.prog.Match(s)
	if !matches && tr.From != sock.Close {
		// A change out of a selected state counts too.
		from := *s
		from.State = tr.From
		matches = k.prog.Match(&from)
	}
	// A socket is born into SYN_SENT or LISTEN (from CLOSE), or as a
	// listener's child in SYN_RECV (from LISTEN, the state it is cloned
	// in).
	birth := tr.From == sock.Close || (tr.From == sock.Listen && tr.To == sock.SynRecv)
	born := prev.born
	if birth {
		born = tr.At
	}
	k.last[tr.Cookie] = told{at: tr.At, state: tr.To, into: prev.into | 1<<tr.To, born: born}
	if !matches {
		return track.Event{}, false
	}
	ev := track.Event{Kind: track.EventChange, At: tr.At, Exact: true, Entry: track.Entry{Socket: s},
		From: tr.From, To: tr.To}
	if birth {
		ev.Kind, ev.From = track.EventNew, 0
		return ev, true
	}
	switch {
	case known && prev.state == tr.From:
		ev.InState, ev.InStateExact = tr.At.Sub(prev.at), true
	case known:
		// The change into From was lost (a full ring): it came after
		// the last one told, so this is an upper bound of the time in
		// From (shown ~), and no exact figure.
		ev.InState = tr.At.Sub(prev.at)
	case k.lossy():
		// Older than the watch, or born since with its birth lost.
		ev.InStateUnknown = true
	default:
		// In that state since before the watch began.
		ev.InState, ev.InStateAtLeast = tr.At.Sub(k.start), true
	}
	return ev, true
}

// adjust reports whether watch prints a poll's event: not when it says
// what the kernel said already (a socket's first sight, or a change of a
// socket the kernel has reported). A socket's change into TIME_WAIT, which
// the tracepoint shows as the full socket closing, is dated by that close;
// ends are the poll's and the destroy events' to say.
func (k *kernelFeed) adjust(ev *track.Event) bool {
	cookie := ev.Entry.Cookie
	c, closed := k.closed[cookie]
	switch {
	case ev.Kind == track.EventGone:
		delete(k.closed, cookie)
		delete(k.last, cookie) // its close's news may have been lost
		if closed && ev.At.Equal(c.at) {
			k.closedGone(ev, c)
		}
		return true
	case closed && c.into&(1<<ev.To) != 0 && (ev.Kind == track.EventChange || !c.born.IsZero()):
		// Closed before the poll read the kernel's news of it: the
		// poll's change into a state the kernel told, or its birth
		// into one when the kernel told that too, says it again. (A
		// socket its owner closed, reaching FIN_WAIT2, leaves the full
		// socket for a TIME_WAIT entry that keeps its cookie and shows
		// FIN_WAIT2 until the peer's FIN: a poll may show it there.)
		return false
	case ev.To == sock.TimeWait && closed:
		// The full socket closed into an entry of the TIME_WAIT table:
		// in TIME_WAIT at once when the peer's FIN had come, or first
		// in FIN_WAIT2 (its owner closed it before) until that FIN,
		// which the kernel's timer dates. The timer reads in
		// milliseconds of jiffies: within twTimerSlack of the close is
		// the close.
		delete(k.closed, cookie)
		at := ev.At
		if at.Before(c.at.Add(twTimerSlack)) {
			at = c.at
		}
		ev.Kind, ev.From, ev.At, ev.Exact = track.EventChange, c.from, at, true
		ev.InStateExact, ev.InStateAtLeast = !c.last.IsZero() && !c.lost, c.last.IsZero() && !c.lossy
		ev.InStateUnknown = c.last.IsZero() && c.lossy
		if c.last.IsZero() {
			ev.InState = at.Sub(k.start)
		} else {
			ev.InState = at.Sub(c.last)
		}
		return true
	case ev.To == sock.TimeWait:
		// The full socket's close was not told (lost): it is gone.
		delete(k.last, cookie)
		return true
	}
	if _, ok := k.held[cookie]; ok && ev.Kind == track.EventNew {
		// The birth the kernel told, with its owner now: the poll's
		// event, dated by the kernel (the tracker's Births).
		delete(k.held, cookie)
		return true
	}
	l, known := k.last[cookie]
	if ev.Kind == track.EventChange {
		// The kernel told it, unless its news of that change was lost
		// (a full ring): then the poll's, dated by the poll.
		return !known || l.into&(1<<ev.To) == 0
	}
	// A birth: the kernel's, unless its news was lost.
	return !known || l.born.IsZero()
}

// closedGone tells a socket's end as the kernel saw it close at c.at (a
// freed socket's end, which kernelEnds dated): the state it closed in,
// not the last one a poll saw; its time there when the change into it was
// told; its life, when its birth was.
func (k *kernelFeed) closedGone(ev *track.Event, c closing) {
	polled := ev.From
	ev.From = c.from
	switch {
	case c.into&(1<<c.from) != 0 && !c.lost:
		ev.InState, ev.InStateExact, ev.InStateAtLeast, ev.InStateUnknown = c.at.Sub(c.last), true, false, false
	case !c.last.IsZero():
		// A change after the last told was lost: at most since then.
		ev.InState, ev.InStateExact, ev.InStateAtLeast, ev.InStateUnknown = c.at.Sub(c.last), false, false, false
	case ev.Unseen || polled != c.from:
		// Neither a poll nor the kernel saw it come into that state:
		// the poll's time was in another one.
		ev.InState, ev.InStateExact, ev.InStateAtLeast, ev.InStateUnknown = 0, false, false, true
	}
	if !c.born.IsZero() {
		ev.Lifetime, ev.LifetimeAtLeast, ev.Unseen = c.at.Sub(c.born), false, false
	}
}

// lossy says whether the kernel's events have lost any (a count that
// cannot be read counts as a loss).
func (k *kernelFeed) lossy() bool {
	if k.lost == nil {
		return false
	}
	n, err := k.lost()
	return err != nil || n > 0
}

// prune forgets the closes no poll claimed: sockets freed, whose end the
// tracker told. Call it with each poll's time once its events are
// adjusted: a close is kept for closedFor, and until a whole poll came
// after it, however long the interval (watch -i 1h).
func (k *kernelFeed) prune(now time.Time) {
	cutoff := now.Add(-closedFor)
	if k.prevPoll.Before(cutoff) {
		cutoff = k.prevPoll
	}
	k.prevPoll = now
	for cookie, c := range k.closed {
		if c.at.Before(cutoff) {
			delete(k.closed, cookie)
		}
	}
}

// startKernelFeed loads the kernel events of the namespaces only (nil:
// every one) and calls fn with each, at most every late (0: the kernel
// events' default) after it happened, until ctx ends; where they cannot be
// had it returns a note instead. wait stops the reader once ctx has ended
// and says what failed; syncFeed returns once fn has had every change made
// before it (see kevents.Watcher.Sync); lost counts the changes the kernel
// could not hand on (kevents.Watcher.Lost), until wait.
func startKernelFeed(ctx context.Context, only []uint32, late time.Duration, fn func(*kevents.Transition)) (wait func() error, syncFeed func(), lost func() (uint64, error), note string) {
	w, err := kevents.Open(only)
	if err != nil {
		return func() error { return nil }, func() {}, func() (uint64, error) { return 0, nil },
			"exact transitions need BPF (" + err.Error() + "); times come from polling and destroy events"
	}
	w.SetReadEvery(late)
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() {
		// A panic in fn (the Book, a Fleet's announcements, a filter's
		// match) stops the events, said as their error: on this
		// goroutine it would end the process with a dashboard's
		// terminal raw. Polling goes on.
		defer func() {
			if r := recover(); r != nil {
				runErr = fmt.Errorf("internal error: %v", r)
			}
		}()
		runErr = w.Run(ctx, fn)
	})
	return func() error {
		wg.Wait()
		return errors.Join(runErr, w.Close())
	}, func() { w.Sync(ctx) }, w.Lost, ""
}

// lostNote is what a live mode says when the kernel's events lost changes
// since it last said (n, told before): the polls show those changes,
// dated by the poll.
func lostNote(n, before uint64) string {
	return fmt.Sprintf("%d kernel state-change events lost (%d in all; the reader fell behind): the polls show those changes, dated by the poll", n-before, n)
}

// asyncKernelFeed is startKernelFeed in the background, a second after
// start is closed: loading parses the kernel's BTF, a tenth of a second of CPU the
// dashboard's first frame need not share (measured at 110k sockets: the
// first frame 100 ms later when both ran at once). wait, once ctx has
// ended, returns the note of a failure to load and the error of a failure
// while running; catchUp is startKernelFeed's syncFeed once the program is
// loaded, and returns at once before; lost is its lost (0 before). loaded,
// when not nil, is called once the program runs.
func asyncKernelFeed(ctx context.Context, start <-chan struct{}, only []uint32, fn func(*kevents.Transition), loaded func()) (wait func() (string, error), catchUp func(), lost func() (uint64, error)) {
	done := make(chan struct{})
	var note string
	var err error
	var syncFeed atomic.Pointer[func()]
	var lostFeed atomic.Pointer[func() (uint64, error)]
	go func() {
		defer close(done)
		select {
		case <-start:
		case <-ctx.Done():
			return
		}
		// And a second more: the frame is drawn after it is applied,
		// and the parse's garbage would make the collector run during
		// the draw.
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return
		}
		// The dashboard reads the changes at its polls (catchUp), and
		// the ends on its 50 ms probe tick: a tenth of a second late is
		// soon enough, and a quieter runtime.
		w, s, l, n := startKernelFeed(ctx, only, dashboardFeedEvery, fn)
		note = n
		syncFeed.Store(&s)
		lostFeed.Store(&l)
		if n == "" && loaded != nil {
			loaded()
		}
		<-ctx.Done()
		err = w()
	}()
	return func() (string, error) {
			<-done
			return note, err
		}, func() {
			if s := syncFeed.Load(); s != nil {
				(*s)()
			}
		}, func() (uint64, error) {
			if l := lostFeed.Load(); l != nil {
				return (*l)()
			}
			return 0, nil
		}
}

// dashboardFeedEvery is how often the dashboard drains the kernel's events.
const dashboardFeedEvery = 100 * time.Millisecond

// combinedBirths are what a live mode knows of a socket from the kernel:
// what its own Book saw (a birth while it runs, or a change), else the
// agent's stamps; a birth before the Book is the agent's to say.
func combinedBirths(book *kevents.Book, agent track.Births) track.Births {
	if book == nil {
		return agent
	}
	return func(cookie uint64) (track.Birth, bool) {
		st, seen := book.Lookup(cookie)
		b := track.Birth{Born: st.Born, Changed: st.Last, State: st.State}
		if seen && !b.Born.IsZero() {
			return b, true
		}
		if agent != nil {
			if ab, ok := agent(cookie); ok {
				if seen { // the agent's birth, the Book's latest change
					ab.Changed, ab.State = b.Changed, b.State
				}
				return ab, true
			}
		}
		return b, seen
	}
}

// kernelEnds hands a live mode's ends over from the destroy announcements
// to the kernel's events (session.KernelEnds) once these run.
type kernelEnds struct {
	end atomic.Pointer[func(sock.Socket, time.Time)]
	err error // why the announcements stay, if take failed
}

// take leaves the announcements for the events; call it once they run.
func (k *kernelEnds) take(s *session.Session) {
	e, err := s.KernelEnds()
	if e != nil {
		k.end.Store(&e)
	}
	k.err = err
}

// add passes on a change to CLOSE, once take has run; the feed calls it
// with every transition.
func (k *kernelEnds) add(tr *kevents.Transition) {
	if tr.To != sock.Close {
		return
	}
	if e := k.end.Load(); e != nil {
		(*e)(tr.Socket(), tr.At)
	}
}

// note is what to say when take failed; "" else.
func (k *kernelEnds) note() string {
	if k.err == nil {
		return ""
	}
	return fmt.Sprintf("ends came from destroy events (%v)", k.err)
}
