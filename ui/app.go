package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/nsfind"
	"github.com/sockscope/sockscope/pkg/render"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
	"github.com/sockscope/sockscope/pkg/twstat"
)

// Config is what the dashboard needs from the command.
type Config struct {
	Source monitor.Source
	Lookup track.Lookup // owners of sockets; nil when unavailable
	Births track.Births // the kernel's birth dates; nil when none
	// CatchUp, when set, brings Births up to the latest dump (see
	// monitor.Options).
	CatchUp func()
	// Lost, when set, counts the kernel's state-change events lost so
	// far (a full ring): the changes they carried are dated by the polls,
	// and the status line says how many.
	Lost func() (uint64, error)
	// FirstFrame, when set, is called once, when the first frame has
	// been drawn: work that must not delay it can start then.
	FirstFrame func()
	Processes  bool // show the Process column from the start
	// Columns are the table's columns in order (-o); nil: the dashboard's
	// defaults. The process column follows p whatever they are.
	Columns []*render.Column
	// Filter is the filter as the person wrote it: the text '/' edits.
	Filter string
	// Fixed is the part of the filter that '/' does not edit (-4, -6).
	Fixed filter.Spec
	// Refuse, when set, says why a filter typed with '/' cannot be
	// applied by this source (nil: it can), e.g. a test the source has no
	// data for.
	Refuse func(filter.Expr) error
	// Procfs says the source reads /proc/net/tcp: a listener's backlog is
	// not known (its Send-Q is 0 there).
	Procfs   bool
	Interval time.Duration
	Netns    string
	// Names names the namespaces when many are read (--all-netns, -N
	// given twice): the table gets a netns column.
	Names nsfind.Names
	// Namespaces lists the namespaces read now, with no matching socket
	// too; when set, the dashboard opens on the namespace view, one row
	// per namespace, and Enter shows one namespace's sockets.
	Namespaces func() []*nsfind.Name
	// Destroys, when not nil, carries the kernel's destroy events.
	Destroys <-chan sock.Destroy
	// TimeWait reads the kernel's TIME_WAIT settings and counters for the
	// w panel; nil when unavailable.
	TimeWait func() (twstat.Context, error)
	// Counters reads the kernel's TCP counters, for the rates of resets
	// and overflows in the status line; nil when unavailable.
	Counters func() (map[string]int64, error)
	// Notice is a standing word for the status line, such as what the
	// /proc fallback cannot show.
	Notice string

	// For tests: a simulated screen, a channel that triggers polls instead
	// of the interval ticker, a clock, and the live-age redraw period
	// (negative: none).
	Screen tcell.Screen
	Tick   <-chan time.Time
	Now    func() time.Time
	Redraw time.Duration
}

// intervals are the steps of + and -.
var intervals = []time.Duration{100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second}

type dashboard struct {
	cfg Config
	// firstDrawn is set from the first frame's update until the draw
	// after it, which calls it (the drawing goroutine's alone).
	firstDrawn func()
	// shown is closed once the first frame is drawn: the monitor's
	// tracker then takes it in (monitor.Options.Shown).
	shown chan struct{}
	// ticking is the socket a ticking cell draws, its timer counted down
	// (cellText; the drawing goroutine's alone).
	ticking sock.Socket
	app     *tview.Application
	pages   *tview.Pages
	header  *tview.TextView
	table   *tview.Table
	status  *tview.TextView
	input   *tview.InputField
	bottom  *tview.Flex
	main    *tview.Flex
	detail  *tview.TextView
	help    *tview.TextView
	twPane  *tview.TextView
	// The namespace view (Config.Namespaces): its table, its model, and
	// whether it is the one shown; nsSelected is its selected namespace.
	nsTable    *tview.Table
	ns         *nsModel
	nsMode     bool
	nsSelected uint32

	m        *model
	mon      *monitor.Monitor
	box      *mailbox
	selected track.Key
	procs    bool
	cols     []*render.Column // shown now (columns)
	// shift is how many columns after the first the table is scrolled
	// sideways (← →): the content leaves them out, so that every column
	// can be brought in whole, the first staying.
	shift      int
	interval   time.Duration
	filterText string
	filterErr  string
	statusText string   // the status line as one line (refreshStatus)
	cells      *content // the table's
	editing    bool
	started    time.Time
	drawnAt    time.Time // when the latest frame was applied (and drawn)
	// x is the dashboard's adapter on the monitor's loop: change it only
	// in d.do.
	x *extras

	// onPrepared, for tests, runs on the goroutine that prepares frames
	// once one is prepared, before it is handed to the UI.
	onPrepared func()

	// The goroutines run starts end before the UI does (stop).
	helpers  sync.WaitGroup
	cancel   context.CancelFunc
	stopOnce sync.Once
	// launched is closed once run has started its goroutines: stop waits
	// for them only then (a WaitGroup must not be added to while it is
	// waited on at zero).
	launched chan struct{}
	// up is closed once the UI has drawn (its screen is made: tview's
	// Stop does nothing before), ran once run returns.
	up, ran chan struct{}
	upOnce  sync.Once
}

