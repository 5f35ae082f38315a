package track

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/procs"
	"github.com/sockscope/sockscope/pkg/sock"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func snapAt(d time.Duration, socks ...sock.Socket) *sock.Snapshot {
	return &sock.Snapshot{Time: t0.Add(d), Sockets: socks}
}

func est(cookie uint64, inode uint32) sock.Socket {
	return sock.Socket{Cookie: cookie, State: sock.Established, Inode: inode, Family: sock.IPv4,
		Local: sock.MustParseEndpoint("127.0.0.1:9000"), Peer: sock.MustParseEndpoint("127.0.0.1:40000")}
}

func tw(cookie uint64, expiresMs uint32) sock.Socket {
	s := est(cookie, 0)
	s.State, s.Timer, s.Expires = sock.TimeWait, sock.TimerTimeWait, expiresMs
	return s
}

// lookupIn finds owners in a map by inode; the test may change the map.
func lookupIn(owners map[uint32]procs.Process) Lookup {
	return func(inode uint32) (procs.Process, bool) { p, ok := owners[inode]; return p, ok }
}

func entry(t *testing.T, v *View, cookie uint64) Entry {
	t.Helper()
	for _, e := range v.Entries {
		if e.Cookie == cookie {
			return e
		}
	}
	t.Fatalf("cookie %d not in view", cookie)
	return Entry{}
}

// wantAge checks the age of cookie's entry in v, and where it came from.
func wantAge(t *testing.T, v *View, cookie uint64, src AgeSource, age time.Duration, what string) {
	t.Helper()
	if e := entry(t, v, cookie); e.AgeSource != src || e.Age != age {
		t.Errorf("%s: %v %v, want %v %v", what, e.Age, e.AgeSource, src, age)
	}
}

func TestAges(t *testing.T) {
	tr := New(nil)
	v := tr.Update(snapAt(0, est(1, 11), tw(2, 41000)))
	wantAge(t, v, 1, AgeAtLeast, 0, "a socket there at start")
	if e := entry(t, v, 2); e.AgeSource != AgeTimer || e.Age != 19*time.Second || e.Left() != 41*time.Second {
		t.Errorf("TIME_WAIT with 41 s left: age %v (%v), left %v; want 19s exact, 41s", e.Age, e.AgeSource, e.Left())
	}

	v = tr.Update(snapAt(5*time.Second, est(1, 11), tw(2, 36000), est(3, 13)))
	wantAge(t, v, 1, AgeAtLeast, 5*time.Second, "predating socket after 5 s")
	if e := entry(t, v, 2); e.Age != 24*time.Second {
		t.Errorf("TIME_WAIT age %v, want 24s", e.Age)
	}
	if e := entry(t, v, 3); e.AgeSource != AgeFirstSeen || e.Age != 0 || !e.FirstSeen().Equal(t0.Add(5*time.Second)) {
		t.Errorf("new socket: %+v", e)
	}
	v = tr.Update(snapAt(7*time.Second, est(3, 13)))
	if e := entry(t, v, 3); e.Age != 2*time.Second || e.AgeSource != AgeFirstSeen {
		t.Errorf("new socket 2 s later: %v %v", e.Age, e.AgeSource)
	}
	if len(v.Gone) != 2 || tr.Len() != 1 {
		t.Errorf("gone %d (want 2), tracked %d (want 1)", len(v.Gone), tr.Len())
	}

	// A re-armed timer can read above 60 s; the age never goes negative.
	if v := New(nil).Update(snapAt(0, tw(9, 60400))); v.Entries[0].Age != 0 {
		t.Errorf("age %v for a re-armed timer", v.Entries[0].Age)
	}
}

func TestTransitionsAndProcessMemory(t *testing.T) {
	owners := map[uint32]procs.Process{11: {PID: 4242, Command: "server"}}
	lookup := lookupIn(owners)
	tr := New(lookup)
	tr.Update(snapAt(0, est(1, 11)))
	fw := est(1, 11)
	fw.State = sock.FinWait2
	tr.Update(snapAt(time.Second, fw))
	delete(owners, 11) // the process closed its descriptor
	v := tr.Update(snapAt(2*time.Second, tw(1, 59000)))
	e := entry(t, v, 1)
	if e.Process.PID != 4242 || e.Process.Command != "server" {
		t.Errorf("TIME_WAIT entry forgot its owner: %+v", e.Process)
	}
	h := tr.History(Key{Cookie: 1})
	// The kernel's timer dates the entry into TIME_WAIT: 59 s left at 2 s
	// means it entered at 1 s.
	if len(h) != 2 || h[0].From != sock.Established || h[0].To != sock.FinWait2 || h[1].To != sock.TimeWait ||
		!h[1].At.Equal(t0.Add(time.Second)) {
		t.Errorf("history %+v", h)
	}
	if tr.History(Key{Cookie: 99}) != nil {
		t.Error("history for an unknown cookie")
	}
}

func kinds(evs []Event) string {
	var b []string
	for _, e := range evs {
		b = append(b, fmt.Sprintf("%v:%d:%v->%v", e.Kind, e.Entry.Cookie, e.From, e.To))
	}
	return strings.Join(b, " ")
}

func TestEvents(t *testing.T) {
	tr := New(nil)
	if v := tr.Update(snapAt(0, est(1, 11), est(2, 12))); len(v.Events) != 0 {
		t.Errorf("events for the first snapshot: %s", kinds(v.Events))
	}
	v := tr.Update(snapAt(time.Second, est(1, 11), est(2, 12), est(3, 13)))
	if len(v.Events) != 1 || v.Events[0].Kind != EventNew || v.Events[0].To != sock.Established ||
		!v.Events[0].At.Equal(t0.Add(time.Second)) || v.Events[0].Exact {
		t.Fatalf("new socket: %+v", v.Events)
	}

	// Socket 3 is closed by us at 3 s: at 5 s the kernel says 58 s left.
	cw := est(2, 12)
	cw.State = sock.CloseWait
	v = tr.Update(snapAt(5*time.Second, est(1, 11), cw, tw(3, 58000)))
	if got := kinds(v.Events); got != "change:3:ESTABLISHED->TIME_WAIT change:2:ESTABLISHED->CLOSE_WAIT" {
		t.Fatalf("events %s", got)
	}
	e := v.Events[0]
	if !e.Exact || !e.At.Equal(t0.Add(3*time.Second)) || e.InState != 2*time.Second || e.InStateExact {
		t.Errorf("into TIME_WAIT: at %v exact %v, in ESTABLISHED %v exact %v", e.At.Sub(t0), e.Exact, e.InState, e.InStateExact)
	}
	if e := v.Events[1]; e.Exact || !e.At.Equal(t0.Add(5*time.Second)) || e.InState != 5*time.Second {
		t.Errorf("into CLOSE_WAIT (noticed by the poll): %+v", e)
	}

	// A destroy event dates the end of the CLOSE_WAIT socket between polls.
	tr.Destroyed(sock.Destroy{Cookie: 2, At: t0.Add(6200 * time.Millisecond)})
	tr.Destroyed(sock.Destroy{Cookie: 99, At: t0}) // unknown: ignored
	v = tr.Update(snapAt(8*time.Second, est(1, 11), tw(3, 55000)))
	if len(v.Events) != 1 || v.Events[0].Kind != EventGone || !v.Events[0].Exact ||
		!v.Events[0].At.Equal(t0.Add(6200*time.Millisecond)) || v.Events[0].From != sock.CloseWait ||
		v.Events[0].InState != 1200*time.Millisecond || v.Events[0].TimeWait != nil || !v.Events[0].LifetimeAtLeast {
		t.Fatalf("gone with a destroy event: %+v", v.Events)
	}

	// The TIME_WAIT entry leaves after its 60 s, noticed at 63.5 s.
	v = tr.Update(snapAt(63500*time.Millisecond, est(1, 11)))
	if len(v.Events) != 1 || v.Events[0].TimeWait == nil {
		t.Fatalf("TIME_WAIT gone: %+v", v.Events)
	}
	end := v.Events[0].TimeWait
	if end.Length != 60500*time.Millisecond || end.Early || !end.Entered.Equal(t0.Add(3*time.Second)) ||
		v.Events[0].Lifetime != end.Length || v.Events[0].LifetimeAtLeast {
		t.Errorf("TIME_WAIT end %+v, event %+v", end, v.Events[0])
	}
	if tr.Len() != 1 {
		t.Errorf("tracking %d sockets, 1 is live", tr.Len())
	}
}

