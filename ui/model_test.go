package ui

import (
	"fmt"
	"math/rand/v2"
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

// index finds a socket's row wherever the new order put it, from the row
// it was found at before or from anywhere else; it finds no row for a
// socket that left, for the zero key (nothing selected) or in an empty
// table.
func TestIndexFollowsTheSocket(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	var table, fewer []sock.Socket
	for i := range 50 {
		s := sk(uint64(100+i), sock.Established, fmt.Sprintf("127.0.0.1:%d", 5000+i), "127.0.0.1:40000", uint32(i+1))
		s.Netns = 4026531840
		table = append(table, s)
		if i%2 == 0 {
			fewer = append(fewer, s)
		}
	}
	src := &scripted{steps: [][]sock.Socket{table, fewer, fewer, nil, nil}, clock: c}
	m := newModel()
	mon := monitor.New(src, monitor.Options{Now: c.Now}, m.apply)
	mon.Poll()
	rowOf := func(cookie uint64) int {
		for i := range m.rows {
			if m.at(i).Cookie == cookie {
				return i
			}
		}
		return -1
	}
	key := func(cookie uint64) track.Key { return track.Key{Netns: 4026531840, Cookie: cookie} }
	for _, cookie := range []uint64{140, 101, 149, 120, 100} {
		if got, want := m.index(key(cookie)), rowOf(cookie); got != want || want < 0 {
			t.Errorf("socket %d: index %d, want row %d", cookie, got, want)
		}
	}
	if got := m.index(track.Key{}); got != -1 {
		t.Errorf("the zero key: index %d, want -1", got)
	}
	// Sorted the other way, each row moves: the search starts from the
	// old row and must still find the new one.
	m.index(key(140))
	m.reverse = true
	m.rebuild()
	for _, cookie := range []uint64{140, 101, 149} {
		if got, want := m.index(key(cookie)), rowOf(cookie); got != want || want < 0 {
			t.Errorf("reversed, socket %d: index %d, want row %d", cookie, got, want)
		}
	}
	c.Add(time.Second)
	mon.Poll() // the odd sockets left: they linger as gone rows
	if got, want := m.index(key(101)), rowOf(101); got != want || want < 0 {
		t.Errorf("a gone row: index %d, want row %d", got, want)
	}
	c.Add(goneLinger + time.Second)
	mon.Poll() // and linger no more
	if got := m.index(key(101)); got != -1 {
		t.Errorf("a socket that left: index %d, want -1", got)
	}
	if got, want := m.index(key(148)), rowOf(148); got != want || want < 0 {
		t.Errorf("socket 148 after the others left: index %d, want row %d", got, want)
	}
	c.Add(time.Second)
	mon.Poll()
	c.Add(goneLinger + time.Second)
	mon.Poll() // an empty table
	if len(m.rows) != 0 {
		t.Fatalf("%d rows left, want none", len(m.rows))
	}
	if got := m.index(key(148)); got != -1 {
		t.Errorf("an empty table: index %d, want -1", got)
	}
}

// A prepared frame's rows, with the lingering gone rows put in their
// places, are the rows a full rebuild makes, in every view: each order
// either way, state toggles and one namespace. Small tables are sorted by
// comparing, large ones by radix; peers repeat so that many rows tie on
// the first key.
func TestPreparedRowsAreRebuiltRows(t *testing.T) {
	for _, n := range []int{60, 3 * radixFrom} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(14, uint64(n)))
			states := []sock.State{sock.Listen, sock.Established, sock.TimeWait, sock.CloseWait, sock.FinWait2}
			table := make([]track.Entry, n)
			for i := range table {
				s := sk(uint64(1000+i), states[rng.IntN(len(states))],
					fmt.Sprintf("10.0.%d.1:%d", rng.IntN(3), 9000+rng.IntN(4)),
					fmt.Sprintf("10.1.%d.%d:%d", rng.IntN(2), rng.IntN(5), 40000+rng.IntN(50)), uint32(i+1))
				s.Netns = 4026531840 + uint32(rng.IntN(2))
				table[i] = track.Entry{Socket: &s, Age: time.Duration(rng.IntN(20)) * time.Second}
			}
			t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
			var kept, gone []track.Entry
			for i := range table {
				if i%7 == 3 {
					gone = append(gone, table[i])
				} else {
					kept = append(kept, table[i])
				}
			}
			m := newModel()
			m.apply(&monitor.Frame{Time: t0, Entries: table})
			m.apply(&monitor.Frame{Time: t0.Add(time.Second), Entries: kept, Gone: gone})
			if m.lingered.Len() != len(gone) {
				t.Fatalf("%d lingering, want %d", m.lingered.Len(), len(gone))
			}
			for sortBy := range numSortKeys {
				for _, reverse := range []bool{false, true} {
					for _, toggles := range []sock.StateMask{0, sock.MaskOf(sock.Established) | sock.MaskOf(sock.TimeWait)} {
						for _, netns := range []uint32{0, 4026531841} {
							m.sortBy, m.reverse, m.toggles, m.netns = sortBy, reverse, toggles, netns
							m.rebuild()
							want, wantGone := visible(m), len(m.gone)
							p := m.order.prepare(m.frame, m.current())
							m.order.spare = m.install(p)
							m.room.giveBack(p.keys)
							got := visible(m)
							if fmt.Sprint(got) != fmt.Sprint(want) {
								t.Fatalf("sort %s reverse %v toggles %v netns %d: prepared rows differ from rebuilt rows",
									sortNames[sortBy], reverse, toggles, netns)
							}
							if wantGone == 0 || len(m.gone) != wantGone || len(got) <= wantGone {
								t.Fatalf("sort %s reverse %v toggles %v netns %d: %d rows, %d gone (rebuilt: %d gone)",
									sortNames[sortBy], reverse, toggles, netns, len(got), len(m.gone), wantGone)
							}
						}
					}
				}
			}
		})
	}
}
