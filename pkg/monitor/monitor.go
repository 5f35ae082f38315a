// Package monitor is the polling loop every live front end shares: the
// dashboard, watch and timewait. One goroutine owns the source and the
// tracker; on every tick (and as destroy events arrive) it folds a new
// snapshot into the tracker and hands an immutable Frame to the front end.
//
// # The loop's contract
//
// One goroutine (Run) owns the source and the tracker. Every Set* method
// and Do are safe from any goroutine: they post a closure to the loop and
// return without waiting, so a front end's input handler can call them
// (a dashboard's UI goroutine must never wait on a dump). They report
// false when the command was dropped (a thousand already waiting, or a
// loop that has ended). Frames are immutable once sent.
//
// # What a frame carries
//
// A Frame carries what every live front end needs: the entries, what is
// gone, the events, tcp_info when asked for, and errors. A front end's own
// data (the dashboard's detail pane and TIME_WAIT panel) comes through an
// Extras it passes in Options, which runs on the loop's goroutine and
// returns a value that travels in Frame.Extra. tcp_info is asked for while
// any user needs it (NeedInfo, counted by name).
package monitor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
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
	// Counted are the namespaces counted rather than dumped (a Focuser
	// source's sock.Snapshot.Counted): their matching sockets by state.
	// Entries hold none of their sockets.
	Counted map[uint32]sock.StateCounts
	// Err is a failed dump: the frame has no entries.
	Err error
	// Warn is what went wrong without spoiling the frame: Extras failed,
	// or the destroy announcements stopped (said once).
	Warn error
	// Refiltered is set on the first frame after a filter change: its Gone
	// sockets and gone events are about the filter, not the kernel's table.
	Refiltered bool
	// Extra is what Options.Extras returned for this frame.
	Extra any
	// Every is the polling interval in force from this frame's poll on:
	// the one asked for, or a longer one this poll's time set (maxDuty);
	// 0 when the caller ticks.
	Every time.Duration
	// Took is how long this frame's poll took: the dump and the
	// tracker's work on it, what pacing spaces.
	Took time.Duration

	snap   *sock.Snapshot // what Entries point into
	spares *spares        // where Release returns them; nil once released
}

// Release tells the monitor that nothing reads f.Entries any more, so the
// next polls may write over them and over the snapshot they point into: a
// 100k-socket frame is 20 MB that a front end polling every second would
// otherwise leave to the garbage collector every second. Releasing is
// optional; a frame released twice is released once. Do not release a
// frame whose Entries another frame shares. Gone and Events stay valid.
func (f *Frame) Release() {
	if f.spares != nil && f.Entries != nil {
		f.spares.put(released{f.Entries, f.snap})
	}
	f.spares = nil
}

// released is the memory of a released frame.
type released struct {
	entries []track.Entry
	snap    *sock.Snapshot
}

// spares holds released frames until the monitor's goroutine takes them.
type spares struct {
	mu   sync.Mutex
	free []released
}

func (s *spares) put(r released) {
	s.mu.Lock()
	if len(s.free) < 2 {
		s.free = append(s.free, r)
	}
	s.mu.Unlock()
}

func (s *spares) take() (released, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.free) == 0 {
		return released{}, false
	}
	r := s.free[len(s.free)-1]
	s.free = s.free[:len(s.free)-1]
	return r, true
}

// Recycler is a Source that can reuse a snapshot's memory once the
// monitor is done with it: its frame is released and the tracker has
// moved on to a later snapshot.
type Recycler interface {
	Recycle(*sock.Snapshot)
}

// Prober is a Source that can also ask about one socket without a dump.
// With one, the monitor times the end of TIME_WAIT entries to within
// probeEvery instead of one polling interval.
type Prober interface {
	Alive(s *sock.Socket) (bool, error)
}

// BatchProber is a Prober that asks about many sockets in one request,
// MaxAliveAll at most: alive[i] tells of socks[i]. After an error no
// answer is relied on.
type BatchProber interface {
	AliveAll(socks []sock.Socket, alive []bool) ([]bool, error)
	MaxAliveAll() int
}

// DestroysFailer is a Source whose destroy announcements can stop on a
// fault; the monitor reports the fault once, in Frame.Warn, when the
// announcements' channel closes.
type DestroysFailer interface {
	DestroysErr() error
}

