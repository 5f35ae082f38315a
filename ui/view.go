package ui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
	"github.com/sockscope/sockscope/pkg/render"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
	"github.com/sockscope/sockscope/pkg/twstat"
)

// stateColor is the colour of a state's rows and counts; the three states
// people come to look at have their own, as in the table output.
func stateColor(s sock.State) tcell.Color {
	switch s {
	case sock.Listen:
		return tcell.ColorGreen
	case sock.TimeWait:
		return tcell.ColorYellow
	case sock.CloseWait:
		return tcell.ColorRed
	case sock.SynSent, sock.SynRecv:
		return tcell.ColorAqua
	case sock.Established:
		return tcell.ColorWhite
	}
	return tcell.ColorFuchsia
}

// content is the table's virtual data: cells are made only for the rows
// tview draws.
type content struct {
	tview.TableContentReadOnly
	d *dashboard
	// cells are the cells made since the last draw began, by row and
	// column, and spare the ones before them, for reuse: a draw asks for
	// each cell three times (widths, text, backgrounds), and a cell made
	// at each ask was a fifth of the dashboard's garbage at 110k sockets
	// (a heap profile).
	cells map[[2]int]*tview.TableCell
	spare []*tview.TableCell
}

// newDraw starts a draw: the cells made so far show an older frame.
func (c *content) newDraw() {
	for k, cell := range c.cells {
		c.spare = append(c.spare, cell)
		delete(c.cells, k)
	}
}

// newCell is a cell of text for the draw under key: a spare one, made
// again, or a new one.
func (c *content) newCell(key [2]int, text string) *tview.TableCell {
	var cell *tview.TableCell
	if n := len(c.spare); n > 0 {
		cell, c.spare = c.spare[n-1], c.spare[:n-1]
		*cell = *tview.NewTableCell(text)
	} else {
		cell = tview.NewTableCell(text)
	}
	if c.cells == nil {
		c.cells = map[[2]int]*tview.TableCell{}
	}
	c.cells[key] = cell
	return cell
}

func (c *content) GetRowCount() int { return len(c.d.m.rows) + 1 }

func (c *content) GetColumnCount() int { return len(c.d.cols) - min(c.d.shift, c.d.maxShift()) }

func (c *content) GetCell(r, col int) *tview.TableCell {
	shown := col
	shift := min(c.d.shift, c.d.maxShift())
	if col > 0 {
		col += shift // scrolled sideways past the first column
	}
	if col >= len(c.d.cols) {
		return nil
	}
	key := [2]int{r, col}
	if cell, ok := c.cells[key]; ok {
		return cell
	}
	column := c.d.cols[col]
	if r == 0 {
		title := column.Title
		if shown == 1 && shift > 0 {
			title = "‹" + title // columns left out on the left
		}
		return c.newCell(key, title).SetSelectable(false).
			SetAttributes(tcell.AttrBold).SetAlign(align(column))
	}
	if r-1 >= len(c.d.m.rows) {
		return nil
	}
	rv := c.d.m.at(r - 1)
	row := &rv
	now := c.d.now()
	style := tcell.StyleDefault.Foreground(stateColor(row.State))
	fresh := false
	switch {
	case row.gone:
		style = tcell.StyleDefault.Foreground(tcell.ColorGray).Dim(true)
	case c.d.m.isNew(row, now):
		style, fresh = style.Bold(true), true
	}
	cell := c.newCell(key, c.d.cellText(row, column, now)).SetStyle(style).SetAlign(align(column)).SetMaxWidth(column.Max)
	if fresh {
		// Table cells keep the table's background unless told otherwise.
		cell.SetBackgroundColor(tcell.ColorDarkSlateGray)
	}
	return cell
}

// maxShift is the farthest the table scrolls sideways: to its last column
// beside the first.
func (d *dashboard) maxShift() int { return max(len(d.cols)-2, 0) }

func align(c *render.Column) int {
	if c.Right {
		return tview.AlignRight
	}
	return tview.AlignLeft
}

