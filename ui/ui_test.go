package ui

import (
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/procs"
	"github.com/sockscope/sockscope/pkg/render"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/twstat"
)

// clock is the dashboard's time in tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// scripted is a Source that plays a list of socket tables, one per poll
// (the last one repeats), applying the filter in user space as the kernel
// source would.
type scripted struct {
	mu    sync.Mutex
	steps [][]sock.Socket
	next  int
	prog  *filter.Program
	info  bool
	// lastExchange is the oldest of tcp_info's last data sent, data
	// received and ACK received, when not 0.
	lastExchange time.Duration
	fail         error
	clock        *clock
}

var _ monitor.Source = (*scripted)(nil)

func (s *scripted) Snapshot() (*sock.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		err := s.fail
		s.fail = nil
		return nil, err
	}
	step := s.steps[min(s.next, len(s.steps)-1)]
	s.next++
	snap := &sock.Snapshot{Time: s.clock.Now(), Total: 100}
	for _, x := range step {
		if s.prog == nil || s.prog.Match(&x) {
			x.Info = -1
			if s.info && x.State != sock.TimeWait {
				x.Info = int32(len(snap.Infos))
				ti := sock.TCPInfo{RTT: 42 * time.Microsecond, SndCwnd: 10}
				if s.lastExchange != 0 {
					ti.LastDataSent, ti.LastDataRecv, ti.LastAckRecv = s.lastExchange/2, s.lastExchange, s.lastExchange/3
					ti.SndSsth = 0x7fffffff // none yet
				}
				snap.Infos = append(snap.Infos, ti)
			}
			snap.Sockets = append(snap.Sockets, x)
		}
	}
	return snap, nil
}

func (s *scripted) SetProgram(p *filter.Program) {
	s.mu.Lock()
	s.prog = p
	s.mu.Unlock()
}

func (s *scripted) SetInfo(on bool) {
	s.mu.Lock()
	s.info = on
	s.mu.Unlock()
}

func (s *scripted) program() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prog == nil {
		return ""
	}
	return s.prog.String()
}

func sk(cookie uint64, st sock.State, local, peer string, inode uint32) sock.Socket {
	s := sock.Socket{Cookie: cookie, State: st, Family: sock.IPv4, Inode: inode,
		Local: sock.MustParseEndpoint(local), Peer: sock.MustParseEndpoint(peer)}
	if st == sock.TimeWait {
		s.Timer, s.Expires = sock.TimerTimeWait, 50000
	}
	return s
}

// seedTable is the tutorial's table: a listener, two TIME_WAIT entries, a
// CLOSE_WAIT and its FIN_WAIT2 client, and three established connections.
func seedTable() []sock.Socket {
	return []sock.Socket{
		sk(1, sock.Listen, "0.0.0.0:9000", "0.0.0.0:0", 11),
		sk(2, sock.TimeWait, "127.0.0.1:9000", "127.0.0.1:40002", 0),
		sk(3, sock.TimeWait, "127.0.0.1:9000", "127.0.0.1:40003", 0),
		sk(4, sock.CloseWait, "127.0.0.1:9000", "127.0.0.1:40004", 14),
		sk(5, sock.FinWait2, "127.0.0.1:40004", "127.0.0.1:9000", 15),
		sk(6, sock.Established, "127.0.0.1:9000", "127.0.0.1:40006", 16),
		sk(7, sock.Established, "127.0.0.1:9000", "127.0.0.1:40007", 17),
		sk(8, sock.Established, "127.0.0.1:9000", "127.0.0.1:40008", 18),
	}
}

type harness struct {
	t      *testing.T
	d      *dashboard
	screen tcell.SimulationScreen
	src    *scripted
	clock  *clock
	tick   chan time.Time
	done   chan error
}

func start(t *testing.T, w, h int, cfg Config, steps ...[]sock.Socket) *harness {
	t.Helper()
	return startWrapped(t, w, h, cfg, nil, steps...)
}

// startWrapped is start with the scripted source seen through wrap.
func startWrapped(t *testing.T, w, h int, cfg Config, wrap func(*scripted) monitor.Source, steps ...[]sock.Socket) *harness {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	src := &scripted{steps: steps, clock: c}
	screen := tcell.NewSimulationScreen("UTF-8")
	tick := make(chan time.Time)
	cfg.Source = src
	if wrap != nil {
		cfg.Source = wrap(src)
	}
	if cfg.Redraw <= 0 {
		cfg.Redraw = -1 // no live redraw unless the test asks for one
	}
	cfg.Screen, cfg.Tick, cfg.Now = screen, tick, c.Now
	if cfg.Lookup == nil {
		cfg.Lookup = func(inode uint32) (procs.Process, bool) {
			if inode == 11 {
				return procs.Process{PID: 4242, Command: "server"}, true
			}
			return procs.Process{}, false
		}
	}
	hs := &harness{t: t, d: newDashboard(cfg), screen: screen, src: src, clock: c, tick: tick, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { hs.done <- hs.d.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-hs.done:
		case <-time.After(5 * time.Second):
			t.Error("dashboard did not stop")
		}
	})
	hs.resize(w, h)
	return hs
}

func (h *harness) resize(w, hgt int) {
	h.d.app.QueueUpdateDraw(func() { h.screen.SetSize(w, hgt) })
}

// poll makes the poller take its next snapshot.
func (h *harness) poll() {
	select {
	case h.tick <- time.Time{}:
	case <-time.After(5 * time.Second):
		h.t.Fatal("poller did not take the tick")
	}
}

func (h *harness) key(r rune) { h.screen.InjectKey(tcell.KeyRune, r, tcell.ModNone) }

func (h *harness) special(k tcell.Key) { h.screen.InjectKey(k, 0, tcell.ModNone) }

func (h *harness) typeText(s string) {
	for _, r := range s {
		h.key(r)
	}
}

