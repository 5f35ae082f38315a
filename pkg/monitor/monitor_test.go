package monitor

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

// steps is a Source that plays socket tables, one per poll.
type steps struct {
	mu    sync.Mutex
	clock time.Time
	next  int
	table [][]sock.Socket
}

func (s *steps) Snapshot() (*sock.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock = s.clock.Add(time.Second)
	snap := &sock.Snapshot{Time: s.clock, Sockets: append([]sock.Socket(nil), s.table[min(s.next, len(s.table)-1)]...)}
	s.next++
	return snap, nil
}

func (s *steps) SetProgram(*filter.Program) {}
func (s *steps) SetInfo(bool)               {}

// Announcements already waiting when a tick comes are taken before the
// poll, so the socket's end is dated by the kernel every time, not only
// when select happens to pick the announcement first.
func TestDestroysBeforeThePoll(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	cw := sock.Socket{Cookie: 7, Family: sock.IPv4, State: sock.CloseWait,
		Local: sock.MustParseEndpoint("127.0.0.1:9000"), Peer: sock.MustParseEndpoint("127.0.0.1:40000")}
	for round := range 20 {
		src := &steps{clock: t0, table: [][]sock.Socket{{cw}, {}}}
		frames := make(chan *Frame, 4)
		m := New(src, Options{Now: func() time.Time { return t0 }}, func(f *Frame) { frames <- f })
		tick := make(chan time.Time)
		destroys := make(chan sock.Destroy, 1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx, tick, destroys) }()
		<-frames // the first poll shows the CLOSE_WAIT socket
		closed := t0.Add(1500 * time.Millisecond)
		destroys <- sock.Destroy{Cookie: 7, At: closed}
		tick <- time.Time{}
		f := <-frames
		cancel()
		<-done
		if len(f.Events) != 1 || f.Events[0].Kind != track.EventGone || !f.Events[0].Exact || !f.Events[0].At.Equal(closed) {
			t.Fatalf("round %d: events %+v, want the socket gone at its announcement", round, f.Events)
		}
	}
}

// The kernel's ends are handed on by the catch-up that follows each dump:
// an end it gives (a socket freed just before the dump, its news still in
// the events' ring) dates that poll's end of the socket, asked for or on
// a tick, and is not left to the next poll.
func TestEndsFromTheCatchUpDateThatPoll(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	cw := func(cookie uint64) sock.Socket {
		return sock.Socket{Cookie: cookie, Family: sock.IPv4, State: sock.CloseWait,
			Local: sock.MustParseEndpoint("127.0.0.1:9000"), Peer: sock.MustParseEndpoint("127.0.0.1:40000")}
	}
	src := &steps{clock: t0, table: [][]sock.Socket{{cw(7), cw(8)}, {cw(8)}, {}}}
	destroys := make(chan sock.Destroy, 4)
	var told []sock.Destroy // what the next catch-up tells
	frames := make(chan *Frame, 4)
	m := New(src, Options{Now: func() time.Time { return t0 }, CatchUp: func() {
		for _, d := range told {
			destroys <- d
		}
		told = nil
	}}, func(f *Frame) { frames <- f })
	tick, stop := run(t, m, destroys)
	defer stop()
	<-frames // the first poll shows both
	// An end told by the first poll's catch-up dates the next poll's end
	// of the socket, once the tracker has its records.
	src2 := &steps{clock: t0, table: [][]sock.Socket{{cw(5)}, {}}}
	destroys2 := make(chan sock.Destroy, 4)
	frames2 := make(chan *Frame, 4)
	freed := t0.Add(1500 * time.Millisecond)
	m2 := New(src2, Options{Now: func() time.Time { return t0 }, CatchUp: func() {
		if src2.next == 1 {
			destroys2 <- sock.Destroy{Cookie: 5, At: freed}
		}
	}}, func(f *Frame) { frames2 <- f })
	tick2, stop2 := run(t, m2, destroys2)
	<-frames2
	tick2 <- time.Time{}
	if f := <-frames2; len(f.Events) != 1 || !f.Events[0].Exact || !f.Events[0].At.Equal(freed) {
		t.Errorf("an end told at the first poll: events %+v, want the socket gone at it", f.Events)
	}
	stop2()
	for i, ask := range []bool{false, true} {
		cookie := uint64(7 + i)
		closed := t0.Add(time.Duration(i+1)*time.Second + 900*time.Millisecond)
		// Set on the loop, and done before the tick is sent: select
		// picks among ready cases at random.
		set := make(chan struct{})
		m.Do(func() { told = []sock.Destroy{{Cookie: cookie, At: closed}}; close(set) })
		<-set
		if ask {
			m.Do(func() { m.Poll() })
		} else {
			tick <- time.Time{}
		}
		f := <-frames
		if len(f.Events) != 1 || f.Events[0].Kind != track.EventGone || !f.Events[0].Exact || !f.Events[0].At.Equal(closed) {
			t.Errorf("socket %d (asked %v): events %+v, want it gone at its end", cookie, ask, f.Events)
		}
	}
}

