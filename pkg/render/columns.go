package render

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sockscope/sockscope/pkg/nsfind"
	"github.com/sockscope/sockscope/pkg/track"
)

// Column is one column of every output: the list table, the dashboard and
// JSON all walk Columns, as ss.c's columns[] serves all of ss's output.
// Adding a column is one entry here (and the golden files).
type Column struct {
	// Name is how -o/--columns names it.
	Name string
	// Title heads the column in the table and the dashboard.
	Title string
	// Right aligns the column right: numbers and durations.
	Right bool
	// Max is the widest the dashboard draws a cell (0: as wide as it is),
	// so that long IPv6 addresses and commands do not push the other
	// columns off an 80-column screen. The list table is never cut.
	Max int
	// Wide marks a column whose cells may hold any text (a process names
	// itself): the table counts their width in runes, not bytes.
	Wide bool
	// Ticks marks a column whose text changes with time between polls
	// (ages, time left, timers): the dashboard redraws it as the clock
	// moves.
	Ticks bool
	// Text appends the cell as people read it.
	Text func(b []byte, e *track.Entry) []byte
	// Keys are the JSON keys the column writes; JSON appends them, each as
	// ,"key":value (an entry may lack some: left_ms outside TIME_WAIT).
	Keys []string
	JSON func(b []byte, e *track.Entry) []byte
}