// lines reads the screen on the UI goroutine.
func (h *harness) lines() ([]string, [][]tcell.Style) {
	var lines []string
	var styles [][]tcell.Style
	h.d.app.QueueUpdate(func() {
		cells, w, hgt := h.screen.GetContents()
		for y := range hgt {
			var b strings.Builder
			var st []tcell.Style
			for x := range w {
				c := cells[y*w+x]
				r := " "
				if len(c.Runes) > 0 {
					r = string(c.Runes)
				}
				b.WriteString(r)
				for range []rune(r) {
					st = append(st, c.Style)
				}
			}
			lines = append(lines, b.String())
			styles = append(styles, st)
		}
	})
	return lines, styles
}

func (h *harness) text() string {
	l, _ := h.lines()
	return strings.Join(l, "\n")
}

// waitFor waits until the screen satisfies cond: key events and frames
// arrive asynchronously, so tests wait for what they expect to see.
func (h *harness) waitFor(what string, cond func(screen string) bool) string {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := h.text()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("waiting for %s; screen:\n%s", what, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) waitText(subs ...string) string {
	h.t.Helper()
	return h.waitFor(strings.Join(subs, ", "), func(s string) bool {
		for _, sub := range subs {
			if !strings.Contains(s, sub) {
				return false
			}
		}
		return true
	})
}

func (h *harness) waitGone(sub string) string {
	h.t.Helper()
	return h.waitFor("no "+sub, func(s string) bool { return !strings.Contains(s, sub) })
}

// styleOf returns the style of the first cell of the first occurrence of
// sub on the screen, in the line that contains also (if given).
func (h *harness) styleOf(sub, also string) tcell.Style {
	h.t.Helper()
	lines, styles := h.lines()
	for y, l := range lines {
		if i := strings.Index(l, sub); i >= 0 && strings.Contains(l, also) {
			return styles[y][len([]rune(l[:i]))]
		}
	}
	h.t.Fatalf("%q (with %q) not on screen:\n%s", sub, also, strings.Join(lines, "\n"))
	return tcell.StyleDefault
}

// rowsOf returns the table's data lines that mention a port.
func rowsOf(screen string) []string {
	var out []string
	for _, l := range strings.Split(screen, "\n") {
		if strings.Contains(l, "127.0.0.1:") || strings.Contains(l, "0.0.0.0:") {
			out = append(out, strings.TrimRight(l, " "))
		}
	}
	return out
}

func countState(rows []string, state string) int {
	n := 0
	for _, r := range rows {
		if strings.HasPrefix(r, state+" ") || r == state {
			n++
		}
	}
	return n
}

func fg(s tcell.Style) tcell.Color { f, _, _ := s.Decompose(); return f }

func TestHeaderCountsAndColours(t *testing.T) {
	h := start(t, 120, 30, Config{Filter: ":9000"}, seedTable())
	s := h.waitText("LISTEN 1", "TIME_WAIT 2", "CLOSE_WAIT 1", "ESTABLISHED 3", "FIN_WAIT2 1", "SYN_SENT 0", "CLOSING 0")
	if got := len(rowsOf(s)); got != 8 {
		t.Errorf("%d rows, want 8:\n%s", got, s)
	}
	for _, c := range []struct {
		text  string
		color tcell.Color
	}{{"LISTEN 1", tcell.ColorGreen}, {"TIME_WAIT 2", tcell.ColorYellow}, {"CLOSE_WAIT 1", tcell.ColorRed}} {
		// Move the selection (shown reversed) off the rows checked here.
		h.special(tcell.KeyDown)
		if got := fg(h.styleOf(c.text, "")); got != c.color {
			t.Errorf("header %q in %v, want %v", c.text, got, c.color)
		}
		state := strings.Fields(c.text)[0]
		// Keys and frames arrive asynchronously: wait for the redraw.
		h.waitFor(state+" row in its colour", func(string) bool {
			return fg(h.styleOf(state+" ", ":9000 ")) == c.color
		})
	}
	// Zero counts are dimmed.
	if _, _, attr := h.styleOf("SYN_SENT 0", "").Decompose(); attr&tcell.AttrDim == 0 {
		t.Error("a zero count is not dimmed")
	}
	if !strings.Contains(s, "shown 8 / matched 8 / total 100") || !strings.Contains(s, "filter: :9000") {
		t.Errorf("status line:\n%s", s)
	}
	// TIME_WAIT rows show their age and time left from the kernel timer.
	if !strings.Contains(s, "10.0s") || !strings.Contains(s, "50.0s") {
		t.Errorf("TIME_WAIT age 10.0s / left 50.0s not shown:\n%s", s)
	}
}

func TestStateToggles(t *testing.T) {
	h := start(t, 120, 30, Config{}, seedTable())
	h.waitText("TIME_WAIT 2")
	h.key('t')
	s := h.waitFor("only TIME_WAIT rows", func(s string) bool { return len(rowsOf(s)) == 2 })
	if countState(rowsOf(s), "TIME_WAIT") != 2 || !strings.Contains(s, "LISTEN 1") || !strings.Contains(s, "shown 2 / matched 8") {
		t.Errorf("after t:\n%s", s)
	}
	h.key('l')
	s = h.waitFor("LISTEN and TIME_WAIT", func(s string) bool { return len(rowsOf(s)) == 3 })
	if countState(rowsOf(s), "LISTEN") != 1 {
		t.Errorf("after l:\n%s", s)
	}
	h.key('t')
	h.waitFor("LISTEN only", func(s string) bool { return len(rowsOf(s)) == 1 })
	h.key('c')
	h.key('e')
	s = h.waitFor("LISTEN, CLOSE_WAIT, ESTABLISHED", func(s string) bool { return len(rowsOf(s)) == 5 })
	if countState(rowsOf(s), "ESTABLISHED") != 3 || countState(rowsOf(s), "CLOSE_WAIT") != 1 {
		t.Errorf("after c e:\n%s", s)
	}
	h.key('a')
	h.waitFor("all rows", func(s string) bool { return len(rowsOf(s)) == 8 })
}

func TestFilterEditing(t *testing.T) {
	h := start(t, 120, 30, Config{Filter: ":9000"}, seedTable())
	h.waitText("TIME_WAIT 2")
	h.key('/')
	h.waitText("filter: :9000")
	h.special(tcell.KeyCtrlU) // clear the line
	h.typeText("state tim-wait")
	h.special(tcell.KeyEnter)
	s := h.waitText(`unknown TCP state: "tim-wait" at column 7`)
	if len(rowsOf(s)) != 8 || h.src.program() != "" {
		t.Errorf("a bad filter changed the view (program %q):\n%s", h.src.program(), s)
	}
	// Fix it in place.
	h.special(tcell.KeyCtrlU)
	h.typeText("state time-wait")
	h.special(tcell.KeyEnter)
	s = h.waitFor("two TIME_WAIT rows", func(s string) bool { return len(rowsOf(s)) == 2 && strings.Contains(s, "matched 2") })
	if countState(rowsOf(s), "TIME_WAIT") != 2 || !strings.Contains(s, "filter: state time-wait") || strings.Contains(s, "tim-wait") {
		t.Errorf("after a good filter:\n%s", s)
	}
	if h.src.program() != "state time-wait" {
		t.Errorf("source program %q", h.src.program())
	}
	// Sockets that left the filter are not shown as gone.
	if strings.Contains(s, " gone") {
		t.Errorf("refiltered sockets shown as gone:\n%s", s)
	}
	// Esc in the editor cancels without changing the filter.
	h.key('/')
	h.typeText(" or state listen")
	h.special(tcell.KeyEscape)
	h.waitText("filter: state time-wait │")
	if h.src.program() != "state time-wait" {
		t.Errorf("Esc applied the edit: %q", h.src.program())
	}
}

// A filter the source cannot apply (Refuse: dev where /proc/net/tcp is
// read) is an error in the editor, as a bad one is: nothing changes.
func TestFilterTheSourceRefuses(t *testing.T) {
	refuse := func(e filter.Expr) error {
		if filter.HasDev(e) {
			return errors.New("dev: not known here")
		}
		return nil
	}
	h := start(t, 120, 30, Config{Refuse: refuse}, seedTable())
	h.waitText("TIME_WAIT 2")
	h.key('/')
	h.typeText("not dev 3")
	h.special(tcell.KeyEnter)
	s := h.waitText("dev: not known here")
	if len(rowsOf(s)) != 8 || h.src.program() != "" {
		t.Errorf("a refused filter changed the view (program %q):\n%s", h.src.program(), s)
	}
	h.special(tcell.KeyCtrlU)
	h.typeText("state time-wait")
	h.special(tcell.KeyEnter)
	h.waitFor("two TIME_WAIT rows", func(s string) bool { return len(rowsOf(s)) == 2 })
	if h.src.program() != "state time-wait" {
		t.Errorf("source program %q after a filter it takes", h.src.program())
	}
}

func TestSortPauseIntervalProcesses(t *testing.T) {
	h := start(t, 120, 30, Config{}, seedTable())
	s := h.waitText("sort state", "LISTEN 1")
	if r := rowsOf(s); !strings.HasPrefix(r[0], "LISTEN") {
		t.Errorf("state sort does not start with LISTEN: %v", r)
	}
	h.key('s')
	s = h.waitText("sort age")
	// Ages: TIME_WAIT entries have 10 s, the rest are new (0).
	if r := rowsOf(s); !strings.HasPrefix(r[0], "TIME_WAIT") {
		t.Errorf("age sort does not start with the oldest: %v", r)
	}
	h.key('s')
	s = h.waitText("sort local port")
	if r := rowsOf(s); !strings.HasPrefix(r[0], "LISTEN") && !strings.Contains(r[0], "127.0.0.1:9000") {
		t.Errorf("local port sort: %v", r)
	}
	h.key('S')
	s = h.waitText("sort local port ↑")
	if r := rowsOf(s); !strings.Contains(r[0], "127.0.0.1:40004") {
		t.Errorf("reversed local port sort does not start with port 40004: %v", r)
	}
	h.key('s')
	h.waitText("sort peer")
	h.key('s')
	h.waitText("sort state")

	h.key('+')
	h.waitText("every 500ms")
	h.key('-')
	h.key('-')
	h.waitText("every 2s")

	if strings.Contains(h.text(), "Process") {
		t.Error("Process column shown without -p")
	}
	h.key('p')
	h.poll()
	s = h.waitText("Process", "4242/server")

	// Pause: the table freezes while the kernel moves on.
	h.key(' ')
	h.waitText("PAUSED")
	h.src.mu.Lock()
	h.src.steps = append(h.src.steps, seedTable()[:1])
	h.src.mu.Unlock()
	h.poll()
	h.poll()
	s = h.waitText("LISTEN 1", "TIME_WAIT 0")
	if len(rowsOf(s)) != 8 {
		t.Errorf("paused table changed:\n%s", s)
	}
	h.key(' ')
	// Resumed: the table catches up, the vanished sockets shown as gone.
	h.waitFor("the new table after resuming", func(s string) bool {
		r := rowsOf(s)
		return !strings.Contains(s, "PAUSED") && countState(r, "LISTEN") == 1 && countState(r, "ESTABLISHED gone") == 3
	})
}

func TestHelpDetailAndQuit(t *testing.T) {
	h := start(t, 100, 30, Config{}, seedTable())
	h.waitText("TIME_WAIT 2")
	h.key('?')
	h.waitText("toggle LISTEN, TIME_WAIT, CLOSE_WAIT, ESTABLISHED")
	h.special(tcell.KeyEscape)
	h.waitGone("toggle LISTEN")

	// Select the first TIME_WAIT entry (sorted by state: after LISTEN,
	// CLOSE_WAIT, ESTABLISHED x3, FIN_WAIT2) and open it.
	for range 6 {
		h.special(tcell.KeyDown)
	}
	h.special(tcell.KeyEnter)
	s := h.waitText("cookie", "timewait in", "history")
	if !strings.Contains(s, "TIME_WAIT") || !strings.Contains(s, "127.0.0.1:40002") {
		t.Errorf("detail pane:\n%s", s)
	}
	h.special(tcell.KeyEscape)
	h.waitGone("history")
	// An ESTABLISHED socket gets tcp_info while its pane is open.
	h.special(tcell.KeyUp)
	h.special(tcell.KeyUp)
	h.special(tcell.KeyEnter)
	h.waitText("history")
	h.poll()
	h.waitText("rtt", "42µs")
	h.special(tcell.KeyEscape) // closes the pane, not the dashboard
	h.waitGone("history")
	select {
	case err := <-h.done:
		t.Fatalf("Esc with a pane open quit the dashboard: %v", err)
	default:
	}
	h.key('q')
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("dashboard ended with %v", err)
		}
		h.done <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("q did not quit")
	}
}

