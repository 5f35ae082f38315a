// Package screentest reads a terminal screen as tests see it, a slice of
// lines from tcell's SimulationScreen or from tmux capture-pane, and finds
// the dashboard's panels on it, so that the unit tests and the tests of
// the real binary check panels the same way.
package screentest

import "strings"

// border is a set of box-drawing characters: tview draws the focused
// panel's border with double lines, others with light ones.
type border struct{ tl, tr, bl, br, h, v rune }

var borders = []border{
	{'┌', '┐', '└', '┘', '─', '│'},
	{'╔', '╗', '╚', '╝', '═', '║'},
}

// Box is where a panel's border lies on the screen, in lines and columns
// (runes), inclusive.
type Box struct{ Top, Bottom, Left, Right int }

// FindPanel finds the panel titled title: the title's line, with a top
// corner on either side of the title and border between, and below it the
// line with the bottom corners in the same columns, the sides in those
// columns on every line between. ok is false unless the whole border is
// on the screen.
func FindPanel(lines []string, title string) (b Box, ok bool) {
	for y, l := range lines {
		i := strings.Index(l, title)
		if i < 0 {
			continue
		}
		top := []rune(l)
		col, n := len([]rune(l[:i])), len([]rune(title))
		for _, f := range borders {
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
			if left < 0 || right < 0 || !only(top[left+1:col], f.h) || !only(top[col+n:right], f.h) {
				continue
			}
			for yy := y + 1; yy < len(lines); yy++ {
				r := []rune(lines[yy])
				if len(r) <= right {
					break
				}
				if r[left] == f.bl && r[right] == f.br && only(r[left+1:right], f.h) {
					return Box{y, yy, left, right}, true
				}
				if r[left] != f.v || r[right] != f.v {
					break
				}
			}
		}
	}
	return Box{}, false
}

// only reports whether rs is made of r alone.
func only(rs []rune, r rune) bool {
	for _, x := range rs {
		if x != r {
			return false
		}
	}
	return true
}

// Inside returns the panel's lines within its border.
func (b Box) Inside(lines []string) []string {
	var out []string
	for y := b.Top + 1; y < b.Bottom; y++ {
		out = append(out, string([]rune(lines[y])[b.Left+1:b.Right]))
	}
	return out
}