func TestTimeWaitEndedEarly(t *testing.T) {
	tr := New(nil)
	other := tw(2, 60000)
	other.Peer = sock.MustParseEndpoint("127.0.0.1:40001")
	tr.Update(snapAt(0, tw(1, 60000), other))
	// At 10 s entry 1 has a successor on the same four-tuple (tcp_tw_reuse);
	// entry 2 is simply gone (killed by an RST, or ss -K).
	reuse := est(3, 13)
	v := tr.Update(snapAt(10*time.Second, reuse))
	ends := map[uint64]*TimeWaitEnd{}
	for _, e := range v.Events {
		if e.Kind == EventGone {
			ends[e.Entry.Cookie] = e.TimeWait
		}
	}
	if e := ends[1]; e == nil || !e.Early || !e.Reused || e.Length != 10*time.Second {
		t.Errorf("reused entry: %+v", e)
	}
	if e := ends[2]; e == nil || !e.Early || e.Reused {
		t.Errorf("killed entry: %+v", e)
	}
}

// Records are per (namespace, cookie), and a reused address pair is one
// in the same namespace: the same four-tuple in another namespace is
// another connection.
func TestKeyedByNamespace(t *testing.T) {
	tr := New(nil)
	inA, inB := tw(1, 60000), tw(1, 60000) // one cookie in two namespaces
	inA.Netns, inB.Netns = 100, 200
	tr.Update(snapAt(0, inA, inB))
	if tr.Len() != 2 {
		t.Fatalf("tracking %d records for one cookie in two namespaces, want 2", tr.Len())
	}
	// At 10 s both entries are gone early; a socket on the same
	// four-tuple now exists, but only in namespace 200.
	succ := est(3, 13)
	succ.Netns = 200
	v := tr.Update(snapAt(10*time.Second, succ))
	ends := map[uint32]*TimeWaitEnd{}
	for _, e := range v.Events {
		if e.Kind == EventGone {
			ends[e.Entry.Netns] = e.TimeWait
		}
	}
	if e := ends[100]; e == nil || !e.Early || e.Reused {
		t.Errorf("entry in namespace 100: %+v, want ended early, not reused", e)
	}
	if e := ends[200]; e == nil || !e.Early || !e.Reused {
		t.Errorf("entry in namespace 200: %+v, want ended early and reused", e)
	}
	// A destroy event dates only its own namespace's socket.
	tr2 := New(nil)
	a, b := est(7, 1), est(7, 2)
	a.Netns, b.Netns = 100, 200
	tr2.Update(snapAt(0, a, b))
	gone := a
	gone.State = sock.Close
	tr2.Destroyed(sock.Destroy{Cookie: 7, At: t0.Add(time.Second), Socket: gone})
	a.State, a.Timer, a.Expires = sock.TimeWait, sock.TimerTimeWait, 58000
	v = tr2.Update(snapAt(3*time.Second, a, b))
	for _, e := range v.Events {
		if e.Kind == EventChange && e.Entry.Netns != 100 {
			t.Errorf("a change in namespace %d, want only namespace 100's: %+v", e.Entry.Netns, e)
		}
	}
	if len(tr2.History(Key{Netns: 200, Cookie: 7})) != 0 || len(tr2.History(Key{Netns: 100, Cookie: 7})) != 1 {
		t.Errorf("histories: ns 100 %v, ns 200 %v; want one change in 100 only",
			tr2.History(Key{Netns: 100, Cookie: 7}), tr2.History(Key{Netns: 200, Cookie: 7}))
	}
}

// An orphaned socket closed first waits for the peer's FIN as a FIN_WAIT2
// mini-socket: the destroy event dates that step, the timer the next.
func TestFinWait2StepFromDestroyEvent(t *testing.T) {
	tr := New(nil)
	tr.Update(snapAt(0, est(1, 11)))
	tr.Destroyed(sock.Destroy{Cookie: 1, At: t0.Add(2 * time.Second)})
	// The peer's FIN came at 2.3 s: at 5 s, 57.3 s are left.
	v := tr.Update(snapAt(5*time.Second, tw(1, 57300)))
	if got := kinds(v.Events); got != "change:1:ESTABLISHED->FIN_WAIT2 change:1:FIN_WAIT2->TIME_WAIT" {
		t.Fatalf("events %s", got)
	}
	a, b := v.Events[0], v.Events[1]
	if !a.Exact || !a.At.Equal(t0.Add(2*time.Second)) || !a.InStateAtLeast {
		t.Errorf("into FIN_WAIT2: %+v", a)
	}
	if !b.Exact || !b.At.Equal(t0.Add(2300*time.Millisecond)) || b.InState != 300*time.Millisecond || !b.InStateExact {
		t.Errorf("into TIME_WAIT: at %v, after %v (exact %v)", b.At.Sub(t0), b.InState, b.InStateExact)
	}
	if h := tr.History(Key{Cookie: 1}); len(h) != 2 {
		t.Errorf("history %+v", h)
	}
}

// Probes date the end of a TIME_WAIT entry to between two looks, not two
// polls.
func TestProbedTimeWaitEnd(t *testing.T) {
	tr := New(nil)
	tr.Update(snapAt(0, tw(1, 30000), tw(2, 60000)))
	// Entry 1 entered at -30 s: its 60 s are up at 30 s.
	if got := tr.Expiring(t0.Add(29*time.Second), nil, 0); len(got) != 0 {
		t.Errorf("expiring at 29 s: %v", got)
	}
	tr.Update(snapAt(29800*time.Millisecond, tw(1, 200), tw(2, 30200)))
	got := tr.Expiring(t0.Add(29950*time.Millisecond), nil, 0)
	if len(got) != 1 || got[0].Cookie != 1 {
		t.Fatalf("expiring at 29.95 s: %v", got)
	}
	tr.Probed(Key{Cookie: 1}, t0.Add(30500*time.Millisecond), true)
	tr.Probed(Key{Cookie: 1}, t0.Add(30550*time.Millisecond), false)
	tr.Probed(Key{Cookie: 1}, t0.Add(30600*time.Millisecond), false) // the first miss counts
	tr.Probed(Key{Cookie: 7}, t0, false)                             // unknown: ignored
	if got := tr.Expiring(t0.Add(30600*time.Millisecond), nil, 0); len(got) != 0 {
		t.Errorf("an entry found gone is still probed: %v", got)
	}
	v := tr.Update(snapAt(31*time.Second, tw(2, 29000)))
	if len(v.Events) != 1 || v.Events[0].TimeWait == nil {
		t.Fatalf("events %+v", v.Events)
	}
	e := v.Events[0]
	if end := e.TimeWait; end.Length != 60550*time.Millisecond || end.Uncertainty != 50*time.Millisecond ||
		!e.At.Equal(t0.Add(30550*time.Millisecond)) {
		t.Errorf("end %+v at %v", end, e.At.Sub(t0))
	}
}

