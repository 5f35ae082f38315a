package ui

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
	"github.com/sockscope/sockscope/pkg/nsfind"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

// nsStates are the states the namespace view counts, in its column order.
var nsStates = [4]sock.State{sock.Listen, sock.TimeWait, sock.CloseWait, sock.Established}

// The namespace view's sparklines, and how long a namespace that went away
// stays listed (marked) before it leaves.
const (
	nsSparkLen  = 6
	nsGoneStays = time.Minute
)

// nsRow is one namespace of the view.
type nsRow struct {
	inode  uint32
	name   nsfind.Name
	counts [4]int   // nsStates, in the last frame
	spark  [4][]int // their history, one value per frame
	added  bool     // it appeared while watching
	goneAt time.Time
}

func (r *nsRow) gone() bool { return !r.goneAt.IsZero() }

// nsModel is the namespace view's state: pure, like model.
type nsModel struct {
	rows    map[uint32]*nsRow
	order   []*nsRow // sorted, as shown
	sortBy  int      // an index into nsStates, or -1: by name
	reverse bool
	applied bool // a frame has been applied: later namespaces are new
}

func newNSModel() *nsModel { return &nsModel{rows: map[uint32]*nsRow{}, sortBy: -1} }

// apply counts a frame's entries per namespace, and takes the counts of
// those the source counted rather than dumped (monitor.Frame.Counted).
// names are the namespaces read now (those with no matching socket too); a
// known one missing from them went away.
func (v *nsModel) apply(entries []track.Entry, counted map[uint32]sock.StateCounts, names []*nsfind.Name, now time.Time) {
	per := make(map[uint32]*[4]int, len(v.rows))
	for ino, sc := range counted {
		c := &[4]int{}
		for j, st := range nsStates {
			c[j] = sc[st]
		}
		per[ino] = c
	}
	for i := range entries {
		e := &entries[i]
		c := per[e.Netns]
		if c == nil {
			c = &[4]int{}
			per[e.Netns] = c
		}
		for j, st := range nsStates {
			if e.State == st {
				c[j]++
			}
		}
	}
	live := make(map[uint32]bool, len(names))
	for _, n := range names {
		if n.Gone {
			continue
		}
		ino := uint32(n.Inode)
		live[ino] = true
		r := v.rows[ino]
		if r == nil || r.gone() { // new, or back under the same inode
			r = &nsRow{inode: ino, added: v.applied}
			v.rows[ino] = r
		}
		r.name = *n
	}
	for ino, r := range v.rows {
		switch {
		case live[ino]:
			r.counts = [4]int{}
			if c := per[ino]; c != nil {
				r.counts = *c
			}
		case !r.gone():
			r.goneAt, r.counts = now, [4]int{}
		case now.Sub(r.goneAt) > nsGoneStays:
			delete(v.rows, ino)
			continue
		}
		for j := range nsStates {
			r.spark[j] = append(r.spark[j], r.counts[j])
			if len(r.spark[j]) > nsSparkLen {
				r.spark[j] = r.spark[j][len(r.spark[j])-nsSparkLen:]
			}
		}
	}
	v.applied = true
	v.sort()
}

// sort orders the rows: by the chosen state's count, most first (or by
// name), the gone ones last, the name breaking ties.
func (v *nsModel) sort() {
	v.order = v.order[:0]
	for _, r := range v.rows {
		v.order = append(v.order, r)
	}
	slices.SortFunc(v.order, func(a, b *nsRow) int {
		if a.gone() != b.gone() {
			if a.gone() {
				return 1
			}
			return -1
		}
		c := 0
		if v.sortBy >= 0 {
			c = cmp.Compare(b.counts[v.sortBy], a.counts[v.sortBy])
		}
		if c == 0 {
			c = strings.Compare(a.name.Label, b.name.Label)
		}
		if c == 0 {
			c = cmp.Compare(a.inode, b.inode)
		}
		if v.reverse {
			c = -c
		}
		return c
	})
}

