// Package track follows sockets from one snapshot to the next by cookie.
//
// It gives every socket an age, as honestly as the kernel allows:
//
//   - TIME_WAIT: exact. The kernel's timer counts down from a fixed 60 s,
//     so the age is 60 s minus the time left.
//   - A socket first seen after the tracker started: the time since the
//     snapshot that first showed it (accurate to one polling interval).
//   - A socket already there at the first snapshot: "at least" the time
//     since then. No creation time exists for any TCP state.
//
// It records each socket's state transitions and remembers its owning
// process by cookie, so a TIME_WAIT entry, which owns no file, still shows
// the process that closed it.
//
// A Tracker is NOT safe for concurrent use; one goroutine feeds it
// snapshots and hands the resulting Views on (Views are immutable).
package track

import (
	"fmt"
	"time"

	"github.com/sockscope/sockscope/pkg/procs"
	"github.com/sockscope/sockscope/pkg/sock"
)

// AgeSource says how an age was found.
type AgeSource uint8

// How ages are known, from the most to the least exact.
const (
	AgeTimer     AgeSource = iota // TIME_WAIT: 60 s minus the kernel's timer
	AgeFirstSeen                  // born while watched: since first seen
	AgeAtLeast                    // there before the tracker: at least this old
)

func (a AgeSource) String() string {
	switch a {
	case AgeTimer:
		return "timer"
	case AgeFirstSeen:
		return "first-seen"
	case AgeAtLeast:
		return "at-least"
	}
	return fmt.Sprintf("agesource%d", uint8(a))
}

// Transition is one change of state seen between two snapshots.
type Transition struct {
	From, To sock.State
	At       time.Time // the snapshot that first showed To
}

// Entry is a socket with what the tracker knows of it.
type Entry struct {
	sock.Socket
	Age       time.Duration
	AgeSource AgeSource
	Left      time.Duration // TIME_WAIT: time until the kernel frees it
	FirstSeen time.Time
	Process   procs.Process // zero when unknown
}

// HasProcess reports whether the owning process is known.
func (e *Entry) HasProcess() bool { return e.Process.PID != 0 }

// View is the tracker's reading of one snapshot.
type View struct {
	Time     time.Time
	Snapshot *sock.Snapshot
	Entries  []Entry // in snapshot order
	Gone     []Entry // tracked sockets this snapshot no longer shows
}

// Lookup finds the process owning a socket inode.
type Lookup func(inode uint32) (procs.Process, bool)

type record struct {
	firstSeen time.Time
	predates  bool
	state     sock.State
	seen      uint64 // generation of the last snapshot that showed it
	proc      procs.Process
	history   []Transition
	last      Entry
}

// maxHistory bounds the transitions kept per socket; a TCP connection
// rarely makes more than six.
const maxHistory = 16

// Tracker keeps per-cookie records across snapshots.
type Tracker struct {
	lookup  Lookup
	started time.Time
	gen     uint64
	recs    map[uint64]*record
}

// New returns a Tracker. lookup may be nil: processes are then not shown.
func New(lookup Lookup) *Tracker {
	return &Tracker{lookup: lookup, recs: make(map[uint64]*record)}
}

// Update folds a snapshot in and returns the view of it.
func (t *Tracker) Update(snap *sock.Snapshot) *View {
	now := snap.Time
	first := t.gen == 0
	if first {
		t.started = now
	}
	t.gen++
	v := &View{Time: now, Snapshot: snap, Entries: make([]Entry, len(snap.Sockets))}
	for i := range snap.Sockets {
		s := &snap.Sockets[i]
		r := t.recs[s.Cookie]
		if r == nil {
			r = &record{firstSeen: now, predates: first, state: s.State}
			t.recs[s.Cookie] = r
		} else if r.state != s.State {
			if len(r.history) < maxHistory {
				r.history = append(r.history, Transition{From: r.state, To: s.State, At: now})
			}
			r.state = s.State
		}
		r.seen = t.gen
		if s.Inode != 0 && t.lookup != nil {
			if p, ok := t.lookup(s.Inode); ok {
				r.proc = p
			}
		}
		e := &v.Entries[i]
		*e = Entry{Socket: *s, FirstSeen: r.firstSeen, Process: r.proc}
		e.Age, e.AgeSource, e.Left = t.age(s, r, now)
		r.last = *e
	}
	for cookie, r := range t.recs {
		if r.seen != t.gen {
			v.Gone = append(v.Gone, r.last)
			delete(t.recs, cookie)
		}
	}
	return v
}

func (t *Tracker) age(s *sock.Socket, r *record, now time.Time) (age time.Duration, src AgeSource, left time.Duration) {
	if s.State == sock.TimeWait && s.Timer == sock.TimerTimeWait {
		left = time.Duration(s.Expires) * time.Millisecond
		// A FIN retransmitted by the peer re-arms the timer; never show a
		// negative age.
		return max(sock.TimeWaitLen-left, 0), AgeTimer, left
	}
	if r.predates {
		return now.Sub(t.started), AgeAtLeast, 0
	}
	return now.Sub(r.firstSeen), AgeFirstSeen, 0
}

// SetLookup changes how owners are found; nil stops looking them up (owners
// already known are kept).
func (t *Tracker) SetLookup(l Lookup) { t.lookup = l }

// History returns the transitions seen for a socket, oldest first.
func (t *Tracker) History(cookie uint64) []Transition {
	r := t.recs[cookie]
	if r == nil {
		return nil
	}
	return append([]Transition(nil), r.history...)
}

// Len returns the number of sockets tracked.
func (t *Tracker) Len() int { return len(t.recs) }
