// Package track follows sockets from one snapshot to the next by cookie.
//
// It gives every socket an age, as honestly as the kernel allows:
//
//   - TIME_WAIT: exact. The kernel's timer counts down from a fixed 60 s,
//     so the age is 60 s minus the time left.
//   - A socket first seen after the tracker started: the time since the
//     snapshot that first showed it (accurate to one polling interval).
//   - A socket already there at the first snapshot: "at least" the time
//     since then. No creation time exists for any TCP state. The same
//     for the sockets of a namespace that a snapshot dumps after others
//     only counted it (sock.Snapshot.Read): at least since that dump.
//
// It records each socket's state transitions and remembers its owning
// process by cookie, so a TIME_WAIT entry, which owns no file, still shows
// the process that closed it.
//
// A Tracker is NOT safe for concurrent use; one goroutine feeds it
// snapshots and hands the resulting Views on (Views are immutable).
package track

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/sockscope/sockscope/pkg/prefault"
	"github.com/sockscope/sockscope/pkg/procs"
	"github.com/sockscope/sockscope/pkg/sock"
)

// AgeSource says how an age was found.
type AgeSource uint8

// How ages are known, from the most to the least exact.
const (
	AgeTimer     AgeSource = iota // TIME_WAIT: 60 s minus the kernel's timer
	AgeKernel                     // since its birth, as the kernel dated it (Births)
	AgeFirstSeen                  // born while watched: since first seen
	AgeAtLeast                    // there before the tracker: at least this old
)

func (a AgeSource) String() string {
	switch a {
	case AgeTimer:
		return "timer"
	case AgeKernel:
		return "kernel"
	case AgeFirstSeen:
		return "first-seen"
	case AgeAtLeast:
		return "at-least"
	}
	return fmt.Sprintf("agesource%d", uint8(a))
}

// Birth is what the kernel told of a socket (sockscope's BPF program, or
// its agent's stamp): when it was made, and when it entered State. Born is
// zero for a socket made before the program was loaded that changed state
// since: its age is not known, its time in State is.
type Birth struct {
	Born, Changed time.Time
	State         sock.State
}

// Births looks a socket's birth up by cookie; false when the kernel
// dated nothing of it (made before the program was loaded, and no change
// since).
type Births func(cookie uint64) (Birth, bool)

// Transition is one change of state seen between two snapshots.
type Transition struct {
	From, To sock.State
	At       time.Time // when the kernel made it, else the snapshot that first showed To
	Exact    bool      // At is the kernel's (its events, timer or destroy announcement)
}

// Entry is a socket with what the tracker knows of it.
//
// The socket is not copied: a View's Entries point into its Snapshot, which
// must stay unchanged while they are read; an Event's and a Gone entry's
// socket is a copy of its own. At 100k sockets a copy in every entry was
// 11 MB more per frame, written on every poll.
//
// An entry is kept at 40 bytes for the same reason: the dashboard holds
// two views of the whole table and writes one per poll (80 bytes with a
// time.Time and a Process inline: 4.4 MB more per 110k sockets and view;
// the time left of a TIME_WAIT entry is read from its socket, Left).
type Entry struct {
	*sock.Socket
	Age time.Duration
	// Process owns the socket; nil when unknown. It is shared and never
	// changed: a new owner is a new Process.
	Process   *procs.Process
	firstSeen int64 // FirstSeen, in Unix nanoseconds
	AgeSource AgeSource
}

// Left is a TIME_WAIT entry's time until the kernel frees it (AgeTimer),
// from its socket's timer; 0 for any other. A method, not a field: 8 bytes
// less an entry, 1.8 MB less at 110k sockets in the dashboard's two views.
func (e *Entry) Left() time.Duration {
	if e.AgeSource != AgeTimer {
		return 0
	}
	_, left, _ := e.TimeWaitAge()
	return left
}

// HasProcess reports whether the owning process is known.
func (e *Entry) HasProcess() bool { return e.Process != nil && e.Process.PID != 0 }

// FirstSeen is when the tracker first saw the socket, or the kernel made
// it (AgeKernel).
func (e *Entry) FirstSeen() time.Time { return time.Unix(0, e.firstSeen) }

// View is the tracker's reading of one snapshot.
type View struct {
	Time     time.Time
	Snapshot *sock.Snapshot
	Entries  []Entry // in snapshot order, pointing into Snapshot
	// owners holds the Processes of OnceBornInto's entries.
	owners []procs.Process
	Gone   []Entry // tracked sockets this snapshot no longer shows (copies)
	Events []Event // what changed since the previous snapshot, in time order
}

// EventKind says what happened to a socket.
type EventKind uint8

// The three things that happen to a socket between snapshots.
const (
	EventNew    EventKind = iota // first seen (not reported for the first snapshot)
	EventChange                  // its state changed
	EventGone                    // it left the table (or the filter)
)

func (k EventKind) String() string {
	switch k {
	case EventNew:
		return "new"
	case EventChange:
		return "change"
	case EventGone:
		return "gone"
	}
	return fmt.Sprintf("event%d", uint8(k))
}