// Extras adds a front end's own data to frames. Extra runs on the loop's
// goroutine after every successful poll, so it may read the tracker (and
// must not keep it); its result travels in Frame.Extra, and must not be
// changed after it is returned.
type Extras interface {
	Extra(f *Frame, t *track.Tracker) (any, error)
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
	every      time.Duration // the interval in force: interval, or longer when dumps are slow (pace)
	asked      bool          // the poll running is not the ticker's (poll)
	refiltered bool
	now        func() time.Time
	cmds       chan func()
	send       func(*Frame)
	ticker     *time.Ticker
	extras     Extras
	catchUp    func()
	// destroys are the announcements (or the kernel's ends) Run reads,
	// nil once closed or when there are none.
	destroys <-chan sock.Destroy
	shown    <-chan struct{}
	info     map[string]bool // who needs tcp_info
	warn     error           // for the next frame
	spares   spares
	// latest is the snapshot the tracker holds (Update's), and
	// afterUpdate one whose frame came back while the tracker still held
	// it: it is recycled once the next Update is done.
	latest, afterUpdate *sock.Snapshot
}

// Options configures a Monitor.
type Options struct {
	Lookup    track.Lookup // owners of sockets; nil when unavailable
	Processes bool         // look owners up from the start
	Interval  time.Duration
	Births    track.Births // the kernel's birth dates; nil: none
	// CatchUp, when set, is called after each dump and before the
	// tracker reads it: the reader of the kernel's events hands Births
	// every change made before the dump ended, so that a change the dump
	// shows is dated by the kernel rather than by the poll.
	CatchUp func()
	Now     func() time.Time // nil: time.Now
	// Extras adds a front end's own data to every frame; nil: none.
	Extras Extras
	// Shown, when set, is closed once the front end has shown the first
	// frame. The tracker takes the first snapshot in after that (or after
	// maxShownWait): at a million sockets its records are 150 MB of new
	// memory, and making them while the table is sorted and drawn, on a
	// machine of two processors, slowed the first frame.
	Shown <-chan struct{}
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
		now: opt.Now, cmds: make(chan func(), maxPending), send: send, extras: opt.Extras, catchUp: opt.CatchUp, shown: opt.Shown, info: map[string]bool{}}
	if opt.Processes && opt.Lookup != nil {
		m.tracker.SetLookup(opt.Lookup)
	}
	m.tracker.SetBirths(opt.Births)
	return m
}

// maxPending bounds the commands waiting for the loop.
const maxPending = 1024

// Do runs f on the monitor's goroutine, between polls, and returns at
// once; it is safe from any goroutine. It reports false, and drops f,
// when maxPending commands are already waiting (a loop stuck in a dump,
// or one that has ended): a caller never waits on the loop.
func (m *Monitor) Do(f func()) bool {
	select {
	case m.cmds <- f:
		return true
	default:
		return false
	}
}

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
		m.every = m.interval
		m.ticker = time.NewTicker(m.interval)
		defer m.ticker.Stop()
		tick = m.ticker.C
	}
	m.destroys = destroys
	m.poll(false)
	// Announcements are read from their channel on this ticker and before
	// each poll, not one by one as they come: a host that closes 500
	// connections a second would otherwise wake this goroutine 500 times
	// a second (measured: a quarter of the dashboard's context switches
	// at 110k sockets). Each carries the time it was received, so
	// batching them loses nothing.
	var probe <-chan time.Time
	prober, _ := m.src.(Prober)
	if prober != nil || m.destroys != nil {
		t := time.NewTicker(probeEvery)
		defer t.Stop()
		probe = t.C
	}
	batch, _ := m.src.(BatchProber)
	var expiring []sock.Socket
	var alive []bool
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-m.cmds:
			f()
		case <-probe:
			m.drain()
			if prober == nil {
				continue
			}
			now := m.now()
			// A bounded number of lookups per tick keeps a host that frees
			// thousands of entries a second from paying for precision;
			// the rest are timed by the polls.
			expiring = m.tracker.Expiring(now, expiring[:0], maxProbes)
			if batch != nil && len(expiring) <= batch.MaxAliveAll() {
				var err error
				if alive, err = batch.AliveAll(expiring, alive); err == nil {
					for i := range expiring {
						m.tracker.Probed(track.KeyOf(&expiring[i]), now, alive[i])
					}
				}
				continue
			}
			for i := range expiring {
				alive, err := prober.Alive(&expiring[i])
				if err == nil {
					m.tracker.Probed(track.KeyOf(&expiring[i]), now, alive)
				}
			}
		case <-tick:
			m.poll(false)
		}
	}
}

