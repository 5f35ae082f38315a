package track

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/nstest"
	"github.com/sockscope/sockscope/pkg/procs"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/sockdiag"
)

// A server socket watched while ESTABLISHED keeps its cookie into TIME_WAIT,
// and the tracker keeps its owner (this test process) after the descriptor
// is gone; the TIME_WAIT age matches the wall clock since the close.
func TestIntegrationOwnerSurvivesIntoTimeWait(t *testing.T) {
	ns := nstest.New(t)
	conn := nstest.Connect(t, ns, netip.MustParseAddrPort("127.0.0.1:9000"))

	c, err := sockdiag.Open(ns.NS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pt := procs.New("/proc")
	tr := New(pt.Lookup)
	poll := func() *View {
		snap := &sock.Snapshot{Time: time.Now()}
		if err := c.Dump(&sockdiag.Request{States: sock.AllStates}, snap); err != nil {
			t.Fatal(err)
		}
		return tr.Update(snap)
	}
	server := func(v *View) *Entry {
		for i, e := range v.Entries {
			if e.Local.Port() == 9000 && e.State != sock.Listen {
				return &v.Entries[i]
			}
		}
		return nil
	}
	e := server(poll())
	if e == nil || e.State != sock.Established || e.Process.PID != os.Getpid() {
		t.Fatalf("server end before the close: %+v, want ESTABLISHED owned by pid %d", e, os.Getpid())
	}
	cookie := e.Cookie

	closed := time.Now()
	conn.Close(&conn.Server)
	conn.Close(&conn.Client)
	deadline := time.Now().Add(2 * time.Second)
	for {
		v := poll()
		e = server(v)
		if e != nil && e.State == sock.TimeWait {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TIME_WAIT on :9000; server end %+v", e)
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	polled := time.Now()
	e = server(poll())
	if e.Cookie != cookie {
		t.Fatalf("cookie changed from %#x to %#x across the close", cookie, e.Cookie)
	}
	if e.Inode != 0 || e.Process.PID != os.Getpid() {
		t.Errorf("TIME_WAIT entry: inode %d, process %+v; want inode 0 and pid %d remembered", e.Inode, e.Process, os.Getpid())
	}
	if want := polled.Sub(closed); e.AgeSource != AgeTimer || e.Age < want-50*time.Millisecond || e.Age > want+50*time.Millisecond {
		t.Errorf("TIME_WAIT age %v (%v), want %v ± 50ms", e.Age, e.AgeSource, want)
	}
	var hist []sock.State
	for _, h := range tr.History(Key{Netns: e.Netns, Cookie: cookie}) {
		hist = append(hist, h.To)
	}
	if len(hist) == 0 || hist[len(hist)-1] != sock.TimeWait {
		t.Errorf("transitions %v, want a path ending in TIME_WAIT", hist)
	}
}