// Event is one change, timed as exactly as the kernel allows: the TIME_WAIT
// timer dates an entry into TIME_WAIT, a destroy event dates the end of a
// full socket; otherwise the snapshot that noticed it does.
type Event struct {
	Kind  EventKind
	At    time.Time
	Exact bool // At comes from the kernel (timer or destroy event), not the poll
	Entry Entry
	// From and To are the states before and after: To alone for new, From
	// alone (the last state) for gone.
	From, To sock.State
	// InState is the time spent in From, exact when both its ends were,
	// at least this when the socket was in From before the tracker started.
	InState        time.Duration
	InStateExact   bool
	InStateAtLeast bool
	// InStateUnknown says nothing bounds InState: the kernel's news of
	// the socket has a hole (watch's kernel feed, after lost events).
	InStateUnknown bool
	// Lifetime is, for gone, the time from first seen (for TIME_WAIT
	// entries: from entering TIME_WAIT) to gone; AtLeast when the socket
	// predates the tracker.
	Lifetime        time.Duration
	LifetimeAtLeast bool
	// TimeWait describes a TIME_WAIT entry that is gone.
	TimeWait *TimeWaitEnd
	// Unseen marks a gone event for a socket no snapshot showed, known
	// only from the kernel's destroy announcement: one born and freed
	// between two polls. Entry is the socket as announced, From its
	// state then (CLOSE); its earlier states and its lifetime are not
	// known.
	Unseen bool
}

// TimeWaitEnd is the end of a TIME_WAIT entry.
type TimeWaitEnd struct {
	Entered time.Time // from the kernel's timer: exact
	// Length runs from entering to the first moment it was known gone (a
	// probe, or the snapshot that lacked it); the entry ended at most
	// Uncertainty before that.
	Length      time.Duration
	Uncertainty time.Duration
	// Early is set when it ended more than a second before its 60 s, which
	// only port reuse (tcp_tw_reuse) or a kill (an RST, ss -K) does.
	Early bool
	// Reused is set when a socket with the same addresses and ports was
	// there in its place.
	Reused bool
}

// Key identifies a socket across snapshots: the kernel's cookie, within
// the network namespace the socket lives in (cookies are unique per
// host today, but a namespace is what a person asks about, and two hosts'
// dumps must never merge).
type Key struct {
	Netns  uint32
	Cookie uint64
}

// KeyOf returns s's key.
func KeyOf(s *sock.Socket) Key { return Key{Netns: s.Netns, Cookie: s.Cookie} }

// Lookup finds the process owning a socket inode.
type Lookup func(inode uint32) (procs.Process, bool)

// A host may have 100k of these, so a record is kept small: times are
// stamps, and the socket as last seen is not copied but found in the
// latest snapshot, at index at.
type record struct {
	firstSeen   stamp
	born        stamp          // from the kernel (Births); none when not known
	since       stamp          // when it entered state
	twEntered   stamp          // from the kernel timer; none until TIME_WAIT
	destroyedAt stamp          // from a destroy event; none when none came
	aliveAt     stamp          // the last time it was known to exist
	missingAt   stamp          // the first probe that found it gone
	proc        *procs.Process // nil until found
	// history is nil until its first change: most sockets make none
	// while watched, and a slice inline is 16 bytes more per record.
	history *[]Transition
	// The small fields together at the end: 88 bytes a record where the
	// order of their meaning (and a 64-bit seen) made 96, 8 MB at a
	// million sockets.
	seen       uint32 // generation of the last snapshot that showed it
	inode      uint32 // the inode proc was found for
	at         int32  // index of its socket in the latest snapshot
	state      sock.State
	predates   bool
	sinceExact bool
	// sinceAtLeast says since is when it was seen in its state again, in
	// view after a change it made out of view: a lower bound.
	sinceAtLeast bool
}

// changes is how many transitions r has made while tracked.
func (r *record) changes() int {
	if r.history == nil {
		return 0
	}
	return len(*r.history)
}

// stamp is a time as an offset from the tracker's start, on the monotonic
// clock where the times have it: 8 bytes where a time.Time takes 24.
type stamp int64

// none is the stamp of no time.
const none stamp = math.MinInt64

func (t *Tracker) stamp(at time.Time) stamp {
	if at.IsZero() {
		return none
	}
	return stamp(at.Sub(t.started))
}

// time turns a stamp back into a time, counted from the latest snapshot
// rather than from the start: after a suspend or a step of the wall clock
// the times of the latest events still read as the wall clock did then,
// and durations between stamps still come from the monotonic clock.
func (t *Tracker) time(s stamp) time.Time {
	if s == none {
		return time.Time{}
	}
	return t.last.Add(time.Duration(s - t.lastS))
}

// maxHistory bounds the transitions kept per socket; a TCP connection
// rarely makes more than six.
const maxHistory = 16