// Columns is every column, in the order JSON writes its keys.
var Columns = []*Column{
	{Name: "state", Title: "State",
		Text: func(b []byte, e *track.Entry) []byte { return append(b, e.State.String()...) },
		Keys: []string{"state"},
		JSON: func(b []byte, e *track.Entry) []byte { return appendKeyString(b, "state", e.State.String()) }},
	{Name: "family", Title: "Family",
		Text: func(b []byte, e *track.Entry) []byte { return append(b, e.Family.String()...) },
		Keys: []string{"family"},
		JSON: func(b []byte, e *track.Entry) []byte { return appendKeyString(b, "family", FamilyName(e.Family)) }},
	{Name: "local", Title: "Local", Max: 28,
		Text: func(b []byte, e *track.Entry) []byte { return e.Local.AppendTo(b) },
		Keys: []string{"local", "local_port"},
		JSON: func(b []byte, e *track.Entry) []byte {
			b = append(b, `,"local":"`...)
			b = e.Local.AppendTo(b)
			b = append(b, '"')
			return appendKeyUint(b, "local_port", uint64(e.Local.Port()))
		}},
	{Name: "peer", Title: "Peer", Max: 28,
		Text: func(b []byte, e *track.Entry) []byte { return e.Peer.AppendTo(b) },
		Keys: []string{"peer", "peer_port"},
		JSON: func(b []byte, e *track.Entry) []byte {
			b = append(b, `,"peer":"`...)
			b = e.Peer.AppendTo(b)
			b = append(b, '"')
			return appendKeyUint(b, "peer_port", uint64(e.Peer.Port()))
		}},
	{Name: "age", Title: "Age", Right: true, Ticks: true,
		Text: func(b []byte, e *track.Entry) []byte {
			age := e.Age
			if e.AgeSource == track.AgeTimer {
				age, _ = SplitTimeWait(e.Age, e.Left())
			}
			return AppendAgeOf(b, age, e.AgeSource)
		},
		Keys: []string{"age_ms", "age_exact", "age_source"},
		JSON: func(b []byte, e *track.Entry) []byte {
			b = appendKeyInt(b, "age_ms", e.Age.Milliseconds())
			b = append(b, `,"age_exact":`...)
			b = strconv.AppendBool(b, e.AgeSource != track.AgeAtLeast)
			return appendKeyString(b, "age_source", e.AgeSource.String())
		}},
	{Name: "left", Title: "Left", Right: true, Ticks: true,
		Text: func(b []byte, e *track.Entry) []byte {
			if e.AgeSource != track.AgeTimer {
				return append(b, '-')
			}
			_, left := SplitTimeWait(e.Age, e.Left())
			return AppendDuration(b, left)
		},
		Keys: []string{"left_ms"},
		JSON: func(b []byte, e *track.Entry) []byte {
			if e.AgeSource != track.AgeTimer {
				return b
			}
			return appendKeyInt(b, "left_ms", int64(e.Left()/time.Millisecond))
		}},
	{Name: "timer", Title: "Timer", Ticks: true,
		Text: func(b []byte, e *track.Entry) []byte { return appendTimer(b, e) },
		Keys: []string{"expires_ms", "timer"},
		JSON: func(b []byte, e *track.Entry) []byte {
			b = appendKeyUint(b, "expires_ms", uint64(e.Expires))
			return appendKeyString(b, "timer", e.Timer.String())
		}},
	{Name: "retrans", Title: "Retrans", Right: true,
		Text: func(b []byte, e *track.Entry) []byte { return strconv.AppendUint(b, uint64(e.Retrans), 10) },
		Keys: []string{"retrans"},
		JSON: func(b []byte, e *track.Entry) []byte { return appendKeyUint(b, "retrans", uint64(e.Retrans)) }},
	{Name: "recvq", Title: "Recv-Q", Right: true,
		Text: func(b []byte, e *track.Entry) []byte { return strconv.AppendUint(b, uint64(e.RecvQ), 10) },
		Keys: []string{"recv_q"},
		JSON: func(b []byte, e *track.Entry) []byte { return appendKeyUint(b, "recv_q", uint64(e.RecvQ)) }},
	{Name: "sendq", Title: "Send-Q", Right: true,
		Text: func(b []byte, e *track.Entry) []byte { return strconv.AppendUint(b, uint64(e.SendQ), 10) },
		Keys: []string{"send_q"},
		JSON: func(b []byte, e *track.Entry) []byte { return appendKeyUint(b, "send_q", uint64(e.SendQ)) }},
	{Name: "uid", Title: "UID", Right: true,
		Text: func(b []byte, e *track.Entry) []byte { return strconv.AppendUint(b, uint64(e.UID), 10) },
		Keys: []string{"uid"},
		JSON: func(b []byte, e *track.Entry) []byte { return appendKeyUint(b, "uid", uint64(e.UID)) }},
	{Name: "inode", Title: "Inode", Right: true,
		Text: func(b []byte, e *track.Entry) []byte { return strconv.AppendUint(b, uint64(e.Inode), 10) },
		Keys: []string{"inode"},
		JSON: func(b []byte, e *track.Entry) []byte { return appendKeyUint(b, "inode", uint64(e.Inode)) }},
	{Name: "dev", Title: "Dev", Right: true,
		Text: func(b []byte, e *track.Entry) []byte {
			if e.IfIndex == 0 {
				return append(b, '-')
			}
			return strconv.AppendUint(b, uint64(e.IfIndex), 10)
		},
		Keys: []string{"ifindex"},
		JSON: func(b []byte, e *track.Entry) []byte {
			if e.IfIndex == 0 {
				return b
			}
			return appendKeyUint(b, "ifindex", uint64(e.IfIndex))
		}},
	{Name: "cookie", Title: "Cookie",
		Text: func(b []byte, e *track.Entry) []byte {
			b = append(b, "0x"...)
			return strconv.AppendUint(b, e.Cookie, 16)
		},
		Keys: []string{"cookie"},
		JSON: func(b []byte, e *track.Entry) []byte {
			b = append(b, `,"cookie":"0x`...)
			b = strconv.AppendUint(b, e.Cookie, 16)
			return append(b, '"')
		}},
	netnsColumn(nil),
	{Name: "process", Title: "Process", Max: 24, Wide: true,
		Text: AppendProcess,
		Keys: []string{"pid", "command"},
		JSON: func(b []byte, e *track.Entry) []byte {
			if !e.HasProcess() {
				return b
			}
			b = appendKeyInt(b, "pid", int64(e.Process.PID))
			b = append(b, `,"command":`...)
			return appendJSONString(b, e.Process.Command)
		}},
}