// Run shows the dashboard until q, Esc or ctx ends it, and restores the
// terminal in every case.
func Run(ctx context.Context, cfg Config) error {
	d := newDashboard(cfg)
	return d.run(ctx)
}

func newDashboard(cfg Config) *dashboard {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Redraw == 0 {
		cfg.Redraw = time.Second
	}
	d := &dashboard{
		cfg:        cfg,
		app:        tview.NewApplication(),
		m:          newModel(),
		ns:         newNSModel(),
		nsMode:     cfg.Namespaces != nil,
		box:        newMailbox(),
		shown:      make(chan struct{}),
		procs:      cfg.Processes && cfg.Lookup != nil,
		interval:   cfg.Interval,
		filterText: cfg.Filter,
	}
	d.x = &extras{timeWait: cfg.TimeWait, counters: cfg.Counters}
	d.mon = monitor.New(cfg.Source, monitor.Options{Lookup: cfg.Lookup, Processes: d.procs,
		Interval: cfg.Interval, Now: cfg.Now, Extras: d.x, Births: cfg.Births, CatchUp: cfg.CatchUp, Shown: d.shown}, d.box.put)
	d.started = cfg.Now()
	d.cols = d.columns()
	d.build()
	return d
}

func (d *dashboard) build() {
	d.header = tview.NewTextView().SetDynamicColors(true).SetWrap(true).SetWordWrap(true)
	// Selectable once there is a row to select (reselect).
	d.cells = &content{d: d}
	d.table = tview.NewTable().SetSelectable(false, false).SetFixed(1, 1).SetContent(d.cells)
	d.table.SetSelectedStyle(tcell.StyleDefault.Reverse(true))
	d.table.SetSelectionChangedFunc(func(r, _ int) {
		if r >= 1 && r-1 < len(d.m.rows) {
			d.selected = track.KeyOf(d.m.entry(d.m.rows[r-1]).Socket)
		}
	})
	d.nsTable = tview.NewTable().SetSelectable(false, false).SetFixed(1, 0).SetContent(&nsContent{v: d.ns, width: func() int { _, _, w, _ := d.nsTable.GetInnerRect(); return w }})
	d.nsTable.SetSelectedStyle(tcell.StyleDefault.Reverse(true))
	d.nsTable.SetSelectionChangedFunc(func(r, _ int) {
		if r >= 1 && r-1 < len(d.ns.order) {
			d.nsSelected = d.ns.order[r-1].inode
		}
	})
	d.status = tview.NewTextView().SetDynamicColors(true).SetWrap(false)
	d.input = tview.NewInputField().SetLabel("filter: ").SetFieldBackgroundColor(tcell.ColorDarkBlue)
	d.input.SetDoneFunc(d.filterDone)
	d.bottom = tview.NewFlex().SetDirection(tview.FlexRow).AddItem(d.status, 1, 0, false)
	d.main = tview.NewFlex().SetDirection(tview.FlexRow)
	d.layout()
	d.detail = tview.NewTextView().SetDynamicColors(true).SetScrollable(true)
	d.detail.SetBorder(true).SetTitle(" socket (Esc closes) ")
	d.help = tview.NewTextView().SetDynamicColors(true).SetText(helpText)
	d.help.SetBorder(true).SetTitle(" keys (Esc closes) ")
	d.twPane = tview.NewTextView().SetScrollable(true)
	d.twPane.SetBorder(true).SetTitle(" TIME_WAIT lifetimes (w or Esc closes) ")
	// Each panel is at most this big and shrinks to the screen (panel).
	helpW, helpH := helpSize()
	d.pages = tview.NewPages().
		AddPage("main", d.main, true, true).
		AddPage("detail", newPanel(d.detail, 72, 22, d.uncovered), true, false).
		AddPage("help", newPanel(d.help, helpW, helpH, d.uncovered), true, false).
		AddPage("timewait", newPanel(d.twPane, 100, 40, d.uncovered), true, false)
	d.app.SetRoot(d.pages, true).SetInputCapture(d.key).SetBeforeDrawFunc(d.fitStatus).SetAfterDrawFunc(d.afterDraw)
	d.refreshHeader()
	d.refreshStatus()
}

