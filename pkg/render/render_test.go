package render

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sockscope/sockscope/pkg/procs"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/render")

const goldenDir = "../../testdata/render"

// sampleView is a hand-made view covering the states, age sources and
// timers a table shows; no kernel involved.
func sampleView() *track.View {
	ap := sock.MustParseEndpoint
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	return &track.View{
		Time: now,
		Entries: []track.Entry{
			{
				Socket: &sock.Socket{Cookie: 0x1a, Local: ap("0.0.0.0:9000"), Peer: ap("0.0.0.0:0"),
					RecvQ: 0, SendQ: 4096, UID: 1000, Inode: 31337, Info: -1,
					Family: sock.IPv4, State: sock.Listen},
				Age: 0, AgeSource: track.AgeAtLeast, // "-": nothing known yet
				Process: &procs.Process{PID: 4242, Command: "server"},
			},
			{
				Socket: &sock.Socket{Cookie: 0x1b, Local: ap("[::]:9000"), Peer: ap("[::]:0"),
					RecvQ: 0, SendQ: 128, UID: 1000, Inode: 31338, Info: -1,
					Family: sock.IPv6, State: sock.Listen},
				Age: 2*time.Hour + 3*time.Minute, AgeSource: track.AgeAtLeast,
			},
			{
				Socket: &sock.Socket{Cookie: 0xdeadbeefcafe, Local: ap("10.0.0.1:9000"), Peer: ap("10.0.0.2:51234"),
					Expires: 55400, Info: -1,
					Family: sock.IPv4, State: sock.TimeWait, Timer: sock.TimerTimeWait},
				Age: 4600 * time.Millisecond, AgeSource: track.AgeTimer,
			},
			{
				Socket: &sock.Socket{Cookie: 0xffffffffffffffff, Local: ap("[2001:db8::1]:9000"), Peer: ap("[2001:db8::2]:40000"),
					Expires: 1250, Info: -1,
					Family: sock.IPv6, State: sock.TimeWait, Timer: sock.TimerTimeWait},
				Age: 58750 * time.Millisecond, AgeSource: track.AgeTimer,
			},
			{
				Socket: &sock.Socket{Cookie: 0x2c, Local: ap("192.168.1.10:9000"), Peer: ap("192.168.1.77:43210"),
					Expires: 7_200_000, RecvQ: 17, SendQ: 123456, UID: 33, Inode: 44001, Info: -1,
					Family: sock.IPv4, State: sock.Established, Timer: sock.TimerKeepalive},
				Age: 3*time.Minute + 5*time.Second, AgeSource: track.AgeFirstSeen,
			},
			{
				Socket: &sock.Socket{Cookie: 0x2d, Local: ap("127.0.0.1:9000"), Peer: ap("127.0.0.1:60001"),
					RecvQ: 1, UID: 33, Inode: 44002, Info: -1,
					Family: sock.IPv4, State: sock.CloseWait},
				Age: 2*time.Hour + 3*time.Minute, AgeSource: track.AgeAtLeast,
			},
			{
				Socket: &sock.Socket{Cookie: 0x2e, Local: ap("[::1]:9000"), Peer: ap("[::1]:60002"),
					Expires: 42000, UID: 33, Inode: 44003, Retrans: 2, Info: -1,
					Family: sock.IPv6, State: sock.FinWait2, Timer: sock.TimerKeepalive},
				Age: 850 * time.Millisecond, AgeSource: track.AgeFirstSeen,
			},
		},
	}
}

func renderTable(t testing.TB, v *track.View, opt TableOptions) string {
	t.Helper()
	var buf bytes.Buffer
	if err := Table(&buf, v, opt); err != nil {
		t.Fatalf("Table: %v", err)
	}
	return buf.String()
}

// firstDiff describes the first line where want and got differ.
func firstDiff(want, got string) string {
	wl := strings.Split(want, "\n")
	gl := strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g || i >= len(wl) || i >= len(gl) {
			return fmt.Sprintf("line %d:\nwant %q\ngot  %q", i+1, w, g)
		}
	}
	return "(no difference)"
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(goldenDir, name)
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (go test -update rewrites it):\n%s", path, firstDiff(string(want), got))
	}
}

var tableCases = []struct {
	golden string
	opt    TableOptions
}{
	{"table-header-processes.golden", TableOptions{Header: true, Processes: true}},
	{"table-header.golden", TableOptions{Header: true}},
	{"table-noheader.golden", TableOptions{}},
}