// A listener's detail gives its accept queue, not the zeros of a
// tcp_info it has no use for (rtt 0s, last data sent 0s ago).
func TestListenerDetail(t *testing.T) {
	table := seedTable()
	table[0].RecvQ, table[0].SendQ = 3, 128
	more := append(slices.Clone(table), sk(9, sock.Established, "127.0.0.1:9000", "127.0.0.1:40009", 19))
	h := start(t, 100, 30, Config{}, table, more)
	h.waitText("TIME_WAIT 2")
	h.special(tcell.KeyEnter) // the first row: LISTEN, sorted by state
	s := h.waitText("accept queue", "history")
	if !strings.Contains(s, "3 waiting, backlog 128") || strings.Contains(s, "rtt") || strings.Contains(s, "last data") {
		t.Errorf("a listener's detail:\n%s", s)
	}
	h.src.mu.Lock()
	asked := h.src.info
	h.src.mu.Unlock()
	if asked {
		t.Error("a listener's detail asked for tcp_info, which it does not show")
	}
	// A poll with tcp_info (another pane may want it): the frame with the
	// fourth ESTABLISHED socket has the listener's too.
	h.src.SetInfo(true)
	h.poll()
	s = h.waitText("ESTABLISHED 4", "accept queue")
	if strings.Contains(s, "rtt") {
		t.Errorf("a listener's detail with tcp_info:\n%s", s)
	}
}