// uncovered returns the rows a panel leaves free at the top and bottom of
// the screen: the header, and the status line (or the filter editor with
// its error). It runs while the pages draw, after the main page.
func (d *dashboard) uncovered() (top, bottom int) {
	_, y, _, h := d.pages.GetInnerRect()
	_, hy, _, hh := d.header.GetRect()
	_, by, _, _ := d.bottom.GetRect()
	return hy + hh - y, y + h - by
}

// show brings a page to the front, where it has the keys.
func (d *dashboard) show(name string) {
	d.pages.ShowPage(name)
	d.pages.SendToFront(name)
}

// The filter error takes at most 1/maxErrorRows of the screen's rows.
const maxErrorRows = 4

// afterDraw tells the monitor and Config.FirstFrame, once, that the
// first frame is on the screen.
func (d *dashboard) afterDraw(tcell.Screen) {
	d.upOnce.Do(func() { close(d.up) })
	if first := d.firstDrawn; first != nil {
		d.firstDrawn = nil
		first()
	}
}

// fitStatus sizes the status area before every draw. The filter editor's
// error gets as many lines as it needs at the screen's width (up to a
// quarter of the screen), so that a long error wraps instead of being cut.
// The status line gets a second line where the terminal is too narrow for
// it (80 columns hold about half of it), so that its end (the rates and
// "? help") is not cut off.
func (d *dashboard) fitStatus(screen tcell.Screen) bool {
	d.cells.newDraw()
	w, h := screen.Size()
	if w <= 0 {
		return false
	}
	switch {
	case d.editing && d.filterErr != "":
		n := (tview.TaggedStringWidth(tview.Escape(d.filterErr)) + w - 1) / w
		n = min(max(n, 1), max(h/maxErrorRows, 1))
		d.bottom.ResizeItem(d.status, n, 0)
		d.main.ResizeItem(d.bottom, 1+n, 0)
	case d.editing:
		d.main.ResizeItem(d.bottom, 1, 0) // the editor alone
	default:
		text, n := d.statusText, 1
		if h >= minRowsForTwoStatusLines && tview.TaggedStringWidth(text) > w {
			text, n = breakStatus(text, w, maxStatusLines)
		}
		if text != d.status.GetText(false) {
			d.status.SetText(text)
		}
		d.bottom.ResizeItem(d.status, n, 0)
		d.main.ResizeItem(d.bottom, n, 0)
	}
	return false
}

// statusSep separates the status line's parts.
const statusSep = " │ "

