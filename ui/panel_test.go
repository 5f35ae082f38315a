package ui

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/twstat"
	"github.com/sockscope/sockscope/ui/screentest"
)

// The terminal sizes every panel must fit, from the smallest supported up.
var panelSizes = [][2]int{{80, 24}, {100, 30}, {130, 32}, {200, 60}}

// waitPanel waits until the panel titled title is on the screen with its
// whole border, and want (if any) is inside it.
func (h *harness) waitPanel(title string, want ...string) ([]string, screentest.Box) {
	h.t.Helper()
	var b screentest.Box
	var lines []string
	h.waitFor(fmt.Sprintf("the panel %q with its border, showing %q", title, want), func(string) bool {
		lines, _ = h.lines()
		var ok bool
		if b, ok = screentest.FindPanel(lines, title); !ok {
			return false
		}
		in := strings.Join(b.Inside(lines), "\n")
		for _, w := range want {
			if !strings.Contains(in, w) {
				return false
			}
		}
		return true
	})
	return lines, b
}

// checkPanelPlace checks that the panel leaves the header and status
// lines visible, which every supported size has room for.
func checkPanelPlace(t *testing.T, lines []string, b screentest.Box, w, hgt int) {
	t.Helper()
	if len(lines) != hgt {
		t.Fatalf("%d lines on a %d-line screen", len(lines), hgt)
	}
	if b.Left < 0 || b.Right >= w || b.Top < 0 || b.Bottom >= hgt {
		t.Errorf("panel %+v outside a %dx%d screen", b, w, hgt)
	}
	if !strings.Contains(lines[0], "LISTEN 1") {
		t.Errorf("the panel covers the header:\n%s", strings.Join(lines, "\n"))
	}
	if !strings.HasPrefix(lines[hgt-1], "filter: all │") {
		t.Errorf("the panel covers the status line:\n%s", strings.Join(lines, "\n"))
	}
}

// stillRunning fails the test if the dashboard has ended.
func (h *harness) stillRunning() {
	h.t.Helper()
	select {
	case err := <-h.done:
		h.done <- err // for the cleanup
		h.t.Fatalf("Esc on a panel quit the dashboard: %v", err)
	default:
	}
}

// submitFilter opens the filter editor, puts text in it and presses
// Enter. A long text is set rather than typed: a key at a time, each one
// redrawn, takes seconds under the race detector.
func (h *harness) submitFilter(text string) {
	h.t.Helper()
	h.key('/')
	h.waitFor("the filter editor", func(string) bool {
		editing := false
		h.d.app.QueueUpdate(func() { editing = h.d.editing })
		return editing
	})
	h.d.app.QueueUpdateDraw(func() { h.d.input.SetText(text) })
	h.special(tcell.KeyEnter)
}

var colourTag = regexp.MustCompile(`\[[a-z]*\]|\[-\]`)

const (
	helpTitle     = " keys (Esc closes) "
	detailTitle   = " socket (Esc closes) "
	timeWaitTitle = " TIME_WAIT lifetimes (w or Esc closes) "
)

func kernelTimeWait() (twstat.Context, error) {
	return twstat.Context{FinTimeout: 60, Reuse: 2, MaxBuckets: 131072, Now: 2, TimeWaitLen: 60}, nil
}