// -4 and -6 stay through the filter's edits, and the status line says so:
// an empty table under an IPv6 filter then has its reason in sight.
func TestFixedFamilyInTheStatusLine(t *testing.T) {
	h := start(t, 100, 30, Config{Filter: ":9000", Fixed: filter.Spec{IPv4: true}}, seedTable())
	h.waitText("filter: -4 :9000 │")
	h.quits()
}

// A connection there before the first look is at least as old as its
// last exchange, which tcp_info gives: the detail says that floor when it
// is higher than the time since the first look.
func TestDetailAgeFloorFromTCPInfo(t *testing.T) {
	table := []sock.Socket{sk(9, sock.CloseWait, "127.0.0.1:9000", "127.0.0.1:40009", 19)}
	h := start(t, 100, 30, Config{}, table)
	h.src.mu.Lock()
	h.src.lastExchange = 12*time.Minute + 37*time.Second
	h.src.mu.Unlock()
	h.waitText("CLOSE_WAIT 1")
	h.special(tcell.KeyEnter)
	h.waitText("history")
	h.poll()
	s := h.waitText("rtt")
	if !strings.Contains(s, "at least 12m37s (its last exchange, by tcp_info)") || !strings.Contains(s, "ssthresh none yet") {
		t.Errorf("a CLOSE_WAIT socket's detail with tcp_info:\n%s", s)
	}
}

// From /proc/net/tcp a listener's Send-Q is 0, not its backlog: the
// detail does not call it one.
func TestListenerDetailFromProcfs(t *testing.T) {
	table := seedTable()
	table[0].RecvQ = 2
	h := start(t, 100, 30, Config{Procfs: true}, table)
	h.waitText("TIME_WAIT 2")
	h.special(tcell.KeyEnter)
	s := h.waitText("accept queue", "history")
	if !strings.Contains(s, "2 waiting") || strings.Contains(s, "backlog") {
		t.Errorf("a listener's detail from /proc/net/tcp:\n%s", s)
	}
}

func TestSelectionFollowsSocketAcrossRefresh(t *testing.T) {
	first := seedTable()
	// The second table gains sockets that sort before the selected one.
	second := append(seedTable(),
		sk(20, sock.Listen, "0.0.0.0:22", "0.0.0.0:0", 20),
		sk(21, sock.CloseWait, "127.0.0.1:9000", "127.0.0.1:30000", 21))
	h := start(t, 120, 30, Config{}, first, second)
	h.waitText("TIME_WAIT 2")
	for range 3 {
		h.special(tcell.KeyDown)
	}
	selected := func() string {
		lines, styles := h.lines()
		for y, l := range lines {
			if strings.Contains(l, "127.0.0.1:") && len(styles[y]) > 0 {
				if _, _, a := styles[y][0].Decompose(); a&tcell.AttrReverse != 0 {
					return strings.Fields(l)[2]
				}
			}
		}
		return ""
	}
	// Sorted by state: LISTEN, then ESTABLISHED 40006, 40007, 40008.
	const before = "127.0.0.1:40008"
	h.waitFor("the third connection selected", func(string) bool { return selected() == before })
	h.poll()
	h.waitText("LISTEN 2")
	if after := selected(); after != before {
		t.Errorf("selection moved from peer %s to %s across a refresh", before, after)
	}
}

