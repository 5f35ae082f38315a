// Package monitor is the polling loop every live front end shares: the
// dashboard, watch and timewait. One goroutine owns the source and the
// tracker; on every tick (and as destroy events arrive) it folds a new
// snapshot into the tracker and hands an immutable Frame to the front end.
//
// Front ends change the loop (filter, interval, processes, the socket being
// inspected) only through Do, whose closures run on the loop's goroutine, so
// the tracker and the source are never shared.
package monitor

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
	"github.com/sockscope/sockscope/pkg/twstat"
)

// Source is where snapshots come from: the kernel source in the command, a
// scripted fake in tests.
type Source interface {
	Snapshot() (*sock.Snapshot, error)
	// SetProgram changes the filter for the next snapshots.
	SetProgram(*filter.Program)
	// SetInfo asks for tcp_info in the next snapshots, or stops asking.
	SetInfo(bool)
}

// Frame is one poll's result. It is never modified after it is sent.
type Frame struct {
	Time    time.Time
	Entries []track.Entry // the sockets that match the filter
	Gone    []track.Entry // sockets the previous frame had and this one lacks
	Events  []track.Event // what changed since the previous frame
	Infos   []sock.TCPInfo
	Total   int // sockets in the namespace, -1 when unknown
	Err     error
	// Refiltered is set on the first frame after a filter change: its Gone
	// sockets and gone events are about the filter, not the kernel's table.
	Refiltered bool
	// Detail and History describe the socket being inspected, if any.
	Detail  track.Key
	History []track.Transition
	// TimeWait is the kernel's TIME_WAIT context, read while someone looks
	// at it (SetTimeWaitContext).
	TimeWait *twstat.Context
	// Counters are the kernel's TCP counters at Time, when Options.Counters
	// reads them.
	Counters map[string]int64

	spares *spares // where Release returns Entries; nil once released
}

// Release tells the monitor that nothing reads f.Entries any more, so the
// next poll may write over them: a 100k-socket frame is 20 MB that a
// front end polling every second would otherwise leave to the garbage
// collector every second. Releasing is optional; a frame released twice is released
// once. Do not release a frame whose Entries another frame shares.
func (f *Frame) Release() {
	if f.spares != nil && f.Entries != nil {
		f.spares.put(f.Entries)
	}
	f.spares = nil
}

// spares holds released Entries until the monitor's goroutine takes them.
type spares struct {
	mu   sync.Mutex
	free [][]track.Entry
}

func (s *spares) put(e []track.Entry) {
	s.mu.Lock()
	if len(s.free) < 2 {
		s.free = append(s.free, e)
	}
	s.mu.Unlock()
}

func (s *spares) take() []track.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.free) == 0 {
		return nil
	}
	e := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	return e
}

// Recycler is a Source that can reuse a snapshot's memory once the
// monitor is done with it (the tracker copies what it keeps).
type Recycler interface {
	Recycle(*sock.Snapshot)
}

// Prober is a Source that can also ask about one socket without a dump.
// With one, the monitor times the end of TIME_WAIT entries to within
// probeEvery instead of one polling interval.
type Prober interface {
	Alive(s *sock.Socket) (bool, error)
}

// probeEvery is how often TIME_WAIT entries past their 60 s are looked up,
// and maxProbes how many at most each time.
const (
	probeEvery = 50 * time.Millisecond
	maxProbes  = 32
)

// Monitor is the loop. Its fields belong to its goroutine.
type Monitor struct {
	src        Source
	tracker    *track.Tracker
	lookup     track.Lookup
	interval   time.Duration
	detail     track.Key
	refiltered bool
	now        func() time.Time
	cmds       chan func()
	send       func(*Frame)
	ticker     *time.Ticker
	twContext  func() (twstat.Context, error)
	wantTW     bool
	counters   func() (map[string]int64, error)
	spares     spares
}

// Options configures a Monitor.
type Options struct {
	Lookup    track.Lookup // owners of sockets; nil when unavailable
	Processes bool         // look owners up from the start
	Interval  time.Duration
	Now       func() time.Time // nil: time.Now
	// TimeWait reads the kernel's TIME_WAIT settings and counters; nil
	// when they cannot be read.
	TimeWait func() (twstat.Context, error)
	// Counters reads the kernel's TCP counters for every frame; nil: none.
	Counters func() (map[string]int64, error)
}