// netnsColumn is the namespace a socket lives in. Without names (one
// namespace read) the cell is its inode and JSON says only that; with
// them, its name, and JSON who it belongs to.
func netnsColumn(names nsfind.Names) *Column {
	lookup := func(e *track.Entry) *nsfind.Name {
		if names == nil {
			return nil
		}
		n, _ := names(e.Netns)
		return n
	}
	return &Column{Name: "netns", Title: "Netns", Max: 20, Wide: true,
		Text: func(b []byte, e *track.Entry) []byte {
			if n := lookup(e); n != nil {
				return AppendPrintable(b, n.Label)
			}
			if e.Netns == 0 {
				return append(b, '-')
			}
			return strconv.AppendUint(b, uint64(e.Netns), 10)
		},
		Keys: []string{"netns"},
		JSON: func(b []byte, e *track.Entry) []byte {
			n := lookup(e)
			if n == nil && e.Netns == 0 {
				return b
			}
			b = append(b, `,"netns":{"inode":`...)
			b = strconv.AppendUint(b, uint64(e.Netns), 10)
			if n != nil {
				b = appendKeyJSON(b, "name", n.Label)
				b = appendKeyJSON(b, "container", n.Container)
				b = appendKeyJSON(b, "pod", n.Pod)
				b = appendKeyJSON(b, "pod_namespace", n.PodNamespace)
			}
			return append(b, '}')
		}}
}

// NetnsColumn is the netns column naming namespaces by names: what a
// command that reads many namespaces shows.
func NetnsColumn(names nsfind.Names) *Column { return netnsColumn(names) }

// WithNames returns cols with the netns column named by names, and with
// that column first when cols lacks it and add is set.
func WithNames(cols []*Column, names nsfind.Names, add bool) []*Column {
	named := NetnsColumn(names)
	out := make([]*Column, 0, len(cols)+1)
	found := false
	for _, c := range cols {
		if c.Name == "netns" {
			c, found = named, true
		}
		out = append(out, c)
	}
	if !found && add {
		out = append([]*Column{named}, out...)
	}
	return out
}

// appendKeyJSON appends ,"key":"v" with v escaped (names come from the
// host: ip netns names and mount paths may hold any bytes); nothing when v
// is empty.
func appendKeyJSON(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return appendJSONString(b, v)
}

// ProcessColumn is the column -p adds.
var ProcessColumn = MustColumns([]string{"process"})[0]

// The default columns of the list table and of the dashboard, without the
// process column, which -p (and the dashboard's p key) adds at the end.
var (
	ListColumns      = []string{"state", "recvq", "sendq", "local", "peer", "age", "left", "timer"}
	DashboardColumns = []string{"state", "local", "peer", "age", "left", "timer", "recvq", "sendq"}
)

// ColumnNames lists every column's name, for help and completion.
func ColumnNames() []string {
	names := make([]string, len(Columns))
	for i, c := range Columns {
		names[i] = c.Name
	}
	return names
}

// Lookup returns the column called name.
func Lookup(name string) (*Column, bool) {
	for _, c := range Columns {
		if c.Name == name {
			return c, true
		}
	}
	return nil, false
}

// ParseColumns reads a comma-separated list of column names, as ps -o and
// lsblk -o take it. An unknown or repeated name is an error naming it.
func ParseColumns(list string) ([]*Column, error) {
	var cols []*Column
	seen := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		c, ok := Lookup(name)
		switch {
		case name == "":
			return nil, fmt.Errorf("an empty column name in %q", list)
		case !ok:
			return nil, fmt.Errorf("unknown column %q (want %s)", name, strings.Join(ColumnNames(), ", "))
		case seen[name]:
			return nil, fmt.Errorf("column %q given twice", name)
		}
		seen[name] = true
		cols = append(cols, c)
	}
	return cols, nil
}

// MustColumns returns the named columns; the names are this package's own
// defaults, so a bad one is a bug.
func MustColumns(names []string) []*Column {
	cols, err := ParseColumns(strings.Join(names, ","))
	if err != nil {
		panic(err)
	}
	return cols
}

func appendKeyString(b []byte, key, v string) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":"`...)
	b = append(b, v...)
	return append(b, '"')
}

func appendKeyUint(b []byte, key string, v uint64) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return strconv.AppendUint(b, v, 10)
}

func appendKeyInt(b []byte, key string, v int64) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return strconv.AppendInt(b, v, 10)
}