func TestGoneAndNewRows(t *testing.T) {
	table := seedTable()
	without := append([]sock.Socket(nil), table[:1]...)
	without = append(without, table[2:]...)                                                                               // cookie 2 left
	with := append(append([]sock.Socket(nil), without...), sk(30, sock.SynSent, "127.0.0.1:40030", "127.0.0.1:9000", 30)) // and one arrives
	h := start(t, 120, 30, Config{}, table, with, with)
	h.waitText("TIME_WAIT 2")
	h.clock.Add(time.Second)
	h.poll()
	s := h.waitText("TIME_WAIT gone", "SYN_SENT 1")
	if fg(h.styleOf("TIME_WAIT gone", "")) != tcell.ColorGray {
		t.Error("a gone row is not dimmed")
	}
	if _, bg, attr := h.styleOf("SYN_SENT ", "127.0.0.1:40030").Decompose(); attr&tcell.AttrBold == 0 || bg != tcell.ColorDarkSlateGray {
		t.Errorf("a new row is not highlighted (attr %v, bg %v):\n%s", attr, bg, s)
	}
	if strings.Contains(s, "TIME_WAIT 2") {
		t.Error("header still counts the gone entry")
	}
	// Some seconds later the gone row has left and the new one is plain.
	h.clock.Add(4 * time.Second)
	h.poll()
	h.waitGone("TIME_WAIT gone")
	if _, bg, attr := h.styleOf("SYN_SENT ", "127.0.0.1:40030").Decompose(); attr&tcell.AttrBold != 0 || bg == tcell.ColorDarkSlateGray {
		t.Errorf("the new row is still highlighted after 4 s: attr %v bg %v", attr, bg)
	}
}

func TestCollectorErrorKeepsLastFrame(t *testing.T) {
	h := start(t, 120, 30, Config{}, seedTable())
	h.waitText("TIME_WAIT 2")
	h.src.mu.Lock()
	h.src.fail = errors.New("reading the socket table: dumping inet sockets: receiving: no buffer space available")
	h.src.mu.Unlock()
	h.poll()
	s := h.waitText("no buffer space available")
	if len(rowsOf(s)) != 8 {
		t.Errorf("an error cleared the table:\n%s", s)
	}
	h.poll()
	h.waitGone("no buffer space available")
}

func TestSmallAndResizedScreen(t *testing.T) {
	h := start(t, 80, 24, Config{Filter: ":9000"}, seedTable())
	s := h.waitText("LISTEN 1", "TIME_WAIT 2", "CLOSE_WAIT 1", "filter: :9000")
	lines := strings.Split(s, "\n")
	if len(lines) != 24 || !strings.Contains(lines[23], "filter:") {
		t.Errorf("status line not on the last of 24 lines:\n%s", s)
	}
	if len(rowsOf(s)) != 8 {
		t.Errorf("rows at 80x24:\n%s", s)
	}
	h.resize(60, 12)
	h.waitFor("a 12-line screen", func(s string) bool {
		l := strings.Split(s, "\n")
		return len(l) == 12 && strings.Contains(l[11], "filter:")
	})
	h.resize(140, 40)
	h.waitFor("a 40-line screen", func(s string) bool { return len(strings.Split(s, "\n")) == 40 })
}

func TestTimeWaitPanel(t *testing.T) {
	table := seedTable()
	// Entry 2 leaves when its timer runs out: 50 s left at the start.
	after := append([]sock.Socket{table[0]}, table[2:]...)
	h := start(t, 120, 45, Config{TimeWait: func() (twstat.Context, error) {
		return twstat.Context{FinTimeout: 60, Reuse: 2, MaxBuckets: 131072, Now: 1, TimeWaitLen: 60}, nil
	}}, table, table, after)
	h.waitText("TIME_WAIT 2")
	h.key('w')
	h.waitText("0 entries from entering to leaving", "tcp_max_tw_buckets = 131072")
	h.clock.Add(51 * time.Second)
	h.poll()
	s := h.waitText("1 entry from entering to leaving", "min 61.0s", "9000   1 entry",
		"TIME_WAIT lasts 60 s, fixed in the kernel", "tcp_fin_timeout = 60 does not change that")
	if !strings.Contains(s, "61s") {
		t.Errorf("histogram:\n%s", s)
	}
	h.key('w')
	h.waitGone("entries from entering")
	h.key('w')
	h.waitText("1 entry from entering")
	h.special(tcell.KeyEscape)
	h.waitGone("1 entry from entering")
	select {
	case <-h.done:
		t.Fatal("Esc on the panel quit the dashboard")
	default:
	}
}

func TestStatusLineRates(t *testing.T) {
	var mu sync.Mutex
	calls := int64(0)
	h := start(t, 140, 30, Config{Counters: func() (map[string]int64, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return map[string]int64{"OutRsts": 5 * calls, "ListenOverflows": 0, "TCPTimeWaitOverflow": 0}, nil
	}}, seedTable())
	h.waitText("TIME_WAIT 2")
	h.clock.Add(time.Second)
	h.poll()
	s := h.waitText("rst 5.0/s, listen ovf 0/s, tw ovf 0/s")
	if fg(h.styleOf("5.0/s", "rst")) != tcell.ColorRed {
		t.Errorf("a reset rate is not red:\n%s", s)
	}
}