// infoSource records what tcp_info it was told to ask for, and can say
// why its announcements stopped.
type infoSource struct {
	steps
	infoMu sync.Mutex
	info   []bool
	failed error
}

func (s *infoSource) SetInfo(on bool) {
	s.infoMu.Lock()
	s.info = append(s.info, on)
	s.infoMu.Unlock()
}

func (s *infoSource) DestroysErr() error { return s.failed }

// run starts m on a tick channel the test drives; it returns a stop
// function that waits for Run to end.
func run(t *testing.T, m *Monitor, destroys <-chan sock.Destroy) (tick chan time.Time, stop func()) {
	t.Helper()
	tick = make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, tick, destroys) }()
	return tick, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// tcp_info is asked for while any user needs it: one user's leaving does
// not switch it off for another.
func TestInfoWhileAnyoneNeedsIt(t *testing.T) {
	src := &infoSource{steps: steps{table: [][]sock.Socket{{}}}}
	frames := make(chan *Frame, 64)
	m := New(src, Options{}, func(f *Frame) { frames <- f })
	_, stop := run(t, m, nil)
	defer stop()
	m.NeedInfo("detail", true)
	m.NeedInfo("columns", true)
	m.NeedInfo("detail", false) // the pane closes; the column still needs it
	m.NeedInfo("detail", false) // twice: no change
	m.NeedInfo("columns", false)
	// Commands run in order: once this one has, every change has.
	done := make(chan struct{})
	m.Do(func() { close(done) })
	<-done
	// The first poll, then one for each new need; none for a need that
	// ended.
	if n := len(frames); n != 3 {
		t.Errorf("%d frames, want 3: the first poll and one per new need", n)
	}
	src.infoMu.Lock()
	defer src.infoMu.Unlock()
	if want := []bool{true, false}; len(src.info) != 2 || src.info[0] != want[0] || src.info[1] != want[1] {
		t.Errorf("SetInfo calls %v, want %v: on at the first user, off after the last", src.info, want)
	}
}

