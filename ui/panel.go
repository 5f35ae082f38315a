package ui

import (
	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
)

// minPanelRows is the fewest rows a panel keeps while leaving the header
// and status lines uncovered; on a shorter screen it covers them.
const minPanelRows = 8

// panel shows a bordered view in the middle of the screen: at most w by h,
// and never larger than the screen, so its border and title always show. A
// smaller terminal gets a smaller panel whose text scrolls (the view is a
// scrollable TextView). The size is worked out at every draw, so a resized
// terminal is followed. A Flex item of fixed size would not do: it does not
// shrink below its size, and the rest falls off the screen.
type panel struct {
	*tview.Box
	item tview.Primitive
	w, h int
	// keep returns the rows at the top and bottom of the screen to leave
	// uncovered (the header and status lines); nil for none.
	keep func() (top, bottom int)
}

func newPanel(item tview.Primitive, w, h int, keep func() (top, bottom int)) *panel {
	return &panel{Box: tview.NewBox(), item: item, w: w, h: h, keep: keep}
}

// place returns where a panel of at most w by h goes in an area of the
// given size, leaving top and bottom rows uncovered when that leaves it
// minPanelRows, and otherwise a row (and always a column) free on each side
// when the screen has room for that.
func place(x, y, width, height, w, h, top, bottom int) (px, py, pw, ph int) {
	if top < 0 || bottom < 0 || height-top-bottom < minPanelRows {
		top, bottom = 0, 0
		if height-2 >= 3 {
			top, bottom = 1, 1
		}
	}
	rows := height - top - bottom
	cols := width
	if width-2 >= 4 {
		cols = width - 2
	}
	pw, ph = max(min(w, cols), 0), max(min(h, rows), 0)
	return x + (width-pw)/2, y + top + (rows-ph)/2, pw, ph
}

// Draw places the item on the screen as it is now and draws it. The
// panel's own box is not drawn: what lies around the item stays visible.
func (p *panel) Draw(screen tcell.Screen) {
	x, y, width, height := p.GetRect()
	top, bottom := 0, 0
	if p.keep != nil {
		top, bottom = p.keep()
	}
	p.item.SetRect(place(x, y, width, height, p.w, p.h, top, bottom))
	p.item.Draw(screen)
}

// The panel hands focus and keys to its item, so the arrows, PgUp and PgDn
// scroll it as soon as it is shown.

func (p *panel) Focus(delegate func(tview.Primitive)) { delegate(p.item) }

func (p *panel) HasFocus() bool { return p.item.HasFocus() }

func (p *panel) Blur() { p.item.Blur() }

func (p *panel) InputHandler() func(*tcell.EventKey, func(tview.Primitive)) {
	return p.item.InputHandler()
}

func (p *panel) MouseHandler() func(tview.MouseAction, *tcell.EventMouse, func(tview.Primitive)) (bool, tview.Primitive) {
	return p.item.MouseHandler()
}

func (p *panel) PasteHandler() func(string, func(tview.Primitive)) {
	return p.item.PasteHandler()
}