// columns returns the columns shown: the chosen ones (Config.Columns, or
// the dashboard's defaults), with the process column while p shows it.
func (d *dashboard) columns() []*render.Column {
	base := d.cfg.Columns
	if base == nil {
		base = render.MustColumns(render.DashboardColumns)
	}
	var cols []*render.Column
	hasProc := false
	for _, c := range base {
		if c.Name == "process" {
			hasProc = true
			if !d.procs {
				continue
			}
		}
		cols = append(cols, c)
	}
	if d.procs && !hasProc {
		cols = append(cols, render.ProcessColumn)
	}
	if d.cfg.Names != nil && d.m.netns == 0 {
		// Many namespaces: which one a socket lives in comes first
		// (unless one namespace is opened: its name is on the status line).
		cols = render.WithNames(cols, d.cfg.Names, d.cfg.Columns == nil)
	}
	return cols
}

// now is the clock ages are shown at: frozen while paused.
func (d *dashboard) now() time.Time {
	if d.m.paused {
		return d.m.pausedAt
	}
	return d.cfg.Now()
}

// live returns an entry's age and time left as of now: ages tick between
// polls.
func (d *dashboard) live(row *row, now time.Time) (age, left time.Duration) {
	if d.m.shown == nil || row.gone {
		return row.Age, row.Left()
	}
	dt := max(now.Sub(d.m.shown.Time), 0)
	age = row.Age + dt
	if row.AgeSource == track.AgeTimer {
		left = max(row.Left()-dt, 0)
		return render.SplitTimeWait(age, left)
	}
	return age, left
}

// cellText is a row's cell of column c, with its times as of now: ages,
// the time left and the timer tick between polls.
func (d *dashboard) cellText(row *row, c *render.Column, now time.Time) string {
	e := &row.Entry
	if c.Ticks {
		live := row.Entry
		if d.m.shown != nil && !row.gone {
			dt := max(now.Sub(d.m.shown.Time), 0)
			live.Age += dt
			if live.Timer != sock.TimerNone {
				// The timer (and a TIME_WAIT entry's time left, which is
				// read from it) counts down in a copy of the socket: the
				// frame's is shared with the tracker, and is read again
				// at the next draw.
				d.ticking = *live.Socket
				d.ticking.Expires = uint32(max(int64(d.ticking.Expires)-dt.Milliseconds(), 0))
				live.Socket = &d.ticking
			}
		}
		e = &live
	}
	b := c.Text(nil, e)
	if c.Name == "state" && row.gone {
		b = append(b, " gone"...)
	}
	return tview.Escape(string(b))
}

// refreshHeader writes the state counts: the three watched states first,
// each with its sparkline, then the other eight (zero counts dimmed).
func (d *dashboard) refreshHeader() {
	var b strings.Builder
	for i, st := range highlighted {
		n := d.m.counts[st]
		fmt.Fprintf(&b, "[%s::b]%s %d[-::-] [%s]%s[-]  ", colorName(stateColor(st)), st, n,
			colorName(stateColor(st)), sparkline(d.m.spark[i], 12))
	}
	b.WriteString("\n")
	first := true
	for _, st := range sock.States {
		if st == sock.Listen || st == sock.TimeWait || st == sock.CloseWait {
			continue
		}
		if !first {
			b.WriteString("  ")
		}
		first = false
		n := d.m.counts[st]
		if n == 0 {
			fmt.Fprintf(&b, "[gray::d]%s %d[-::-]", st, n)
		} else {
			fmt.Fprintf(&b, "[%s]%s %d[-]", colorName(stateColor(st)), st, n)
		}
	}
	d.header.SetText(b.String())
}

// colorName names c for a tview colour tag; a name keeps the terminal's
// own palette, where a #rrggbb tag would force an RGB colour.
func colorName(c tcell.Color) string {
	for name, v := range tcell.ColorNames {
		if v == c {
			return name
		}
	}
	return fmt.Sprintf("#%06x", c.Hex())
}

