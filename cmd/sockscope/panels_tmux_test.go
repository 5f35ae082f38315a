package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sockscope/sockscope/pkg/nstest"
)

// borderSets are the corners and lines of a panel's border: light, or
// double when the panel has the focus.
var borderSets = []struct{ tl, tr, bl, br, h, v rune }{
	{'┌', '┐', '└', '┘', '─', '│'},
	{'╔', '╗', '╚', '╝', '═', '║'},
}

// panelRect is where a panel's border lies in a pane, in lines and columns.
type panelRect struct{ top, bottom, left, right int }

// findPanelBorder finds the panel titled title in a captured pane: the
// title's line with a top corner on each side and border between, then a
// line below with the bottom corners in the same columns, the sides in
// those columns on every line between.
func findPanelBorder(lines []string, title string) (panelRect, bool) {
	onlyOf := func(rs []rune, r rune) bool {
		for _, x := range rs {
			if x != r {
				return false
			}
		}
		return true
	}
	for y, l := range lines {
		i := strings.Index(l, title)
		if i < 0 {
			continue
		}
		top := []rune(l)
		col, n := len([]rune(l[:i])), len([]rune(title))
		for _, f := range borderSets {
			left, right := -1, -1
			for x := col - 1; x >= 0 && left < 0; x-- {
				if top[x] == f.tl {
					left = x
				}
			}
			for x := col + n; x < len(top) && right < 0; x++ {
				if top[x] == f.tr {
					right = x
				}
			}
			if left < 0 || right < 0 || !onlyOf(top[left+1:col], f.h) || !onlyOf(top[col+n:right], f.h) {
				continue
			}
			for yy := y + 1; yy < len(lines); yy++ {
				r := []rune(lines[yy])
				if len(r) <= right {
					break
				}
				if r[left] == f.bl && r[right] == f.br && onlyOf(r[left+1:right], f.h) {
					return panelRect{y, yy, left, right}, true
				}
				if r[left] != f.v || r[right] != f.v {
					break
				}
			}
		}
	}
	return panelRect{}, false
}

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
		var r panelRect
		pane := tm.waitFor(fmt.Sprintf("the panel %q whole after %s", p.title, p.key), func(s string) bool {
			lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
			var ok bool
			if r, ok = findPanelBorder(lines, p.title); !ok {
				return false
			}
			var in strings.Builder
			for y := r.top + 1; y < r.bottom; y++ {
				in.WriteString(string([]rune(lines[y])[r.left+1:r.right]) + "\n")
			}
			for _, want := range p.inside {
				if !strings.Contains(in.String(), want) {
					return false
				}
			}
			return true
		})
		lines := strings.Split(strings.TrimSuffix(pane, "\n"), "\n")
		if len(lines) != h || r.top < 0 || r.bottom >= h || r.left < 0 || r.right >= w {
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