// Each panel, at each size, is on the screen whole: title, border and
// corners, with the header and status lines around it. The original
// defect: at 130x32 the w panel's title, summary and bottom border were
// off the screen.
func TestPanelsFitTheScreen(t *testing.T) {
	for _, sz := range panelSizes {
		w, hgt := sz[0], sz[1]
		t.Run(fmt.Sprintf("help/%dx%d", w, hgt), func(t *testing.T) {
			h := start(t, w, hgt, Config{}, seedTable())
			h.waitText("TIME_WAIT 2")
			h.key('?')
			lines, b := h.waitPanel(helpTitle, "edit the filter")
			checkPanelPlace(t, lines, b, w, hgt)
			// Every line of the help is shown whole, none cut or wrapped,
			// down to 80 columns.
			in := strings.Join(b.Inside(lines), "\n")
			for _, l := range strings.Split(strings.Trim(helpText, "\n"), "\n") {
				if l = strings.TrimSpace(colourTag.ReplaceAllString(l, "")); !strings.Contains(in, l) {
					t.Errorf("help line %q not shown whole:\n%s", l, strings.Join(lines, "\n"))
				}
			}
			h.special(tcell.KeyEscape)
			h.waitGone(helpTitle)
			h.stillRunning()
		})
		t.Run(fmt.Sprintf("detail/%dx%d", w, hgt), func(t *testing.T) {
			h := start(t, w, hgt, Config{}, seedTable())
			h.waitText("TIME_WAIT 2")
			h.special(tcell.KeyDown) // the first ESTABLISHED connection
			h.special(tcell.KeyEnter)
			h.poll() // its tcp_info
			lines, b := h.waitPanel(detailTitle, "state      ESTABLISHED", "127.0.0.1:40006", "rtt")
			checkPanelPlace(t, lines, b, w, hgt)
			h.special(tcell.KeyEscape)
			h.waitGone(detailTitle)
			h.stillRunning()
		})
		t.Run(fmt.Sprintf("timewait/%dx%d", w, hgt), func(t *testing.T) {
			h := start(t, w, hgt, Config{TimeWait: kernelTimeWait}, seedTable())
			h.waitText("TIME_WAIT 2")
			h.key('w')
			lines, b := h.waitPanel(timeWaitTitle, "0 entries from entering to leaving", "tcp_max_tw_buckets")
			checkPanelPlace(t, lines, b, w, hgt)
			// The summary is the panel's first line.
			if in := b.Inside(lines); !strings.HasPrefix(in[0], "TIME_WAIT lifetimes, measured over") {
				t.Errorf("the summary is not at the top of the panel:\n%s", strings.Join(lines, "\n"))
			}
			h.special(tcell.KeyEscape)
			h.waitGone(timeWaitTitle)
			h.stillRunning()
		})
		t.Run(fmt.Sprintf("filter/%dx%d", w, hgt), func(t *testing.T) {
			h := start(t, w, hgt, Config{}, seedTable())
			h.waitText("TIME_WAIT 2")
			// An error longer than the widest screen wraps onto as many
			// lines as it needs, under the editor.
			bad := "tim-wait" + strings.Repeat("x", 250)
			want := fmt.Sprintf(`unknown TCP state: %q at column 7`, bad)
			h.submitFilter("state " + bad)
			h.waitFor("the whole error under the editor", func(string) bool {
				lines, _ := h.lines()
				for y, l := range lines {
					if strings.HasPrefix(l, "filter: ") {
						rest := strings.TrimRight(strings.Join(lines[y+1:], ""), " ")
						return rest == want && strings.Contains(lines[0], "LISTEN 1")
					}
				}
				return false
			})
			h.special(tcell.KeyEscape)
			h.waitText("filter: all │")
			h.stillRunning()
		})
	}
}

// A panel open when the terminal shrinks shrinks with it.
func TestPanelFollowsResize(t *testing.T) {
	h := start(t, 200, 60, Config{TimeWait: kernelTimeWait}, seedTable())
	h.waitText("TIME_WAIT 2")
	h.key('w')
	_, big := h.waitPanel(timeWaitTitle, "entries from entering to leaving")
	h.resize(80, 24)
	lines, small := h.waitPanel(timeWaitTitle, "entries from entering to leaving")
	checkPanelPlace(t, lines, small, 80, 24)
	if small.Bottom-small.Top >= big.Bottom-big.Top || small.Right-small.Left >= big.Right-big.Left {
		t.Errorf("panel %+v at 200x60 and %+v at 80x24", big, small)
	}
	h.resize(130, 32)
	lines, b := h.waitPanel(timeWaitTitle, "entries from entering to leaving")
	checkPanelPlace(t, lines, b, 130, 32)
}

// The detail pane at 80x24 holds more lines than it shows: the arrows and
// page keys scroll it, and reopening starts at the top.
func TestDetailScrolls(t *testing.T) {
	h := start(t, 80, 24, Config{}, seedTable())
	h.waitText("TIME_WAIT 2")
	h.special(tcell.KeyDown)
	h.special(tcell.KeyEnter)
	h.poll()
	const first, last = "state      ESTABLISHED", "first seen, there before in ESTABLISHED"
	lines, b := h.waitPanel(detailTitle, first, "rtt", "history")
	if strings.Contains(strings.Join(lines, "\n"), last) {
		t.Fatalf("the detail fits an 80x24 screen: nothing to scroll:\n%s", strings.Join(lines, "\n"))
	}
	h.special(tcell.KeyDown)
	h.waitFor("the pane one line down", func(string) bool {
		lines, _ := h.lines()
		b, ok := screentest.FindPanel(lines, detailTitle)
		return ok && strings.Contains(b.Inside(lines)[0], "local      127.0.0.1:9000")
	})
	h.special(tcell.KeyPgDn)
	lines, after := h.waitPanel(detailTitle, last)
	if after != b || strings.Contains(strings.Join(lines, "\n"), first) {
		t.Errorf("after PgDn: panel %+v (was %+v):\n%s", after, b, strings.Join(lines, "\n"))
	}
	h.special(tcell.KeyPgUp)
	h.waitPanel(detailTitle, first)
	// Reopened, the pane starts at the top again.
	h.special(tcell.KeyEnd)
	h.waitPanel(detailTitle, last)
	h.special(tcell.KeyEscape)
	h.waitGone(detailTitle)
	h.special(tcell.KeyEnter)
	h.waitPanel(detailTitle, first)
	h.stillRunning()
	h.quits()
}