// refreshStatus writes the filter, interval, counts, namespace and the last
// error.
func (d *dashboard) refreshStatus() {
	if d.editing && d.filterErr != "" {
		return // the edit error stays until the filter is fixed
	}
	var b strings.Builder
	// PAUSED first, where it shows whatever the width: at the header's
	// end it took a line of its own at 80 columns, and pushed the last
	// of the header's off the screen.
	if d.m.paused {
		b.WriteString("[black:yellow] PAUSED [-:-] │ ")
	}
	// The collector's last error comes first, where it cannot be cut off.
	if d.m.lastErr != nil {
		fmt.Fprintf(&b, "[red::b]%s[-::-] │ ", tview.Escape(d.m.lastErr.Error()))
	}
	if d.m.warn != nil {
		fmt.Fprintf(&b, "[yellow]%s[-] │ ", tview.Escape(d.m.warn.Error()))
	}
	f := d.filterText
	if f == "" {
		f = "all"
	}
	if i := d.ns.index(d.m.netns); d.m.netns != 0 && i >= 0 {
		fmt.Fprintf(&b, "[::b]netns %s[::-] (Esc: all) │ ", tview.Escape(d.ns.order[i].name.Label))
	}
	// -4 and -6 stay whatever the filter's edits: said, so that an
	// empty table under "src inet6:..." with -4 has its reason shown.
	switch fx := d.cfg.Fixed; {
	case fx.IPv4 && !fx.IPv6:
		f = "-4 " + f
	case fx.IPv6 && !fx.IPv4:
		f = "-6 " + f
	}
	fmt.Fprintf(&b, "[::b]filter:[::-] %s │ every %v", tview.Escape(f), d.interval)
	if fr := d.m.frame; fr != nil && fr.Every > d.interval {
		// Dumps are slow (many namespaces): the monitor spaces them.
		fmt.Fprintf(&b, " [yellow](%v: a poll takes %v)[-]", fr.Every, fr.Took.Round(10*time.Millisecond))
	}
	if d.nsMode {
		listed, added, gone := d.ns.counts()
		fmt.Fprintf(&b, " │ %d namespaces", listed)
		if added > 0 || gone > 0 {
			fmt.Fprintf(&b, " ([green]+%d[-] new, [red]-%d[-] gone)", added, gone)
		}
		fmt.Fprintf(&b, " │ sort %s │ Enter: its sockets", d.ns.sortName())
	} else {
		fmt.Fprintf(&b, " │ shown %d / matched %d", len(d.m.rows), d.m.matched())
	}
	if d.m.frame != nil && d.m.frame.Total >= 0 {
		if d.nsMode {
			fmt.Fprintf(&b, " │ %d sockets in all", d.m.frame.Total)
		} else {
			fmt.Fprintf(&b, " / total %d", d.m.frame.Total)
		}
	}
	if !d.nsMode && d.m.toggles != 0 {
		b.WriteString(" │ only")
		for _, st := range sock.States {
			if d.m.toggles.Has(st) {
				b.WriteString(" " + st.String())
			}
		}
	}
	if !d.nsMode {
		fmt.Fprintf(&b, " │ sort %s", sortNames[d.m.sortBy])
		if d.m.reverse {
			b.WriteString(" ↑")
		}
	}
	if d.cfg.Netns != "" && d.m.netns == 0 {
		fmt.Fprintf(&b, " │ netns %s", tview.Escape(d.cfg.Netns))
	}
	if r := d.m.rates; r != nil {
		fmt.Fprintf(&b, " │ rst %s/s, listen ovf %s/s, tw ovf %s/s",
			rate(r["OutRsts"]), rate(r["ListenOverflows"]), rate(r["TCPTimeWaitOverflow"]))
	}
	if d.filterErr != "" {
		fmt.Fprintf(&b, " │ [red]%s[-]", tview.Escape(d.filterErr))
	}
	if d.cfg.Notice != "" {
		fmt.Fprintf(&b, " │ [yellow]%s[-]", tview.Escape(d.cfg.Notice))
	}
	if d.cfg.Lost != nil {
		switch n, err := d.cfg.Lost(); {
		case err != nil:
			fmt.Fprintf(&b, " │ [yellow]%s[-]", tview.Escape(err.Error()))
		case n > 0:
			fmt.Fprintf(&b, " │ [yellow]%d kernel events lost: their changes are dated by the polls[-]", n)
		}
	}
	b.WriteString(" │ ? help")
	d.statusText = b.String()
	d.status.SetText(d.statusText) // on two lines where it does not fit (fitStatus)
}