func TestOnce(t *testing.T) {
	owners := func(inode uint32) (procs.Process, bool) {
		if inode == 11 {
			return procs.Process{PID: 7, Command: "srv"}, true
		}
		return procs.Process{}, false
	}
	v := Once(snapAt(0, est(1, 11), tw(2, 41000), est(3, 12)), owners)
	if len(v.Entries) != 3 || len(v.Events) != 0 {
		t.Fatalf("view %+v", v)
	}
	if e := v.Entries[0]; e.AgeSource != AgeAtLeast || e.Age != 0 || e.Process.PID != 7 {
		t.Errorf("established: %+v", e)
	}
	if e := v.Entries[1]; e.AgeSource != AgeTimer || e.Age != 19*time.Second || e.Left() != 41*time.Second {
		t.Errorf("TIME_WAIT: %+v", e)
	}
	if e := v.Entries[2]; e.HasProcess() {
		t.Errorf("unknown owner found: %+v", e)
	}
}

// The destroy event of a socket closed first dates its step into FIN_WAIT2
// or TIME_WAIT, never the end of the TIME_WAIT entry that follows.
func TestDestroyEventDoesNotEndTheTimeWaitEntry(t *testing.T) {
	tr := New(nil)
	tr.Update(snapAt(0, est(1, 11)))
	tr.Destroyed(sock.Destroy{Cookie: 1, At: t0.Add(3 * time.Second)})
	tr.Update(snapAt(4*time.Second, tw(1, 59000))) // entered at 3 s
	v := tr.Update(snapAt(64*time.Second, est(2, 12)))
	var end *Event
	for i := range v.Events {
		if v.Events[i].Kind == EventGone {
			end = &v.Events[i]
		}
	}
	if end == nil || end.TimeWait == nil || end.TimeWait.Length != 61*time.Second || end.TimeWait.Early ||
		!end.At.Equal(t0.Add(64*time.Second)) || end.Exact {
		t.Fatalf("TIME_WAIT end: %+v", end)
	}

	// Told late, after the poll that showed the entry (the kernel's
	// events are read after each dump), it is still the step's news.
	tr = New(nil)
	tr.Update(snapAt(0, est(1, 11)))
	tr.Update(snapAt(4*time.Second, tw(1, 59000))) // entered at 3 s
	tr.Destroyed(sock.Destroy{Cookie: 1, At: t0.Add(3 * time.Second)})
	v = tr.Update(snapAt(64*time.Second, est(2, 12)))
	end = nil
	for i := range v.Events {
		if v.Events[i].Kind == EventGone {
			end = &v.Events[i]
		}
	}
	if end == nil || end.TimeWait == nil || end.TimeWait.Length != 61*time.Second || end.TimeWait.Early || end.Exact {
		t.Fatalf("TIME_WAIT end after a late destroy event: %+v", end)
	}
}

// A destroy event that came before the snapshot showing a socket new is
// no end of it (the socket connected again after a disconnect, keeping its
// cookie), and a TIME_WAIT socket still in FIN_WAIT2 takes its full
// socket's late freeing for no end either.
func TestDestroyBeforeTheSnapshotOrOfAMiniSocket(t *testing.T) {
	tr := New(nil)
	tr.Update(snapAt(0))
	tr.Destroyed(sock.Destroy{Cookie: 1, At: t0.Add(500 * time.Millisecond), Socket: est(1, 11), Matches: true})
	tr.Update(snapAt(time.Second, est(1, 11)))
	cw := est(1, 11)
	cw.State = sock.CloseWait
	v := tr.Update(snapAt(2*time.Second, cw))
	if len(v.Events) != 1 || v.Events[0].Exact || !v.Events[0].At.Equal(t0.Add(2*time.Second)) || v.Events[0].InState < 0 {
		t.Errorf("a change after an older destroy event: %+v; want it dated by the poll", v.Events)
	}

	tr = New(nil)
	tr.Update(snapAt(0, est(2, 12)))
	mini := tw(2, 59000)
	mini.State = sock.FinWait2 // a TIME_WAIT socket waiting for the FIN
	tr.Update(snapAt(time.Second, mini))
	tr.Destroyed(sock.Destroy{Cookie: 2, At: t0.Add(800 * time.Millisecond)})
	mini.Expires = 58000
	tr.Update(snapAt(2*time.Second, mini))
	v = tr.Update(snapAt(61*time.Second, est(3, 13)))
	for _, ev := range v.Events {
		if ev.Kind == EventGone && (ev.Exact || !ev.At.Equal(t0.Add(61*time.Second))) {
			t.Errorf("the end of a FIN_WAIT2 TIME_WAIT socket: %+v; want it dated by the poll", ev)
		}
	}
}

// A monitor reads the destroy events after each dump: one that came after
// the snapshot it folds in next is the end of a socket that snapshot
// still shows, in whatever state, new or not.
func TestDestroyAfterTheSnapshot(t *testing.T) {
	tr := New(nil)
	tr.Update(snapAt(0, est(1, 11)))
	cw := est(1, 11)
	cw.State = sock.CloseWait
	// Freed at 1.5 s, after the dump of 1 s showed it in CLOSE_WAIT; and
	// socket 2, born after the last poll, shown new, freed at 1.6 s.
	tr.Destroyed(sock.Destroy{Cookie: 1, At: t0.Add(1500 * time.Millisecond)})
	tr.Destroyed(sock.Destroy{Cookie: 2, At: t0.Add(1600 * time.Millisecond), Socket: est(2, 12), Matches: true})
	v := tr.Update(snapAt(time.Second, cw, est(2, 12)))
	if got := kinds(v.Events); got != "change:1:ESTABLISHED->CLOSE_WAIT new:2:STATE0->ESTABLISHED" {
		t.Fatalf("events at 1 s: %s", got)
	}
	v = tr.Update(snapAt(2*time.Second, est(3, 13)))
	for _, ev := range v.Events {
		if ev.Kind != EventGone {
			continue
		}
		want := map[uint64]time.Duration{1: 1500 * time.Millisecond, 2: 1600 * time.Millisecond}[ev.Entry.Cookie]
		if !ev.Exact || !ev.At.Equal(t0.Add(want)) {
			t.Errorf("socket %d gone at %v (exact %v), want at %v, exact", ev.Entry.Cookie, ev.At.Sub(t0), ev.Exact, want)
		}
	}
	if got := kinds(v.Events); got != "gone:1:CLOSE_WAIT->STATE0 gone:2:ESTABLISHED->STATE0 new:3:STATE0->ESTABLISHED" {
		t.Errorf("events at 2 s: %s", got)
	}
}

