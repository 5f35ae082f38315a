package main

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/nstest"
	"github.com/sockscope/sockscope/ui/screentest"
	"golang.org/x/sys/unix"
)

// Each panel of the real binary at the smallest supported terminal: its
// whole border and title on the screen, the header and status line still
// visible, Esc closing it; then q brings the shell back with status 0.
func TestPanelsInTmux(t *testing.T) {
	const w, h = 80, 24
	ns := nstest.New(t)
	nstest.RunSeed(t, ns, nstest.SeedOptions{Tutorial: true})
	tm := newTmux(t, w, h)
	tm.waitFor("the shell prompt", func(s string) bool { return strings.Contains(s, "$") })
	tm.send(fmt.Sprintf("ip netns exec %s %s :9000", ns.Name, binary), "Enter")
	tm.waitFor("LISTEN 1 and TIME_WAIT 2", func(s string) bool {
		return strings.Contains(s, "LISTEN 1") && strings.Contains(s, "TIME_WAIT 2") && len(tableRows(s)) > 0
	})

	for _, p := range []struct {
		key, title string
		inside     []string
	}{
		{"?", " keys (Esc closes) ", []string{"edit the filter (the language of the command line)",
			"quit (Esc closes a pane first, then quits)"}},
		{"w", " TIME_WAIT lifetimes (w or Esc closes) ", []string{"TIME_WAIT lifetimes, measured over",
			"from entering to leaving"}},
		{"Enter", " socket (Esc closes) ", []string{"state      LISTEN", "cookie"}},
	} {
		tm.send(p.key)
		var r screentest.Box
		pane := tm.waitFor(fmt.Sprintf("the panel %q whole after %s", p.title, p.key), func(s string) bool {
			lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
			var ok bool
			if r, ok = screentest.FindPanel(lines, p.title); !ok {
				return false
			}
			var in strings.Builder
			for _, l := range r.Inside(lines) {
				in.WriteString(l + "\n")
			}
			for _, want := range p.inside {
				if !strings.Contains(in.String(), want) {
					return false
				}
			}
			return true
		})
		lines := strings.Split(strings.TrimSuffix(pane, "\n"), "\n")
		if len(lines) != h || r.Top < 0 || r.Bottom >= h || r.Left < 0 || r.Right >= w {
			t.Errorf("panel %q at %+v on a %dx%d pane of %d lines:\n%s", p.title, r, w, h, len(lines), pane)
		}
		// The status line takes the last line, or the last two where
		// the terminal is too narrow for it.
		status := h - 1
		if !strings.HasPrefix(lines[status], "filter: :9000 │") {
			status--
		}
		if !strings.Contains(lines[0], "LISTEN 1") || !strings.HasPrefix(lines[status], "filter: :9000 │") ||
			!strings.HasSuffix(strings.TrimSpace(lines[h-1]), "? help") || r.Bottom >= status {
			t.Errorf("panel %q covers the header or the status line:\n%s", p.title, pane)
		}
		tm.send("Escape")
		tm.waitFor(fmt.Sprintf("the panel %q closed by Esc", p.title), func(s string) bool {
			return !strings.Contains(s, p.title) && strings.Contains(s, "TIME_WAIT 2") && len(tableRows(s)) > 0
		})
	}

	tm.send("q")
	tm.waitFor("the shell back", func(s string) bool {
		return !strings.Contains(s, "TIME_WAIT 2") && strings.HasSuffix(strings.TrimRight(s, "\n "), "$")
	})
	tm.send("echo exit=$?", "Enter")
	tm.waitFor("exit=0", func(s string) bool { return strings.Contains(s, "\nexit=0") })
}