// sortOn sorts by a state's count (its index in nsStates; -1: the name);
// the same key again reverses the order.
func (v *nsModel) sortOn(i int) {
	if v.sortBy == i {
		v.reverse = !v.reverse
	} else {
		v.sortBy, v.reverse = i, false
	}
	v.sort()
}

func (v *nsModel) sortName() string {
	name := "name"
	if v.sortBy >= 0 {
		name = nsStates[v.sortBy].String()
	}
	if v.reverse {
		name += " ↑"
	}
	return name
}

// index is the row of the namespace with inode ino; -1 when not listed.
func (v *nsModel) index(ino uint32) int {
	for i, r := range v.order {
		if r.inode == ino {
			return i
		}
	}
	return -1
}

// counts says how many namespaces are listed, appeared and went away.
func (v *nsModel) counts() (listed, added, gone int) {
	for _, r := range v.order {
		switch {
		case r.gone():
			gone++
		case r.added:
			added++
		}
	}
	return len(v.order) - gone, added, gone
}

// nsContent is the namespace view's table: a mark (+ appeared, - went
// away), the namespace's name, and a count with a sparkline per state.
type nsContent struct {
	tview.TableContentReadOnly
	v *nsModel
	// width is the table's width on screen, for the names' room.
	width func() int
}

// nsNameMin is the least room a name gets; a wider screen gives it what
// the counts leave.
const nsNameMin = 30

// nameRoom is the room for a namespace's name: the table's width less the
// mark and the counts (a count of up to six digits and its sparkline each,
// and the gaps between columns).
func (c *nsContent) nameRoom() int {
	if c.width == nil {
		return nsNameMin
	}
	return max(nsNameMin, c.width()-2-len(nsStates)*(1+6+1+nsSparkLen))
}

// shorten fits a name in room runes with an ellipsis: a path keeps its
// end, where names of mounts under one directory differ (".../ns0",
// ".../ns1"), any other name its start.
func shorten(name string, room int) string {
	r := []rune(name)
	if len(r) <= room || room < 2 {
		return name
	}
	if strings.HasPrefix(name, "/") {
		return "…" + string(r[len(r)-room+1:])
	}
	return string(r[:room-1]) + "…"
}

func (c *nsContent) GetRowCount() int    { return len(c.v.order) + 1 }
func (c *nsContent) GetColumnCount() int { return 2 + len(nsStates) }

func (c *nsContent) GetCell(r, col int) *tview.TableCell {
	if r == 0 {
		title := ""
		switch {
		case col == 1:
			title = "Netns"
		case col >= 2:
			title = nsStates[col-2].String()
		}
		align := tview.AlignLeft
		if col >= 2 {
			align = tview.AlignRight
		}
		return tview.NewTableCell(title).SetSelectable(false).SetAttributes(tcell.AttrBold).SetAlign(align)
	}
	if r-1 >= len(c.v.order) {
		return nil
	}
	ns := c.v.order[r-1]
	style := tcell.StyleDefault
	if ns.gone() {
		style = style.Foreground(tcell.ColorGray).Dim(true)
	}
	switch col {
	case 0:
		switch {
		case ns.gone():
			return tview.NewTableCell("-").SetStyle(style.Foreground(tcell.ColorRed))
		case ns.added:
			return tview.NewTableCell("+").SetStyle(style.Foreground(tcell.ColorGreen).Bold(true))
		}
		return tview.NewTableCell(" ")
	case 1:
		label := ns.name.Label
		if ns.gone() {
			label += " (gone)"
		}
		return tview.NewTableCell(tview.Escape(shorten(label, c.nameRoom()))).SetStyle(style)
	}
	i := col - 2
	text := fmt.Sprintf("%d %-*s", ns.counts[i], nsSparkLen, sparkline(ns.spark[i], nsSparkLen))
	if !ns.gone() && ns.counts[i] > 0 {
		style = style.Foreground(stateColor(nsStates[i]))
	}
	return tview.NewTableCell(text).SetStyle(style).SetAlign(tview.AlignRight)
}