// Tracker keeps per-cookie records across snapshots.
type Tracker struct {
	lookup  Lookup
	births  Births // the kernel's birth dates; nil: none
	started time.Time
	// gen counts snapshots: 0 before the first, never 0 after (it
	// wraps after 4 billion, 13 years of 10 polls a second).
	gen  uint32
	recs *KeyMap[*record]
	slab slab // the records' memory
	// snap is the latest snapshot, and order its sockets' records, index
	// for index (nil for a repeated cookie). The kernel walks its tables
	// in the same order every dump, so most sockets are found by stepping
	// through order rather than by a hash lookup (at 110k sockets, the
	// lookups were half the tracker's time), and the sockets gone are
	// those of order not seen again.
	snap       *sock.Snapshot
	order      []*record
	spareOrder []*record
	// due holds the TIME_WAIT entries whose 60 s end before the next
	// snapshot is likely, in the order they entered TIME_WAIT: Expiring
	// looks at these, not at every record.
	due     []*record
	dueFrom int       // due[:dueFrom] are settled: Expiring starts after them
	last    time.Time // the latest snapshot's time
	lastS   stamp     // and its stamp, the base of time
	// lastUnix is last in Unix nanoseconds: an entry's first sight is
	// lastUnix plus its offset from lastS.
	lastUnix int64
	prev     time.Time // the one before it: when gone sockets were last seen
	// fresh holds the addresses of the sockets first seen in this
	// snapshot: a TIME_WAIT entry's successor on a reused port is one.
	fresh map[pair]struct{}
	// spare is memory for the next View's Entries (Reuse).
	spare []Entry
	// unseen holds announcements for sockets no snapshot showed, until
	// the next Update tells whether one does: an active close's socket
	// lives on as a TIME_WAIT entry, under the same cookie if a dump had
	// asked for it (the kernel makes cookies on demand), else under the
	// same addresses and a new cookie.
	unseen []sock.Destroy
	// unseenKeys are unseen's sockets: a socket announced twice (both
	// the destroy events and the kernel's own, as one takes over from
	// the other) is reported once.
	unseenKeys map[Key]struct{}
	// goneLast holds the cookies the latest Update found gone: an
	// announcement that comes after the poll that missed its socket is
	// not one for an unseen socket.
	goneLast map[Key]struct{}
	// read is the latest snapshot's sock.Snapshot.Read: the namespaces
	// it dumped (nil: all). A namespace dumped again after a time of
	// counts alone has its sockets first seen then, each predating it.
	read []uint32
	// refiltered is set by Refilter until the next Update: the snapshot
	// it takes in comes from another filter.
	refiltered bool
	// parked keeps what the tracker knew of the age of each socket a
	// filter change or a namespace no longer dumped took out of view,
	// for parkFor: one shown again (the filter changed back, the
	// namespace opened again) resumes its age instead of starting again
	// from "at least" zero.
	parked       map[Key]parkedAge
	parkedOldest stamp // no later than the oldest parked's at
	// events is how many events the last Update made.
	events int
}

// parkedAge is what a socket out of view keeps (Tracker.parked).
type parkedAge struct {
	firstSeen, since, at               stamp // at: when it was parked
	history                            *[]Transition
	inode                              uint32 // the same key and another inode: another socket
	state                              sock.State
	predates, sinceExact, sinceAtLeast bool
}

// parkFor is how long a socket out of view keeps its age, and maxParked
// how many do (about 15 MB): beyond them a socket shown again starts from
// "at least" zero, as one does that was never seen.
const (
	parkFor   = 10 * time.Minute
	maxParked = 1 << 18
)

// pair is an address pair within one namespace: the same four-tuple in
// two namespaces is two different connections.
type pair struct {
	netns       uint32
	local, peer sock.Endpoint
}

func pairOf(s *sock.Socket) pair { return pair{s.Netns, s.Local, s.Peer} }

// maxUnseen bounds the announcements held between two polls.
const maxUnseen = 1 << 16

// New returns a Tracker. lookup may be nil: processes are then not shown.
func New(lookup Lookup) *Tracker {
	return &Tracker{lookup: lookup, recs: NewKeyMap[*record](), fresh: make(map[pair]struct{}),
		goneLast: make(map[Key]struct{}), unseenKeys: make(map[Key]struct{}), parked: make(map[Key]parkedAge)}
}

// Expiring returns the TIME_WAIT entries whose 60 s are up but that the
// kernel has not been seen to free yet, the candidates for a probe, at
// most limit of them (limit <= 0: all), oldest first. The kernel's timer
// wheel can keep an entry a second or two past its time.
func (t *Tracker) Expiring(now time.Time, dst []sock.Socket, limit int) []sock.Socket {
	due := t.stamp(now) - stamp(sock.TimeWaitLen-probeLead)
	// Oldest first, their end is due soonest: t.due is in that order,
	// so the walk stops at the first entry not due (the monitor asks 20
	// times a second; sorting the candidates each time was 2% of the
	// dashboard's profile at 110k sockets), or once it has limit. The
	// entries before t.dueFrom are settled (found gone) and not looked
	// at again: at 500 ends a second, walking the second's worth of them
	// at each ask was 2% again.
	settled := true
	for i := t.dueFrom; i < len(t.due); i++ {
		r := t.due[i]
		if r.twEntered > due || (limit > 0 && len(dst) == limit) {
			break
		}
		if r.state == sock.TimeWait && r.missingAt == none && r.seen == t.gen {
			dst = append(dst, t.snap.Sockets[r.at])
			settled = false
		} else if settled {
			t.dueFrom = i + 1
		}
	}
	return dst
}

// probeLead starts probing a little before the 60 s are up, so the first
// probe comes before the kernel frees the entry.
const probeLead = 100 * time.Millisecond

// Probed records what a lookup of one socket found at time at.
func (t *Tracker) Probed(k Key, at time.Time, alive bool) {
	r, _ := t.recs.Get(k)
	switch {
	case r == nil:
	case alive:
		r.aliveAt = t.stamp(at)
	case r.missingAt == none:
		r.missingAt = t.stamp(at)
	}
}

