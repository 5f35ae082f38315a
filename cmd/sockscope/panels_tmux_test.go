package main

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

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
		if !strings.Contains(lines[0], "LISTEN 1") || !strings.HasPrefix(lines[h-1], "filter: :9000 │") {
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