// A FIN the peer sends again re-arms a TIME_WAIT entry's timer: its age
// goes on from its first date, its time left is the timer's, and it does
// not end early.
func TestRearmedTimeWaitTimer(t *testing.T) {
	tr := New(nil)
	tr.Update(snapAt(0, tw(1, 41000))) // entered at -19 s
	v := tr.Update(snapAt(10*time.Second, tw(1, 59990)))
	if e := entry(t, v, 1); e.AgeSource != AgeTimer || e.Age != 29*time.Second || e.Left() != 59990*time.Millisecond {
		t.Errorf("after the timer was re-armed: %v %v, %v left; want 29s from the timer, 59.99s left", e.Age, e.AgeSource, e.Left())
	}
	v = tr.Update(snapAt(10020*time.Millisecond, tw(1, 59950)))
	wantAge(t, v, 1, AgeTimer, 29020*time.Millisecond, "a poll later")
	v = tr.Update(snapAt(71*time.Second, est(2, 12)))
	for _, ev := range v.Events {
		if ev.Kind == EventGone && (ev.TimeWait == nil || ev.TimeWait.Early || ev.TimeWait.Length != 90*time.Second) {
			t.Errorf("the end of a re-armed entry: %+v; want 90 s, not early", ev.TimeWait)
		}
	}
}

// A probe that found a live entry missing (a stale reply) is corrected by
// the next snapshot that shows it.
func TestWrongProbeIsForgotten(t *testing.T) {
	tr := New(nil)
	tr.Update(snapAt(0, tw(1, 100)))
	tr.Probed(Key{Cookie: 1}, t0.Add(50*time.Millisecond), false)
	tr.Update(snapAt(time.Second, tw(1, 0))) // still there
	v := tr.Update(snapAt(2 * time.Second))
	if e := v.Events[0]; e.TimeWait == nil || e.TimeWait.Length != 61900*time.Millisecond {
		t.Fatalf("end %+v", e.TimeWait)
	}
}

// With a slow poll, entries ending before the next snapshot are still
// probed.
func TestExpiringWithASlowPoll(t *testing.T) {
	tr := New(nil)
	tr.Update(snapAt(0, est(9, 19)))
	// One minute later (a 1m interval), entry 2 has 45 s left: it ends
	// before the next snapshot.
	tr.Update(snapAt(time.Minute, est(9, 19), tw(2, 45000)))
	if got := tr.Expiring(t0.Add(time.Minute+44950*time.Millisecond), nil, 0); len(got) != 1 {
		t.Errorf("an entry due within the next interval is not probed: %v", got)
	}
}

// Memory given back is written over in full, and a gone socket is reported
// as the previous snapshot showed it.
func TestReuseAndGoneEntries(t *testing.T) {
	tr := New(nil)
	v1 := tr.Update(snapAt(0, est(1, 11), tw(2, 41000), est(3, 13)))
	tr.Reuse(v1.Entries)
	v2 := tr.Update(snapAt(5*time.Second, est(1, 11), tw(2, 36000), est(3, 13)))
	if &v2.Entries[0] != &v1.Entries[0] {
		t.Error("Update did not write into the memory given back")
	}
	if e := entry(t, v2, 2); e.Age != 24*time.Second || e.Left() != 36*time.Second {
		t.Errorf("TIME_WAIT in reused memory: age %v left %v, want 24s 36s", e.Age, e.Left())
	}
	if e := entry(t, v2, 3); e.Age != 5*time.Second || e.AgeSource != AgeAtLeast || e.Inode != 13 {
		t.Errorf("socket 3 in reused memory: %+v", e)
	}

	tr.Reuse(make([]Entry, 0, 1)) // too small: not used
	v3 := tr.Update(snapAt(9*time.Second, est(1, 11), est(4, 14)))
	if len(v3.Entries) != 2 || v3.Entries[1].Cookie != 4 || v3.Entries[1].AgeSource != AgeFirstSeen {
		t.Errorf("entries %+v", v3.Entries)
	}
	gone := map[uint64]Entry{}
	for _, e := range v3.Gone {
		gone[e.Cookie] = e
	}
	if e := gone[3]; e.Age != 5*time.Second || e.AgeSource != AgeAtLeast || e.Inode != 13 {
		t.Errorf("gone socket 3: %+v, want as seen at 5 s", e)
	}
	if e := gone[2]; e.Age != 24*time.Second || e.Left() != 36*time.Second || e.AgeSource != AgeTimer {
		t.Errorf("gone TIME_WAIT entry: %+v, want as seen at 5 s", e)
	}
	if len(v3.Gone) != 2 {
		t.Errorf("gone %d sockets, want 2", len(v3.Gone))
	}
}

// A socket no snapshot showed is reported from its destroy announcement,
// unless the next snapshot shows its cookie (an active close's TIME_WAIT
// entry), the poll before found it gone, the filter does not match it as
// announced, or no snapshot had been taken.
func TestUnseenSockets(t *testing.T) {
	// Each socket with a peer port of its own.
	peer := func(s sock.Socket) sock.Socket {
		s.Peer = sock.EndpointOf(netip.AddrPortFrom(s.Peer.Addr(), uint16(40000+s.Cookie%100)))
		return s
	}
	closed := func(cookie uint64, at time.Duration, matches bool) sock.Destroy {
		s := peer(est(cookie, 0))
		s.State = sock.Close
		return sock.Destroy{Cookie: cookie, At: t0.Add(at), Socket: s, Matches: matches}
	}
	// Socket 6's TIME_WAIT entry has a new cookie, 106: no dump had asked
	// for the full socket's.
	successor := peer(tw(106, 59700))
	successor.Peer = closed(6, 0, true).Socket.Peer
	tr := New(nil)
	tr.Destroyed(closed(9, -time.Second, true))
	tr.Update(snapAt(0, peer(est(1, 11)), peer(est(2, 12))))
	tr.Destroyed(closed(3, 300*time.Millisecond, true))  // born and freed between polls
	tr.Destroyed(closed(3, 300*time.Millisecond, true))  // and told twice (two sources, as one takes over)
	tr.Destroyed(closed(4, 400*time.Millisecond, true))  // lives on as a TIME_WAIT entry
	tr.Destroyed(closed(5, 500*time.Millisecond, false)) // the filter does not match it
	tr.Destroyed(closed(2, 600*time.Millisecond, true))  // known: dates its end
	tr.Destroyed(closed(6, 700*time.Millisecond, true))  // lives on under another cookie
	v := tr.Update(snapAt(time.Second, peer(est(1, 11)), peer(tw(4, 59500)), successor))
	var got []string
	for _, e := range v.Events {
		got = append(got, fmt.Sprintf("%v:%d:%v:%v:%v:%v", e.Kind, e.Entry.Cookie, e.From, e.At.Sub(t0), e.Exact, e.Unseen))
	}
	want := []string{
		"gone:3:CLOSE:300ms:true:true",
		"new:4:STATE0:500ms:true:false",
		"gone:2:ESTABLISHED:600ms:true:false",
		"new:106:STATE0:700ms:true:false",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("events\n got %q\nwant %q", got, want)
	}
	if e := v.Events[0]; e.Entry.Local.Port() != 9000 || e.Entry.State != sock.Close || e.Lifetime != 0 {
		t.Errorf("unseen socket's entry %+v", e.Entry)
	}

	// Socket 1 is gone at 2 s; its announcement comes after that poll.
	if v := tr.Update(snapAt(2*time.Second, peer(tw(4, 58500)), successor)); kinds(v.Events) != "gone:1:ESTABLISHED->STATE0" {
		t.Errorf("events %s", kinds(v.Events))
	}
	tr.Destroyed(closed(1, 1900*time.Millisecond, true))
	if v := tr.Update(snapAt(3*time.Second, peer(tw(4, 57500)), successor)); len(v.Events) != 0 {
		t.Errorf("a late announcement for a socket already gone: %s", kinds(v.Events))
	}
}