// Destroyed records a destroy event; the next Update uses it to date the
// socket's change or end, or reports a matching socket no snapshot showed.
// It may come after the snapshot that Update takes next (a monitor reads
// them after each dump): a socket that snapshot still shows keeps it for
// its end.
func (t *Tracker) Destroyed(d sock.Destroy) {
	k := Key{Netns: d.Socket.Netns, Cookie: d.Cookie}
	delete(t.parked, k) // it will not be shown again
	r, _ := t.recs.Get(k)
	switch {
	case r != nil:
		t.destroyedAt(r, d.At)
	case t.gen == 0 || !d.Matches || d.Socket.Cookie != d.Cookie ||
		(t.read != nil && !slices.Contains(t.read, k.Netns)):
		// Before the first snapshot nothing is known to be unseen; the
		// filter may not match it; a Destroy may carry no socket; its
		// namespace may be only counted, not shown.
	default:
		_, gone := t.goneLast[k]
		_, twice := t.unseenKeys[k]
		if !gone && !twice && len(t.unseen) < maxUnseen {
			t.unseen = append(t.unseen, d)
			t.unseenKeys[k] = struct{}{}
		}
	}
}

// destroyedAt dates the freeing of r's full socket at at, unless a date
// is kept already. A TIME_WAIT entry keeps its socket's cookie, and its
// socket's freeing is news of the step into TIME_WAIT, told late: the
// entry itself ends unannounced, and taken as its end, that news made an
// entry of a minute end "early" at 0 ms.
func (t *Tracker) destroyedAt(r *record, at time.Time) {
	if r.destroyedAt == none && r.state != sock.TimeWait {
		r.destroyedAt = t.stamp(at)
	}
}

// Update folds a snapshot in and returns the view of it.
//
// The tracker keeps snap: the caller must leave it unchanged until the
// next Update has returned (the View's Entries point into it too).
func (t *Tracker) Update(snap *sock.Snapshot) *View {
	return t.update(snap, nil)
}

// TakeIn is Update for the snapshot pv previews (Preview), when pv is what
// is shown of it: it makes the records and makes no view. The owners come
// from pv, looked up once, and no second set of entries is made (at a
// million sockets, 40 MB of entries and a million owners' allocations).
// It does nothing after the first snapshot.
func (t *Tracker) TakeIn(pv *View) {
	if t.gen == 0 && pv != nil && len(pv.Entries) == len(pv.Snapshot.Sockets) {
		t.update(pv.Snapshot, pv)
	}
}

// Refilter says the next snapshot comes from another filter. A socket it
// shows first may have been in the table all along, out of the old
// filter: it predates this look, as in a first one, and its age is at
// least the time since (unless the kernel dated its birth). A socket it
// lacks left the filter, not the table: forgotten, not gone. Seen again,
// it is first seen again.
func (t *Tracker) Refilter() { t.refiltered = true }

