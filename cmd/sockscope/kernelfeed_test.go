package main

import (
	"net"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/kevents"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

// When the kernel's news of a change is lost (its ring was full), watch
// shows the poll's event for it, and claims no exact time in a state
// whose start it did not hear of; with every change told it prints the
// kernel's alone, exactly dated.
// feedFixture drives a kernelFeed with made-up transitions and polls.
type feedFixture struct {
	k       *kernelFeed
	t0      time.Time
	printed []track.Event // what the last tell printed
}

func newFeedFixture() *feedFixture {
	return &feedFixture{k: newKernelFeed(filter.Compile(nil, filter.Options{}), func(uint32) bool { return true }, false), t0: time.Now()}
}

func (f *feedFixture) at(ms int) time.Time { return f.t0.Add(time.Duration(ms) * time.Millisecond) }

// tell hands the feed the kernel's transition of cookie at ms.
func (f *feedFixture) tell(cookie uint64, from, to sock.State, ms int) {
	f.printed = f.printed[:0]
	f.k.events(&kevents.Transition{At: f.at(ms), Cookie: cookie, From: from, To: to, Family: sock.IPv4},
		func(ev *track.Event) { f.printed = append(f.printed, *ev) })
}

// poll returns a poll's event of kind for cookie at ms, as adjust left
// it, and whether watch prints it.
func (f *feedFixture) poll(kind track.EventKind, cookie uint64, from, to sock.State, ms int) (track.Event, bool) {
	sk := sock.Socket{Cookie: cookie, State: to}
	ev := track.Event{Kind: kind, At: f.at(ms), Entry: track.Entry{Socket: &sk}, From: from, To: to}
	return ev, f.k.adjust(&ev)
}

func TestKernelFeedWithLostNews(t *testing.T) {
	f := newFeedFixture()
	at, tell := f.at, f.tell
	poll := func(cookie uint64, from, to sock.State, ms int) (track.Event, bool) {
		return f.poll(track.EventChange, cookie, from, to, ms)
	}

	// Told throughout: the kernel's events, exact; the poll's repeat them.
	tell(1, sock.Close, sock.SynSent, 0)
	tell(1, sock.SynSent, sock.Established, 1)
	tell(1, sock.Established, sock.FinWait1, 40)
	if len(f.printed) != 1 || !f.printed[0].InStateExact || f.printed[0].InState != 39*time.Millisecond {
		t.Errorf("a change told after the one before: %+v; want one event, 39ms exactly in ESTABLISHED", f.printed)
	}
	if _, shown := poll(1, sock.Established, sock.FinWait1, 50); shown {
		t.Error("the poll's change the kernel told is f.printed again")
	}

	// ESTABLISHED -> FIN_WAIT1 lost: the next change says no exact time
	// in FIN_WAIT1, and the poll's change into FIN_WAIT1 shows.
	tell(2, sock.Close, sock.SynSent, 0)
	tell(2, sock.SynSent, sock.Established, 1)
	tell(2, sock.FinWait1, sock.FinWait2, 60)
	if len(f.printed) != 1 || f.printed[0].InStateExact || f.printed[0].InStateAtLeast || f.printed[0].InState != 59*time.Millisecond {
		t.Errorf("a change after a lost one: %+v; want 59ms, neither exact nor at least", f.printed)
	}
	if _, shown := poll(2, sock.Established, sock.FinWait1, 50); !shown {
		t.Error("the poll's change into FIN_WAIT1, whose news was lost, is not f.printed")
	}
	if _, shown := poll(2, sock.FinWait1, sock.FinWait2, 70); shown {
		t.Error("the poll's change into FIN_WAIT2, which the kernel told, is f.printed again")
	}

	// Into TIME_WAIT: dated by the close; exact after the change told
	// before it, not after a lost one.
	tell(1, sock.FinWait1, sock.FinWait2, 45)
	tell(1, sock.FinWait2, sock.Close, 80)
	ev, shown := poll(1, sock.FinWait2, sock.TimeWait, 85) // the timer's date, within twTimerSlack
	if !shown || !ev.At.Equal(at(80)) || !ev.InStateExact || ev.InState != 35*time.Millisecond {
		t.Errorf("into TIME_WAIT after every change told: %+v; want dated by the close, 35ms exactly", ev)
	}
	tell(2, sock.FinWait2, sock.Close, 90) // FIN_WAIT1 -> FIN_WAIT2 told at 60
	tell(3, sock.Close, sock.SynSent, 0)
	tell(3, sock.SynSent, sock.Established, 1)
	tell(3, sock.FinWait2, sock.Close, 90) // into FIN_WAIT1, FIN_WAIT2: lost
	if ev, _ := poll(2, sock.FinWait2, sock.TimeWait, 95); !ev.InStateExact || ev.InState != 30*time.Millisecond {
		t.Errorf("into TIME_WAIT, FIN_WAIT2 told: %+v; want 30ms exactly", ev)
	}
	ev, shown = poll(3, sock.Established, sock.TimeWait, 95)
	if !shown || ev.InStateExact || ev.InStateAtLeast || ev.InState != 89*time.Millisecond {
		t.Errorf("into TIME_WAIT after lost changes: %+v; want 89ms, neither exact nor at least", ev)
	}
}

// After a loss, a socket the kernel never told of may be one whose birth
// was lost: its time in a state is not given, and the poll's birth shows.
// Before any loss it is older than the watch (at least). A socket gone
// leaves the feed, its close told or not.
func TestKernelFeedAfterALostBirth(t *testing.T) {
	f := newFeedFixture()
	var lost uint64
	f.k.lost = func() (uint64, error) { return lost, nil }
	f.tell(1, sock.Established, sock.CloseWait, 10)
	if len(f.printed) != 1 || !f.printed[0].InStateAtLeast || f.printed[0].InStateUnknown {
		t.Errorf("an older socket's change, nothing lost: %+v; want at least", f.printed)
	}
	lost = 3
	f.tell(2, sock.SynSent, sock.Established, 20) // its birth lost
	if ev := f.printed; len(ev) != 1 || !ev[0].InStateUnknown || ev[0].InStateAtLeast || ev[0].InStateExact || !ev[0].Exact {
		t.Errorf("a change after lost events, of a socket never told of: %+v; want exact, its time in SYN_SENT unknown", ev)
	}
	if _, shown := f.poll(track.EventNew, 2, 0, sock.Established, 30); !shown {
		t.Error("the poll's birth of a socket whose birth was lost is not printed")
	}
	f.tell(3, sock.Close, sock.SynSent, 40)
	if _, shown := f.poll(track.EventNew, 3, 0, sock.SynSent, 50); shown {
		t.Error("the poll's birth the kernel told is printed again")
	}
	f.tell(2, sock.Established, sock.FinWait1, 60)
	f.tell(2, sock.FinWait2, sock.Close, 70) // into TIME_WAIT; FIN_WAIT2 lost
	if ev, _ := f.poll(track.EventChange, 2, sock.Established, sock.TimeWait, 75); ev.InStateExact || ev.InStateAtLeast ||
		ev.InStateUnknown || ev.InState != 10*time.Millisecond {
		t.Errorf("into TIME_WAIT after a lost change: %+v; want ~10ms, at most since the change told", ev)
	}
	f.tell(4, sock.LastAck, sock.Close, 80) // never told before: after a loss
	if c := f.k.closed[4]; !c.lossy {
		t.Errorf("a close after lost events of a socket never told of: %+v; want lossy", c)
	}
	f.poll(track.EventGone, 3, sock.SynSent, 0, 90) // its close lost
	if _, ok := f.k.last[3]; ok {
		t.Error("a socket gone, its close lost, stays in the feed")
	}
}

// The closes the kernel made, as it makes them on loopback: the poll's
// events of a closed socket say what the kernel told, not what the last
// poll saw.
func TestKernelFeedCloses(t *testing.T) {
	f := newFeedFixture()

	// The server closes first: its socket reaches FIN_WAIT2 and, its
	// owner gone, becomes a TIME_WAIT entry showing FIN_WAIT2 (the full
	// socket's change to CLOSE). The poll that last saw it ESTABLISHED
	// now sees FIN_WAIT2: told already.
	f.tell(1, sock.Close, sock.SynSent, 0)
	f.tell(1, sock.SynSent, sock.Established, 1)
	f.tell(1, sock.Established, sock.FinWait1, 1200)
	f.tell(1, sock.FinWait1, sock.FinWait2, 1203)
	f.tell(1, sock.FinWait2, sock.Close, 1203)
	if len(f.printed) != 0 {
		t.Errorf("the full socket's change to CLOSE printed %+v", f.printed)
	}
	if ev, shown := f.poll(track.EventChange, 1, sock.Established, sock.FinWait2, 1210); shown {
		t.Errorf("the poll's change into FIN_WAIT2, which the kernel told, is printed again: %+v", ev)
	}
	// A poll that read the socket in FIN_WAIT1 before the kernel's news
	// came in (a remote peer's ACK takes a round trip) says its change
	// after the close: told already too.
	if ev, shown := f.poll(track.EventChange, 1, sock.Established, sock.FinWait1, 1210); shown {
		t.Errorf("the poll's change into FIN_WAIT1, which the kernel told, is printed again: %+v", ev)
	}
	// The peer's FIN, 1.2 s later, which the timer dates.
	ev, shown := f.poll(track.EventChange, 1, sock.FinWait2, sock.TimeWait, 2400)
	if !shown || !ev.At.Equal(f.at(2400)) || ev.From != sock.FinWait2 || !ev.InStateExact || ev.InState != 1197*time.Millisecond {
		t.Errorf("into TIME_WAIT after FIN_WAIT2: shown %v, %+v; want at 2400ms, 1197ms exactly in FIN_WAIT2", shown, ev)
	}

	// The client, in CLOSE_WAIT at the last poll, closes: LAST_ACK, then
	// freed at the peer's ACK. Its end, dated by that change to CLOSE,
	// is from LAST_ACK.
	f.tell(2, sock.Close, sock.SynSent, 0)
	f.tell(2, sock.SynSent, sock.Established, 1)
	f.tell(2, sock.Established, sock.CloseWait, 1200)
	f.tell(2, sock.CloseWait, sock.LastAck, 2400)
	f.tell(2, sock.LastAck, sock.Close, 2401)
	sk := sock.Socket{Cookie: 2, State: sock.CloseWait}
	gone := track.Event{Kind: track.EventGone, At: f.at(2401), Exact: true, Entry: track.Entry{Socket: &sk}, From: sock.CloseWait,
		InState: 1201 * time.Millisecond, InStateExact: true, Lifetime: 2401 * time.Millisecond}
	if !f.k.adjust(&gone) || gone.From != sock.LastAck || !gone.InStateExact || gone.InState != time.Millisecond || gone.Lifetime != 2401*time.Millisecond {
		t.Errorf("the end of a socket closed from LAST_ACK: %+v; want from LAST_ACK, 1ms exactly, lived 2401ms", gone)
	}

	// Born and closed between two polls: every step told, so its end
	// says where it ended and how long it lived.
	f.tell(3, sock.Listen, sock.SynRecv, 100)
	f.tell(3, sock.SynRecv, sock.Established, 100)
	f.tell(3, sock.Established, sock.CloseWait, 100)
	f.tell(3, sock.CloseWait, sock.LastAck, 400)
	f.tell(3, sock.LastAck, sock.Close, 401)
	sk3 := sock.Socket{Cookie: 3, State: sock.Close}
	gone = track.Event{Kind: track.EventGone, At: f.at(401), Exact: true, Entry: track.Entry{Socket: &sk3}, From: sock.Close, Unseen: true}
	if !f.k.adjust(&gone) || gone.Unseen || gone.From != sock.LastAck || !gone.InStateExact || gone.InState != time.Millisecond ||
		gone.Lifetime != 301*time.Millisecond || gone.LifetimeAtLeast {
		t.Errorf("the end of a socket no poll saw: %+v; want from LAST_ACK, 1ms exactly, lived 301ms", gone)
	}

	// Born and closed by its owner between two polls: the poll shows
	// its TIME_WAIT entry still in FIN_WAIT2, a birth the kernel told.
	f.tell(5, sock.Close, sock.SynSent, 500)
	f.tell(5, sock.SynSent, sock.Established, 500)
	f.tell(5, sock.Established, sock.FinWait1, 510)
	f.tell(5, sock.FinWait1, sock.FinWait2, 511)
	f.tell(5, sock.FinWait2, sock.Close, 511)
	if ev, shown := f.poll(track.EventNew, 5, 0, sock.FinWait2, 900); shown {
		t.Errorf("the poll's birth of a socket the kernel told born and closed is printed again: %+v", ev)
	}

	// Older than the watch, seen by polls in CLOSE_WAIT, closed from
	// LAST_ACK with only its close told (the change before it lost):
	// the poll's time in CLOSE_WAIT is not its time in LAST_ACK.
	var lost uint64 = 1
	f.k.lost = func() (uint64, error) { return lost, nil }
	f.tell(6, sock.LastAck, sock.Close, 1000)
	sk6 := sock.Socket{Cookie: 6, State: sock.CloseWait}
	gone = track.Event{Kind: track.EventGone, At: f.at(1000), Exact: true, Entry: track.Entry{Socket: &sk6}, From: sock.CloseWait,
		InState: 3 * time.Second, InStateAtLeast: true, Lifetime: 3 * time.Second, LifetimeAtLeast: true}
	if !f.k.adjust(&gone) || gone.From != sock.LastAck || !gone.InStateUnknown || gone.InStateExact || gone.InStateAtLeast {
		t.Errorf("the end of an older socket whose change into LAST_ACK was lost: %+v; want from LAST_ACK, its time there unknown", gone)
	}
	f.k.lost = nil

	// An end the poll dates otherwise (a TIME_WAIT entry's, long after
	// the full socket closed) keeps the poll's state.
	f.tell(4, sock.Established, sock.FinWait1, 10)
	f.tell(4, sock.FinWait1, sock.FinWait2, 12)
	f.tell(4, sock.FinWait2, sock.Close, 12)
	sk4 := sock.Socket{Cookie: 4, State: sock.FinWait2}
	gone = track.Event{Kind: track.EventGone, At: f.at(60012), Entry: track.Entry{Socket: &sk4}, From: sock.FinWait2, InState: 60 * time.Second}
	if !f.k.adjust(&gone) || gone.From != sock.FinWait2 || gone.InState != 60*time.Second {
		t.Errorf("a TIME_WAIT entry's end: %+v; want the poll's", gone)
	}
}

// A dev test matches the kernel's changes by the interface a socket is
// bound to, as it matches the polls: watch 'dev lo' prints the changes of
// a socket bound to lo, and none of one bound to no interface.
func TestKernelFeedDev(t *testing.T) {
	expr, err := filter.Parse([]string{"dev", "lo"})
	if err != nil {
		t.Fatal(err)
	}
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	k := newKernelFeed(filter.Compile(expr, filter.Options{}), func(uint32) bool { return true }, false)
	t0 := time.Now()
	var printed []uint64
	for i, ifIndex := range []uint32{uint32(lo.Index), 0} {
		cookie := uint64(i + 1)
		k.events(&kevents.Transition{At: t0, Cookie: cookie, From: sock.Close, To: sock.Listen, Family: sock.IPv4,
			Local: sock.MustParseEndpoint("127.0.0.1:9000"), IfIndex: ifIndex},
			func(ev *track.Event) { printed = append(printed, ev.Entry.Cookie) })
	}
	if len(printed) != 1 || printed[0] != 1 {
		t.Errorf("printed the changes of sockets %v, want the one bound to lo (1) alone", printed)
	}
}

// A close waits for the poll that shows what it became, however far apart
// the polls are (watch -i 3m): it is forgotten once a poll came after it
// and one more, not two minutes after it.
func TestKernelFeedClosesBetweenSlowPolls(t *testing.T) {
	f := newFeedFixture()
	const min = 60_000 // ms
	f.k.prune(f.at(0)) // the first poll
	f.tell(2, sock.Close, sock.SynSent, 10)
	f.tell(2, sock.SynSent, sock.Established, 11)
	f.tell(2, sock.Established, sock.CloseWait, 1000)
	f.tell(2, sock.CloseWait, sock.LastAck, 2000)
	f.tell(2, sock.LastAck, sock.Close, 2001)
	f.k.prune(f.at(3 * min)) // the poll after it, its events adjusted
	if len(f.k.closed) != 1 {
		t.Fatalf("%d closes kept after the first poll past them, want 1 (for a late claim)", len(f.k.closed))
	}
	f.k.prune(f.at(6 * min))
	if len(f.k.closed) != 0 {
		t.Errorf("%d closes kept after two polls past them, want none", len(f.k.closed))
	}
}