func TestTableGolden(t *testing.T) {
	for _, tc := range tableCases {
		t.Run(tc.golden, func(t *testing.T) {
			got := renderTable(t, sampleView(), tc.opt)
			checkTableShape(t, got, tc.opt)
			checkGolden(t, tc.golden, got)
		})
	}
}

// checkTableShape checks, independently of the golden files, that the rows
// line up: no trailing whitespace, every row has the same number of
// columns, each column's cells start (left-aligned) or end (right-aligned)
// at the same rune offset, and columns are separated by exactly two spaces
// of gap (at least two for padded ones).
func checkTableShape(t *testing.T, out string, opt TableOptions) {
	t.Helper()
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("output does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for i, l := range lines {
		if strings.TrimRight(l, " \t") != l {
			t.Errorf("line %d has trailing whitespace: %q", i+1, l)
		}
	}
	v := sampleView()
	rows := lines
	if opt.Header {
		if len(lines) != len(v.Entries)+2 {
			t.Fatalf("got %d lines, want header + %d rows + summary", len(lines), len(v.Entries))
		}
		rows = lines[:len(lines)-1]
	} else if len(lines) != len(v.Entries) {
		t.Fatalf("got %d lines, want %d rows", len(lines), len(v.Entries))
	}
	cols := opt.columns()
	ncol := len(cols)
	// Rebuild each row's cells independently of Table's layout and check
	// where they land in the rendered line.
	cellsOf := func(r int) []string {
		var c []string
		for _, col := range cols {
			if opt.Header && r == 0 {
				c = append(c, col.Title)
			} else {
				c = append(c, string(col.Text(nil, &v.Entries[r-boolInt(opt.Header)])))
			}
		}
		return c
	}
	widths := make([]int, ncol)
	for r := range rows {
		for c, s := range cellsOf(r) {
			widths[c] = max(widths[c], utf8.RuneCountInString(s))
		}
	}
	for r, line := range rows {
		var want strings.Builder
		for c, s := range cellsOf(r) {
			pad := strings.Repeat(" ", widths[c]-utf8.RuneCountInString(s))
			last := c == ncol-1
			if cols[c].Right {
				want.WriteString(pad + s)
			} else if last {
				want.WriteString(s)
			} else {
				want.WriteString(s + pad)
			}
			if !last {
				want.WriteString("  ")
			}
		}
		if line != want.String() {
			t.Errorf("row %d is not aligned as expected:\nwant %q\ngot  %q", r+1, want.String(), line)
		}
	}
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

func TestTableColor(t *testing.T) {
	for _, tc := range tableCases {
		t.Run(tc.golden, func(t *testing.T) {
			v := sampleView()
			plain := renderTable(t, v, tc.opt)
			opt := tc.opt
			opt.Color = true
			colored := renderTable(t, v, opt)
			if got := ansi.ReplaceAllString(colored, ""); got != plain {
				t.Errorf("colour changes the text (or the alignment):\n%s", firstDiff(plain, got))
			}
			lines := strings.Split(strings.TrimSuffix(colored, "\n"), "\n")
			rows := lines
			if tc.opt.Header {
				if ansi.MatchString(lines[0]) {
					t.Errorf("header row is coloured: %q", lines[0])
				}
				rows = lines[1 : len(lines)-1]
			}
			for i, line := range rows {
				e := &v.Entries[i]
				code := map[sock.State]string{
					sock.Listen:    "\x1b[32m",
					sock.TimeWait:  "\x1b[33m",
					sock.CloseWait: "\x1b[31m",
				}[e.State]
				if code == "" {
					if ansi.MatchString(line) {
						t.Errorf("row %d (%v) is coloured: %q", i+1, e.State, line)
					}
					continue
				}
				wantPrefix := code + e.State.String() + "\x1b[0m"
				if !strings.HasPrefix(line, wantPrefix) {
					t.Errorf("row %d (%v): want prefix %q, got %q", i+1, e.State, wantPrefix, line)
				}
				if n := len(ansi.FindAllString(line, -1)); n != 2 {
					t.Errorf("row %d (%v): %d ANSI codes, want 2 (state cell only): %q", i+1, e.State, n, line)
				}
			}
			if tc.opt.Header {
				sum := lines[len(lines)-1]
				for _, want := range []string{"\x1b[32mLISTEN 2\x1b[0m", "\x1b[33mTIME_WAIT 2\x1b[0m", "\x1b[31mCLOSE_WAIT 1\x1b[0m"} {
					if !strings.Contains(sum, want) {
						t.Errorf("coloured summary %q lacks %q", sum, want)
					}
				}
			}
		})
	}
}

func TestSummary(t *testing.T) {
	v := sampleView()
	lines := strings.Split(strings.TrimSuffix(renderTable(t, v, TableOptions{Header: true}), "\n"), "\n")
	const want = "Total: 7  LISTEN 2  TIME_WAIT 2  CLOSE_WAIT 1  ESTABLISHED 1  FIN_WAIT2 1"
	if got := lines[len(lines)-1]; got != want {
		t.Errorf("summary line:\nwant %q\ngot  %q", want, got)
	}

	mk := func(states ...sock.State) []track.Entry {
		es := make([]track.Entry, len(states))
		for i, s := range states {
			es[i].Socket = &sock.Socket{State: s}
		}
		return es
	}
	for _, tc := range []struct {
		entries []track.Entry
		want    string
	}{
		{nil, "Total: 0  LISTEN 0  TIME_WAIT 0  CLOSE_WAIT 0"},
		{mk(sock.Established), "Total: 1  LISTEN 0  TIME_WAIT 0  CLOSE_WAIT 0  ESTABLISHED 1"},
		// Other states follow in kernel order, whatever order they come in.
		{
			mk(sock.Closing, sock.LastAck, sock.Close, sock.FinWait1, sock.SynRecv, sock.SynSent,
				sock.Established, sock.FinWait2, sock.Closing, sock.Listen),
			"Total: 10  LISTEN 1  TIME_WAIT 0  CLOSE_WAIT 0  ESTABLISHED 1  SYN_SENT 1  SYN_RECV 1" +
				"  FIN_WAIT1 1  FIN_WAIT2 1  CLOSE 1  LAST_ACK 1  CLOSING 2",
		},
	} {
		if got := string(AppendSummary(nil, tc.entries, false)); got != tc.want {
			t.Errorf("AppendSummary:\nwant %q\ngot  %q", tc.want, got)
		}
		colored := string(AppendSummary(nil, tc.entries, true))
		if got := ansi.ReplaceAllString(colored, ""); got != tc.want {
			t.Errorf("AppendSummary with colour, stripped:\nwant %q\ngot  %q", tc.want, got)
		}
	}
}

func TestTableEmpty(t *testing.T) {
	v := &track.View{}
	if got := renderTable(t, v, TableOptions{}); got != "" {
		t.Errorf("empty view without header: got %q, want nothing", got)
	}
	const want = "State  Recv-Q  Send-Q  Local  Peer  Age  Left  Timer  Process\n" +
		"Total: 0  LISTEN 0  TIME_WAIT 0  CLOSE_WAIT 0\n"
	if got := renderTable(t, v, TableOptions{Header: true, Processes: true, Color: true}); ansi.ReplaceAllString(got, "") != want {
		t.Errorf("empty view with header:\nwant %q\ngot  %q", want, got)
	}
}

func TestAppendDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0ms"},
		{time.Millisecond, "1ms"},
		{850 * time.Millisecond, "850ms"},
		{999*time.Millisecond + 999*time.Microsecond, "999ms"}, // truncated, not rounded
		{time.Second, "1.0s"},
		{12340 * time.Millisecond, "12.3s"},
		{59900 * time.Millisecond, "59.9s"},
		// Rounds up to one decimal: a duration under a minute prints as
		// "60.0s" rather than "59.9s" or "1m00s". Documented as found.
		{59960 * time.Millisecond, "1m00s"},
		{59940 * time.Millisecond, "59.9s"},
		{1050 * time.Millisecond, "1.1s"},
		{1150 * time.Millisecond, "1.2s"},
		{59*time.Minute + 59600*time.Millisecond, "1h00m"},
		{time.Minute, "1m00s"},
		{4*time.Minute + 5*time.Second, "4m05s"},
		{59*time.Minute + 59*time.Second, "59m59s"},
		{time.Hour, "1h00m"},
		{2*time.Hour + 3*time.Minute, "2h03m"},
		{23*time.Hour + 59*time.Minute, "23h59m"},
		{24 * time.Hour, "1d00h"},
		{3*24*time.Hour + 4*time.Hour, "3d04h"},
		{-time.Second, "0ms"},
		{-1, "0ms"},
	} {
		if got := string(AppendDuration(nil, tc.d)); got != tc.want {
			t.Errorf("AppendDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	// Appends, does not overwrite.
	if got := string(AppendDuration([]byte("x="), 850*time.Millisecond)); got != "x=850ms" {
		t.Errorf("AppendDuration onto a prefix = %q", got)
	}
}

// The age and left columns: a TIME_WAIT entry's two add up to its 60 s.
func TestAgeAndLeftColumns(t *testing.T) {
	age, _ := Lookup("age")
	left, _ := Lookup("left")
	for _, tc := range []struct {
		e         track.Entry
		expires   uint32 // the TIME_WAIT timer, ms
		age, left string
	}{
		{track.Entry{Age: 4600 * time.Millisecond, AgeSource: track.AgeTimer}, 55400, "4.6s", "55.4s"},
		{track.Entry{Age: 4640 * time.Millisecond, AgeSource: track.AgeTimer}, 55360, "4.6s", "55.4s"},
		{track.Entry{Age: 3*time.Minute + 5*time.Second, AgeSource: track.AgeFirstSeen}, 0, "3m05s", "-"},
		{track.Entry{Age: 0, AgeSource: track.AgeFirstSeen}, 0, "0ms", "-"},
		{track.Entry{Age: 0, AgeSource: track.AgeAtLeast}, 0, "-", "-"},
		{track.Entry{Age: 999 * time.Millisecond, AgeSource: track.AgeAtLeast}, 0, "-", "-"},
		{track.Entry{Age: time.Second, AgeSource: track.AgeAtLeast}, 0, ">=1.0s", "-"},
		{track.Entry{Age: 2*time.Hour + 3*time.Minute, AgeSource: track.AgeAtLeast}, 0, ">=2h03m", "-"},
	} {
		tc.e.Socket = &sock.Socket{}
		if tc.expires > 0 {
			tc.e.Socket = &sock.Socket{State: sock.TimeWait, Timer: sock.TimerTimeWait, Expires: tc.expires}
		}
		if got := string(age.Text(nil, &tc.e)); got != tc.age {
			t.Errorf("age of (%v, %v) = %q, want %q", tc.e.AgeSource, tc.e.Age, got, tc.age)
		}
		if got := string(left.Text(nil, &tc.e)); got != tc.left {
			t.Errorf("left of (%v, %v) = %q, want %q", tc.e.AgeSource, tc.e.Left(), got, tc.left)
		}
	}
}

func TestAppendProcess(t *testing.T) {
	e := track.Entry{}
	if got := string(AppendProcess(nil, &e)); got != "-" {
		t.Errorf("unknown process: %q, want \"-\"", got)
	}
	e.Process = &procs.Process{PID: 4242, Command: "server"}
	if got := string(AppendProcess(nil, &e)); got != "4242/server" {
		t.Errorf("known process: %q, want \"4242/server\"", got)
	}
}

func parseJSONLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("JSON output does not end in a newline: %q", out)
	}
	var objs []map[string]any
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("line %d is not valid JSON: %q", i+1, line)
		}
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(line))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("line %d: %v: %q", i+1, err, line)
		}
		objs = append(objs, m)
	}
	return objs
}