// update is Update; with pv (TakeIn), the View it returns has no entries.
func (t *Tracker) update(snap *sock.Snapshot, pv *View) *View {
	now := snap.Time
	first := t.gen == 0
	refiltered := t.refiltered
	t.refiltered = false
	if first {
		t.started = now
		t.reserve(snap)
	}
	if t.gen++; t.gen == 0 {
		t.gen = 1
	}
	clear(t.fresh)
	t.due, t.dueFrom = t.due[:0], 0
	// Entries ending before the next snapshot are due: twice the last
	// interval covers an irregular poll, the rest the timer wheel's slack.
	dueWithin := 5 * time.Second
	if !first {
		dueWithin = max(dueWithin, 2*now.Sub(t.last))
	}
	dueWithin += 3 * time.Second
	t.prev, t.last = t.last, now
	nowS := t.stamp(now)
	t.lastS, t.lastUnix = nowS, now.UnixNano()
	v := &View{Time: now, Snapshot: snap}
	if t.events > 0 {
		// About as many events as the last time, in one allocation: grown
		// from nothing by doubling, the slice made as much garbage again
		// (a table's TIME_WAIT churn is hundreds of events a poll).
		v.Events = make([]Event, 0, t.events+t.events/2)
	}
	var scratch Entry // each socket's entry, when pv is shown instead
	if pv == nil {
		v.Entries = t.entries(len(snap.Sockets))
	}
	old, oldOrder := t.snap, t.order
	wasRead := t.read
	// A copy that keeps nil (every namespace) apart from empty (none read:
	// a dashboard of many namespaces on their counts alone).
	t.read = slices.Clone(snap.Read)
	order := t.spareOrder[:0]
	if cap(order) < len(snap.Sockets) {
		order = prefault.Make[*record](0, len(snap.Sockets)+len(snap.Sockets)/8, len(snap.Sockets))
	}
	// next is where in old the walk is expected to go on.
	next := 0
	for i := range snap.Sockets {
		s := &snap.Sockets[i]
		e := &scratch
		if pv == nil {
			e = &v.Entries[i]
		}
		var r *record
		if next < len(oldOrder) && oldOrder[next] != nil &&
			old.Sockets[next].Cookie == s.Cookie && old.Sockets[next].Netns == s.Netns {
			r = oldOrder[next]
			next++
		} else if r, _ = t.recs.Get(KeyOf(s)); r != nil && r.seen != t.gen {
			next = int(r.at) + 1 // the walk resumes after it
		}
		isNew := r == nil
		kernelSince := false // the kernel dated its state
		predates := false    // first seen in a first look at its namespace
		if isNew {
			// A socket of a namespace the last snapshot did not dump,
			// or one the last filter left out, was not born now: it
			// predates this look, as every socket of the first one does.
			predates = first || refiltered || (wasRead != nil && !slices.Contains(wasRead, s.Netns))
			r = t.slab.get()
			*r = record{firstSeen: nowS, predates: predates, state: s.State, since: nowS,
				twEntered: none, destroyedAt: none, missingAt: none, born: none}
			// Its age as it went out of view, if it did; the kernel's
			// dates, where it has them, win.
			resumed := t.resume(r, s)
			kernelSince = t.bornOf(r, s) || resumed
			t.recs.Set(KeyOf(s), r)
			if !predates {
				t.fresh[pairOf(s)] = struct{}{}
			}
		}
		if r.seen == t.gen {
			// A cookie this snapshot already showed: the record keeps
			// its first place, and this one is not walked again.
			order = append(order, nil)
		} else {
			order = append(order, r)
			r.at = int32(i)
		}
		r.seen = t.gen
		r.aliveAt = nowS
		if r.missingAt != none && r.missingAt < nowS {
			r.missingAt = none // a probe that missed it was wrong
		}
		if pv != nil {
			// A first snapshot: every record is new, its owner the one
			// the preview looked up.
			if p := pv.Entries[i].Process; p != nil {
				r.proc, r.inode = p, s.Inode
			}
		} else if s.Inode != 0 && t.lookup != nil && (r.proc == nil || r.inode != s.Inode) {
			if p, ok := t.lookup(s.Inode); ok {
				r.proc, r.inode = &p, s.Inode
			}
		}
		*e = t.entry(r, s, nowS)
		entered := now
		exact := false
		if s.State == sock.TimeWait && e.AgeSource == AgeTimer {
			entered, exact = now.Add(-e.Age), true
			if r.twEntered == none {
				r.twEntered = t.stamp(entered)
			}
			if e.Left() <= dueWithin {
				t.due = append(t.due, r)
			}
		}
		switch {
		case isNew:
			if !kernelSince {
				r.since, r.sinceExact = t.stamp(entered), exact
			}
			if r.born != none && !exact {
				// First seen now, made when the kernel says.
				entered, exact = t.time(r.born), true
			}
			if !predates {
				v.Events = append(v.Events, Event{Kind: EventNew, At: entered, Exact: exact, Entry: owned(e), To: s.State})
			}
		case r.state != s.State:
			destroyed := t.time(r.destroyedAt)
			if s.State == sock.TimeWait && exact && r.state != sock.FinWait2 &&
				r.destroyedAt != none && entered.Sub(destroyed) > finWait2Gap {
				// The full socket was freed well before TIME_WAIT began:
				// an orphan's close, which waits for the peer's FIN as a
				// FIN_WAIT2 mini-socket. Both moments are the kernel's.
				v.Events = append(v.Events, t.change(r, e, sock.FinWait2, destroyed, true))
			}
			// The kernel's record of the change into this state first: a
			// destroy event dates the freeing of the full socket, which a
			// socket disconnected (connect AF_UNSPEC) and connected again
			// went through before its new state.
			if !exact {
				if at, ok := t.kernelChange(r, s); ok {
					entered, exact = at, true
				}
			}
			if r.destroyedAt != none && !exact && r.destroyedAt < nowS && r.destroyedAt >= r.since {
				entered, exact = destroyed, true
			}
			v.Events = append(v.Events, t.change(r, e, s.State, entered, exact))
			// A destroy event dates one step: the freeing of the full
			// socket. The TIME_WAIT entry that follows ends unannounced.
			// One that came after this snapshot is the socket's end,
			// kept for the next.
			if r.destroyedAt < nowS || s.State == sock.TimeWait {
				r.destroyedAt = none
			}
		}
		if s.Timer == sock.TimerTimeWait {
			// A TIME_WAIT socket, also one still in FIN_WAIT2 for the
			// peer's FIN: its full socket was freed, and a destroy
			// event kept is that news, not its end, which nothing
			// announces.
			r.destroyedAt = none
		}
	}
	t.goneFrom(v, old, oldOrder, now, refiltered)
	t.snap, t.order, t.spareOrder = snap, order, oldOrder[:0]
	slices.SortFunc(t.due, func(a, b *record) int { return cmp.Compare(a.twEntered, b.twEntered) })
	for i := range t.unseen {
		d := &t.unseen[i]
		if !snap.Reads(d.Socket.Netns) {
			continue // a namespace only counted: no socket of it is shown
		}
		r, shown := t.recs.Get(Key{Netns: d.Socket.Netns, Cookie: d.Cookie})
		if shown {
			// This snapshot shows it, new: freed after the dump began
			// (and passed it), it ends at the next; freed before, it
			// lives on as a TIME_WAIT entry, or it connected again
			// (connect AF_UNSPEC and connect).
			if t.stamp(d.At) >= nowS && snap.Sockets[r.at].Timer != sock.TimerTimeWait {
				t.destroyedAt(r, d.At)
			}
			continue
		}
		if _, successor := t.fresh[pairOf(&d.Socket)]; successor {
			continue // it lives on, as a TIME_WAIT entry
		}
		sk := d.Socket
		v.Events = append(v.Events, Event{Kind: EventGone, At: d.At, Exact: true,
			Entry: Entry{Socket: &sk, firstSeen: d.At.UnixNano()}, From: d.Socket.State, Unseen: true})
	}
	t.unseen = t.unseen[:0]
	clear(t.unseenKeys)
	slices.SortStableFunc(v.Events, func(a, b Event) int { return a.At.Compare(b.At) })
	t.events = len(v.Events)
	return v
}