// Sockets are found by walking the previous snapshot's order, and by
// cookie when the kernel's order changed: either way each keeps its
// record, a repeated cookie is one socket, and exactly the missing ones
// are gone.
func TestOrderChangesBetweenSnapshots(t *testing.T) {
	tr := New(nil)
	tr.Update(snapAt(0, est(1, 0), est(2, 0), est(3, 0), est(4, 0), est(5, 0)))
	orders := [][]uint64{
		{1, 2, 3, 4, 5, 6},    // a new one at the end
		{6, 5, 4, 3, 2, 1},    // reversed
		{2, 7, 1, 6, 3, 4, 5}, // shuffled, one new
		{2, 1, 1, 6, 3, 5},    // 7 and 4 gone, 1 twice
		{5, 3, 6},             // 1 and 2 gone
	}
	wantGone := [][]uint64{nil, nil, nil, {4, 7}, {1, 2}}
	for i, order := range orders {
		var socks []sock.Socket
		for _, c := range order {
			socks = append(socks, est(c, 0))
		}
		at := time.Duration(i+1) * time.Second
		v := tr.Update(snapAt(at, socks...))
		for _, e := range v.Entries {
			want := AgeAtLeast
			if e.Cookie >= 6 {
				want = AgeFirstSeen
			}
			if e.AgeSource != want {
				t.Errorf("step %d: socket %d is %v, want %v (its record was lost)", i, e.Cookie, e.AgeSource, want)
			}
		}
		var gone []uint64
		for _, e := range v.Gone {
			gone = append(gone, e.Cookie)
		}
		slices.Sort(gone)
		if fmt.Sprint(gone) != fmt.Sprint(wantGone[i]) {
			t.Errorf("step %d: gone %v, want %v", i, gone, wantGone[i])
		}
		distinct := map[uint64]bool{}
		for _, c := range order {
			distinct[c] = true
		}
		if tr.Len() != len(distinct) {
			t.Errorf("step %d: %d tracked, want %d", i, tr.Len(), len(distinct))
		}
	}
}

// Sockets the kernel dated (Births) have exact ages from their birth,
// those in the first snapshot included; their time in a state starts at
// the kernel's change, and a gone one's lifetime is exact. Others keep
// their honest ages; TIME_WAIT entries keep the timer's.
func TestBirthsGiveExactAges(t *testing.T) {
	births := map[uint64]Birth{
		1: {Born: t0.Add(-5 * time.Second), Changed: t0.Add(-2 * time.Second), State: sock.Established},
		2: {Born: t0.Add(-9 * time.Second), Changed: t0.Add(-9 * time.Second), State: sock.SynSent}, // changed since
		4: {Born: t0.Add(-30 * time.Second)},
	}
	var looked []uint64
	tr := New(nil)
	tr.SetBirths(func(c uint64) (Birth, bool) {
		looked = append(looked, c)
		b, ok := births[c]
		return b, ok
	})
	v := tr.Update(snapAt(0, est(1, 11), est(2, 12), est(3, 13), tw(4, 30000)))
	for _, c := range []struct {
		cookie uint64
		age    time.Duration
		src    AgeSource
	}{{1, 5 * time.Second, AgeKernel}, {2, 9 * time.Second, AgeKernel}, {3, 0, AgeAtLeast}, {4, 30 * time.Second, AgeTimer}} {
		if e := entry(t, v, c.cookie); e.Age != c.age || e.AgeSource != c.src {
			t.Errorf("cookie %d: age %v (%s); want %v (%s)", c.cookie, e.Age, e.AgeSource, c.age, c.src)
		}
	}
	v = tr.Update(snapAt(3*time.Second, est(1, 11), est(2, 12), est(3, 13), est(5, 15)))
	if e := entry(t, v, 1); e.Age != 8*time.Second || e.AgeSource != AgeKernel {
		t.Errorf("cookie 1 later: %v (%s)", e.Age, e.AgeSource)
	}
	if e := entry(t, v, 5); e.AgeSource != AgeFirstSeen {
		t.Errorf("a socket born since, that the kernel did not date: %s", e.AgeSource)
	}
	// Each socket is looked up once, when first seen.
	slices.Sort(looked)
	if !slices.Equal(looked, []uint64{1, 2, 3, 4, 5}) {
		t.Errorf("looked up %v; want each cookie once", looked)
	}
	// 1 closes (ESTABLISHED since the kernel's change 2 s before t0),
	// 2 changes state.
	cw := est(2, 12)
	cw.State = sock.CloseWait
	v = tr.Update(snapAt(4*time.Second, cw, est(3, 13), est(5, 15)))
	var gone, changed *Event
	for i := range v.Events {
		switch e := &v.Events[i]; {
		case e.Kind == EventGone && e.Entry.Cookie == 1:
			gone = e
		case e.Kind == EventChange && e.Entry.Cookie == 2:
			changed = e
		}
	}
	if gone == nil || gone.Lifetime != 9*time.Second || gone.LifetimeAtLeast || gone.InState != 6*time.Second || gone.InStateAtLeast {
		t.Errorf("cookie 1 gone: %+v; want a lifetime of 9s and 6s in ESTABLISHED, neither at least", gone)
	}
	// Its stamp was of SYN_SENT: when it became ESTABLISHED is not known,
	// only that it was so when the tracker started.
	if changed == nil || !changed.InStateAtLeast || changed.InState != 4*time.Second || changed.Entry.AgeSource != AgeKernel {
		t.Errorf("cookie 2 changed: %+v; want at least 4s in ESTABLISHED, and its exact age", changed)
	}

	// A one-shot listing dates them too.
	once := &View{}
	OnceBornInto(once, snapAt(0, est(1, 11), est(3, 13)), nil, func(c uint64) (Birth, bool) { b, ok := births[c]; return b, ok })
	if e := entry(t, once, 1); e.Age != 5*time.Second || e.AgeSource != AgeKernel {
		t.Errorf("listing, cookie 1: %v (%s)", e.Age, e.AgeSource)
	}
	if e := entry(t, once, 3); e.AgeSource != AgeAtLeast {
		t.Errorf("listing, cookie 3: %s", e.AgeSource)
	}
}