// At 80 columns the status line does not fit in one: it takes two rows,
// broken between words, so that its end (the rates, "? help") shows; back
// on a wide screen it takes one.
func TestStatusLineWrapsAt80Columns(t *testing.T) {
	h := start(t, 80, 24, Config{Filter: ":9000", Netns: "readme", Counters: func() (map[string]int64, error) {
		return map[string]int64{"OutRsts": 0, "ListenOverflows": 0, "TCPTimeWaitOverflow": 0}, nil
	}}, seedTable())
	h.waitText("TIME_WAIT 2")
	h.clock.Add(time.Second)
	h.poll()
	s := h.waitText("tw ovf 0/s", "? help")
	lines := strings.Split(s, "\n")
	if len(lines) != 24 || !strings.HasPrefix(lines[22], "filter: :9000") || !strings.HasSuffix(strings.TrimSpace(lines[23]), "? help") {
		t.Errorf("status line not on the last two of 24 lines:\n%s", s)
	}
	if len(rowsOf(s)) != 8 {
		t.Errorf("rows at 80x24 with a two-line status: %d, want all 8\n%s", len(rowsOf(s)), s)
	}
	// The filter editor takes the last line alone, and gives the status
	// its two back.
	h.key('/')
	h.waitFor("the editor on the last line", func(s string) bool {
		l := strings.Split(s, "\n")
		return len(l) == 24 && strings.HasPrefix(l[23], "filter: :9000") && !strings.Contains(s, "? help")
	})
	h.special(tcell.KeyEscape)
	h.waitText("? help")
	h.resize(200, 24)
	h.waitFor("a one-line status", func(s string) bool {
		l := strings.Split(s, "\n")
		return len(l) == 24 && strings.HasPrefix(l[23], "filter: :9000") && strings.Contains(l[23], "? help")
	})
}

// Paused at 80 columns with full sparklines, the header keeps its three
// lines and the status line says PAUSED.
func TestPausedAt80Columns(t *testing.T) {
	table := seedTable()
	steps := make([][]sock.Socket, 14)
	for i := range steps {
		steps[i] = table
	}
	h := start(t, 80, 24, Config{}, steps...)
	// One frame at a time (frames the UI has not drawn yet are merged),
	// after the first, which the dashboard polls by itself.
	h.waitText("TIME_WAIT 2")
	for n := 2; n <= 12; n++ {
		h.clock.Add(time.Second)
		h.poll()
		h.waitFor(strconv.Itoa(n)+" frames in the sparklines", func(s string) bool {
			return strings.Contains(s, "LISTEN 1 "+strings.Repeat("█", n)+" ")
		})
	}
	h.key(' ')
	s := h.waitText("PAUSED")
	lines := strings.Split(s, "\n")
	if !strings.HasPrefix(lines[0], "LISTEN 1") || !strings.HasPrefix(lines[1], "ESTABLISHED 3") ||
		!strings.HasPrefix(lines[2], "LAST_ACK 0") || !strings.HasPrefix(lines[3], "State") {
		t.Errorf("paused: the header's lines moved:\n%s", s)
	}
	if !strings.Contains(lines[len(lines)-1], "PAUSED") && !strings.Contains(lines[len(lines)-2], "PAUSED") {
		t.Errorf("paused: no PAUSED in the status line:\n%s", s)
	}
}

// A panic on the UI goroutine ends the dashboard with the screen finalised
// and the panic reported as an error, not a crash.
func TestPanicRestoresTheScreen(t *testing.T) {
	h := start(t, 100, 30, Config{}, seedTable())
	h.waitText("TIME_WAIT 2")
	h.d.app.QueueUpdate(func() {
		h.d.app.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
			if ev.Rune() == '!' {
				panic("boom")
			}
			return h.d.key(ev)
		})
	})
	h.key('!')
	select {
	case err := <-h.done:
		if err == nil || !strings.Contains(err.Error(), "internal error in the dashboard: boom") {
			t.Errorf("run returned %v", err)
		}
		h.done <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("the dashboard did not end after a panic")
	}
	// A finalised simulation screen has no contents left to show.
	if cells, _, _ := h.screen.GetContents(); len(cells) != 0 {
		t.Errorf("the screen was not finalised: %d cells", len(cells))
	}
}

// A terminal that goes away (its window closed) ends the dashboard as
// the hangup signal does, without an error to print; any other failure to
// read the terminal is still one.
func TestTerminalGoneEndsQuietly(t *testing.T) {
	for _, c := range []struct {
		read error
		want string // "" for no error
	}{
		{io.EOF, ""},
		{&os.PathError{Op: "read", Path: "/dev/tty", Err: syscall.EIO}, ""},
		{&os.PathError{Op: "read", Path: "/dev/tty", Err: syscall.EBADF}, "bad file descriptor"},
	} {
		h := start(t, 100, 30, Config{}, seedTable())
		h.waitText("TIME_WAIT 2")
		if err := h.screen.PostEvent(tcell.NewEventError(c.read)); err != nil {
			t.Fatalf("posting %v: %v", c.read, err)
		}
		select {
		case err := <-h.done:
			if c.want == "" && err != nil {
				t.Errorf("after %v the dashboard ended with %v", c.read, err)
			}
			if c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("after %v the dashboard ended with %v, want %q", c.read, err, c.want)
			}
			h.done <- nil // for the cleanup
		case <-time.After(5 * time.Second):
			t.Fatalf("the dashboard did not end after %v", c.read)
		}
	}
}

// dashboardGoroutines lists the stacks of goroutines the dashboard started.
func dashboardGoroutines() []string {
	buf := make([]byte, 1<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "ui.(*dashboard).run.func") || strings.Contains(g, "ui.(*dashboard).stop.func") {
			out = append(out, g)
		}
	}
	return out
}

// Quitting ends every goroutine the dashboard started, even the ones that
// were queueing a redraw when q came (tview waits for the UI to run a
// queued update, so one caught when the UI stopped would wait forever).
func TestQuitLeavesNoGoroutines(t *testing.T) {
	for round := range 5 {
		c := &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
		screen := tcell.NewSimulationScreen("UTF-8")
		tick := make(chan time.Time)
		d := newDashboard(Config{Source: &scripted{steps: [][]sock.Socket{seedTable()}, clock: c},
			Screen: screen, Tick: tick, Now: c.Now, Redraw: time.Millisecond})
		done := make(chan error, 1)
		go func() { done <- d.run(context.Background()) }()
		for range 20 {
			select {
			case tick <- time.Time{}:
			case <-time.After(5 * time.Second):
				t.Fatal("the poller did not take the tick")
			}
		}
		screen.InjectKey(tcell.KeyRune, 'q', tcell.ModNone)
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("q did not end the dashboard")
		}
		deadline := time.Now().Add(2 * time.Second)
		for len(dashboardGoroutines()) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if left := dashboardGoroutines(); len(left) > 0 {
			t.Fatalf("round %d: %d goroutines left after q:\n%s", round, len(left), strings.Join(left, "\n\n"))
		}
	}
}