// goneFrom reports the sockets of the previous snapshot (old, its records
// in order) that this generation did not see, and forgets them. Their
// entries get copies of their sockets, in one allocation: old is handed
// back for the next dump once this Update is done. After a filter change
// (refiltered) they are forgotten alone: the filter, not the kernel, left
// them out.
func (t *Tracker) goneFrom(v *View, old *sock.Snapshot, order []*record, now time.Time, refiltered bool) {
	clear(t.goneLast)
	t.expireParked()
	n := 0
	for _, r := range order {
		if r != nil && r.seen != t.gen {
			n++
		}
	}
	if n == 0 {
		return
	}
	copies := make([]sock.Socket, 0, n)
	for i, r := range order {
		if r == nil || r.seen == t.gen {
			continue
		}
		if k := KeyOf(&old.Sockets[i]); refiltered || !v.Snapshot.Reads(k.Netns) {
			// Its namespace is counted now, not dumped, or the filter
			// left it out: out of view, not gone. Seen again, it
			// resumes its age (parked).
			t.park(k, r, old.Sockets[i].Inode)
			t.recs.Delete(k)
			t.slab.put(r)
			continue
		}
		// Gone since the previous snapshot, which showed it last.
		copies = append(copies, old.Sockets[i])
		s := &copies[len(copies)-1]
		last := t.entry(r, s, t.stamp(t.prev))
		v.Gone = append(v.Gone, last)
		v.Events = append(v.Events, t.gone(r, &last, now))
		k := KeyOf(s)
		t.recs.Delete(k)
		t.slab.put(r)
		t.goneLast[k] = struct{}{}
	}
}

// park keeps the age and history of r, whose socket k (of that inode)
// goes out of view, unless maxParked are kept already.
func (t *Tracker) park(k Key, r *record, inode uint32) {
	if len(t.parked) >= maxParked {
		return // full of recent ones: this one starts again when shown
	}
	if len(t.parked) == 0 {
		t.parkedOldest = t.lastS
	}
	t.parked[k] = parkedAge{firstSeen: r.firstSeen, since: r.since, at: t.lastS, history: r.history, inode: inode,
		state: r.state, predates: r.predates, sinceExact: r.sinceExact, sinceAtLeast: r.sinceAtLeast}
}

// expireParked forgets the ages parked longer than parkFor: a walk of
// them only when the oldest is that old.
func (t *Tracker) expireParked() {
	if len(t.parked) == 0 || time.Duration(t.lastS-t.parkedOldest) <= parkFor {
		return
	}
	oldest := t.lastS
	for k, p := range t.parked {
		if time.Duration(t.lastS-p.at) > parkFor {
			delete(t.parked, k)
			continue
		}
		oldest = min(oldest, p.at)
	}
	t.parkedOldest = oldest
	if len(t.parked) == 0 {
		t.parked = make(map[Key]parkedAge) // a map keeps its size: give it back
	}
}

// resume gives r, the new record of s, the age and history s had when it
// went out of view, if it was parked less than parkFor ago; it reports
// whether its time in its state was kept too (it is in the same state).
// A key is a socket's cookie, or, from /proc/net/tcp, its addresses, which
// a later socket may take: one with another inode is another socket.
func (t *Tracker) resume(r *record, s *sock.Socket) bool {
	k := KeyOf(s)
	p, ok := t.parked[k]
	if !ok {
		return false
	}
	delete(t.parked, k)
	if time.Duration(t.lastS-p.at) > parkFor || p.inode != s.Inode {
		return false
	}
	r.firstSeen, r.predates, r.history = p.firstSeen, p.predates, p.history
	if p.state != s.State {
		// It changed while out of view, when is not known: its time in
		// the new state counts from now, at least, and so does its age
		// as far as it was first seen (no birth of it was seen then).
		r.predates, r.sinceAtLeast = true, true
		return false
	}
	r.since, r.sinceExact, r.sinceAtLeast = p.since, p.sinceExact, p.sinceAtLeast
	return true
}

// owned is e with a copy of its socket, for an Event: events outlive the
// snapshot their entry points into.
func owned(e *Entry) Entry {
	c := *e
	sk := *e.Socket
	c.Socket = &sk
	return c
}

// reserve sizes the record maps for a first snapshot, namespace by
// namespace.
func (t *Tracker) reserve(snap *sock.Snapshot) {
	per := map[uint32]int{}
	for i := range snap.Sockets {
		per[snap.Sockets[i].Netns]++
	}
	for ns, n := range per {
		t.recs.Reserve(ns, n)
	}
	t.slab.reserve(len(snap.Sockets)+len(snap.Sockets)/8, len(snap.Sockets))
}

// Reuse gives Update the memory of a View's Entries that nothing reads
// any more. A live front end on 100k sockets would otherwise allocate 20 MB
// every poll, and the collector would mark and free as much.
func (t *Tracker) Reuse(entries []Entry) {
	if cap(entries) > cap(t.spare) {
		t.spare = entries[:0]
	}
}

// entries returns n entries for a View, in the spare memory when it is big
// enough (every one is overwritten).
func (t *Tracker) entries(n int) []Entry {
	buf := t.spare
	t.spare = nil
	if cap(buf) < n {
		// Room for some growth, so a table that grows by a few sockets
		// does not need new memory on the next poll.
		return prefault.Make[Entry](n, n+n/8, n)
	}
	return buf[:n]
}