func TestJSON(t *testing.T) {
	v := sampleView()
	var buf bytes.Buffer
	if err := JSON(&buf, v, nil); err != nil {
		t.Fatal(err)
	}
	objs := parseJSONLines(t, buf.String())
	if len(objs) != len(v.Entries) {
		t.Fatalf("%d JSON lines, want %d", len(objs), len(v.Entries))
	}
	required := []string{"state", "family", "local", "peer", "local_port", "peer_port",
		"age_ms", "age_exact", "age_source", "expires_ms", "timer", "retrans",
		"recv_q", "send_q", "uid", "inode", "cookie"}
	num := func(m map[string]any, k string) uint64 {
		t.Helper()
		n, ok := m[k].(json.Number)
		if !ok {
			t.Errorf("%s = %#v, want a number", k, m[k])
			return 0
		}
		u, err := strconv.ParseUint(n.String(), 10, 64)
		if err != nil {
			t.Errorf("%s = %s: %v", k, n, err)
		}
		return u
	}
	for i, m := range objs {
		e := &v.Entries[i]
		for _, k := range required {
			if _, ok := m[k]; !ok {
				t.Errorf("entry %d lacks %q: %v", i, k, m)
			}
		}
		str := func(k, want string) {
			t.Helper()
			if got, ok := m[k].(string); !ok || got != want {
				t.Errorf("entry %d: %s = %#v, want %q", i, k, m[k], want)
			}
		}
		str("state", e.State.String())
		str("family", map[sock.Family]string{sock.IPv4: "ipv4", sock.IPv6: "ipv6"}[e.Family])
		str("age_source", e.AgeSource.String())
		str("timer", e.Timer.String())
		str("cookie", "0x"+strconv.FormatUint(e.Cookie, 16))
		if c, _ := m["cookie"].(string); c != strings.ToLower(c) {
			t.Errorf("entry %d: cookie %q is not lower case", i, c)
		}
		// Addresses: local/peer are address:port, IPv6 in brackets.
		local, _ := m["local"].(string)
		peer, _ := m["peer"].(string)
		str("local", e.Local.String())
		str("peer", e.Peer.String())
		if e.Family == sock.IPv6 {
			if !strings.HasPrefix(local, "[") || !strings.HasPrefix(peer, "[") {
				t.Errorf("entry %d: IPv6 addresses not bracketed: %q %q", i, local, peer)
			}
		}
		for _, a := range []string{local, peer} {
			if _, err := netip.ParseAddrPort(a); err != nil {
				t.Errorf("entry %d: %q does not parse back: %v", i, a, err)
			}
		}
		if got := num(m, "local_port"); got != uint64(e.Local.Port()) {
			t.Errorf("entry %d: local_port %d, want %d", i, got, e.Local.Port())
		}
		if got := num(m, "peer_port"); got != uint64(e.Peer.Port()) {
			t.Errorf("entry %d: peer_port %d, want %d", i, got, e.Peer.Port())
		}
		for k, want := range map[string]uint64{
			"age_ms":     uint64(e.Age.Milliseconds()),
			"expires_ms": uint64(e.Expires),
			"retrans":    uint64(e.Retrans),
			"recv_q":     uint64(e.RecvQ),
			"send_q":     uint64(e.SendQ),
			"uid":        uint64(e.UID),
			"inode":      uint64(e.Inode),
		} {
			if got := num(m, k); got != want {
				t.Errorf("entry %d: %s = %d, want %d", i, k, got, want)
			}
		}
		if got, ok := m["age_exact"].(bool); !ok || got != (e.AgeSource != track.AgeAtLeast) {
			t.Errorf("entry %d (%v): age_exact = %#v", i, e.AgeSource, m["age_exact"])
		}
		_, hasLeft := m["left_ms"]
		if hasLeft != (e.AgeSource == track.AgeTimer) {
			t.Errorf("entry %d (%v): left_ms present = %v", i, e.AgeSource, hasLeft)
		}
		if hasLeft {
			if got := num(m, "left_ms"); got != uint64(e.Left().Milliseconds()) {
				t.Errorf("entry %d: left_ms = %d, want %d", i, got, e.Left().Milliseconds())
			}
		}
		_, hasPID := m["pid"]
		_, hasCmd := m["command"]
		if hasPID != e.HasProcess() || hasCmd != e.HasProcess() {
			t.Errorf("entry %d: pid present %v, command present %v, process known %v", i, hasPID, hasCmd, e.HasProcess())
		}
		if e.HasProcess() {
			if got := num(m, "pid"); got != uint64(e.Process.PID) {
				t.Errorf("entry %d: pid = %d, want %d", i, got, e.Process.PID)
			}
			str("command", e.Process.Command)
		}
		if _, ok := m["ifindex"]; ok {
			t.Errorf("entry %d: ifindex present though IfIndex is 0", i)
		}
	}
	// ifindex appears only when set.
	e := v.Entries[4]
	e.IfIndex = 3
	var got map[string]any
	if err := json.Unmarshal(AppendJSON(nil, &e), &got); err != nil {
		t.Fatal(err)
	}
	if got["ifindex"] != float64(3) {
		t.Errorf("ifindex = %#v, want 3", got["ifindex"])
	}
}