func (d *dashboard) openDetail() {
	i := d.m.index(d.selected)
	if i < 0 {
		return
	}
	d.detail.ScrollToBeginning()
	d.show("detail")
	k := d.selected
	d.do(func() { d.x.detail = k })
	if d.m.at(i).State != sock.Listen { // a listener's tcp_info is not shown
		d.mon.NeedInfo("detail", true) // and polls: tcp_info now
	}
	d.refreshDetail()
}

func (d *dashboard) closeDetail() {
	d.pages.HidePage("detail")
	d.do(func() { d.x.detail = track.Key{} })
	d.mon.NeedInfo("detail", false)
}

// refreshDetail shows every field of the selected socket, its tcp_info when
// the poller has fetched it, and the transitions the tracker saw.
func (d *dashboard) refreshDetail() {
	i := d.m.index(d.selected)
	if i < 0 {
		d.detail.SetText("\n  [gray]the socket left the table[-]")
		return
	}
	rv := d.m.at(i)
	r := &rv
	now := d.now()
	age, left := d.live(r, now)
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, " [yellow]%-10s[-] %s\n", k, tview.Escape(v)) }
	state := r.State.String()
	if r.gone {
		state += " (gone)"
	}
	line("state", state)
	line("local", r.Local.String())
	line("peer", r.Peer.String())
	line("family", r.Family.String())
	// The row's tcp_info index is into the frame the row came from (older
	// than the latest while paused).
	var ti *sock.TCPInfo
	var tiAt time.Time // the frame's, which ti is of
	if f := d.m.shown; f != nil && !r.gone && r.State != sock.Listen && extraOf(f).Detail == track.KeyOf(r.Socket) &&
		r.Info >= 0 && int(r.Info) < len(f.Infos) {
		ti, tiAt = &f.Infos[r.Info], f.Time
	}
	ageText := string(render.AppendDuration(nil, age))
	switch r.AgeSource {
	case track.AgeTimer:
		ageText += " (from the kernel's TIME_WAIT timer), " + string(render.AppendDuration(nil, left)) + " left"
	case track.AgeAtLeast:
		ageText = "at least " + ageText + " (there when first seen)"
		if since, ok := lastExchange(r, ti, now.Sub(tiAt)); ok && since > age {
			// A connection older than the first look: tcp_info's
			// oldest "last" time is a better floor (stamped at the
			// handshake, and at each send, receipt and ACK since).
			ageText = "at least " + string(render.AppendDuration(nil, since)) + " (its last exchange, by tcp_info)"
		}
	case track.AgeKernel:
		ageText += " (since its birth, as the kernel dated it)"
	default:
		ageText += " (since first seen)"
	}
	line("age", ageText)
	line("first seen", r.FirstSeen().Format("15:04:05.000"))
	timer := "none"
	if r.Timer != sock.TimerNone {
		timer = r.Timer.String() + " in " + string(render.AppendDuration(nil, time.Duration(r.Expires)*time.Millisecond))
	}
	line("timer", timer)
	line("queues", fmt.Sprintf("recv %d, send %d", r.RecvQ, r.SendQ))
	line("retrans", strconv.Itoa(int(r.Retrans)))
	line("owner", fmt.Sprintf("uid %d, inode %d, %s", r.UID, r.Inode, render.AppendProcess(nil, &r.Entry)))
	line("cookie", fmt.Sprintf("%#x", r.Cookie))
	if r.State == sock.Listen {
		// A listener sends and receives nothing itself: its tcp_info
		// is zeros but for its queue, which Recv-Q and Send-Q give.
		q := fmt.Sprintf("%d waiting", r.RecvQ)
		if !d.cfg.Procfs { // /proc/net/tcp gives no backlog: 0 there
			q += fmt.Sprintf(", backlog %d", r.SendQ)
		}
		line("accept queue", q)
	} else if ti != nil {
		line("rtt", fmt.Sprintf("%v ± %v (min %v), rto %v", ti.RTT, ti.RTTVar, ti.MinRTT, ti.RTO))
		ssthresh := strconv.Itoa(int(ti.SndSsth))
		if ti.SndSsth >= infiniteSsthresh {
			ssthresh = "none yet (slow start)"
		}
		line("cwnd", fmt.Sprintf("%d segs, ssthresh %s, mss %d/%d", ti.SndCwnd, ssthresh, ti.SndMSS, ti.RcvMSS))
		line("bytes", fmt.Sprintf("sent %d, acked %d, received %d, retrans %d", ti.BytesSent, ti.BytesAcked, ti.BytesReceived, ti.BytesRetrans))
		line("segments", fmt.Sprintf("out %d, in %d, lost %d, unacked %d", ti.SegsOut, ti.SegsIn, ti.Lost, ti.Unacked))
		line("last data", fmt.Sprintf("sent %v ago, received %v ago", ti.LastDataSent, ti.LastDataRecv))
	} else if r.State != sock.TimeWait && !r.gone {
		b.WriteString(" [gray]tcp_info: on the next poll[-]\n")
	}
	b.WriteString("\n [yellow]history[-]\n")
	var hist []track.Transition
	if x := extraOf(d.m.frame); x.Detail == track.KeyOf(r.Socket) {
		hist = x.History
	}
	firstState := r.State
	if len(hist) > 0 {
		firstState = hist[0].From
	}
	seen := "first seen"
	if r.AgeSource == track.AgeAtLeast {
		// At the start, or when a new filter or a namespace opened
		// first showed it.
		seen = "first seen, there before"
	}
	fmt.Fprintf(&b, "   %s  %s in %s\n", r.FirstSeen().Format("15:04:05.000"), seen, firstState)
	for _, h := range hist {
		// ~ marks a time the poll gave (the change came at most one
		// interval before); the others are the kernel's.
		approx := " "
		if !h.Exact {
			approx = "~"
		}
		fmt.Fprintf(&b, "  %s%s  %s -> %s\n", approx, h.At.Format("15:04:05.000"), h.From, h.To)
	}
	d.detail.SetText(b.String())
}

