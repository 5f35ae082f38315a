package render

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/nsfind"
	"github.com/sockscope/sockscope/pkg/procs"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

func TestParseColumns(t *testing.T) {
	cols, err := ParseColumns("state, Retrans,local")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cols {
		names = append(names, c.Name)
	}
	if want := []string{"state", "retrans", "local"}; !slices.Equal(names, want) {
		t.Errorf("columns %v, want %v in that order", names, want)
	}
	for _, tc := range []struct{ list, token string }{
		{"state,bogus", `"bogus"`},
		{"state,state", `"state" given twice`},
		{"state,,local", "empty"},
		{"", "empty"},
	} {
		if _, err := ParseColumns(tc.list); err == nil || !strings.Contains(err.Error(), tc.token) {
			t.Errorf("ParseColumns(%q): %v, want an error naming %s", tc.list, err, tc.token)
		}
	}
	for _, names := range [][]string{ListColumns, DashboardColumns} {
		MustColumns(names) // the defaults name real columns
	}
}

// fullEntry has a value for every key a column writes.
func fullEntry() track.Entry {
	return track.Entry{
		Socket: &sock.Socket{Cookie: 0xbeef, Local: sock.MustParseEndpoint("10.0.0.1:9000"),
			Peer: sock.MustParseEndpoint("10.0.0.2:40000"), IfIndex: 3, Expires: 41000, RecvQ: 1, SendQ: 2,
			UID: 1000, Inode: 77, Netns: 4026531840, Info: -1, Family: sock.IPv4, State: sock.TimeWait, Timer: sock.TimerTimeWait, Retrans: 4},
		Age: 19 * time.Second, AgeSource: track.AgeTimer,
		Process: &procs.Process{PID: 42, Command: "srv"},
	}
}

// JSON writes exactly the keys the columns declare, whatever a table
// shows, and every column has a cell for people.
func TestEveryColumnInJSONAndText(t *testing.T) {
	e := fullEntry()
	var got map[string]any
	if err := json.Unmarshal(AppendJSON(nil, &e), &got); err != nil {
		t.Fatalf("not JSON: %v: %s", err, AppendJSON(nil, &e))
	}
	var want []string
	for _, c := range Columns {
		want = append(want, c.Keys...)
		if text := c.Text(nil, &e); len(text) == 0 {
			t.Errorf("column %s has an empty cell", c.Name)
		}
		if c.Title == "" {
			t.Errorf("column %s has no title", c.Name)
		}
	}
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	slices.Sort(want)
	if !slices.Equal(keys, want) {
		t.Errorf("JSON keys %v, want the columns' %v", keys, want)
	}
	if got["retrans"] != 4.0 || got["left_ms"] != 41000.0 || got["command"] != "srv" {
		t.Errorf("JSON values: %v", got)
	}
}

// AppendJSON turns the first column's leading comma into the opening
// brace: that column must write for every entry, or the object breaks.
func TestFirstColumnAlwaysWrites(t *testing.T) {
	e := track.Entry{Socket: &sock.Socket{}} // nothing set: the columns that may skip, skip
	if b := Columns[0].JSON(nil, &e); len(b) == 0 || b[0] != ',' {
		t.Fatalf("the first column (%s) wrote %q for an empty entry", Columns[0].Name, b)
	}
	var v map[string]any
	if err := json.Unmarshal(AppendJSON(nil, &e), &v); err != nil {
		t.Errorf("an empty entry's JSON: %v: %s", err, AppendJSON(nil, &e))
	}
}

// A process name with runes wider than a byte lines up, wherever -o puts
// its column.
func TestTableWideProcessColumn(t *testing.T) {
	a, b := fullEntry(), fullEntry()
	a.Process.Command = "sérvér" // 6 runes, 8 bytes
	b.Process.Command = "srv"
	cols, err := ParseColumns("process,state")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := Table(&out, &track.View{Entries: []track.Entry{a, b}}, TableOptions{Columns: cols}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	col := func(l string) int { return len([]rune(l[:strings.Index(l, "TIME_WAIT")])) }
	if len(lines) != 2 || col(lines[0]) != col(lines[1]) {
		t.Errorf("State does not line up after a wide process name:\n%s", out.String())
	}
}

// -o picks and orders the columns of the table.
func TestTableChosenColumns(t *testing.T) {
	e := fullEntry()
	v := &track.View{Entries: []track.Entry{e}}
	cols, err := ParseColumns("retrans,state,local")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := Table(&b, v, TableOptions{Header: true, Columns: cols}); err != nil {
		t.Fatal(err)
	}
	want := "Retrans  State      Local\n" +
		"      4  TIME_WAIT  10.0.0.1:9000\n" +
		"Total: 1  LISTEN 0  TIME_WAIT 1  CLOSE_WAIT 0\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

// With names, the netns column shows who a namespace belongs to, and
// JSON carries its identity; a name from the host is escaped.
func TestNetnsColumnNamed(t *testing.T) {
	e := fullEntry()
	names := func(ino uint32) (*nsfind.Name, bool) {
		if ino != e.Netns {
			return nil, false
		}
		return &nsfind.Name{Label: "shop/cart-7d9\"x", Container: "0123abcd", Pod: "cart-7d9", PodNamespace: "shop"}, true
	}
	cols := WithNames(MustColumns([]string{"state", "local"}), names, true)
	if len(cols) != 3 || cols[0].Name != "netns" {
		t.Fatalf("WithNames added %v", cols)
	}
	if got := string(cols[0].Text(nil, &e)); got != `shop/cart-7d9"x` {
		t.Errorf("cell %q", got)
	}
	var buf bytes.Buffer
	if err := JSON(&buf, &track.View{Entries: []track.Entry{e}}, names); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Netns struct {
			Inode        uint32 `json:"inode"`
			Name         string `json:"name"`
			Container    string `json:"container"`
			Pod          string `json:"pod"`
			PodNamespace string `json:"pod_namespace"`
		} `json:"netns"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v: %s", err, buf.Bytes())
	}
	n := got.Netns
	if n.Inode != e.Netns || n.Name != `shop/cart-7d9"x` || n.Container != "0123abcd" || n.Pod != "cart-7d9" || n.PodNamespace != "shop" {
		t.Errorf("netns object %+v", n)
	}
	// Unnamed (one namespace read): the inode alone.
	if got := string(AppendJSON(nil, &e)); !strings.Contains(got, `"netns":{"inode":4026531840}`) {
		t.Errorf("unnamed JSON %s", got)
	}
}

// A number column aligns right wherever it is, last too; no row ends in
// spaces.
func TestRightAlignedLastColumn(t *testing.T) {
	cols, err := ParseColumns("local,recvq")
	if err != nil {
		t.Fatal(err)
	}
	small, big := fullEntry(), fullEntry()
	small.Socket.RecvQ, big.Socket.RecvQ = 7, 123456
	var b bytes.Buffer
	w := NewTableWriter(&b, TableOptions{Header: true, Columns: cols})
	if err := w.Write([]track.Entry{small, big}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	want := []string{
		"Local          Recv-Q",
		"10.0.0.1:9000       7",
		"10.0.0.1:9000  123456",
	}
	for i, w := range want {
		if i >= len(lines) || lines[i] != w {
			t.Errorf("line %d: %q, want %q\n%s", i, lines[min(i, len(lines)-1)], w, b.String())
		}
	}
}