func TestJSONCommandEscaping(t *testing.T) {
	for _, tc := range []struct {
		cmd, want string
	}{
		{"server", "server"},
		{`say "hi"`, `say "hi"`},
		{`back\slash`, `back\slash`},
		{"line\nbreak\r\ttab", "line\nbreak\r\ttab"},
		{"ctl\x01\x1f\x00end", "ctl\x01\x1f\x00end"},
		{"del\x7f", "del\x7f"},
		{"héllo-世界-🙂", "héllo-世界-🙂"},
		{"\u2028\u2029", "\u2028\u2029"},
		{"bad\xffbyte", "bad\uFFFDbyte"},
		{"trunc\xe4\xb8", "trunc\uFFFD\uFFFD"},
		{"all\"\\\n\x01é\xfe", "all\"\\\n\x01é\uFFFD"},
	} {
		e := track.Entry{Socket: &sock.Socket{}, Process: &procs.Process{PID: 7, Command: tc.cmd}}
		e.Local = sock.MustParseEndpoint("1.2.3.4:5")
		e.Peer = sock.MustParseEndpoint("6.7.8.9:10")
		line := AppendJSON(nil, &e)
		if !json.Valid(line) {
			t.Errorf("command %q: invalid JSON %q", tc.cmd, line)
			continue
		}
		if bytes.ContainsAny(line, "\n\r") {
			t.Errorf("command %q: raw line break in %q", tc.cmd, line)
		}
		if !utf8.Valid(line) {
			t.Errorf("command %q: output is not valid UTF-8: %q", tc.cmd, line)
		}
		var m struct {
			Command string `json:"command"`
		}
		if err := json.Unmarshal(line, &m); err != nil {
			t.Errorf("command %q: %v", tc.cmd, err)
			continue
		}
		if m.Command != tc.want {
			t.Errorf("command %q round-trips to %q, want %q", tc.cmd, m.Command, tc.want)
		}
	}
}

