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
	cols := opt.columns()
	ncol := len(cols)
	// Render every cell once into one buffer, remembering where each ends,
	// then pad while copying: two passes, one allocation per growth.
	cells := make([]byte, 0, 96*len(v.Entries))
	ends := make([]int, 0, ncol*(len(v.Entries)+1))
	widths := make([]int, ncol)
	// A cell's width is its length but in a Wide column (a process name),
	// whose runes are counted; the last column is never padded, so its
	// width is not needed.
	width := func(col int, cell []byte) int {
		if cols[col].Wide {
			return utf8.RuneCount(cell)
		}
		return len(cell)
	}
	add := func(col int) {
		start := 0
		if len(ends) > 0 {
			start = ends[len(ends)-1]
		}
		if col < ncol-1 {
			if n := width(col, cells[start:]); n > widths[col] {
				widths[col] = n
			}
		}
		ends = append(ends, len(cells))
	}
	stateCol := slices.IndexFunc(cols, func(c *Column) bool { return c.Name == "state" })
	if opt.Header {
		for c, col := range cols {
			cells = append(cells, col.Title...)
			add(c)
		}
	}
	for i := range v.Entries {
		e := &v.Entries[i]
		for c, col := range cols {
			cells = col.Text(cells, e)
			add(c)
		}
	}

	out := make([]byte, 0, len(cells)+len(ends)*4+256)
	start := 0
	rows := len(ends) / ncol
	for r := range rows {
		colored := ""
		if opt.Color && !(opt.Header && r == 0) {
			colored = StateColor(v.Entries[r-boolInt(opt.Header)].State)
		}
		for c := range ncol {
			end := ends[r*ncol+c]
			cell := cells[start:end]
			start = end
			last := c == ncol-1
			pad := 0
			if !last {
				pad = widths[c] - width(c, cell)
			}
			right := cols[c].Right
			if right {
				out = appendSpaces(out, pad)
			}
			if c == stateCol && colored != "" {
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
		out = append(out, '\n')
	}
	if opt.Header {
		out = AppendSummary(out, v.Entries, opt.Color)
		out = append(out, '\n')
	}
	_, err := w.Write(out)
	return err
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
	b = append(b, "Total: "...)
	b = strconv.AppendInt(b, int64(len(entries)), 10)
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