// breakStatus puts a status line too wide for w columns on as many lines
// as it needs, at most most, between its parts: as many as fit go on
// each. A part wider than w has a line of its own (and is cut).
func breakStatus(text string, w, most int) (string, int) {
	parts := strings.Split(text, statusSep)
	sepW := tview.TaggedStringWidth(statusSep)
	var lines []string
	start, width := 0, 0
	for i, p := range parts {
		pw := tview.TaggedStringWidth(p)
		if i > start && width+sepW+pw > w && len(lines) < most-1 {
			lines = append(lines, strings.Join(parts[start:i], statusSep))
			start, width = i, 0
		}
		if i > start {
			width += sepW
		}
		width += pw
	}
	lines = append(lines, strings.Join(parts[start:], statusSep))
	return strings.Join(lines, "\n"), len(lines)
}

// minRowsForTwoStatusLines is the least height at which the status line
// may take more rows than one; maxStatusLines is the most it takes.
const (
	minRowsForTwoStatusLines = 16
	maxStatusLines           = 3
)

// helpSize is the help panel's size: its longest line and a space after
// it, and its lines with a blank line above and below, inside the border.
// On a narrower screen the lines wrap; on a shorter one they scroll. It is
// measured when a dashboard is made, not when the program starts:
// TaggedStringWidth was 3% of every command's start.
func helpSize() (w, h int) {
	lines := strings.Split(strings.Trim(helpText, "\n"), "\n")
	for _, l := range lines {
		w = max(w, tview.TaggedStringWidth(l))
	}
	return w + 3, len(lines) + 4
}

const helpText = `
  [yellow]Enter[-]    (namespaces) that namespace's sockets; [yellow]Esc[-] back to all
  [yellow]l t c e n[-] (namespaces) sort by LISTEN, TIME_WAIT, CLOSE_WAIT,
           ESTABLISHED or name; again: reverse
  [yellow]/[-]        edit the filter (the language of the command line)
  [yellow]l t c e[-]  toggle LISTEN, TIME_WAIT, CLOSE_WAIT, ESTABLISHED
  [yellow]a[-]        all states again
  [yellow]s[-]        cycle the sort column (state, age, local port, peer)
  [yellow]S[-]        reverse the sort
  [yellow]space[-]    pause / resume the table
  [yellow]+ -[-]      poll more or less often
  [yellow]p[-]        show / hide processes
  [yellow]← →[-]      scroll the table sideways (columns past the edge)
  [yellow]Enter[-]    the selected socket in detail
  [yellow]w[-]        TIME_WAIT lifetimes and the kernel settings behind them
  [yellow]?[-]        this help
  [yellow]q[-]        quit ([yellow]Esc[-] closes a pane first, then quits)
`