// New returns a Monitor that hands each frame to send, on the monitor's
// goroutine: send must not block for long.
func New(src Source, opt Options, send func(*Frame)) *Monitor {
	if opt.Interval <= 0 {
		opt.Interval = time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	m := &Monitor{src: src, tracker: track.New(nil), lookup: opt.Lookup, interval: opt.Interval,
		now: opt.Now, cmds: make(chan func(), 16), send: send, twContext: opt.TimeWait, counters: opt.Counters}
	if opt.Processes && opt.Lookup != nil {
		m.tracker.SetLookup(opt.Lookup)
	}
	return m
}

// Do runs f on the monitor's goroutine, between polls. It does not wait for
// f; it blocks only when 16 commands are already waiting.
func (m *Monitor) Do(f func()) { m.cmds <- f }

// Cmds is the channel Do sends on, for callers that select on it.
func (m *Monitor) Cmds() chan<- func() { return m.cmds }

// Run polls until ctx ends: on every tick of tick, or of an interval
// ticker when tick is nil. Destroy events from destroys (which may be nil)
// date the changes of the next poll.
func (m *Monitor) Run(ctx context.Context, tick <-chan time.Time, destroys <-chan sock.Destroy) (err error) {
	defer func() {
		// A panic here would leave a dashboard's terminal in raw mode:
		// report it as an error so the front end can shut down cleanly.
		if r := recover(); r != nil {
			err = fmt.Errorf("collector panic: %v", r)
		}
	}()
	if tick == nil {
		m.ticker = time.NewTicker(m.interval)
		defer m.ticker.Stop()
		tick = m.ticker.C
	}
	m.Poll()
	var probe <-chan time.Time
	prober, _ := m.src.(Prober)
	if prober != nil {
		t := time.NewTicker(probeEvery)
		defer t.Stop()
		probe = t.C
	}
	var expiring []sock.Socket
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-m.cmds:
			f()
		case <-probe:
			now := m.now()
			expiring = m.tracker.Expiring(now, expiring[:0])
			// A bounded number of lookups per tick keeps a host that frees
			// thousands of entries a second from paying for precision;
			// the rest are timed by the polls.
			for i := range min(len(expiring), maxProbes) {
				alive, err := prober.Alive(&expiring[i])
				if err == nil {
					m.tracker.Probed(track.KeyOf(&expiring[i]), now, alive)
				}
			}
		case d, ok := <-destroys:
			if !ok {
				destroys = nil
				continue
			}
			m.tracker.Destroyed(d)
		case <-tick:
			// Announcements that came before this poll date its changes
			// (select picks among ready cases at random).
			destroys = m.drain(destroys)
			m.Poll()
		}
	}
}

// drain hands the tracker every announcement already waiting, and returns
// nil once the channel is closed.
func (m *Monitor) drain(destroys <-chan sock.Destroy) <-chan sock.Destroy {
	for {
		select {
		case d, ok := <-destroys:
			if !ok {
				return nil
			}
			m.tracker.Destroyed(d)
		default:
			return destroys
		}
	}
}

// Poll takes a snapshot now and sends its frame. Call it on the monitor's
// goroutine (in Do) or before Run.
func (m *Monitor) Poll() {
	snap, err := m.src.Snapshot()
	if err != nil {
		m.send(&Frame{Time: m.now(), Err: err, Total: -1})
		return
	}
	if e := m.spares.take(); e != nil {
		m.tracker.Reuse(e)
	}
	v := m.tracker.Update(snap)
	f := &Frame{Time: v.Time, Entries: v.Entries, Gone: v.Gone, Events: v.Events, Infos: snap.Infos,
		Total: snap.Total, Refiltered: m.refiltered, Detail: m.detail, spares: &m.spares}
	if r, ok := m.src.(Recycler); ok {
		r.Recycle(snap) // entries are copies; nothing points into the snapshot
	}
	m.refiltered = false
	if m.detail != (track.Key{}) {
		f.History = m.tracker.History(m.detail)
	}
	if m.counters != nil {
		f.Counters, _ = m.counters() // a frame without counters shows no rates
	}
	if m.wantTW && m.twContext != nil {
		if k, err := m.twContext(); err == nil {
			f.TimeWait = &k
		}
	}
	m.send(f)
}

// SetTimeWaitContext starts or stops reading the kernel's TIME_WAIT
// context into frames.
func (m *Monitor) SetTimeWaitContext(on bool) {
	m.wantTW = on
	if on {
		m.Poll()
	}
}

// Tracked returns how many sockets the tracker holds.
func (m *Monitor) Tracked() int { return m.tracker.Len() }

// SetInterval changes the polling interval (when Run made its own ticker).
func (m *Monitor) SetInterval(d time.Duration) {
	m.interval = d
	if m.ticker != nil {
		m.ticker.Reset(d)
	}
}

// SetProgram changes the filter and polls at once.
func (m *Monitor) SetProgram(prog *filter.Program) {
	m.src.SetProgram(prog)
	m.refiltered = true
	m.Poll()
}

// SetProcesses starts or stops looking owners up.
func (m *Monitor) SetProcesses(on bool) {
	if on {
		m.tracker.SetLookup(m.lookup)
		m.Poll() // owners now, not one interval later
	} else {
		m.tracker.SetLookup(nil)
	}
}

// SetDetail starts (a key) or stops (the zero Key) inspecting a socket:
// tcp_info is asked for only while someone looks at it.
func (m *Monitor) SetDetail(k track.Key) {
	m.detail = k
	m.src.SetInfo(k != (track.Key{}))
	m.Poll()
}