// quits asserts that q ends the dashboard: a UI goroutine stuck in a key
// handler never would.
func (h *harness) quits() {
	h.t.Helper()
	h.key('q')
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("dashboard ended with %v", err)
		}
		h.done <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		h.t.Fatal("q did not quit: the UI goroutine is stuck")
	}
}

// movementKeys are every key that moves the table's selection.
var movementKeys = []struct {
	name string
	key  tcell.Key
	r    rune
}{
	{"Down", tcell.KeyDown, 0}, {"Up", tcell.KeyUp, 0}, {"PgDn", tcell.KeyPgDn, 0},
	{"PgUp", tcell.KeyPgUp, 0}, {"Home", tcell.KeyHome, 0}, {"End", tcell.KeyEnd, 0},
	{"Ctrl-F", tcell.KeyCtrlF, 0}, {"Ctrl-B", tcell.KeyCtrlB, 0},
	{"j", tcell.KeyRune, 'j'}, {"k", tcell.KeyRune, 'k'}, {"g", tcell.KeyRune, 'g'},
	{"G", tcell.KeyRune, 'G'}, {"Left", tcell.KeyLeft, 0}, {"Right", tcell.KeyRight, 0},
	{"h", tcell.KeyRune, 'h'}, {"Enter", tcell.KeyEnter, 0},
}

func (h *harness) press(k tcell.Key, r rune) {
	if k == tcell.KeyRune {
		h.key(r)
		return
	}
	h.special(k)
}

// An empty table (nothing on the port yet, or every row hidden by the
// toggles) takes every movement key and still quits.
func TestMovementOnEmptyTable(t *testing.T) {
	for _, mk := range movementKeys {
		t.Run("nothing/"+mk.name, func(t *testing.T) {
			h := start(t, 80, 24, Config{Filter: ":9000"}, nil)
			h.poll()
			h.waitText("shown 0 / matched 0")
			for range 3 {
				h.press(mk.key, mk.r)
			}
			h.quits()
		})
		t.Run("hidden/"+mk.name, func(t *testing.T) {
			// No listener: showing only LISTEN hides every row.
			h := start(t, 80, 24, Config{}, seedTable()[1:])
			h.waitText("TIME_WAIT 2")
			// Move down first, so the selection sits on a row that the
			// toggle then takes away.
			for range 4 {
				h.special(tcell.KeyDown)
			}
			h.key('l')
			h.waitText("shown 0 / matched 7")
			for range 3 {
				h.press(mk.key, mk.r)
			}
			h.quits()
		})
	}
}

// What fails beside the dump (the counters behind the rates) is said in
// the status line, once, while the table stays.
func TestWarningInStatusLine(t *testing.T) {
	calls := 0
	var mu sync.Mutex
	h := start(t, 160, 30, Config{Counters: func() (map[string]int64, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return nil, errors.New("no snmp here")
	}}, seedTable())
	h.waitText("reading the TCP counters: no snmp here", "TIME_WAIT 2")
	h.poll()
	h.poll()
	s := h.waitText("TIME_WAIT 2")
	if strings.Count(s, "no snmp here") != 1 {
		t.Errorf("the warning should show once:\n%s", s)
	}
	mu.Lock()
	defer mu.Unlock()
	// The second tick was taken once the first tick's poll had ended:
	// the first poll and that one have read the counters.
	if calls < 2 {
		t.Errorf("counters read %d times, want every poll", calls)
	}
}

// -o picks and orders the dashboard's columns from the one column table;
// p adds and removes the process column whatever they are.
func TestChosenColumns(t *testing.T) {
	cols, err := render.ParseColumns("retrans,state,local,cookie")
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, 120, 30, Config{Columns: cols}, seedTable())
	s := h.waitText("TIME_WAIT 2")
	header := ""
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "State") && strings.Contains(l, "Cookie") {
			header = strings.Join(strings.Fields(l), " ")
		}
	}
	if header != "Retrans State Local Cookie" {
		t.Fatalf("header %q, want Retrans State Local Cookie:\n%s", header, s)
	}
	if !strings.Contains(s, "0x6") || strings.Contains(s, "Peer") {
		t.Errorf("cookie cells missing or an unchosen column shown:\n%s", s)
	}
	h.key('p')
	h.waitText("Cookie", "Process", "4242/server")
	h.key('p')
	h.waitGone("Process")
}

// A ticking cell counts the kernel's timer down from the frame's time
// without writing into the frame: the snapshot is shared with the tracker,
// and each redraw between two polls took the time gone by off the timer
// again (after three redraws 2 s after the poll, 44 s showed for 48 s).
func TestTimerTicksWithoutTouchingTheFrame(t *testing.T) {
	cols, err := render.ParseColumns("state,local,peer,timer")
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, 100, 20, Config{Columns: cols}, seedTable())
	h.waitText("timewait 50.0s")
	h.clock.Add(2 * time.Second)
	for range 3 {
		h.key('j') // each move redraws
		h.key('k')
	}
	h.waitText("timewait 48.0s")
}

// Between polls the ages and timers tick on: a frame older than the redraw
// period is drawn again at the time of the redraw.
func TestAgesTickBetweenPolls(t *testing.T) {
	// The poll the monitor makes as it starts, and no other: a frame
	// taken before the clock moves and drawn after it would tick too.
	h := start(t, 120, 30, Config{Redraw: 20 * time.Millisecond}, seedTable())
	h.waitText("TIME_WAIT 2", "50.0s")
	h.clock.Add(7 * time.Second)
	h.waitFor("both timers 7 s on", func(s string) bool {
		return strings.Count(s, "43.0s") >= 2 && !strings.Contains(s, "50.0s")
	})
}