func (d *dashboard) run(parent context.Context) (err error) {
	var perr chan error // the poller's end, once it runs
	defer func() {
		// tview has already restored the terminal (it finalises the
		// screen before re-panicking): report the panic as an error, in
		// one line, rather than a goroutine dump over the shell. The
		// poller ends first, as on every way out: the caller then closes
		// what it reads from.
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error in the dashboard: %v", r)
			if perr != nil {
				d.cancel()
				err = errors.Join(err, <-perr)
			}
		}
	}()
	if d.cfg.Screen != nil {
		d.app.SetScreen(d.cfg.Screen)
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	d.cancel = cancel
	d.launched, d.up, d.ran = make(chan struct{}), make(chan struct{}), make(chan struct{})
	defer close(d.ran)
	perr = make(chan error, 1)
	// A panic in a goroutine of the dashboard's would end the process
	// with the terminal left raw: each ends the dashboard instead, and
	// run reports it with the poller's error.
	perrs := make(chan error, 3)
	safely := func(f func()) {
		d.helpers.Go(func() {
			defer func() {
				if r := recover(); r != nil {
					perrs <- fmt.Errorf("internal error in the dashboard: %v", r)
					d.stop()
				}
			}()
			f()
		})
	}
	safely(func() {
		var err error
		defer func() { perr <- err }() // a panic too: run waits for it
		err = d.mon.Run(ctx, d.cfg.Tick, d.cfg.Destroys)
		if err != nil {
			d.stop()
		}
	})
	// The pump prepares each frame (its counts, its rows in order) and
	// moves it onto the UI goroutine, which only swaps it in: the keys
	// are answered meanwhile. QueueUpdateDraw waits for the UI, so only
	// the pump ever blocks on it, never the poller.
	safely(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.box.ready:
				if f := d.box.take(); f != nil {
					p := d.m.order.prepare(f, d.m.pub.get())
					if d.onPrepared != nil {
						d.onPrepared()
					}
					d.app.QueueUpdateDraw(func() { d.applyFrame(p) })
				}
			}
		}
	})
	if d.cfg.Redraw > 0 {
		t := time.NewTicker(d.cfg.Redraw)
		defer t.Stop()
		safely(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					d.app.QueueUpdate(d.tick)
				}
			}
		})
	}
	close(d.launched)
	go func() {
		<-ctx.Done()
		d.stop()
	}()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	first := 0
	if parent.Err() != nil {
		first = 1 // the first signal came before this registration
	}
	go d.secondSignal(sigs, first)
	err = d.app.Run()
	if terminalGone(err) {
		// The terminal went away (its window closed, the ssh session
		// ended): tcell reads the end of it, often before the hangup
		// signal arrives. That ends the dashboard as the signal does,
		// without a word: no one is left to read it.
		err = nil
	}
	cancel()
	// The terminal is back; the poller may be in a dump still. It ends
	// before Run returns: the caller then closes what it reads from, and a
	// descriptor closed under a dump (and reused) would be read by it.
	err = errors.Join(err, <-perr)
	for {
		select {
		case e := <-perrs:
			err = errors.Join(err, e)
		default:
			return err
		}
	}
}

// terminalGone reports whether the UI ended because its terminal did: a
// read of it gave the end of the file (the usual hangup) or EIO. tcell
// hands the read's error on inside an EventError that does not unwrap, so
// its text is what can be compared.
func terminalGone(err error) bool {
	var ev *tcell.EventError
	if !errors.As(err, &ev) {
		return false
	}
	msg := ev.Error()
	return msg == io.EOF.Error() || strings.HasSuffix(msg, syscall.EIO.Error())
}

// secondSignal restores the terminal at once on a second signal (seen
// counts those before it). The first ends the dashboard through its
// context, which waits for the poller to end its dump; with the default
// action back, a second one would have killed the process with the
// terminal left raw. The signals after it have their default action.
func (d *dashboard) secondSignal(sigs chan os.Signal, seen int) {
	for n := seen; n < 2; n++ {
		select {
		case <-sigs:
		case <-d.ran:
			return
		}
	}
	signal.Stop(sigs)
	d.stopUI()
}

// tick redraws what ages between frames: the socket table's ages and
// timers, the detail panel's. A frame drawn less than a tick and a quarter
// ago showed them already: at the default 1 s interval every frame does,
// and a draw of a full screen is a tenth of the dashboard's time at 110k
// sockets (perf record). The namespace view shows counts alone, which
// change with frames: it is not drawn again.
func (d *dashboard) tick() {
	if d.nsMode && d.front() == "main" {
		return
	}
	if d.cfg.Now().Sub(d.drawnAt) < d.cfg.Redraw+d.cfg.Redraw/4 {
		return
	}
	d.refreshHeader()
	d.app.ForceDraw()
}

// stop ends the dashboard from any goroutine, any number of times. The
// goroutines that queue updates end first, while the UI still runs: tview's
// QueueUpdateDraw waits for the UI to run the update, so one caught in it
// when the UI stopped would wait forever. Then the UI stops.
func (d *dashboard) stop() {
	d.stopOnce.Do(func() {
		go func() {
			d.cancel()
			<-d.launched
			done := make(chan struct{})
			go func() { d.helpers.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(6 * time.Second): // a dump stuck in the kernel: stop anyway
			}
			d.stopUI()
		}()
	})
}

