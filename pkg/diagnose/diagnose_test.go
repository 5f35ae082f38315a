package diagnose

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/bindprobe"
	"github.com/sockscope/sockscope/pkg/procs"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
	"golang.org/x/sys/unix"
)

func entry(st sock.State, local string, left time.Duration) track.Entry {
	fam := sock.IPv4
	if netip.MustParseAddrPort(local).Addr().Is6() {
		fam = sock.IPv6
	}
	e := track.Entry{Socket: &sock.Socket{State: st, Family: fam, Local: sock.MustParseEndpoint(local)}}
	if st == sock.TimeWait {
		// The time left is the kernel timer's.
		e.Timer, e.Expires = sock.TimerTimeWait, uint32(left/time.Millisecond)
		e.Age, e.AgeSource = sock.TimeWaitLen-left, track.AgeTimer
	}
	return e
}

func TestOverlaps(t *testing.T) {
	for _, tc := range []struct {
		bind, local string
		want        bool
	}{
		{"0.0.0.0", "127.0.0.1:9000", true},
		{"0.0.0.0", "0.0.0.0:9000", true},
		{"127.0.0.1", "0.0.0.0:9000", true},
		{"127.0.0.1", "127.0.0.1:9000", true},
		{"127.0.0.1", "127.0.0.2:9000", false},
		{"0.0.0.0", "[::1]:9000", false},
		{"0.0.0.0", "[::]:9000", true},   // [::] may be dual-stack
		{"127.0.0.1", "[::]:9000", true}, // likewise
		{"127.0.0.1", "[::ffff:127.0.0.1]:9000", true},
		{"::", "127.0.0.1:9000", true},
		{"::1", "0.0.0.0:9000", false},
		{"::1", "[::1]:9000", true},
		{"::1", "[::]:9000", true},
		{"::1", "[2001:db8::1]:9000", false},
	} {
		e := entry(sock.Listen, tc.local, 0)
		if got := overlaps(netip.MustParseAddr(tc.bind), e.Socket); got != tc.want {
			t.Errorf("bind %s vs socket on %s: overlaps %v, want %v", tc.bind, tc.local, got, tc.want)
		}
	}
}

var inUse = bindprobe.Result{unix.EADDRINUSE, unix.EADDRINUSE, unix.EADDRINUSE}

func TestAdvice(t *testing.T) {
	addr := netip.MustParseAddrPort("0.0.0.0:9000")
	listener := entry(sock.Listen, "0.0.0.0:9000", 0)
	listener.Process = &procs.Process{PID: 42, Command: "server"}
	for _, tc := range []struct {
		name    string
		res     bindprobe.Result
		entries []track.Entry
		want    []string
		freeIn  time.Duration
	}{
		{"free", bindprobe.Result{}, nil, nil, 0},
		{"listener", inUse, []track.Entry{listener, entry(sock.Listen, "0.0.0.0:9001", 0)},
			[]string{"A process listens on the port", "LISTEN", "pid 42 (server)", "with SO_REUSEADDR: EADDRINUSE (errno 98"}, 0},
		{"time-wait, reusable", bindprobe.Result{unix.EADDRINUSE, nil, unix.EADDRINUSE},
			[]track.Entry{entry(sock.TimeWait, "127.0.0.1:9000", 41*time.Second), entry(sock.TimeWait, "127.0.0.1:9000", 12*time.Second)},
			[]string{"Free in 41.0s without SO_REUSEADDR; with SO_REUSEADDR it binds now.", "SO_REUSEADDR: bindable", "41.0s left"}, 41 * time.Second},
		{"time-wait from a socket without SO_REUSEADDR", inUse,
			[]track.Entry{entry(sock.TimeWait, "127.0.0.1:9000", 30*time.Second)},
			[]string{"Free in 30.0s. SO_REUSEADDR does not help here"}, 30 * time.Second},
		{"connections", bindprobe.Result{unix.EADDRINUSE, nil, unix.EADDRINUSE},
			[]track.Entry{entry(sock.CloseWait, "127.0.0.1:9000", 0)},
			[]string{"Connections still use the port", "With SO_REUSEADDR it binds now"}, 0},
		{"no such address", bindprobe.Result{unix.EADDRNOTAVAIL, unix.EADDRNOTAVAIL, unix.EADDRNOTAVAIL}, nil,
			[]string{"not because the port is taken", "No interface in this namespace has the address 0.0.0.0"}, 0},
	} {
		r := Explain(addr, tc.res, tc.entries)
		var b bytes.Buffer
		if err := r.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: report lacks %q:\n%s", tc.name, w, b.String())
			}
		}
		if r.FreeIn != tc.freeIn || r.Bindable != (tc.res[bindprobe.Plain] == nil) {
			t.Errorf("%s: free in %v bindable %v", tc.name, r.FreeIn, r.Bindable)
		}
		if strings.Contains(b.String(), "9001") {
			t.Errorf("%s: a socket on another port is listed", tc.name)
		}
		var j map[string]any
		raw, err := json.Marshal(r)
		if err != nil || json.Unmarshal(raw, &j) != nil || j["bindable"] != r.Bindable {
			t.Errorf("%s: JSON %s (%v)", tc.name, raw, err)
		}
	}
}