// entry is what the tracker knows of r's socket s at the time of stamp
// at. It is made for every socket at every poll, so it counts in stamps
// (integers on the monotonic clock) where time.Time arithmetic cost a
// fifth of Update at 110k sockets; the results are the same.
func (t *Tracker) entry(r *record, s *sock.Socket, at stamp) Entry {
	e := Entry{Socket: s, firstSeen: t.lastUnix + int64(r.firstSeen-t.lastS), Process: r.proc}
	switch tw, _, ok := s.TimeWaitAge(); {
	case ok:
		e.Age, e.AgeSource = tw, AgeTimer
		// A FIN the peer sends again re-arms the timer for a whole
		// TIME_WAIT: the entry is as old as its first date says.
		if since := time.Duration(at - r.twEntered); r.twEntered != none && since > tw+rearmSlack {
			e.Age = since
		}
	case r.born != none:
		e.Age, e.AgeSource = time.Duration(at-r.born), AgeKernel
	case r.predates:
		e.Age, e.AgeSource = time.Duration(at-r.firstSeen), AgeAtLeast
	default:
		e.Age, e.AgeSource = time.Duration(at-r.firstSeen), AgeFirstSeen
	}
	return e
}

// SetBirths tells the tracker where the kernel's birth dates are; nil
// stops looking. A socket is looked up when first seen and when a
// snapshot shows it in a new state.
func (t *Tracker) SetBirths(b Births) { t.births = b }

// bornOf dates a new record from the kernel, where it knows: its birth,
// and when it entered the state it is in now (then nothing of it
// predates the tracker). It reports whether it dated the state.
func (t *Tracker) bornOf(r *record, s *sock.Socket) bool {
	if t.births == nil {
		return false
	}
	b, ok := t.births(s.Cookie)
	if !ok {
		return false
	}
	r.born = t.stamp(b.Born) // none when only a change was seen
	if b.State == s.State && !b.Changed.IsZero() {
		r.since, r.sinceExact = t.stamp(b.Changed), true
		if r.born != none {
			r.predates = false
		}
		return true
	}
	// It changed since the kernel's stamp was read: its age is exact, the
	// time in its state is as the tracker sees it.
	return false
}

// kernelChange is when the kernel's events say s entered the state a
// snapshot shows it in for the first time, if they say; r is its record,
// still in the state before.
func (t *Tracker) kernelChange(r *record, s *sock.Socket) (time.Time, bool) {
	if t.births == nil {
		return time.Time{}, false
	}
	b, ok := t.births(s.Cookie)
	if !ok || b.State != s.State || b.Changed.IsZero() {
		return time.Time{}, false // the events lag, or had none of it
	}
	if r.sinceExact && !b.Changed.After(t.time(r.since)) {
		return time.Time{}, false // an older entry into this state
	}
	return b.Changed, true
}

// change records a transition of r into to at the given time and returns
// its event.
func (t *Tracker) change(r *record, e *Entry, to sock.State, at time.Time, exact bool) Event {
	ev := Event{Kind: EventChange, At: at, Exact: exact, Entry: owned(e), From: r.state, To: to,
		InState: at.Sub(t.time(r.since)), InStateExact: exact && r.sinceExact,
		InStateAtLeast: r.inStateAtLeast()}
	if r.history == nil {
		r.history = new([]Transition)
	}
	if len(*r.history) < maxHistory {
		*r.history = append(*r.history, Transition{From: r.state, To: to, At: at, Exact: exact})
	}
	r.state, r.since, r.sinceExact, r.sinceAtLeast = to, t.stamp(at), exact, false
	return ev
}

// inStateAtLeast says r's time in its state is a lower bound: it was
// there when first seen, before any change seen, or seen there again
// after a change out of view; unless the kernel dated its entry.
func (r *record) inStateAtLeast() bool {
	return (r.predates && r.changes() == 0 || r.sinceAtLeast) && !r.sinceExact
}

// rearmSlack is how much younger than its first date the timer may make a
// TIME_WAIT entry before the timer is taken as re-armed. An entry's first
// date is the dump's start less its timer's age, read where the walk
// reached it: a first dump slower than the next by up to its length (a
// second at a million sockets) makes the entry look that much younger
// later. A FIN sent again comes a retransmission timeout or so after the
// entry began: a re-arm this slack misses leaves it as young as that.
const rearmSlack = 2 * time.Second

// finWait2Gap is how long before TIME_WAIT began a destroy event must come
// to show a FIN_WAIT2 step in between, beyond clock noise.
const finWait2Gap = 5 * time.Millisecond

// earlyMargin is how much sooner than 60 s a TIME_WAIT entry must end to
// count as ended early: the kernel's timer wheel alone can be a second off.
const earlyMargin = time.Second

