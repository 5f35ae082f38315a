package ui

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gdamore/tcell/v2"
	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/nsfind"
	"github.com/sockscope/sockscope/pkg/sock"
)

// fleetNames is what a fleet publishes: the namespaces read now, which a
// test changes between polls.
type fleetNames struct {
	mu    sync.Mutex
	names []*nsfind.Name
}

func (f *fleetNames) set(names ...*nsfind.Name) {
	f.mu.Lock()
	f.names = names
	f.mu.Unlock()
}

func (f *fleetNames) list() []*nsfind.Name {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.names
}

func (f *fleetNames) lookup(ino uint32) (*nsfind.Name, bool) {
	for _, n := range f.list() {
		if uint32(n.Inode) == ino {
			return n, true
		}
	}
	return nil, false
}

func inNS(ino uint32, socks ...sock.Socket) []sock.Socket {
	for i := range socks {
		socks[i].Netns = ino
	}
	return socks
}

// hostAndPod is a table of two namespaces: the host (inode 1) with one
// listener, and a pod (2) with a listener, two CLOSE_WAIT and a TIME_WAIT.
func hostAndPod() []sock.Socket {
	return append(inNS(1, sk(1, sock.Listen, "0.0.0.0:22", "0.0.0.0:0", 0)),
		inNS(2,
			sk(2, sock.Listen, "0.0.0.0:9000", "0.0.0.0:0", 0),
			sk(3, sock.CloseWait, "127.0.0.1:9000", "127.0.0.1:40001", 0),
			sk(4, sock.CloseWait, "127.0.0.1:9000", "127.0.0.1:40002", 0),
			sk(5, sock.TimeWait, "127.0.0.1:9000", "127.0.0.1:40003", 0))...)
}

// The namespace view: one row per namespace with its counts, sorted by a
// state on its key; Enter opens one namespace's sockets, Esc comes back;
// a namespace that appears is marked +, one that goes away -, and one
// with no matching socket is listed all the same.
func TestNamespaceView(t *testing.T) {
	host := &nsfind.Name{Inode: 1, Label: "host", Host: true}
	cart := &nsfind.Name{Inode: 2, Label: "shop/cart-7d9", Pod: "cart-7d9", PodNamespace: "shop"}
	idle := &nsfind.Name{Inode: 3, Label: "docker:0123456789ab"}
	late := &nsfind.Name{Inode: 4, Label: "late"}
	names := &fleetNames{}
	names.set(host, cart, idle)

	first := hostAndPod()
	second := append(first[:1:1], inNS(4, sk(9, sock.Established, "10.0.0.1:5000", "10.0.0.2:80", 0))...)
	h := start(t, 80, 24, Config{Names: names.lookup, Namespaces: names.list}, first, first, second)
	h.poll()
	s := h.waitFor("the namespace view", func(s string) bool {
		return strings.Contains(s, "Netns") && strings.Contains(s, "shop/cart-7d9") && strings.Contains(s, "3 namespaces")
	})
	rows := nsRows(s)
	if len(rows) != 3 {
		t.Fatalf("namespace rows %q", rows)
	}
	if strings.Contains(s, "/ total") || !strings.Contains(s, "sockets in all") {
		t.Errorf("the namespace view's status line:\n%s", s)
	}
	// By name first: the counts of each, the idle one too.
	for _, want := range [][]string{{"docker:0123456789ab", "0", "0", "0", "0"}, {"host", "1", "0", "0", "0"}, {"shop/cart-7d9", "1", "1", "2", "0"}} {
		if !hasRow(rows, want) {
			t.Errorf("no row %v in\n%s", want, s)
		}
	}
	// c sorts by CLOSE_WAIT, most first.
	h.key('c')
	s = h.waitFor("sorted by CLOSE_WAIT", func(s string) bool { return strings.Contains(s, "sort CLOSE_WAIT") })
	if rows := nsRows(s); !strings.Contains(rows[0], "shop/cart-7d9") {
		t.Errorf("by CLOSE_WAIT, the first row is %q", rows[0])
	}
	// The selection stays on its namespace whatever the order; Home goes
	// to the first row, and Enter opens it: its sockets only.
	h.special(tcell.KeyHome)
	h.special(tcell.KeyEnter)
	s = h.waitFor("the pod's sockets", func(s string) bool { return strings.Contains(s, "netns shop/cart-7d9") })
	if n := len(rowsOf(s)); n != 4 || !strings.Contains(s, "CLOSE_WAIT 2") || strings.Contains(s, "0.0.0.0:22") || strings.Contains(s, "Netns") {
		t.Errorf("the pod's table has %d rows:\n%s", n, s)
	}
	// Esc comes back, and q still quits from there (tested by cleanup).
	h.special(tcell.KeyEscape)
	h.waitFor("the namespace view again", func(s string) bool { return strings.Contains(s, "3 namespaces") })

	// The pod goes away and another namespace comes.
	names.set(host, idle, late)
	h.poll()
	h.poll()
	s = h.waitFor("the change marked", func(s string) bool { return strings.Contains(s, "+1 new, -1 gone") })
	rows = nsRows(s)
	if !hasRow(rows, []string{"+", "late", "0", "0", "0", "1"}) || !hasRow(rows, []string{"-", "shop/cart-7d9", "(gone)"}) {
		t.Errorf("marks:\n%s", s)
	}
	if last := rows[len(rows)-1]; !strings.Contains(last, "(gone)") {
		t.Errorf("the gone namespace is not last: %q", last)
	}
}