// The Set* methods are safe from any goroutine while Run polls (run with
// -race), and none of them waits for the loop, even after it has ended.
func TestSettersFromAnyGoroutine(t *testing.T) {
	src := &infoSource{steps: steps{table: [][]sock.Socket{{}}}}
	m := New(src, Options{}, func(f *Frame) {})
	tick, stop := run(t, m, nil)
	ticked := make(chan struct{})
	var wg sync.WaitGroup
	prog := filter.Compile(nil, filter.Options{})
	for i := range 4 {
		wg.Go(func() {
			for j := range 50 {
				m.SetInterval(time.Duration(j+1) * time.Millisecond)
				m.SetProgram(prog)
				m.SetProcesses(j%2 == 0)
				m.NeedInfo(string(rune('a'+i)), j%2 == 0)
				m.Refresh()
			}
		})
	}
	go func() {
		defer close(ticked)
		for range 10 {
			tick <- time.Time{}
		}
	}()
	wg.Wait()
	<-ticked // the loop took every tick: nothing is left waiting on it
	stop()
	// The loop has ended: commands are dropped, never waited for.
	done := make(chan struct{})
	go func() {
		for range 2 * maxPending {
			m.SetProgram(prog)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a setter waited for a loop that has ended")
	}
}

// When the announcements stop on a fault, the next frame says why, once.
func TestDestroysFaultReportedOnce(t *testing.T) {
	src := &infoSource{steps: steps{table: [][]sock.Socket{{}}}, failed: errors.New("destroy events stopped: boom")}
	frames := make(chan *Frame, 8)
	m := New(src, Options{}, func(f *Frame) { frames <- f })
	destroys := make(chan sock.Destroy)
	tick, stop := run(t, m, destroys)
	defer stop()
	<-frames // the first poll
	close(destroys)
	var warned []error
	for range 3 {
		tick <- time.Time{}
		if f := <-frames; f.Warn != nil {
			warned = append(warned, f.Warn)
		}
	}
	if len(warned) != 1 || !strings.Contains(warned[0].Error(), "boom") {
		t.Errorf("warnings %v, want the fault once", warned)
	}
}

// Extras run on the loop after each poll and their value travels in the
// frame; a failure is the frame's Warn, not its Err.
type countExtras struct{ n int }

func (c *countExtras) Extra(f *Frame, t *track.Tracker) (any, error) {
	c.n++
	if c.n == 2 {
		return c.n, errors.New("extra failed")
	}
	return c.n, nil
}

func TestExtras(t *testing.T) {
	src := &infoSource{steps: steps{table: [][]sock.Socket{{}}}}
	frames := make(chan *Frame, 8)
	m := New(src, Options{Extras: &countExtras{}}, func(f *Frame) { frames <- f })
	tick, stop := run(t, m, nil)
	defer stop()
	for want := 1; want <= 3; want++ {
		if want > 1 {
			tick <- time.Time{}
		}
		f := <-frames
		if f.Extra != want || f.Err != nil || (f.Warn != nil) != (want == 2) {
			t.Errorf("frame %d: extra %v, err %v, warn %v", want, f.Extra, f.Err, f.Warn)
		}
	}
}

// slowSource is a Source whose every dump takes at least delay.
type slowSource struct{ delay time.Duration }

func (s slowSource) Snapshot() (*sock.Snapshot, error) {
	time.Sleep(s.delay)
	return &sock.Snapshot{Time: time.Now(), Total: -1}, nil
}
func (slowSource) SetProgram(*filter.Program) {}
func (slowSource) SetInfo(bool)               {}

// sentFrame is a frame and when the monitor handed it on.
type sentFrame struct {
	*Frame
	sent time.Time
}

// runPaced runs a monitor of src on its own ticker of every until the test
// ends; its frames come on the channel (those the test does not take in
// time are dropped).
func runPaced(t *testing.T, src Source, every time.Duration) (*Monitor, <-chan sentFrame) {
	frames := make(chan sentFrame, 16)
	m := New(src, Options{Interval: every}, func(f *Frame) {
		select {
		case frames <- sentFrame{f, time.Now()}:
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, nil, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	return m, frames
}

// Dumps slower than a quarter of the interval space the polls out to four
// dump lengths, and the frames say the interval in force and the dump's
// length.
func TestSlowDumpsSpaceThePolls(t *testing.T) {
	const delay = 30 * time.Millisecond
	_, frames := runPaced(t, slowSource{delay}, 10*time.Millisecond)
	first := <-frames
	if first.Took < delay {
		t.Errorf("the first frame's dump took %v, less than the %v it slept", first.Took, delay)
	}
	second := <-frames // polled after the first was paced
	if second.Every < 4*first.Took {
		t.Errorf("a %v dump with a 10ms interval: polls every %v, want at least four dumps' length", first.Took, second.Every)
	}
}

// firstSlow is a source whose first dump is slow (a first look-up of every
// owner, say) and the others quick.
type firstSlow struct {
	slowSource
	polls *int
}

func (s firstSlow) Snapshot() (*sock.Snapshot, error) {
	if *s.polls++; *s.polls == 1 {
		return s.slowSource.Snapshot()
	}
	return &sock.Snapshot{Time: time.Now(), Total: -1}, nil
}

// Each frame says the interval its own poll sets beside that poll's time:
// a quick poll after a slow one says the interval asked for, not the
// stretch the slow one made.
func TestFrameSaysTheIntervalItsPollSets(t *testing.T) {
	const delay = 200 * time.Millisecond
	_, frames := runPaced(t, firstSlow{slowSource{delay}, new(int)}, 100*time.Millisecond)
	first := <-frames
	if first.Every < 4*delay {
		t.Errorf("a %v poll with a 100ms interval: its frame says every %v, want at least four polls' length", first.Took, first.Every)
	}
	// (A host that stalls even the quick poll past a quarter of the
	// interval stretches it again, by that poll's time.)
	second := <-frames
	want := max(100*time.Millisecond, 4*second.Took)
	if second.Every < want || second.Every >= want+100*time.Millisecond {
		t.Errorf("a %v poll after a slow one: its frame says every %v, want %v (from its own time)", second.Took, second.Every, want)
	}
}

// A poll asked for between two ticks (a filter change, a key) moves the
// next tick a whole interval after it: two polls do not come back to
// back. A slow machine only delays the next, never brings it sooner.
func TestAskedPollRestartsTheInterval(t *testing.T) {
	const every = 400 * time.Millisecond
	m, frames := runPaced(t, slowSource{0}, every)
	<-frames // the first poll
	time.Sleep(every / 2)
	askedAt := make(chan time.Time, 1)
	if !m.Do(func() { m.Poll(); askedAt <- time.Now() }) {
		t.Fatal("the poll asked for was not taken")
	}
	asked := <-askedAt
	for f := range frames {
		if next := f.sent; next.After(asked) { // the frames before were its own and the ticks' before it
			if gap := next.Sub(asked); gap < every*3/4 {
				t.Errorf("the tick's poll came %v after the one asked for; want about the %v interval", gap, every)
			}
			return
		}
	}
}

// recycling is a source that reuses the snapshots handed back, and fills
// each dump with sockets whose cookies name the poll.
type recycling struct {
	poll  uint64
	spare []*sock.Snapshot
	made  int
}

func (s *recycling) Snapshot() (*sock.Snapshot, error) {
	s.poll++
	var snap *sock.Snapshot
	if n := len(s.spare); n > 0 {
		snap, s.spare = s.spare[n-1], s.spare[:n-1]
	} else {
		snap = &sock.Snapshot{Sockets: make([]sock.Socket, 0, 4)}
		s.made++
	}
	snap.Time = time.Unix(int64(s.poll), 0)
	snap.Sockets = snap.Sockets[:0]
	for i := range uint64(3) {
		// Sockets 1 and 2 stay; socket 3 is new every poll, so every
		// poll has a gone socket from the one before.
		cookie := i + 1
		if i == 2 {
			cookie = 100 + s.poll
		}
		snap.Sockets = append(snap.Sockets, sock.Socket{Cookie: cookie, State: sock.Established, Info: -1,
			RecvQ: uint32(s.poll)})
	}
	return snap, nil
}

func (s *recycling) Recycle(snap *sock.Snapshot) { s.spare = append(s.spare, snap) }
func (s *recycling) SetProgram(*filter.Program)  {}
func (s *recycling) SetInfo(bool)                {}

// Entries point into their snapshot, so a snapshot goes back to the
// source only once its frame is released and the tracker has a later one;
// a front end that releases a frame at once (watch) must not get the
// tracker's snapshot overwritten, and two buffers then take turns.
func TestSnapshotsRecycledOnlyWhenNothingPointsIn(t *testing.T) {
	for _, releaseAtOnce := range []bool{false, true} {
		src := &recycling{}
		var held *Frame
		m := New(src, Options{}, func(f *Frame) {
			for i := range f.Entries {
				if got := f.Entries[i].RecvQ; got != uint32(src.poll) {
					t.Fatalf("frame of poll %d shows a socket of poll %d", src.poll, got)
				}
			}
			for _, g := range f.Gone {
				if g.Cookie != 100+src.poll-1 || g.RecvQ != uint32(src.poll-1) {
					t.Fatalf("poll %d: gone %d from poll %d, want %d from poll %d",
						src.poll, g.Cookie, g.RecvQ, 100+src.poll-1, src.poll-1)
				}
			}
			if src.poll > 1 && len(f.Gone) != 1 {
				t.Fatalf("poll %d: %d gone, want 1", src.poll, len(f.Gone))
			}
			if releaseAtOnce {
				f.Release()
				return
			}
			if held != nil {
				// Still readable until released: the next dump did not
				// write over it.
				if got := held.Entries[0].RecvQ; got != uint32(src.poll-1) {
					t.Fatalf("the frame of poll %d now shows poll %d", src.poll-1, got)
				}
				held.Release()
			}
			held = f
		})
		for range 10 {
			m.Poll()
		}
		if want := 3; src.made > want {
			t.Errorf("release at once %v: 10 polls made %d snapshots, want at most %d", releaseAtOnce, src.made, want)
		}
	}
}

// With Options.Shown the tracker takes the first snapshot in only once
// the front end has shown the first frame: no second poll comes before,
// and the wait does not count as the poll's time, which would space the
// polls out.
func TestFirstTakenInOnceShown(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	a := sock.Socket{Cookie: 1, Family: sock.IPv4, State: sock.Established,
		Local: sock.MustParseEndpoint("127.0.0.1:9000"), Peer: sock.MustParseEndpoint("127.0.0.1:40000")}
	src := &steps{clock: t0, table: [][]sock.Socket{{a}}}
	shown := make(chan struct{})
	frames := make(chan *Frame, 16)
	const every = 10 * time.Millisecond
	m := New(src, Options{Interval: every, Shown: shown}, func(f *Frame) {
		select {
		case frames <- f:
		default: // never block the monitor: the test reads the first few
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, nil, nil) }()
	defer func() { cancel(); <-done }()
	<-frames
	// Twenty intervals: polls that did not wait would have sent frames.
	time.Sleep(20 * every)
	select {
	case f := <-frames:
		t.Fatalf("a frame at %v before the first was shown", f.Time)
	default:
	}
	close(shown)
	f := <-frames
	if f.Every != every {
		t.Errorf("the poll after the first was shown: every %v, want the %v interval (the wait is not the poll's)", f.Every, every)
	}
	if len(f.Entries) != 1 || len(f.Events) != 0 {
		t.Errorf("the second frame: %d entries, events %+v; want the socket, known since the first", len(f.Entries), f.Events)
	}
}