// bigView is n synthetic entries with a realistic mix of states.
func bigView(n int) *track.View {
	v := &track.View{Snapshot: &sock.Snapshot{Sockets: make([]sock.Socket, n)}, Entries: make([]track.Entry, n)}
	states := []sock.State{sock.Established, sock.TimeWait, sock.Listen, sock.CloseWait, sock.FinWait2}
	for i := range v.Entries {
		e := &v.Entries[i]
		e.Socket = &v.Snapshot.Sockets[i]
		e.Cookie = uint64(i)*0x9e3779b97f4a7c15 + 1
		e.State = states[i%len(states)]
		e.Info = -1
		a := [4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}
		if i%3 == 0 {
			e.Family = sock.IPv6
			var a6 [16]byte
			a6[0], a6[1], a6[13], a6[14], a6[15] = 0x20, 0x01, byte(i>>16), byte(i>>8), byte(i)
			e.Local = sock.Endpoint16(a6, 443)
			a6[12] = 1
			e.Peer = sock.Endpoint16(a6, uint16(1024+i%60000))
		} else {
			e.Family = sock.IPv4
			e.Local = sock.Endpoint4(a, 443)
			a[0] = 172
			e.Peer = sock.Endpoint4(a, uint16(1024+i%60000))
		}
		e.RecvQ, e.SendQ = uint32(i%100), uint32(i%5000)
		e.UID, e.Inode = 1000, uint32(100000+i)
		switch e.State {
		case sock.TimeWait:
			e.Timer, e.Expires = sock.TimerTimeWait, uint32(i%60000)
			e.Age, e.AgeSource = sock.TimeWaitLen-time.Duration(e.Expires)*time.Millisecond, track.AgeTimer
			e.Inode = 0
		case sock.Established:
			e.Timer, e.Expires = sock.TimerKeepalive, 7_200_000
			e.Age, e.AgeSource = time.Duration(i)*time.Second, track.AgeFirstSeen
		default:
			e.Age, e.AgeSource = time.Duration(i)*time.Minute, track.AgeAtLeast
		}
		if e.Inode != 0 && i%2 == 0 {
			e.Process = &procs.Process{PID: 1000 + i%300, Command: "worker"}
		}
	}
	return v
}

func BenchmarkTable(b *testing.B) {
	v := bigView(100_000)
	opt := TableOptions{Header: true, Processes: true, Color: true}
	b.ReportAllocs()
	for b.Loop() {
		if err := Table(io.Discard, v, opt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJSON(b *testing.B) {
	v := bigView(100_000)
	b.ReportAllocs()
	for b.Loop() {
		if err := JSON(io.Discard, v, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// A process picks its own name: the table must not pass escape sequences
// or line breaks in it to the terminal.
func TestProcessNameIsMadePrintable(t *testing.T) {
	got := string(AppendPrintable(nil, "ab\x1b[2Jcd\nx\x7f\xffé世"))
	if want := "ab?[2Jcd?x??é世"; got != want {
		t.Errorf("AppendPrintable = %q, want %q", got, want)
	}
}