// The kernel's events date the changes of sockets older than the tracker
// too: the poll that shows a new state takes the kernel's time for it
// when the kernel's last change is into that state, and its own
// otherwise.
func TestKernelDatesChanges(t *testing.T) {
	births := map[uint64]Birth{}
	tr := New(nil)
	tr.SetBirths(func(c uint64) (Birth, bool) { b, ok := births[c]; return b, ok })
	tr.Update(snapAt(0, est(1, 11), est(2, 12)))
	// Both were there before the tracker; 1 enters CLOSE_WAIT at 2.5 s as
	// the kernel tells it, 2 at a time its events have not told yet.
	births[1] = Birth{Changed: t0.Add(2500 * time.Millisecond), State: sock.CloseWait}
	births[2] = Birth{Changed: t0.Add(-time.Hour), State: sock.Established}
	cw := func(c uint64, ino uint32) sock.Socket { s := est(c, ino); s.State = sock.CloseWait; return s }
	v := tr.Update(snapAt(3*time.Second, cw(1, 11), cw(2, 12)))
	changes := map[uint64]Event{}
	for _, e := range v.Events {
		if e.Kind == EventChange {
			changes[e.Entry.Cookie] = e
		}
	}
	if e := changes[1]; !e.Exact || !e.At.Equal(t0.Add(2500*time.Millisecond)) || !e.InStateAtLeast || e.InState != 2500*time.Millisecond ||
		e.Entry.AgeSource != AgeAtLeast {
		t.Errorf("cookie 1: %+v; want the kernel's time, at least 2.5s in ESTABLISHED, an age at least", e)
	}
	if e := changes[2]; e.Exact || !e.At.Equal(t0.Add(3*time.Second)) {
		t.Errorf("cookie 2: %+v; want the poll's time, not exact", e)
	}
	if h := tr.History(Key{Cookie: 1}); len(h) != 1 || !h[0].Exact || !h[0].At.Equal(t0.Add(2500*time.Millisecond)) {
		t.Errorf("cookie 1's history: %+v", h)
	}
	// 1 goes on to LAST_ACK: its time in CLOSE_WAIT is exact at both ends.
	births[1] = Birth{Changed: t0.Add(3200 * time.Millisecond), State: sock.LastAck}
	la := est(1, 11)
	la.State = sock.LastAck
	v = tr.Update(snapAt(4*time.Second, la, cw(2, 12)))
	if len(v.Events) != 1 || !v.Events[0].Exact || !v.Events[0].InStateExact || v.Events[0].InState != 700*time.Millisecond {
		t.Errorf("cookie 1 into LAST_ACK: %+v; want exactly 700ms in CLOSE_WAIT", v.Events)
	}
	// A kernel date older than the state the tracker knows exactly is
	// not this change's: back to CLOSE_WAIT (it cannot, but a stale
	// stamp can say so) is the poll's.
	births[1] = Birth{Changed: t0.Add(2500 * time.Millisecond), State: sock.CloseWait}
	v = tr.Update(snapAt(5*time.Second, cw(1, 11), cw(2, 12)))
	if len(v.Events) != 1 || v.Events[0].Exact || !v.Events[0].At.Equal(t0.Add(5*time.Second)) {
		t.Errorf("a stale kernel date: %+v; want the poll's", v.Events)
	}
}

// A socket disconnected (connect AF_UNSPEC: a change to CLOSE, as the
// kernel's events tell it) and connected again takes the kernel's date of
// its new state, not its end's.
func TestKernelChangeBeforeEnd(t *testing.T) {
	births := map[uint64]Birth{}
	tr := New(nil)
	tr.SetBirths(func(c uint64) (Birth, bool) { b, ok := births[c]; return b, ok })
	tr.Update(snapAt(0, est(1, 11)))
	tr.Destroyed(sock.Destroy{Cookie: 1, At: t0.Add(300 * time.Millisecond)})
	births[1] = Birth{Changed: t0.Add(500 * time.Millisecond), State: sock.SynSent}
	s := est(1, 11)
	s.State = sock.SynSent
	v := tr.Update(snapAt(time.Second, s))
	if len(v.Events) != 1 || v.Events[0].Kind != EventChange || !v.Events[0].Exact || !v.Events[0].At.Equal(t0.Add(500*time.Millisecond)) {
		t.Errorf("events %+v; want the change into SYN_SENT at 500ms, exact", v.Events)
	}
}

// inNS is s in namespace ino.
func inNS(s sock.Socket, ino uint32) sock.Socket {
	s.Netns = ino
	return s
}

// A reader of many namespaces may dump some and count the others
// (sock.Snapshot.Read): a namespace no longer dumped goes out of view
// without an end, and one dumped again is a first look, its sockets
// predating it, those seen before resuming their ages.
func TestNamespacesReadInTurn(t *testing.T) {
	tr := New(nil)
	all := snapAt(0, inNS(est(1, 0), 10), inNS(est(2, 0), 20))
	tr.Update(all)

	// Only namespace 10 now: 2 is not gone, it is not read.
	only10 := snapAt(time.Second, inNS(est(1, 0), 10))
	only10.Read = []uint32{10}
	v := tr.Update(only10)
	if len(v.Gone) != 0 || len(v.Events) != 0 {
		t.Fatalf("namespace 20 left the dump: gone %d, events %s; want none", len(v.Gone), kinds(v.Events))
	}
	if tr.Len() != 1 {
		t.Errorf("records kept %d, want 1 (namespace 20's forgotten)", tr.Len())
	}
	// An announcement for a namespace not read is not an unseen socket.
	tr.Destroyed(sock.Destroy{Cookie: 9, At: t0.Add(1500 * time.Millisecond), Socket: inNS(est(9, 0), 20), Matches: true})

	// Namespace 20 alone, 10 s in: its sockets predate this look (2,
	// seen at the start, resumes its age), and namespace 10 goes out of
	// view in turn.
	only20 := snapAt(10*time.Second, inNS(est(2, 0), 20), inNS(est(3, 0), 20))
	only20.Read = []uint32{20}
	v = tr.Update(only20)
	if len(v.Gone) != 0 || len(v.Events) != 0 {
		t.Fatalf("switching to namespace 20: gone %d, events %s; want none", len(v.Gone), kinds(v.Events))
	}
	wantAge(t, v, 2, AgeAtLeast, 10*time.Second, "cookie 2, seen at the start, at the next look at its namespace")
	wantAge(t, v, 3, AgeAtLeast, 0, "cookie 3 at the first look at its namespace")
	v = tr.Update(func() *sock.Snapshot {
		s := snapAt(12*time.Second, inNS(est(2, 0), 20), inNS(est(4, 0), 20))
		s.Read = []uint32{20}
		return s
	}())
	wantAge(t, v, 2, AgeAtLeast, 12*time.Second, "2 s after the look")
	wantAge(t, v, 4, AgeFirstSeen, 0, "a socket born in a namespace read twice")
	if got := kinds(v.Events); got != "new:4:STATE0->ESTABLISHED gone:3:ESTABLISHED->STATE0" {
		t.Errorf("events %q, want the end of 3 and the birth of 4", got)
	}

	// Every namespace again: 10's socket is back, with its age.
	v = tr.Update(snapAt(13*time.Second, inNS(est(1, 0), 10), inNS(est(2, 0), 20), inNS(est(4, 0), 20)))
	wantAge(t, v, 1, AgeAtLeast, 13*time.Second, "namespace 10 read again")
	if len(v.Events) != 0 {
		t.Errorf("reading every namespace again: events %s, want none", kinds(v.Events))
	}
}

// A dashboard of many namespaces starts on their counts: its polls read
// none (Read empty, not nil). The first namespace then opened shows
// sockets that were there all along: at least their age since.
func TestNoNamespaceReadThenOne(t *testing.T) {
	tr := New(nil)
	none := snapAt(0)
	none.Read = []uint32{}
	tr.Update(none)
	none = snapAt(time.Second)
	none.Read = []uint32{}
	tr.Update(none)
	only10 := snapAt(2*time.Second, inNS(est(1, 0), 10))
	only10.Read = []uint32{10}
	v := tr.Update(only10)
	wantAge(t, v, 1, AgeAtLeast, 0, "a socket of the first namespace read after counts alone")
	if len(v.Events) != 0 {
		t.Errorf("the first namespace read: events %s, want none", kinds(v.Events))
	}
}

