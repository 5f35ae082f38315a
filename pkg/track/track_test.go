package track

import (
	"net/netip"
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
		Local: netip.MustParseAddrPort("127.0.0.1:9000"), Peer: netip.MustParseAddrPort("127.0.0.1:40000")}
}

func tw(cookie uint64, expiresMs uint32) sock.Socket {
	s := est(cookie, 0)
	s.State, s.Timer, s.Expires = sock.TimeWait, sock.TimerTimeWait, expiresMs
	return s
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

func TestAges(t *testing.T) {
	tr := New(nil)
	v := tr.Update(snapAt(0, est(1, 11), tw(2, 41000)))
	if e := entry(t, v, 1); e.AgeSource != AgeAtLeast || e.Age != 0 {
		t.Errorf("a socket there at start: %v %v, want at-least 0s", e.Age, e.AgeSource)
	}
	if e := entry(t, v, 2); e.AgeSource != AgeTimer || e.Age != 19*time.Second || e.Left != 41*time.Second {
		t.Errorf("TIME_WAIT with 41 s left: age %v (%v), left %v; want 19s exact, 41s", e.Age, e.AgeSource, e.Left)
	}

	v = tr.Update(snapAt(5*time.Second, est(1, 11), tw(2, 36000), est(3, 13)))
	if e := entry(t, v, 1); e.AgeSource != AgeAtLeast || e.Age != 5*time.Second {
		t.Errorf("predating socket after 5 s: %v %v, want at least 5s", e.Age, e.AgeSource)
	}
	if e := entry(t, v, 2); e.Age != 24*time.Second {
		t.Errorf("TIME_WAIT age %v, want 24s", e.Age)
	}
	if e := entry(t, v, 3); e.AgeSource != AgeFirstSeen || e.Age != 0 || !e.FirstSeen.Equal(t0.Add(5*time.Second)) {
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
	lookup := func(inode uint32) (procs.Process, bool) { p, ok := owners[inode]; return p, ok }
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
	h := tr.History(1)
	if len(h) != 2 || h[0].From != sock.Established || h[0].To != sock.FinWait2 || h[1].To != sock.TimeWait ||
		!h[1].At.Equal(t0.Add(2*time.Second)) {
		t.Errorf("history %+v", h)
	}
	if tr.History(99) != nil {
		t.Error("history for an unknown cookie")
	}
}