// gone builds the event for a socket this snapshot no longer shows; last
// is its entry as it was last seen.
func (t *Tracker) gone(r *record, last *Entry, now time.Time) Event {
	at, exact := now, false
	since, firstSeen := t.time(r.since), t.time(r.firstSeen)
	if r.born != none {
		firstSeen = t.time(r.born) // its lifetime from its birth
	}
	if r.destroyedAt != none && r.destroyedAt >= r.since {
		at, exact = t.time(r.destroyedAt), true
	}
	ev := Event{Kind: EventGone, At: at, Exact: exact, Entry: *last, From: r.state,
		InState: at.Sub(since), InStateExact: exact && r.sinceExact,
		InStateAtLeast: r.inStateAtLeast() && r.twEntered == none,
		Lifetime:       at.Sub(firstSeen), LifetimeAtLeast: r.predates && r.born == none}
	if r.twEntered != none {
		// Nothing announces the end of a TIME_WAIT entry: the probes
		// (Probed) narrow it down to between two looks.
		if missing := t.time(r.missingAt); !exact && r.missingAt != none && missing.Before(at) {
			at = missing
			ev.At, ev.InState, ev.Lifetime = at, at.Sub(since), at.Sub(firstSeen)
		}
		entered := t.time(r.twEntered)
		end := &TimeWaitEnd{Entered: entered, Length: at.Sub(entered), Uncertainty: at.Sub(t.time(r.aliveAt))}
		end.Early = end.Length < sock.TimeWaitLen-earlyMargin
		if end.Early {
			_, end.Reused = t.fresh[pairOf(last.Socket)]
		}
		ev.TimeWait = end
		ev.Lifetime, ev.LifetimeAtLeast = end.Length, false
		if r.state == sock.TimeWait {
			ev.InState, ev.InStateExact = end.Length, false
		}
	}
	return ev
}

// age is a socket's age at now: from the TIME_WAIT timer, else since it
// was first seen, at least when it predates that first look.
func age(s *sock.Socket, predates bool, firstSeen, now time.Time) (time.Duration, AgeSource) {
	if age, _, ok := s.TimeWaitAge(); ok {
		return age, AgeTimer
	}
	if predates {
		return now.Sub(firstSeen), AgeAtLeast
	}
	return now.Sub(firstSeen), AgeFirstSeen
}

// Once is the view of a single snapshot, without a tracker: what a one-shot
// listing knows. TIME_WAIT ages are exact; every other socket predates it.
// It keeps no record per socket, so it costs a fraction of Update.
func Once(snap *sock.Snapshot, lookup Lookup) *View {
	v := &View{}
	OnceInto(v, snap, lookup)
	return v
}

// OnceInto is Once into v, reusing the memory of its entries: a listing
// streamed a batch at a time views every batch in the same few pages.
func OnceInto(v *View, snap *sock.Snapshot, lookup Lookup) {
	OnceBornInto(v, snap, lookup, nil)
}

// OnceBornInto is OnceInto with the kernel's birth dates: a socket they
// date has its exact age, and its birth is its first sight.
func OnceBornInto(v *View, snap *sock.Snapshot, lookup Lookup, births Births) {
	onceInto(v, snap, lookup, births, true)
}

// Preview returns the view Update will return for snap when snap is the
// tracker's first snapshot, without making a record: a front end can show
// it while Update takes the snapshot in. After the first Update it returns
// nil. Entries are first seen now, as Update's are, even those the kernel
// dates.
func (t *Tracker) Preview(snap *sock.Snapshot) *View {
	if t.gen != 0 {
		return nil
	}
	v := &View{}
	onceInto(v, snap, t.lookup, t.births, false)
	return v
}

// onceInto is OnceBornInto; bornSeen makes a kernel-dated socket's birth
// its first sight, where a tracker's first sight is the look.
func onceInto(v *View, snap *sock.Snapshot, lookup Lookup, births Births, bornSeen bool) {
	now := snap.Time
	entries := v.Entries
	if cap(entries) < len(snap.Sockets) {
		// Batches differ in size: room for larger ones, so that the
		// slice is not made again for each.
		n := max(len(snap.Sockets), 2*cap(entries), 256)
		entries = prefault.Make[Entry](len(snap.Sockets), n, len(snap.Sockets))
	}
	owners := v.owners[:0]
	if lookup != nil && cap(owners) < len(snap.Sockets) {
		// Room for every socket's owner: appends never move the ones
		// the entries point to.
		owners = prefault.Make[procs.Process](0, max(len(snap.Sockets), 2*cap(owners), 256), 0)
	}
	*v = View{Time: now, Snapshot: snap, Entries: entries[:len(snap.Sockets)]}
	seen := now.UnixNano()
	for i := range snap.Sockets {
		s := &snap.Sockets[i]
		e := &v.Entries[i]
		*e = Entry{Socket: s, firstSeen: seen}
		e.Age, e.AgeSource = age(s, true, now, now)
		if births != nil && e.AgeSource != AgeTimer {
			if b, ok := births(s.Cookie); ok && !b.Born.IsZero() {
				e.Age, e.AgeSource = now.Sub(b.Born), AgeKernel
				if bornSeen {
					e.firstSeen = b.Born.UnixNano()
				}
			}
		}
		if s.Inode != 0 && lookup != nil {
			if p, ok := lookup(s.Inode); ok {
				owners = append(owners, p)
				e.Process = &owners[len(owners)-1]
			}
		}
	}
	v.owners = owners
}

// SetLookup changes how owners are found; nil stops looking them up (owners
// already known are kept).
func (t *Tracker) SetLookup(l Lookup) { t.lookup = l }

// History returns the transitions seen for a socket, oldest first.
func (t *Tracker) History(k Key) []Transition {
	r, _ := t.recs.Get(k)
	if r == nil {
		return nil
	}
	if r.history == nil {
		return nil
	}
	return append([]Transition(nil), *r.history...)
}

// Len returns the number of sockets tracked.
func (t *Tracker) Len() int { return t.recs.Len() }