// The TIME_WAIT panel with many ports at 80x24: PgDn and PgUp scroll it,
// and it keeps its place across refreshes.
func TestTimeWaitPanelScrolls(t *testing.T) {
	table := seedTable()
	for i := range 12 {
		s := sk(uint64(100+i), sock.TimeWait, fmt.Sprintf("127.0.0.1:%d", 9001+i), "127.0.0.1:50000", 0)
		table = append(table, s)
	}
	h := start(t, 80, 24, Config{TimeWait: kernelTimeWait}, table, table, seedTable())
	h.waitText("TIME_WAIT 14")
	h.key('w')
	h.clock.Add(51 * time.Second)
	h.poll()
	const first, last = "12 entries from entering to leaving", "TWKilled +0"
	lines, b := h.waitPanel(timeWaitTitle, first, "... and 2 more ports")
	if strings.Contains(strings.Join(lines, "\n"), last) {
		t.Fatalf("the panel fits an 80x24 screen: nothing to scroll:\n%s", strings.Join(lines, "\n"))
	}
	h.special(tcell.KeyPgDn)
	h.special(tcell.KeyPgDn)
	lines, after := h.waitPanel(timeWaitTitle, last)
	if after != b || strings.Contains(strings.Join(lines, "\n"), first) {
		t.Errorf("after PgDn: panel %+v (was %+v):\n%s", after, b, strings.Join(lines, "\n"))
	}
	// A refresh keeps the place: once the gone rows have left the status
	// line, the frame that rewrote the panel has been applied.
	h.clock.Add(5 * time.Second)
	h.poll()
	h.waitText("shown 8 / matched 8")
	if lines, _ := h.waitPanel(timeWaitTitle, last); strings.Contains(strings.Join(lines, "\n"), first) {
		t.Errorf("a refresh scrolled the panel back to the top:\n%s", strings.Join(lines, "\n"))
	}
	h.special(tcell.KeyPgUp)
	h.special(tcell.KeyPgUp)
	h.waitPanel(timeWaitTitle, first)
	h.special(tcell.KeyEscape)
	h.waitGone(timeWaitTitle)
	h.stillRunning()
	h.quits()
}

// The panel opened last is in front and has the keys; Esc closes panels
// from the front, and the filter editor gives the keys back to the panel
// it was opened over. With the editor's error at the bottom, the panel
// still fits between it and the header.
func TestPanelsStackAndKeepKeys(t *testing.T) {
	h := start(t, 80, 24, Config{TimeWait: kernelTimeWait}, seedTable())
	h.waitText("TIME_WAIT 2")
	h.key('w')
	h.waitPanel(timeWaitTitle, "entries from entering to leaving")
	h.key('?')
	h.waitPanel(helpTitle, "edit the filter")
	h.submitFilter("state " + "tim-wait" + strings.Repeat("x", 200))
	h.waitText(`unknown TCP state: "tim-waitxxx`)
	lines, b := h.waitPanel(helpTitle, "edit the filter")
	var editor int
	for y, l := range lines {
		if strings.HasPrefix(l, "filter: ") {
			editor = y
		}
	}
	if editor == 0 || b.Bottom >= editor || b.Top < 3 {
		t.Errorf("the help panel %+v overlaps the editor on line %d or the header:\n%s", b, editor, strings.Join(lines, "\n"))
	}
	h.special(tcell.KeyEscape) // the editor
	h.waitText("filter: all │")
	h.special(tcell.KeyEscape) // the help
	h.waitGone(helpTitle)
	h.waitPanel(timeWaitTitle, "entries from entering to leaving")
	h.special(tcell.KeyEscape) // the TIME_WAIT panel
	h.waitGone(timeWaitTitle)
	h.stillRunning()
	h.quits()
}