// drain hands the tracker every announcement already waiting, and lets
// the channel go once it is closed.
func (m *Monitor) drain() {
	for m.destroys != nil {
		select {
		case d, ok := <-m.destroys:
			if !ok {
				m.destroys = nil
				m.destroysEnded()
				return
			}
			m.tracker.Destroyed(d)
		default:
			return
		}
	}
}

// destroysEnded notes, once, why the announcements stopped.
func (m *Monitor) destroysEnded() {
	if f, ok := m.src.(DestroysFailer); ok {
		if err := f.DestroysErr(); err != nil {
			m.warn = err
		}
	}
}

// Poll takes a snapshot now and sends its frame. Call it on the monitor's
// goroutine (in Do) or before Run.
//
// It returns how long the poll took, the dump and the tracker's work on
// it: what pacing spaces (at a million sockets the tracker's part is as
// large as the kernel's).
func (m *Monitor) Poll() time.Duration { return m.poll(true) }

// poll is Poll; asked says it is not the ticker's: the next tick then
// comes a whole interval after it, not a moment later.
func (m *Monitor) poll(asked bool) time.Duration {
	start := time.Now()
	m.asked = asked
	for {
		r, ok := m.spares.take()
		if !ok {
			break
		}
		m.tracker.Reuse(r.entries)
		if r.snap == m.latest {
			m.afterUpdate = r.snap
		} else {
			m.recycle(r.snap)
		}
	}
	snap, err := m.src.Snapshot()
	took := time.Since(start)
	if err != nil {
		m.pace(took)
		m.send(&Frame{Time: m.now(), Err: err, Total: -1, Every: m.every, Took: took})
		return took
	}
	if m.catchUp != nil {
		m.catchUp()
	}
	// Every end told by now dates this poll's changes and ends: read
	// after the dump and its catch-up, an end the kernel's events gave
	// while the dump ran (or just before it, still in their ring) is not
	// left to the next poll, which would date by its own time a socket
	// this one already misses. The first poll reads them once its
	// records are made: before, the tracker has nothing to date.
	if v := m.tracker.Preview(snap); v != nil {
		// The first poll: its frame is the view Update will make of it,
		// shown before Update takes the snapshot in. At 110k sockets the
		// first Update (a record for every socket) was a quarter of the
		// time to the first frame. TakeIn only reads the snapshot and
		// the preview.
		m.send(m.frame(v, snap, start))
		waited := m.awaitShown()
		m.tracker.TakeIn(v)
		m.drain()
		m.latest = snap
		took := time.Since(start) - waited
		m.pace(took) // with the records' making, which the frame came before
		return took
	}
	m.drain()
	v := m.tracker.Update(snap)
	m.latest = snap
	if m.afterUpdate != nil {
		m.recycle(m.afterUpdate)
		m.afterUpdate = nil
	}
	f := m.frame(v, snap, start)
	m.send(f)
	return f.Took
}

// maxShownWait bounds the wait for Options.Shown: a front end that is
// slower to draw still gets its records made.
const maxShownWait = 2 * time.Second

// awaitShown waits until the front end has shown the first frame
// (Options.Shown), at most maxShownWait, and returns how long it waited:
// not the poll's time, which paces the polls.
func (m *Monitor) awaitShown() time.Duration {
	if m.shown == nil {
		return 0
	}
	start := time.Now()
	t := time.NewTimer(maxShownWait)
	defer t.Stop()
	select {
	case <-m.shown:
	case <-t.C:
	}
	return time.Since(start)
}