// stopUI stops the UI once it is up: tview's Stop does nothing before Run
// has made the screen, and a stop lost so (a first poll failing at once,
// a signal during the start) left the dashboard running with every way
// out already used.
func (d *dashboard) stopUI() {
	select {
	case <-d.up:
		d.app.Stop()
	case <-d.ran: // the UI ended without drawing: nothing to stop
	}
}

// applyFrame runs on the UI goroutine.
func (d *dashboard) applyFrame(p *prepared) {
	f := p.f
	d.m.order.spare = d.m.applyPrepared(p)
	d.drawnAt = d.cfg.Now() // drawn once this update returns
	if d.shown != nil {
		shown, first := d.shown, d.cfg.FirstFrame
		d.shown = nil
		d.firstDrawn = func() { // once this update is drawn (afterDraw)
			close(shown)
			if first != nil {
				first()
			}
		}
	}
	if d.cfg.Namespaces != nil && d.m.frame != nil && (f.Err == nil || f.Entries != nil) {
		d.ns.apply(d.m.frame.Entries, d.m.frame.Counted, d.cfg.Namespaces(), f.Time)
		d.nsReselect()
	}
	d.reselect()
	d.refreshHeader()
	d.refreshStatus()
	if d.detailOpen() {
		d.refreshDetail()
	}
	if d.front() == "timewait" {
		d.refreshTimeWait()
	}
}

func (d *dashboard) front() string {
	name, _ := d.pages.GetFrontPage()
	return name
}

// reselect keeps the selection on the same socket across refreshes.
//
// A table with no data rows is made unselectable: tview's movement keys
// search for a selectable cell and, with only the header left, that search
// never ends (the UI goroutine spins and no key, not even q, gets through).
// Unselectable, the same keys only scroll, which an empty table ignores.
func (d *dashboard) reselect() {
	if i := keepSelection(d.table, len(d.m.rows), d.m.index(d.selected)); i >= 0 {
		d.selected = track.KeyOf(d.m.entry(d.m.rows[i]).Socket)
	}
}

// keepSelection selects, in a table of n rows under its header, row i
// (where the selected item is now; -1 when it left: the row the
// selection was on, or the last). It returns the row selected, -1 for an
// empty table, which is made unselectable.
func keepSelection(t *tview.Table, n, i int) int {
	if n == 0 {
		t.SetSelectable(false, false)
		t.ScrollToBeginning()
		return -1
	}
	t.SetSelectable(true, false)
	if i < 0 {
		r, _ := t.GetSelection()
		i = min(max(r-1, 0), n-1)
	}
	t.Select(i+1, 0)
	return i
}

func (d *dashboard) detailOpen() bool {
	name, _ := d.pages.GetFrontPage()
	return name == "detail"
}

func (d *dashboard) helpOpen() bool {
	name, _ := d.pages.GetFrontPage()
	return name == "help"
}