// TestRefilter checks a filter change: the sockets the new filter shows
// first predate it (at least their age since), those it leaves out are
// forgotten rather than gone, and the snapshot after it is an ordinary one.
func TestRefilter(t *testing.T) {
	tr := New(nil)
	tr.Update(snapAt(0, est(1, 0)))
	tr.Update(snapAt(3*time.Second, est(1, 0), est(2, 0))) // 2 is born

	// The filter changes: 1 and 2 are left out, 5 and 6 were there all
	// along, out of the old filter.
	tr.Refilter()
	v := tr.Update(snapAt(4*time.Second, est(5, 0), est(6, 0)))
	if len(v.Gone) != 0 || len(v.Events) != 0 {
		t.Fatalf("filter change: gone %d, events %s; want none", len(v.Gone), kinds(v.Events))
	}
	for _, c := range []uint64{5, 6} {
		wantAge(t, v, c, AgeAtLeast, 0, fmt.Sprintf("cookie %d first shown by a new filter", c))
	}
	if tr.Len() != 2 {
		t.Errorf("records kept %d, want 2 (those the filter left out forgotten)", tr.Len())
	}

	// The next snapshot is an ordinary one: a new socket is born, one
	// that goes is gone, and 5 ages on from the filter change.
	v = tr.Update(snapAt(6*time.Second, est(5, 0), est(7, 0)))
	wantAge(t, v, 5, AgeAtLeast, 2*time.Second, "2 s after the filter change")
	wantAge(t, v, 7, AgeFirstSeen, 0, "a socket born after the filter change")
	if got := kinds(v.Events); got != "new:7:STATE0->ESTABLISHED gone:6:ESTABLISHED->STATE0" {
		t.Errorf("events %q, want the birth of 7 and the end of 6", got)
	}

	// Back to the first filter: 1 and 2 resume their ages (1 there at
	// the start, 2 born at 3 s while watched); 5 and 7 go out of view.
	tr.Refilter()
	v = tr.Update(snapAt(7*time.Second, est(1, 0), est(2, 0)))
	wantAge(t, v, 1, AgeAtLeast, 7*time.Second, "cookie 1 shown again by the first filter")
	wantAge(t, v, 2, AgeFirstSeen, 4*time.Second, "cookie 2 shown again by the first filter")
	if len(v.Events) != 0 {
		t.Errorf("filter changed back: events %s, want none", kinds(v.Events))
	}

	// 5 ends out of view (its destroy announcement): shown again under
	// the same cookie (a reused one, in a test), it starts again.
	tr.Destroyed(sock.Destroy{Cookie: 5, At: t0.Add(7500 * time.Millisecond), Socket: est(5, 0)})
	// 7, out of view past parkFor, starts again too; 1, in view under
	// both filters, ages on.
	tr.Refilter()
	v = tr.Update(snapAt(parkFor+8*time.Second, est(1, 0), est(5, 0), est(7, 0)))
	wantAge(t, v, 1, AgeAtLeast, parkFor+8*time.Second, "cookie 1, in view under both filters")
	wantAge(t, v, 5, AgeAtLeast, 0, "cookie 5, announced closed while out of view")
	wantAge(t, v, 7, AgeAtLeast, 0, "cookie 7, out of view longer than parkFor")
}

// A socket that changed state while out of view keeps its age; its time
// in its new state is not known, and not made up.
func TestOutOfViewChange(t *testing.T) {
	tr := New(nil)
	tr.Update(snapAt(0, est(1, 0)))
	tr.Refilter()
	tr.Update(snapAt(2 * time.Second))
	tr.Refilter()
	cw := est(1, 0)
	cw.State = sock.CloseWait
	v := tr.Update(snapAt(5*time.Second, cw))
	wantAge(t, v, 1, AgeAtLeast, 5*time.Second, "a socket shown again in another state")
	if len(v.Events) != 0 {
		t.Errorf("a change made out of view: events %s, want none (when it came is not known)", kinds(v.Events))
	}

	// Born in view, a change in view, out of view, then in another state:
	// its history is kept, and its time in the state it is in now is a
	// lower bound (its end says so).
	tr.Update(snapAt(6*time.Second, cw, est(2, 12)))
	fw1 := est(2, 12)
	fw1.State = sock.FinWait1
	tr.Update(snapAt(7*time.Second, cw, fw1))
	tr.Refilter()
	tr.Update(snapAt(8*time.Second, cw))
	tr.Refilter()
	fw2 := fw1
	fw2.State = sock.FinWait2
	v = tr.Update(snapAt(9*time.Second, cw, fw2))
	if h := tr.History(KeyOf(&fw2)); len(h) != 1 || h[0].From != sock.Established || h[0].To != sock.FinWait1 {
		t.Errorf("history after a time out of view: %+v, want the change made in view", h)
	}
	v = tr.Update(snapAt(10*time.Second, cw))
	var end *Event
	for i := range v.Events {
		if e := &v.Events[i]; e.Kind == EventGone && e.Entry.Cookie == 2 {
			end = e
		}
	}
	if end == nil || end.InStateExact || !end.InStateAtLeast || end.InState != time.Second {
		t.Errorf("the end of a socket whose last change came out of view: %+v; want at least 1s in FIN_WAIT2", end)
	}
	// Seen again in another state after a change in view, its next
	// change says its time in that state was at least what it shows; the
	// change after that one is dated by polls at both ends.
	e3 := est(3, 13)
	tr.Update(snapAt(20*time.Second, cw, e3))
	f3 := e3
	f3.State = sock.FinWait1
	tr.Update(snapAt(21*time.Second, cw, f3))
	tr.Refilter()
	tr.Update(snapAt(22*time.Second, cw))
	tr.Refilter()
	f3.State = sock.FinWait2
	tr.Update(snapAt(23*time.Second, cw, f3))
	f3.State = sock.Closing
	v = tr.Update(snapAt(24*time.Second, cw, f3))
	if len(v.Events) != 1 || !v.Events[0].InStateAtLeast || v.Events[0].InState != time.Second {
		t.Errorf("the change out of a state seen again after a change out of view: %+v; want at least 1s", v.Events)
	}
	f3.State = sock.LastAck
	v = tr.Update(snapAt(25*time.Second, cw, f3))
	if len(v.Events) != 1 || v.Events[0].InStateAtLeast {
		t.Errorf("the change after it: %+v; want its time in the state before not a lower bound", v.Events)
	}

	// A key taken by another socket (from /proc/net/tcp, addresses make
	// the key): another inode, another socket, which starts again.
	tr.Refilter()
	tr.Update(snapAt(11 * time.Second))
	tr.Refilter()
	other := cw
	other.Inode = 99
	v = tr.Update(snapAt(12*time.Second, other))
	wantAge(t, v, 1, AgeAtLeast, 0, "another socket under a parked key")
}

// The kernel's dates win over a parked age: a socket the kernel saw born
// is aged from its birth, whatever was parked.
func TestKernelDatesWinOverParked(t *testing.T) {
	tr := New(nil)
	tr.Update(snapAt(0, est(1, 11)))
	tr.Refilter()
	tr.Update(snapAt(time.Second))
	tr.SetBirths(func(cookie uint64) (Birth, bool) {
		return Birth{Born: t0.Add(-15 * time.Second), Changed: t0.Add(-15 * time.Second), State: sock.Established}, cookie == 1
	})
	tr.Refilter()
	v := tr.Update(snapAt(2*time.Second, est(1, 11)))
	wantAge(t, v, 1, AgeKernel, 17*time.Second, "a parked socket the kernel dated")
	// Its time in ESTABLISHED starts at the kernel's date too: from its
	// birth (to this poll, which dates the change).
	cw := est(1, 11)
	cw.State = sock.CloseWait
	v = tr.Update(snapAt(3*time.Second, cw))
	if len(v.Events) != 1 || v.Events[0].InState != 18*time.Second || v.Events[0].InStateAtLeast {
		t.Errorf("the change of a parked socket the kernel dated: %+v; want 18s in ESTABLISHED, from its birth", v.Events)
	}
}

