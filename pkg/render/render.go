// Package render writes tracked sockets as a table for people or as JSON
// lines for programs. Both append into one buffer per call, so a table of
// 100k sockets costs a few allocations, not a few per socket.
package render

import (
	"io"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sockscope/sockscope/pkg/nsfind"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

// TableOptions selects what a table shows.
type TableOptions struct {
	Header bool // column titles and the summary line
	// Columns are the columns, in order; nil: ListColumns, and the
	// process column when Processes is set.
	Columns   []*Column
	Processes bool
	Color     bool // ANSI colours for LISTEN, TIME_WAIT and CLOSE_WAIT
	// Names names the namespaces when many are read: the netns column
	// shows them, first unless Columns places it.
	Names nsfind.Names
}

// columns are the columns a table with these options shows.
func (o *TableOptions) columns() []*Column {
	cols := o.Columns
	if cols == nil {
		names := ListColumns
		if o.Processes {
			names = append(names[:len(names):len(names)], "process")
		}
		cols = MustColumns(names)
	}
	if o.Names != nil {
		cols = WithNames(cols, o.Names, o.Columns == nil)
	}
	return cols
}

// ANSI colours of the three states people come to look at. The dashboard
// uses the same hues.
const (
	colorListen    = "\x1b[32m" // green
	colorTimeWait  = "\x1b[33m" // yellow
	colorCloseWait = "\x1b[31m" // red
	colorReset     = "\x1b[0m"
)

// StateColor returns the ANSI colour of a highlighted state, "" for others.
func StateColor(s sock.State) string {
	switch s {
	case sock.Listen:
		return colorListen
	case sock.TimeWait:
		return colorTimeWait
	case sock.CloseWait:
		return colorCloseWait
	}
	return ""
}

// Table writes the entries as aligned columns, then a summary line.
func Table(w io.Writer, v *track.View, opt TableOptions) error {
	t := newTableWriter(w, opt, -1)
	t.Write(v.Entries)
	return t.Close()
}

// AlignRows is how many rows a TableWriter holds to size its columns. A
// table no longer than that is aligned as a whole, as Table aligns it;
// past it, rows are written as they come at the widths of the first ones,
// and a column widens from the row that needs it on (an IPv6 address
// after a thousand IPv4 ones). 1024 rows are about 100 KB: a listing's
// memory stays the same for 10k sockets or a million.
const AlignRows = 1024

// flushAt is how much formatted text a TableWriter gathers per write.
const flushAt = 64 << 10

// A TableWriter writes a table a batch of entries at a time, in memory
// that does not grow with the table (see AlignRows), and the summary line
// at Close.
type TableWriter struct {
	w        io.Writer
	opt      TableOptions
	cols     []*Column
	stateCol int
	hold     int  // rows held to size the columns; -1: all of them
	released bool // the held rows are out: each row goes as it comes
	widths   []int
	// cells holds the rendered cells of the held rows, or of the row
	// being written once released; ends[i] is where cell i ends.
	cells  []byte
	ends   []int32
	states []sock.State // the held rows' states (0 for the header)
	out    []byte
	counts [16]int
	total  int
	err    error
}

// NewTableWriter returns a TableWriter that writes to w.
func NewTableWriter(w io.Writer, opt TableOptions) *TableWriter {
	return newTableWriter(w, opt, AlignRows)
}

func newTableWriter(w io.Writer, opt TableOptions, hold int) *TableWriter {
	t := &TableWriter{w: w, opt: opt, cols: opt.columns(), hold: hold}
	t.stateCol = slices.IndexFunc(t.cols, func(c *Column) bool { return c.Name == "state" })
	t.widths = make([]int, len(t.cols))
	if hold > 0 {
		// Sized once: growing them by doubling would touch twice the
		// memory, and fresh pages are what a listing pays for.
		t.cells = make([]byte, 0, (hold+1)*len(t.cols)*12)
		t.ends = make([]int32, 0, (hold+1)*len(t.cols))
		t.out = make([]byte, 0, flushAt+4096)
	}
	if opt.Header {
		for c, col := range t.cols {
			t.cells = append(t.cells, col.Title...)
			t.add(c)
		}
		t.states = append(t.states, 0)
	}
	return t
}

// Write adds the entries' rows. After a write error it writes nothing
// more and returns that error (Err has it too).
func (t *TableWriter) Write(entries []track.Entry) error {
	for i := range entries {
		if t.err != nil {
			return t.err
		}
		e := &entries[i]
		if int(e.State) < len(t.counts) {
			t.counts[e.State]++
		}
		t.total++
		for c, col := range t.cols {
			t.cells = col.Text(t.cells, e)
			t.add(c)
		}
		if t.released {
			t.out = t.appendRow(t.out, 0, t.ends, e.State)
			t.cells, t.ends = t.cells[:0], t.ends[:0]
			t.flush(flushAt)
			continue
		}
		t.states = append(t.states, e.State)
		if t.hold >= 0 && len(t.states) >= t.hold {
			t.release()
		}
	}
	return t.err
}

// Err is the first error writing to w.
func (t *TableWriter) Err() error { return t.err }

// Close writes the rows still held and the summary line.
func (t *TableWriter) Close() error {
	if !t.released {
		t.release()
	}
	if t.opt.Header {
		t.out = appendCounts(t.out, &t.counts, t.total, t.opt.Color)
		t.out = append(t.out, '\n')
	}
	t.flush(0)
	return t.err
}

// width is a cell's width: its length but in a Wide column (a process
// name), whose runes are counted.
func (t *TableWriter) width(col int, cell []byte) int {
	if t.cols[col].Wide {
		return utf8.RuneCount(cell)
	}
	return len(cell)
}

// add ends the cell of column col just appended to t.cells, widening the
// column if needed; the last column is not padded after its cells (no
// trailing spaces), so its width counts only when it aligns right.
func (t *TableWriter) add(col int) {
	start := 0
	if len(t.ends) > 0 {
		start = int(t.ends[len(t.ends)-1])
	}
	if col < len(t.cols)-1 || t.cols[col].Right {
		if n := t.width(col, t.cells[start:]); n > t.widths[col] {
			t.widths[col] = n
		}
	}
	t.ends = append(t.ends, int32(len(t.cells)))
}

// release writes the held rows at the widths they need, and from then on
// rows go out as they come.
func (t *TableWriter) release() {
	ncol := len(t.cols)
	start := 0
	for r, st := range t.states {
		ends := t.ends[r*ncol : (r+1)*ncol]
		t.out = t.appendRow(t.out, start, ends, st)
		start = int(ends[ncol-1])
		t.flush(flushAt)
	}
	t.cells, t.ends, t.states = t.cells[:0], t.ends[:0], nil
	t.released = true
}

// appendRow appends one row whose cells end at ends (in t.cells, the first
// starting at start), padded to the columns' widths. A state's colour
// marks the state cell (st 0: the header, never coloured).
func (t *TableWriter) appendRow(out []byte, start int, ends []int32, st sock.State) []byte {
	colored := ""
	if t.opt.Color {
		colored = StateColor(st)
	}
	ncol := len(t.cols)
	for c, end := range ends {
		cell := t.cells[start:end]
		start = int(end)
		last := c == ncol-1
		right := t.cols[c].Right
		pad := 0
		if !last || right {
			pad = t.widths[c] - t.width(c, cell)
		}
		if right {
			out = appendSpaces(out, pad)
		}
		if c == t.stateCol && colored != "" {
			out = append(out, colored...)
			out = append(out, cell...)
			out = append(out, colorReset...)
		} else {
			out = append(out, cell...)
		}
		if !right && !last {
			out = appendSpaces(out, pad)
		}
		if !last {
			out = append(out, "  "...)
		}
	}
	return append(out, '\n')
}

// flush writes what is gathered once it reaches at bytes (0: whatever
// there is).
func (t *TableWriter) flush(at int) {
	if len(t.out) < max(at, 1) || t.err != nil {
		return
	}
	_, t.err = t.w.Write(t.out)
	t.out = t.out[:0]
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func appendSpaces(b []byte, n int) []byte {
	for ; n > 0; n-- {
		b = append(b, ' ')
	}
	return b
}

// AppendSummary appends the count of every state present, LISTEN,
// TIME_WAIT and CLOSE_WAIT always and first.
func AppendSummary(b []byte, entries []track.Entry, color bool) []byte {
	var counts [16]int
	for i := range entries {
		if st := entries[i].State; int(st) < len(counts) {
			counts[st]++
		}
	}
	return appendCounts(b, &counts, len(entries), color)
}

// appendCounts is AppendSummary of counts by state and their total.
func appendCounts(b []byte, counts *[16]int, total int, color bool) []byte {
	b = append(b, "Total: "...)
	b = strconv.AppendInt(b, int64(total), 10)
	first := []sock.State{sock.Listen, sock.TimeWait, sock.CloseWait}
	for _, st := range first {
		b = append(b, "  "...)
		if color {
			b = append(b, StateColor(st)...)
		}
		b = append(b, st.String()...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(counts[st]), 10)
		if color {
			b = append(b, colorReset...)
		}
	}
	for _, st := range sock.States {
		if st == sock.Listen || st == sock.TimeWait || st == sock.CloseWait || counts[st] == 0 {
			continue
		}
		b = append(b, "  "...)
		b = append(b, st.String()...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(counts[st]), 10)
	}
	return b
}

// AppendAgeOf appends an age alone, without the time left: ">=5s" for a
// socket older than the monitor, "-" when nothing is known yet.
func AppendAgeOf(b []byte, age time.Duration, src track.AgeSource) []byte {
	if src == track.AgeAtLeast {
		if age < time.Second {
			return append(b, '-')
		}
		b = append(b, ">="...)
	}
	return AppendDuration(b, age)
}

// SplitTimeWait rounds a TIME_WAIT entry's time left to a tenth of a
// second and derives the age from it, so the two shown add up to 60 s.
func SplitTimeWait(age, left time.Duration) (time.Duration, time.Duration) {
	if age+left != sock.TimeWaitLen {
		return age, left // a re-armed timer: show what the kernel says
	}
	left = (left + 50*time.Millisecond) / (100 * time.Millisecond) * (100 * time.Millisecond)
	return sock.TimeWaitLen - left, left
}

// AppendDuration appends d in the shortest readable form: "850ms", "12.3s",
// "4m05s", "2h03m", "3d04h".
func AppendDuration(b []byte, d time.Duration) []byte {
	switch {
	case d < 0:
		d = 0
		fallthrough
	case d < time.Second:
		b = strconv.AppendInt(b, d.Milliseconds(), 10)
		return append(b, "ms"...)
	case d < time.Minute-50*time.Millisecond:
		// Whole tenths, rounded half up, so that age and time left of a
		// TIME_WAIT entry add up to the 60 s they are.
		t := (d.Milliseconds() + 50) / 100
		b = strconv.AppendInt(b, t/10, 10)
		b = append(b, '.')
		b = strconv.AppendInt(b, t%10, 10)
		return append(b, 's')
	case d < time.Hour-500*time.Millisecond:
		secs := int64((d + 500*time.Millisecond) / time.Second)
		return appendPair(b, secs/60, 'm', secs%60, 's')
	case d < 24*time.Hour-30*time.Second:
		mins := int64((d + 30*time.Second) / time.Minute)
		return appendPair(b, mins/60, 'h', mins%60, 'm')
	}
	hours := int64((d + 30*time.Minute) / time.Hour)
	return appendPair(b, hours/24, 'd', hours%24, 'h')
}

// appendPair appends "4m05s"-style durations without fmt, which would
// allocate for every older socket of a large table.
func appendPair(b []byte, hi int64, hiUnit byte, lo int64, loUnit byte) []byte {
	b = strconv.AppendInt(b, hi, 10)
	b = append(b, hiUnit)
	if lo < 10 {
		b = append(b, '0')
	}
	b = strconv.AppendInt(b, lo, 10)
	return append(b, loUnit)
}

// appendTimer appends the running timer and when it fires, "-" for none.
func appendTimer(b []byte, s *track.Entry) []byte {
	if s.Timer == sock.TimerNone {
		return append(b, '-')
	}
	b = append(b, s.Timer.String()...)
	b = append(b, ' ')
	return AppendDuration(b, time.Duration(s.Expires)*time.Millisecond)
}

// AppendProcess appends "pid/command" as netstat -p shows it, "-" when
// unknown.
func AppendProcess(b []byte, e *track.Entry) []byte {
	if !e.HasProcess() {
		return append(b, '-')
	}
	b = strconv.AppendInt(b, int64(e.Process.PID), 10)
	b = append(b, '/')
	return AppendPrintable(b, e.Process.Command)
}

// AppendPrintable appends s with control characters and invalid UTF-8
// replaced by '?': a process chooses its own name, and a name holding an
// escape sequence must not reach the terminal.
func AppendPrintable(b []byte, s string) []byte {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			r = '?'
		}
		b = utf8.AppendRune(b, r)
	}
	return b
}