// key handles the dashboard's keys; it runs on the UI goroutine and must
// never wait on the poller (commands are queued, not awaited).
func (d *dashboard) key(ev *tcell.EventKey) *tcell.EventKey {
	if d.editing {
		if ev.Key() == tcell.KeyCtrlC {
			// tview's own Ctrl-C would stop the UI under the goroutines
			// that queue updates: one caught in it would wait for ever.
			d.stop()
			return nil
		}
		return ev // the input field has the keys
	}
	if d.nsMode && d.front() == "main" && d.nsKey(ev) {
		return nil
	}
	if ev.Key() == tcell.KeyEscape || ev.Key() == tcell.KeyCtrlC {
		switch {
		case ev.Key() == tcell.KeyEscape && d.front() == "main" && d.cfg.Namespaces != nil && !d.nsMode:
			d.showNamespaces()
		case d.detailOpen():
			d.closeDetail()
		case d.helpOpen():
			d.pages.HidePage("help")
		case d.front() == "timewait":
			d.toggleTimeWait()
		default:
			d.stop()
		}
		return nil
	}
	if ev.Key() == tcell.KeyEnter {
		if !d.detailOpen() && !d.helpOpen() {
			d.openDetail()
		}
		return nil
	}
	if d.front() == "main" && (ev.Key() == tcell.KeyLeft || ev.Key() == tcell.KeyRight ||
		ev.Key() == tcell.KeyRune && ev.Rune() == 'h') {
		// Sideways by whole columns, ours: tview's own scroll counts a
		// last column it cuts (with …) as shown, and would not go on.
		if ev.Key() == tcell.KeyRight {
			d.shift = min(d.shift+1, d.maxShift())
		} else {
			d.shift = max(min(d.shift, d.maxShift())-1, 0)
		}
		return nil
	}
	if ev.Key() != tcell.KeyRune {
		return ev // up, down, page keys: the table scrolls
	}
	switch ev.Rune() {
	case 'q':
		d.stop()
	case '?':
		if d.helpOpen() {
			d.pages.HidePage("help")
		} else {
			d.help.ScrollToBeginning()
			d.show("help")
		}
	case '/':
		d.startEdit()
	case 'w':
		d.toggleTimeWait()
	case 'l':
		d.m.toggle(sock.Listen)
	case 't':
		d.m.toggle(sock.TimeWait)
	case 'c':
		d.m.toggle(sock.CloseWait)
	case 'e':
		d.m.toggle(sock.Established)
	case 'a':
		d.m.showAll()
	case 's':
		d.m.cycleSort()
	case 'S':
		d.m.flipSort()
	case ' ':
		d.m.togglePause(d.cfg.Now())
	case '+':
		d.stepInterval(-1)
	case '-':
		d.stepInterval(+1)
	case 'p':
		d.toggleProcesses()
	default:
		return ev
	}
	d.reselect()
	d.refreshHeader()
	d.refreshStatus()
	return nil
}

// stepInterval moves along intervals: -1 polls more often, +1 less.
func (d *dashboard) stepInterval(dir int) {
	next := d.interval
	if dir > 0 { // the next step up, if any: never faster
		for _, iv := range intervals {
			if iv > d.interval {
				next = iv
				break
			}
		}
	} else { // the next step down, if any: never slower
		for _, iv := range intervals {
			if iv < d.interval {
				next = iv
			}
		}
	}
	if next == d.interval {
		return
	}
	d.interval = next
	iv := d.interval
	d.mon.SetInterval(iv)
}

func (d *dashboard) toggleProcesses() {
	if d.cfg.Lookup == nil {
		d.filterErr = "processes are not available"
		return
	}
	d.procs = !d.procs
	d.cols = d.columns()
	on := d.procs
	d.mon.SetProcesses(on)
}

func (d *dashboard) startEdit() {
	d.editing = true
	// An error the status line showed (a key's) is not the editor's:
	// the editor's own takes its place when there is one.
	d.filterErr = ""
	d.input.SetText(d.filterText)
	d.bottom.Clear().AddItem(d.input, 1, 0, true)
	d.app.SetFocus(d.input)
}

func (d *dashboard) stopEdit() {
	d.editing = false
	d.status.SetWrap(false)
	d.status.SetText(d.statusText)
	d.bottom.Clear().AddItem(d.status, 1, 0, false)
	d.main.ResizeItem(d.bottom, 1, 0)
	// The keys go back to the front page: the table, or the panel that
	// was open when the edit began.
	d.app.SetFocus(d.pages)
}

// filterDone applies the edited filter. A bad one keeps the editor open
// with the error shown, and the previous filter stays in force.
func (d *dashboard) filterDone(k tcell.Key) {
	if k == tcell.KeyEscape {
		d.filterErr = ""
		d.stopEdit()
		d.refreshStatus()
		return
	}
	if k != tcell.KeyEnter {
		return
	}
	text := strings.TrimSpace(d.input.GetText())
	spec := d.cfg.Fixed
	spec.Args = []string{text}
	e, err := spec.Build()
	if err == nil && d.cfg.Refuse != nil {
		err = d.cfg.Refuse(e)
	}
	if err != nil {
		d.filterErr = err.Error()
		d.input.SetLabelColor(tcell.ColorRed)
		d.showEditError()
		return
	}
	prog := filter.Compile(e, filter.Options{})
	if !d.mon.SetProgram(prog) {
		// The poller is a thousand commands behind: the filter shown
		// must be the one in force, so the editor stays open.
		d.filterErr = "the collector is busy: the filter was not applied; press Enter again"
		d.showEditError()
		return
	}
	d.filterErr = ""
	d.filterText = text
	d.input.SetLabelColor(tcell.ColorYellow)
	d.stopEdit()
	d.refreshStatus()
}

