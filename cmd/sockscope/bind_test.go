package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/kstat"
	"github.com/sockscope/sockscope/pkg/nstest"
	"golang.org/x/sys/unix"
)

type bindJSON struct {
	Bindable  bool `json:"bindable"`
	ReuseAddr struct {
		OK    bool `json:"ok"`
		Errno int  `json:"errno"`
	} `json:"reuseaddr"`
	Holders []struct {
		State   string `json:"state"`
		Local   string `json:"local"`
		LeftMs  *int64 `json:"left_ms"`
		PID     int    `json:"pid"`
		Command string `json:"command"`
	} `json:"holders"`
	FreeInMs *int64 `json:"free_in_ms"`
}

func bindReport(t *testing.T, args ...string) (bindJSON, result) {
	t.Helper()
	r := sockscope(t, append([]string{"bind", "--json"}, args...)...)
	var b bindJSON
	if err := json.Unmarshal([]byte(r.stdout), &b); err != nil {
		t.Fatalf("bind %v: %q (stderr %q): %v", args, r.stdout, r.stderr, err)
	}
	return b, r
}

// startDemoServer runs the demo server and waits for it to listen.
func startDemoServer(t *testing.T, ns *nstest.NS, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"demo", "server", "-N", ns.Name}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	select {
	case l := <-lines:
		if !strings.HasPrefix(l, "listening on ") {
			t.Fatalf("demo server said %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("demo server did not start")
	}
	return cmd, lines
}

func demoClients(t *testing.T, ns *nstest.NS, n int, args ...string) {
	t.Helper()
	r := sockscope(t, append([]string{"demo", "client", "-N", ns.Name, "-n", strconv.Itoa(n)}, args...)...)
	if r.code != 0 || strings.Count(r.stdout, "\n") != n || !strings.Contains(r.stdout, "received") {
		t.Fatalf("demo client: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
}

func tryBindIn(t *testing.T, ns *nstest.NS, addr string, reuse bool) error {
	t.Helper()
	var berr error
	ns.Do(func() error { berr = nstest.TryBind(netip.MustParseAddrPort(addr), reuse); return nil })
	return berr
}

// The tutorial's story, told by sockscope bind: a running server holds the
// port; after it closed two connections and exited, TIME_WAIT does, for
// about 60 s, except for SO_REUSEADDR; --wait returns when it is over.
func TestIntegrationBindTutorial(t *testing.T) {
	if testing.Short() {
		t.Skip("waits a minute for TIME_WAIT")
	}
	t.Parallel()
	ns := nstest.New(t)
	server, _ := startDemoServer(t, ns, "--reuseaddr", "-n", "2")

	b, r := bindReport(t, "-N", ns.Name, ":9000")
	if r.code != 1 || b.Bindable || len(b.Holders) != 1 || b.Holders[0].State != "LISTEN" ||
		b.Holders[0].PID != server.Process.Pid || b.Holders[0].Command != "sockscope" || b.FreeInMs != nil {
		t.Fatalf("while the server runs: exit %d, %+v; want the LISTEN owner pid %d", r.code, b, server.Process.Pid)
	}
	text := sockscope(t, "bind", "-N", ns.Name, ":9000")
	if !strings.Contains(text.stdout, "A process listens on the port") || !strings.Contains(text.stdout, "pid "+strconv.Itoa(server.Process.Pid)+" (sockscope)") {
		t.Errorf("bind text while the server runs:\n%s", text.stdout)
	}

	demoClients(t, ns, 2)
	if err := server.Wait(); err != nil {
		t.Fatalf("demo server: %v", err)
	}
	b, r = bindReport(t, "-N", ns.Name, ":9000")
	tws := 0
	for _, h := range b.Holders {
		if h.State == "TIME_WAIT" && h.LeftMs != nil && *h.LeftMs > 55000 && *h.LeftMs <= 60000 {
			tws++
		}
	}
	if r.code != 1 || tws != 2 || len(b.Holders) != 2 || !b.ReuseAddr.OK || b.FreeInMs == nil || *b.FreeInMs < 55000 {
		t.Fatalf("after the server exited: exit %d, %+v; want two TIME_WAIT entries near 60 s and SO_REUSEADDR bindable", r.code, b)
	}
	text = sockscope(t, "bind", "-N", ns.Name, ":9000")
	for _, want := range []string{"SO_REUSEADDR: bindable", "bind():            EADDRINUSE (errno 98", "without SO_REUSEADDR; with SO_REUSEADDR it binds now"} {
		if !strings.Contains(text.stdout, want) {
			t.Errorf("bind text lacks %q:\n%s", want, text.stdout)
		}
	}
	if err := tryBindIn(t, ns, "0.0.0.0:9000", true); err != nil {
		t.Errorf("a real bind with SO_REUSEADDR: %v", err)
	}
	if err := tryBindIn(t, ns, "0.0.0.0:9000", false); !errors.Is(err, unix.EADDRINUSE) {
		t.Errorf("a real plain bind: %v, want EADDRINUSE", err)
	}

	start := time.Now()
	w := sockscope(t, "bind", "-N", ns.Name, "--wait=90s", ":9000")
	if w.code != 0 || !strings.Contains(w.stdout, "bindable: bind() succeeds now") || w.stderr != "" {
		t.Fatalf("bind --wait: exit %d after %v, %q %q", w.code, time.Since(start), w.stdout, w.stderr)
	}
	if err := tryBindIn(t, ns, "0.0.0.0:9000", false); err != nil {
		t.Errorf("a plain bind after --wait: %v", err)
	}
}

// Two live listeners on one address and port fail even with SO_REUSEADDR.
func TestIntegrationTwoListeners(t *testing.T) {
	ns := nstest.New(t)
	startDemoServer(t, ns, "--reuseaddr")
	r := sockscope(t, "demo", "server", "-N", ns.Name, "--reuseaddr")
	if r.code != 1 || !strings.Contains(r.stderr, "EADDRINUSE (errno 98, address already in use)") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("second server: exit %d, stderr %q", r.code, r.stderr)
	}
	b, br := bindReport(t, "-N", ns.Name, "0.0.0.0:9000")
	if br.code != 1 || b.ReuseAddr.OK || b.ReuseAddr.Errno != 98 || len(b.Holders) != 1 || b.Holders[0].State != "LISTEN" {
		t.Errorf("bind with a live listener: %+v", b)
	}
	// A specific address overlaps the wildcard listener too.
	if b, _ := bindReport(t, "-N", ns.Name, "127.0.0.1:9000"); b.Bindable || len(b.Holders) != 1 {
		t.Errorf("127.0.0.1:9000 under a 0.0.0.0 listener: %+v", b)
	}
	if b, r := bindReport(t, "-N", ns.Name, "127.0.0.1:9001"); !b.Bindable || r.code != 0 {
		t.Errorf("a free port: exit %d, %+v", r.code, b)
	}
	// IPv6: [::1] does not overlap a 0.0.0.0 listener; [::] (dual-stack)
	// does.
	if b, r := bindReport(t, "-N", ns.Name, "[::1]:9000"); !b.Bindable || r.code != 0 {
		t.Errorf("[::1]:9000: exit %d, %+v", r.code, b)
	}
	if b, r := bindReport(t, "-N", ns.Name, "[::]:9000"); b.Bindable || r.code != 1 || len(b.Holders) != 1 {
		t.Errorf("[::]:9000 under a 0.0.0.0 listener: exit %d, %+v", r.code, b)
	}
}

// --linger0 resets instead of closing: no TIME_WAIT, one RST sent per
// connection. The default close leaves one TIME_WAIT entry per connection.
func TestIntegrationDemoLinger0(t *testing.T) {
	for _, tc := range []struct {
		flag     string
		tw, rsts int64
	}{{"--linger0", 0, 2}, {"--reuseaddr", 2, 0}} {
		t.Run(tc.flag, func(t *testing.T) {
			ns := nstest.New(t)
			k, err := kstat.Open(ns.NS(t))
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			before, err := k.Counters()
			if err != nil {
				t.Fatal(err)
			}
			server, _ := startDemoServer(t, ns, tc.flag, "-n", "2")
			demoClients(t, ns, 2)
			if err := server.Wait(); err != nil {
				t.Fatal(err)
			}
			after, err := k.Counters()
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // the clients' last ACKs
			rows := listJSON(t, "-N", ns.Name, "sport = :9000", "state", "time-wait")
			if int64(len(rows)) != tc.tw || after["OutRsts"]-before["OutRsts"] != tc.rsts {
				t.Errorf("%d TIME_WAIT entries (want %d), OutRsts +%d (want %d)", len(rows), tc.tw,
					after["OutRsts"]-before["OutRsts"], tc.rsts)
			}
		})
	}
}

// A port may be a TCP service's name, as in a filter.
func TestBindAddrServiceNames(t *testing.T) {
	for in, want := range map[string]string{
		":ssh": "0.0.0.0:22", "ssh": "0.0.0.0:22", "127.0.0.1:http": "127.0.0.1:80",
		"[::1]:ssh": "[::1]:22", "[::1]:9000": "[::1]:9000", "*:9000": "0.0.0.0:9000",
	} {
		if ap, err := parseBindAddr(in); err != nil || ap.String() != want {
			t.Errorf("parseBindAddr(%q) = %v, %v; want %s", in, ap, err, want)
		}
	}
	for _, in := range []string{":nosuchservice", "[::1]:0", "[::1]:", "[::1]9000", ":0"} {
		if ap, err := parseBindAddr(in); err == nil {
			t.Errorf("parseBindAddr(%q) = %v, want an error", in, ap)
		}
	}
}