// frame makes the frame of v, the view of snap, whose poll began at start.
func (m *Monitor) frame(v *track.View, snap *sock.Snapshot, start time.Time) *Frame {
	// Every poll paces, and its frame says the interval its time set: the
	// one in force before would show a poll's stretch beside the next
	// one's time ("every 1s (2.2s: a poll takes 40ms)").
	took := time.Since(start)
	m.pace(took)
	f := &Frame{Time: v.Time, Entries: v.Entries, Gone: v.Gone, Events: v.Events, Infos: snap.Infos,
		Total: snap.Total, Counted: snap.Counted, Refiltered: m.refiltered, snap: snap, spares: &m.spares, Every: m.every, Took: took}
	m.refiltered = false
	f.Warn, m.warn = m.warn, nil
	if m.extras != nil {
		var err error
		if f.Extra, err = m.extras.Extra(f, m.tracker); err != nil {
			f.Warn = errors.Join(f.Warn, err)
		}
	}
	return f
}

// recycle hands the source a snapshot nothing points into any more.
func (m *Monitor) recycle(snap *sock.Snapshot) {
	if r, ok := m.src.(Recycler); ok && snap != nil {
		r.Recycle(snap)
	}
}

// maxDuty bounds the share of the time polls take: a poll (the dump and
// the tracker's work) slower than a quarter of the interval spaces the
// polls to four poll lengths. Every
// dump of a namespace walks the kernel's socket tables, which namespaces
// share unless net.ipv4.tcp_child_ehash_entries gave them their own: on a
// host of a hundred namespaces a poll of them all can take longer than the
// interval, and polling back to back would take a core from the host it
// watches.
const maxDuty = 4

// pace stretches the interval in force when the last poll was slow, and
// brings it back when polls are quick again.
func (m *Monitor) pace(took time.Duration) {
	if m.ticker == nil {
		return // the caller ticks
	}
	next := m.interval
	if need := took * maxDuty; need > next {
		const step = 100 * time.Millisecond
		next = (need + step - 1).Truncate(step) // up: at most a quarter
	}
	if next != m.every || m.asked {
		m.every = next
		m.ticker.Reset(next)
	}
}

// Tracked returns how many sockets the tracker holds. Call it on the
// loop's goroutine (in Do).
func (m *Monitor) Tracked() int { return m.tracker.Len() }

// SetInterval changes the polling interval (when Run made its own ticker).
func (m *Monitor) SetInterval(d time.Duration) bool {
	return m.Do(func() {
		m.interval = d
		if m.ticker != nil {
			m.every = d
			m.ticker.Reset(d)
		}
	})
}

// SetProgram changes the filter and polls at once.
func (m *Monitor) SetProgram(prog *filter.Program) bool {
	return m.Do(func() {
		m.src.SetProgram(prog)
		m.refiltered = true
		m.tracker.Refilter()
		m.Poll()
	})
}

// SetProcesses starts or stops looking owners up.
func (m *Monitor) SetProcesses(on bool) bool {
	return m.Do(func() {
		if on {
			m.tracker.SetLookup(m.lookup)
			m.Poll() // owners now, not one interval later
		} else {
			m.tracker.SetLookup(nil)
		}
	})
}

// NeedInfo says that who needs tcp_info (on) or no longer does: the
// costly extension is asked for while anyone needs it. A new need polls
// at once, so it is met without waiting an interval; a need that ends
// waits for the next poll (closing a pane costs no dump).
func (m *Monitor) NeedInfo(who string, on bool) bool {
	return m.Do(func() {
		before := len(m.info) > 0
		if on {
			m.info[who] = true
		} else {
			delete(m.info, who)
		}
		if after := len(m.info) > 0; after != before {
			m.src.SetInfo(after)
		}
		if on {
			m.Poll()
		}
	})
}

// Focuser is a source of many namespaces that can dump the one shown and
// count the others (fleet.Fleet).
type Focuser interface {
	// Focus says which namespace is shown: its inode, or 0 for none.
	Focus(ino uint32)
}

// Focus tells a Focuser source which namespace is shown (0: none) and
// polls at once, so that a namespace opened fills its table now. It
// reports false when the source is not one, or the command was dropped.
func (m *Monitor) Focus(ino uint32) bool {
	fs, ok := m.src.(Focuser)
	if !ok {
		return false
	}
	return m.Do(func() {
		fs.Focus(ino)
		m.Poll()
	})
}

// Refresh polls at once.
func (m *Monitor) Refresh() bool { return m.Do(func() { m.Poll() }) }