// nsRows are the namespace view's lines below its header.
func nsRows(screen string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(screen, "\n") {
		if strings.Contains(l, "Netns") && strings.Contains(l, "LISTEN") {
			in = true
			continue
		}
		if strings.Contains(l, "filter:") {
			break // the status line, which may take two
		}
		if in && strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// hasRow reports whether a row holds the words in order (sparklines
// between them are ignored).
func hasRow(rows []string, words []string) bool {
	for _, r := range rows {
		f := strings.Fields(r)
		i := 0
		for _, w := range f {
			if i < len(words) && w == words[i] {
				i++
			}
		}
		if i == len(words) {
			return true
		}
	}
	return false
}

// focusing is a source of many namespaces that dumps the one in focus and
// counts the others, as a Fleet with its walk does.
type focusing struct {
	*scripted
	mu     sync.Mutex
	focus  uint32
	asked  []uint32 // every Focus, in order
	counts int      // snapshots that counted
}

func (f *focusing) Focus(ino uint32) {
	f.mu.Lock()
	f.focus = ino
	f.asked = append(f.asked, ino)
	f.mu.Unlock()
}

func (f *focusing) Snapshot() (*sock.Snapshot, error) {
	snap, err := f.scripted.Snapshot()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts++
	all := snap.Sockets
	snap.Sockets, snap.Read, snap.Counted = nil, []uint32{}, map[uint32]sock.StateCounts{}
	if f.focus != 0 {
		snap.Read = append(snap.Read, f.focus)
	}
	for _, s := range all {
		if s.Netns == f.focus {
			snap.Sockets = append(snap.Sockets, s)
			continue
		}
		c := snap.Counted[s.Netns]
		c[s.State]++
		snap.Counted[s.Netns] = c
	}
	return snap, nil
}

func (f *focusing) focuses() []uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint32(nil), f.asked...)
}

// With a source that counts the namespaces not shown, the namespace view
// and the header show its counts; Enter focuses the namespace opened, so
// that its sockets are dumped, and Esc lets it go.
func TestNamespaceViewOfCounts(t *testing.T) {
	host := &nsfind.Name{Inode: 1, Label: "host", Host: true}
	cart := &nsfind.Name{Inode: 2, Label: "shop/cart-7d9", Pod: "cart-7d9", PodNamespace: "shop"}
	names := &fleetNames{}
	names.set(host, cart)
	table := hostAndPod()
	var src *focusing
	wrap := func(s *scripted) monitor.Source { src = &focusing{scripted: s}; return src }
	h := startWrapped(t, 80, 24, Config{Names: names.lookup, Namespaces: names.list}, wrap, table)
	h.poll()
	s := h.waitFor("the namespace view of counts", func(s string) bool {
		return strings.Contains(s, "shop/cart-7d9") && strings.Contains(s, "2 namespaces")
	})
	rows := nsRows(s)
	for _, want := range [][]string{{"host", "1", "0", "0", "0"}, {"shop/cart-7d9", "1", "1", "2", "0"}} {
		if !hasRow(rows, want) {
			t.Errorf("no row %v in\n%s", want, s)
		}
	}
	if !strings.Contains(s, "LISTEN 2") || !strings.Contains(s, "TIME_WAIT 1") || !strings.Contains(s, "CLOSE_WAIT 2") {
		t.Errorf("the header does not count the counted namespaces:\n%s", s)
	}
	// Open the pod (by name, it is the second row): its sockets, dumped.
	h.special(tcell.KeyHome)
	h.special(tcell.KeyDown)
	h.special(tcell.KeyEnter)
	s = h.waitFor("the pod's sockets", func(s string) bool {
		return strings.Contains(s, "netns shop/cart-7d9") && len(rowsOf(s)) == 4
	})
	if !strings.Contains(s, "CLOSE_WAIT 2") || !strings.Contains(s, "LISTEN 1") || strings.Contains(s, "0.0.0.0:22") {
		t.Errorf("the pod's table:\n%s", s)
	}
	h.special(tcell.KeyEscape)
	h.waitFor("the namespace view again", func(s string) bool { return strings.Contains(s, "2 namespaces") })
	if got := src.focuses(); !slices.Equal(got, []uint32{2, 0}) {
		t.Errorf("focused %v, want the pod (2) then none (0)", got)
	}
}

// A name too long for its room keeps, for a path, its end, where the
// mounts of one directory differ; any other name its start. A wider
// table gives names more room.
func TestNamespaceNamesShortened(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"/tmp/TestIntegrationAllNetnsWorld3222625310/002/ns0", "…AllNetnsWorld3222625310/002/ns0"},
		{"shop/cart-7d9f8c6b5-abcde-very-long-pod-name", "shop/cart-7d9f8c6b5-abcde-very-…"},
		{"host", "host"},
	} {
		if got := shorten(tc.name, 32); got != tc.want {
			t.Errorf("shorten(%q, 32) = %q, want %q", tc.name, got, tc.want)
		}
	}
	narrow, wide := &nsContent{width: func() int { return 80 }}, &nsContent{width: func() int { return 200 }}
	if n, w := narrow.nameRoom(), wide.nameRoom(); n != nsNameMin || w <= 100 {
		t.Errorf("room for names: %d at 80 columns, %d at 200; want %d and over 100", n, w, nsNameMin)
	}
}