// showEditError puts the error under the editor, wrapped to as many lines
// as it needs (fitEditError).
func (d *dashboard) showEditError() {
	d.status.SetText("[red]" + tview.Escape(d.filterErr) + "[-]")
	d.status.SetWrap(true).SetWordWrap(false)
	d.bottom.Clear().AddItem(d.input, 1, 0, true).AddItem(d.status, 1, 0, false)
	d.main.ResizeItem(d.bottom, 2, 0)
}

// do runs f on the monitor's goroutine without waiting: a key never waits
// on a dump. A thousand commands behind, the key is dropped, not the UI.
func (d *dashboard) do(f func()) { d.mon.Do(f) }

// layout puts the view shown (the namespaces or the sockets) between the
// header and the status line.
func (d *dashboard) layout() {
	var view tview.Primitive = d.table
	if d.nsMode {
		view = d.nsTable
	}
	d.main.Clear().
		AddItem(d.header, 3, 0, false).
		AddItem(view, 0, 1, true).
		AddItem(d.bottom, 1, 0, false)
}

// nsKey handles the namespace view's own keys; it reports whether it took
// the key.
func (d *dashboard) nsKey(ev *tcell.EventKey) bool {
	if ev.Key() == tcell.KeyEnter {
		d.openNamespace()
		return true
	}
	if ev.Key() != tcell.KeyRune {
		return false
	}
	by := map[rune]int{'l': 0, 't': 1, 'c': 2, 'e': 3, 'n': -1}
	switch r := ev.Rune(); r {
	case 'l', 't', 'c', 'e', 'n':
		d.ns.sortOn(by[r])
	case 's': // the next sort key
		d.ns.sortBy, d.ns.reverse = (d.ns.sortBy+2)%(len(nsStates)+1)-1, false
		d.ns.sort()
	case 'S':
		d.ns.reverse = !d.ns.reverse
		d.ns.sort()
	default:
		return false
	}
	d.nsReselect()
	d.refreshStatus()
	return true
}

// openNamespace shows the selected namespace's sockets: the socket table
// of one namespace. Esc comes back.
func (d *dashboard) openNamespace() {
	if d.ns.index(d.nsSelected) >= 0 {
		d.view(d.nsSelected)
	}
}

// showNamespaces goes back to the namespace view, every namespace counted.
func (d *dashboard) showNamespaces() { d.view(0) }

// view shows one namespace's socket table (its inode), or the namespace
// view (0), with the counts, columns and selection that go with it.
func (d *dashboard) view(ino uint32) {
	if d.cfg.Namespaces != nil && ino != d.m.netns {
		// A source that can counts the namespaces not shown rather
		// than dump them: it dumps this one now.
		d.mon.Focus(ino)
	}
	d.m.setNetns(ino)
	d.cols = d.columns()
	d.nsMode = ino == 0
	d.layout()
	d.app.SetFocus(d.pages)
	if d.nsMode {
		d.nsReselect()
	} else {
		d.reselect()
	}
	d.refreshHeader()
	d.refreshStatus()
}

// nsReselect keeps the namespace view's selection on the same namespace;
// like reselect, a table without rows is not selectable (tview's
// movement keys would search for a row for ever).
func (d *dashboard) nsReselect() {
	if i := keepSelection(d.nsTable, len(d.ns.order), d.ns.index(d.nsSelected)); i >= 0 {
		d.nsSelected = d.ns.order[i].inode
	}
}