// As root, the dashboard reads the kernel's state changes: a listener
// opened while it runs shows its age since its birth, as the kernel dated
// it, in its detail panel. The kernel's events load in the background
// while the first polls run: a listener opened before they are loaded is
// aged from the poll that saw it, so the test opens another, up to four
// times.
func TestIntegrationDashboardKernelAges(t *testing.T) {
	ns := nstest.New(t)
	tm := newTmux(t, 100, 30)
	tm.waitFor("the shell prompt", func(s string) bool { return strings.Contains(s, "$") })
	tm.send(fmt.Sprintf("ip netns exec %s %s state listening", ns.Name, binary), "Enter")
	tm.waitFor("the dashboard", func(s string) bool { return strings.Contains(s, "LISTEN 0") })
	const title = " socket (Esc closes) "
	for try := range 4 {
		fd := ns.Listen(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(9100+try)))
		tm.waitFor("the listener", func(s string) bool { return strings.Contains(s, "LISTEN 1") && len(tableRows(s)) == 1 })
		tm.send("Enter")
		pane := tm.waitFor("its detail", func(s string) bool { return strings.Contains(s, title) && strings.Contains(s, "age ") })
		tm.send("Escape")
		if strings.Contains(pane, "as the kernel dated it") {
			tm.send("q")
			return
		}
		if !strings.Contains(pane, "since first seen") {
			t.Fatalf("the age of a listener born while the dashboard runs:\n%s", pane)
		}
		unix.Close(fd)
		tm.waitFor("the listener gone", func(s string) bool { return strings.Contains(s, "LISTEN 0") && len(tableRows(s)) == 0 })
	}
	t.Fatal("no listener born while the dashboard ran was dated by the kernel")
}

// As root, a change of state between two polls is dated by the kernel in
// the dashboard too, for a socket older than the dashboard: its detail
// panel's history shows the change at the moment the test made it (the
// peer's close: ESTABLISHED -> CLOSE_WAIT), without the poll's ~, and the
// socket's age still a lower bound.
func TestIntegrationDashboardKernelTransitions(t *testing.T) {
	ns := nstest.New(t)
	c := nstest.Connect(t, ns, netip.MustParseAddrPort("127.0.0.1:9200"))
	tm := newTmux(t, 100, 30)
	tm.waitFor("the shell prompt", func(s string) bool { return strings.Contains(s, "$") })
	// 5 s polls: a poll's date would lie up to seconds off.
	tm.send(fmt.Sprintf("ip netns exec %s %s -i 5s sport = :9200 exclude listen", ns.Name, binary), "Enter")
	tm.waitFor("the connection", func(s string) bool {
		rows := tableRows(s)
		return len(rows) == 1 && strings.HasPrefix(rows[0], "ESTABLISHED")
	})
	waitForBPF(t, tm.childPID())
	// With the kernel's events running, their changes to CLOSE date the
	// ends: the destroy announcements' subscription is left.
	for deadline := time.Now().Add(10 * time.Second); ns.Subscriptions(t, tm.childPID()) != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the dashboard still holds its destroy-event subscription 10 s after its BPF program attached")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Close(&c.Client)
	closed := time.Now()
	tm.send("Enter")
	pane := tm.waitFor("the change in the detail's history", func(s string) bool {
		return strings.Contains(s, "ESTABLISHED -> CLOSE_WAIT")
	})
	tm.send("q")
	match := historyLine.FindStringSubmatch(pane)
	if match == nil {
		t.Fatalf("no history line of the change:\n%s", pane)
	}
	if match[1] == "~" {
		t.Fatalf("the change is dated by the poll (~), not the kernel:\n%s", pane)
	}
	shown, err := time.ParseInLocation("15:04:05.000", match[2], time.Local)
	if err != nil {
		t.Fatalf("the history's time %q: %v", match[2], err)
	}
	y, m, d := closed.Date()
	shown = shown.AddDate(y, int(m)-1, d-1)
	// The panel shows the time of day: near midnight, the day is the
	// one that puts it nearest the close.
	switch off := shown.Sub(closed); {
	case off > 12*time.Hour:
		shown = shown.AddDate(0, 0, -1)
	case off < -12*time.Hour:
		shown = shown.AddDate(0, 0, 1)
	}
	if off := shown.Sub(closed); off < -50*time.Millisecond || off > 50*time.Millisecond {
		t.Errorf("the change dated %v from the peer's close; want within 50ms, the kernel's time:\n%s", off, pane)
	}
	// Its age is a lower bound: from the first look, or from tcp_info's
	// last exchange when that is older (the connection was made before
	// the dashboard started).
	if !strings.Contains(pane, "at least") || !strings.Contains(pane, "there when first seen") && !strings.Contains(pane, "its last exchange, by tcp_info") {
		t.Errorf("a socket older than the dashboard is not shown as such:\n%s", pane)
	}
}

// historyLine is the change in a detail panel's history: its mark (~ for a
// poll's time) and its time.
var historyLine = regexp.MustCompile(`([ ~])(\d\d:\d\d:\d\d\.\d{3})  ESTABLISHED -> CLOSE_WAIT`)
