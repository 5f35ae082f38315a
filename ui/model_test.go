package ui

import (
	"fmt"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

// visible lists the rows as the table would show them.
func visible(m *model) []string {
	var out []string
	for i := range m.rows {
		r := m.at(i)
		out = append(out, fmt.Sprintf("%d %v %v %v %v", r.Cookie, r.State, r.Local, r.Peer, r.Age))
	}
	return out
}

// Frames hand their memory back once the table no longer shows them, so a
// dashboard fills two buffers in turn instead of allocating one per poll;
// the frame frozen by a pause is never handed back, however many frames
// arrive after it.
func TestFramesAreReusedButNotWhilePaused(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	other := []sock.Socket{
		sk(9, sock.Established, "127.0.0.1:5000", "127.0.0.1:40009", 19),
		sk(10, sock.SynSent, "127.0.0.1:40010", "127.0.0.1:5001", 20),
	}
	src := &scripted{steps: [][]sock.Socket{seedTable(), seedTable(), other}, clock: c}
	m := newModel()
	mon := monitor.New(src, monitor.Options{Now: c.Now}, m.apply)
	mon.Poll()
	c.Add(time.Second)
	mon.Poll()
	m.togglePause(c.Now())
	frozen := visible(m)
	for range 4 {
		c.Add(time.Second)
		mon.Poll()
	}
	if got := visible(m); fmt.Sprint(got) != fmt.Sprint(frozen) {
		t.Fatalf("the paused table changed:\n got %q\nwant %q", got, frozen)
	}

	m.togglePause(c.Now())
	if got := visible(m); len(got) != 2+8 { // the new table and the gone rows
		t.Errorf("after resuming: %q", got)
	}
	buffers := map[*track.Entry]bool{}
	for range 6 {
		c.Add(time.Second)
		mon.Poll()
		buffers[&m.frame.Entries[0]] = true
		if got := m.at(0); got.Cookie != 9 && got.Cookie != 10 {
			t.Errorf("first row %+v, want socket 9 or 10", got.Socket)
		}
	}
	if len(buffers) > 2 {
		t.Errorf("6 frames used %d buffers, want 2 in turn", len(buffers))
	}
}

// A socket that leaves the table lingers as a gone row for goneLinger,
// unless it is back before that: then it is one live row, not two.
func TestGoneRowLeavesWhenItsSocketIsBack(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	a := sk(1, sock.Established, "127.0.0.1:5000", "127.0.0.1:40001", 11)
	b := sk(2, sock.Established, "127.0.0.1:5000", "127.0.0.1:40002", 12)
	src := &scripted{steps: [][]sock.Socket{{a, b}, {b}, {a, b}}, clock: c}
	m := newModel()
	mon := monitor.New(src, monitor.Options{Now: c.Now}, m.apply)
	mon.Poll()
	c.Add(time.Second)
	mon.Poll()
	if got := visible(m); len(got) != 2 || m.lingered.Len() != 1 {
		t.Fatalf("socket 1 gone: %q, %d lingering; want it as a gone row", got, m.lingered.Len())
	}
	c.Add(time.Second)
	mon.Poll()
	if got := visible(m); len(got) != 2 || m.lingered.Len() != 0 {
		t.Errorf("socket 1 back: %q, %d lingering; want two live rows", got, m.lingered.Len())
	}
}