// TestPreviewIsTheFirstView checks that a first snapshot's preview, made
// without records, is what Update then returns for it: every entry's
// socket, age, source, first sight and owner; and that there is no
// preview once the tracker has taken a snapshot.
func TestPreviewIsTheFirstView(t *testing.T) {
	births := map[uint64]Birth{
		1: {Born: t0.Add(-5 * time.Second), Changed: t0.Add(-2 * time.Second), State: sock.Established},
		2: {Born: t0.Add(-9 * time.Second), Changed: t0.Add(-9 * time.Second), State: sock.SynSent}, // changed since
		3: {Changed: t0.Add(-time.Second), State: sock.Established},                                 // born before the program
		5: {Born: t0.Add(-30 * time.Second)},                                                        // TIME_WAIT: the timer wins
	}
	owners := map[uint32]procs.Process{11: {PID: 4242, Command: "server"}, 13: {PID: 7, Command: "client"}}
	tr := New(lookupIn(owners))
	tr.SetBirths(func(c uint64) (Birth, bool) { b, ok := births[c]; return b, ok })
	snap := snapAt(0, est(1, 11), est(2, 12), est(3, 13), est(4, 0), tw(5, 30000))
	pv := tr.Preview(snap)
	if pv == nil {
		t.Fatal("no preview before the first snapshot")
	}
	v := tr.Update(snap)
	if len(pv.Entries) != len(v.Entries) || len(v.Events) != 0 || len(v.Gone) != 0 {
		t.Fatalf("preview of %d entries, view of %d (events %d, gone %d)", len(pv.Entries), len(v.Entries), len(v.Events), len(v.Gone))
	}
	sources := map[AgeSource]int{}
	for i := range v.Entries {
		p, e := pv.Entries[i], v.Entries[i]
		if p.Socket != e.Socket || p.Age != e.Age || p.AgeSource != e.AgeSource || p.firstSeen != e.firstSeen ||
			(p.Process == nil) != (e.Process == nil) || (p.Process != nil && *p.Process != *e.Process) {
			t.Errorf("cookie %d: preview %+v, Update %+v", e.Cookie, p, e)
		}
		sources[e.AgeSource]++
	}
	// The fixture covers each way a first entry is dated.
	if sources[AgeKernel] != 2 || sources[AgeAtLeast] != 2 || sources[AgeTimer] != 1 {
		t.Errorf("age sources %v, want 2 kernel, 2 at-least, 1 timer", sources)
	}
	if tr.Preview(snapAt(time.Second, est(1, 11))) != nil {
		t.Error("a preview after the first snapshot")
	}
}

// TestExpiringOldestFirstAndBounded checks that the candidates for a probe
// come oldest first, at most the limit, and that entries found gone are
// passed over on the next ask.
func TestExpiringOldestFirstAndBounded(t *testing.T) {
	tr := New(nil)
	// Entries 1 to 4 have 2.9 down to 1.1 s left; 5 has a whole minute.
	tr.Update(snapAt(0, tw(3, 1700), tw(1, 2900), tw(5, 60000), tw(4, 1100), tw(2, 2300)))
	at := t0.Add(3 * time.Second) // all but 5 are past their 60 s
	cookies := func(socks []sock.Socket) []uint64 {
		var c []uint64
		for _, s := range socks {
			c = append(c, s.Cookie)
		}
		return c
	}
	if got := cookies(tr.Expiring(at, nil, 2)); !slices.Equal(got, []uint64{4, 3}) {
		t.Errorf("limit 2: %v, want the two oldest [4 3]", got)
	}
	if got := cookies(tr.Expiring(at, nil, 0)); !slices.Equal(got, []uint64{4, 3, 2, 1}) {
		t.Errorf("no limit: %v, want [4 3 2 1]", got)
	}
	tr.Probed(Key{Cookie: 4}, at, false)
	tr.Probed(Key{Cookie: 2}, at, false)
	if got := cookies(tr.Expiring(at, nil, 2)); !slices.Equal(got, []uint64{3, 1}) {
		t.Errorf("after 4 and 2 were found gone: %v, want [3 1]", got)
	}
	if tr.dueFrom != 1 {
		t.Errorf("dueFrom %d, want 1: the settled head is passed over", tr.dueFrom)
	}
}

// TestTakeInIsUpdate checks that a tracker that took its first snapshot in
// behind a preview (TakeIn) goes on exactly as one that updated: the same
// view of the next snapshot, its changes, births, ends and owners.
func TestTakeInIsUpdate(t *testing.T) {
	owners := map[uint32]procs.Process{11: {PID: 4242, Command: "server"}, 13: {PID: 7, Command: "client"}}
	lookup := lookupIn(owners)
	first := snapAt(0, est(1, 11), est(2, 12), est(3, 13), tw(4, 30000))
	closing := est(1, 11)
	closing.State = sock.CloseWait
	next := snapAt(2*time.Second, closing, est(3, 13), tw(4, 28000), est(5, 11))

	updated := New(lookup)
	updated.Update(first)
	want := updated.Update(next)

	took := New(lookup)
	pv := took.Preview(first)
	took.TakeIn(pv)
	if took.Len() != 4 {
		t.Fatalf("TakeIn left %d records, want 4", took.Len())
	}
	got := took.Update(next)
	if len(got.Entries) != len(want.Entries) || len(got.Events) != len(want.Events) || len(got.Gone) != len(want.Gone) {
		t.Fatalf("after TakeIn: %d entries, %d events, %d gone; after Update: %d, %d, %d",
			len(got.Entries), len(got.Events), len(got.Gone), len(want.Entries), len(want.Events), len(want.Gone))
	}
	for i := range want.Entries {
		g, w := got.Entries[i], want.Entries[i]
		if g.Cookie != w.Cookie || g.Age != w.Age || g.AgeSource != w.AgeSource || g.firstSeen != w.firstSeen ||
			(g.Process == nil) != (w.Process == nil) || (g.Process != nil && *g.Process != *w.Process) {
			t.Errorf("entry %d: after TakeIn %+v, after Update %+v", i, g, w)
		}
	}
	for i := range want.Events {
		g, w := got.Events[i], want.Events[i]
		if g.Kind != w.Kind || g.Entry.Cookie != w.Entry.Cookie || g.From != w.From || g.To != w.To || !g.At.Equal(w.At) {
			t.Errorf("event %d: after TakeIn %+v, after Update %+v", i, g, w)
		}
	}
	// The fixture has a change, a birth and an end to compare.
	kinds := map[EventKind]int{}
	for _, e := range want.Events {
		kinds[e.Kind]++
	}
	if kinds[EventNew] != 1 || kinds[EventGone] != 1 || kinds[EventChange] != 1 {
		t.Errorf("events %v: want one birth, one end, one change", kinds)
	}
	took.TakeIn(took.Preview(next)) // no preview after the first snapshot: nothing
	if took.Len() != 4 {
		t.Errorf("a second TakeIn changed the records: %d", took.Len())
	}
}