// toggleTimeWait opens or closes the TIME_WAIT panel; the kernel context
// is read only while it is open.
func (d *dashboard) toggleTimeWait() {
	open := d.front() != "timewait"
	if open {
		d.twPane.ScrollToBeginning()
		d.show("timewait")
		d.refreshTimeWait()
	} else {
		d.pages.HidePage("timewait")
	}
	d.do(func() {
		d.x.wantTW = open
		if open {
			d.mon.Poll() // the settings now, not one interval later
		}
	})
}

// refreshTimeWait writes the lifetimes measured since the dashboard
// started, as sockscope timewait prints them.
func (d *dashboard) refreshTimeWait() {
	var b strings.Builder
	k := twstat.Context{FinTimeout: -1, Reuse: -1, MaxBuckets: -1}
	if d.m.twCtx != nil {
		k = *d.m.twCtx
	}
	twstat.WriteText(&b, d.m.tw.Summary(), k, d.now().Sub(d.started))
	if d.m.twCtx == nil {
		b.WriteString("  (reading the kernel's settings...)\n")
	}
	d.twPane.SetText(b.String())
}

// rate shows a per-second rate, red when not zero: resets and overflows
// are what a person should notice.
func rate(v float64) string {
	if v == 0 {
		return "0"
	}
	return fmt.Sprintf("[red]%.1f[-]", v)
}

// infiniteSsthresh is the kernel's ssthresh before any loss
// (TCP_INFINITE_SSTHRESH): no threshold yet, not a number of segments.
const infiniteSsthresh = 0x7fffffff

// lastExchange is how long ago r last sent data, received data or an ACK,
// whichever is oldest, by ti (nil: not fetched), read since ago: the
// kernel stamps all three when the handshake completes, so a synchronized
// connection is at least that old.
func lastExchange(r *row, ti *sock.TCPInfo, since time.Duration) (time.Duration, bool) {
	if ti == nil {
		return 0, false
	}
	switch r.State {
	case sock.Established, sock.FinWait1, sock.FinWait2, sock.CloseWait, sock.LastAck, sock.Closing:
	default:
		return 0, false // not connected yet, or not a connection
	}
	oldest := max(ti.LastDataSent, ti.LastDataRecv, ti.LastAckRecv)
	return oldest + max(since, 0), true
}