// FirstFrame is called once, when the first frame is drawn: the memory
// limit and the kernel's events wait for it, and nothing should wait
// longer.
func TestFirstFrameCalledOnceDrawn(t *testing.T) {
	calls := make(chan string, 4)
	started := make(chan *harness, 1)
	cfg := Config{FirstFrame: func() {
		// On the drawing goroutine, between the draw and its Show: the
		// screen's back buffer holds what is about to be shown.
		h := <-started
		w, hgt := h.screen.Size()
		var b strings.Builder
		for y := range hgt {
			for x := range w {
				r, _, _, _ := h.screen.GetContent(x, y)
				b.WriteRune(r)
			}
		}
		calls <- b.String()
	}}
	h := start(t, 120, 30, cfg, seedTable(), seedTable())
	started <- h
	select {
	case drawn := <-calls:
		if !strings.Contains(drawn, "127.0.0.1:40002") || !strings.Contains(drawn, "TIME_WAIT 2") {
			t.Errorf("FirstFrame called before the first frame was drawn:\n%s", drawn)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("FirstFrame not called")
	}
	h.poll()
	h.waitText("127.0.0.1:40008")
	h.resize(100, 30)
	h.waitFor("a redraw at 100 columns", func(string) bool { w, _ := h.screen.Size(); return w == 100 })
	select {
	case <-calls:
		t.Error("FirstFrame called twice")
	case <-time.After(100 * time.Millisecond):
	}
}

// Frames are prepared (counted, their rows sorted) away from the drawing
// goroutine: a key pressed while one is prepared is answered before it is
// shown, and a frame prepared for the order before a key comes in the
// order after it.
func TestKeysAnsweredWhileAFrameIsPrepared(t *testing.T) {
	next := seedTable()[:6] // two established connections closed
	h := start(t, 120, 30, Config{}, seedTable(), next)
	h.waitText("sort state", "ESTABLISHED 3")
	held, release := make(chan struct{}), make(chan struct{})
	// Set before the poll that hands the pump its frame.
	h.d.onPrepared = func() {
		close(held)
		<-release
	}
	h.poll()
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("the next frame was not prepared")
	}
	h.key('?')
	h.waitText("keys (Esc closes)")
	h.special(tcell.KeyEscape)
	h.key('S')
	s := h.waitText("sort state ↑", "ESTABLISHED 3")
	if r := rowsOf(s); !strings.HasPrefix(r[0], "TIME_WAIT") {
		t.Errorf("the shown frame, reversed: %v", r)
	}
	h.d.onPrepared = nil // the pump waits in onPrepared: no race
	close(release)
	s = h.waitText("ESTABLISHED gone")
	r := rowsOf(s)
	if !strings.HasPrefix(r[0], "TIME_WAIT") || !strings.HasPrefix(r[len(r)-1], "LISTEN") ||
		countState(r, "ESTABLISHED gone") != 2 {
		t.Errorf("the frame prepared for the order before S: %v", r)
	}
}

// The status line breaks between its parts, as many on a line as fit, on
// at most the lines it may take; a part wider than the screen has a line
// of its own.
func TestBreakStatus(t *testing.T) {
	for _, c := range []struct {
		text  string
		w, n  int
		want  string
		lines int
	}{
		{"aaaa │ bbbb │ cccc", 20, 3, "aaaa │ bbbb │ cccc", 1},
		{"aaaa │ bbbb │ cccc", 11, 3, "aaaa │ bbbb\ncccc", 2},
		{"aaaa │ bbbb │ cccc", 6, 3, "aaaa\nbbbb\ncccc", 3},
		{"aaaa │ bbbb │ cccc │ dddd", 6, 3, "aaaa\nbbbb\ncccc │ dddd", 3},
		{"[red]a long error[-] │ bbbb │ cccc", 8, 3, "[red]a long error[-]\nbbbb\ncccc", 3},
	} {
		got, n := breakStatus(c.text, c.w, c.n)
		if got != c.want || n != c.lines {
			t.Errorf("breakStatus(%q, %d, %d) = %q, %d; want %q, %d", c.text, c.w, c.n, got, n, c.want, c.lines)
		}
	}
}

// Kernel events lost (a full ring) are said in the status line, with what
// it means for the times shown; none lost, nothing is said.
func TestLostKernelEventsInTheStatusLine(t *testing.T) {
	var lost atomic.Uint64
	h := start(t, 160, 30, Config{Lost: func() (uint64, error) { return lost.Load(), nil }}, seedTable(), seedTable())
	if s := h.waitText("TIME_WAIT 2"); strings.Contains(s, "lost") {
		t.Errorf("nothing lost, yet the screen says so:\n%s", s)
	}
	lost.Store(3)
	h.clock.Add(time.Second)
	h.poll()
	h.waitText("3 kernel events lost: their changes are dated by the polls")
}

// At 80 columns -p's Process column is past the edge: → brings the
// columns in one at a time, the first staying, and they stay in through
// the polls that follow; ← goes back.
func TestSidewaysScroll(t *testing.T) {
	h := start(t, 80, 24, Config{Processes: true}, seedTable())
	h.waitText("TIME_WAIT 2")
	h.waitGone("4242/server") // cut at the edge
	for range 12 {
		h.special(tcell.KeyRight)
	}
	h.waitText("‹Process", "4242/server")
	for range 3 {
		h.poll()
	}
	s := h.waitText("‹Process", "4242/server")
	if !strings.Contains(s, "State") {
		t.Errorf("the first column scrolled away:\n%s", s)
	}
	for range 20 {
		h.special(tcell.KeyLeft)
	}
	h.waitGone("‹")
	h.waitText("Local", "Peer")
	h.quits()
}
