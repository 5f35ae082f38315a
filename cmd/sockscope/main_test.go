package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/nstest"
	"golang.org/x/sys/unix"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sockscope-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "sockscope")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func sockscope(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running sockscope %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

type row struct {
	State     string `json:"state"`
	Family    string `json:"family"`
	Local     string `json:"local"`
	Peer      string `json:"peer"`
	LocalPort int    `json:"local_port"`
	PeerPort  int    `json:"peer_port"`
	AgeMs     int64  `json:"age_ms"`
	AgeExact  bool   `json:"age_exact"`
	AgeSource string `json:"age_source"`
	LeftMs    *int64 `json:"left_ms"`
	ExpiresMs int64  `json:"expires_ms"`
	Timer     string `json:"timer"`
	RecvQ     *int   `json:"recv_q"`
	SendQ     *int   `json:"send_q"`
	UID       *int   `json:"uid"`
	Inode     uint32 `json:"inode"`
	Cookie    string `json:"cookie"`
	PID       int    `json:"pid"`
	Command   string `json:"command"`
}

func listJSON(t *testing.T, args ...string) []row {
	t.Helper()
	r := sockscope(t, append([]string{"list", "--json"}, args...)...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("sockscope list --json %v: exit %d, stderr %q", args, r.code, r.stderr)
	}
	var rows []row
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		var x row
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		if x.RecvQ == nil || x.SendQ == nil || x.UID == nil || x.Cookie == "" || x.Family == "" {
			t.Fatalf("line lacks keys: %s", sc.Text())
		}
		rows = append(rows, x)
	}
	return rows
}

func countRows(rows []row, state string, localPort int) int {
	n := 0
	for _, r := range rows {
		if r.State == state && r.LocalPort == localPort {
			n++
		}
	}
	return n
}

// waitSeed waits until the experiment's closes have settled in the kernel.
func waitSeed(t *testing.T, ns *nstest.NS) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		rows := listJSON(t, "-N", ns.Name, "state", "time-wait", "state", "fin-wait-2")
		if len(rows) == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("experiment did not settle: %+v", rows)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIntegrationListSeedExperiment(t *testing.T) {
	ns := nstest.New(t)
	nstest.RunSeed(t, ns, nstest.SeedOptions{})
	waitSeed(t, ns)

	rows := listJSON(t, "-N", ns.Name, "-p", ":9000")
	if n := countRows(rows, "LISTEN", 9000); n != 2 {
		t.Errorf("LISTEN on 9000: %d, want 2", n)
	}
	if n := countRows(rows, "TIME_WAIT", 9000); n != 2 {
		t.Errorf("TIME_WAIT on 9000: %d, want 2", n)
	}
	if n := countRows(rows, "CLOSE_WAIT", 9000); n != 1 {
		t.Errorf("CLOSE_WAIT on 9000: %d, want 1", n)
	}
	fams := map[string]bool{}
	for _, r := range rows {
		switch r.State {
		case "TIME_WAIT":
			fams[r.Family] = true
			if !r.AgeExact || r.LeftMs == nil || *r.LeftMs < 55000 || *r.LeftMs > 60000 || r.AgeMs+*r.LeftMs != 60000 {
				t.Errorf("TIME_WAIT row: age %d ms exact %v, left %v; want exact, left near 60 s, sum 60 s", r.AgeMs, r.AgeExact, r.LeftMs)
			}
			if r.Timer != "timewait" || r.Inode != 0 {
				t.Errorf("TIME_WAIT row: timer %q inode %d", r.Timer, r.Inode)
			}
			if r.Family == "ipv6" && !strings.HasPrefix(r.Local, "[::1]:") {
				t.Errorf("IPv6 address not bracketed: %q", r.Local)
			}
		case "LISTEN", "CLOSE_WAIT":
			if r.AgeExact {
				t.Errorf("%s row that predates the run claims an exact age", r.State)
			}
			// The experiment's sockets belong to this test process.
			if r.PID != os.Getpid() || r.Command == "" {
				t.Errorf("%s %s: pid %d command %q, want %d", r.State, r.Local, r.PID, r.Command, os.Getpid())
			}
		}
	}
	if !fams["ipv4"] || !fams["ipv6"] {
		t.Errorf("TIME_WAIT families %v, want ipv4 and ipv6", fams)
	}

	// The everyday form, and the state clause after the port test.
	for _, args := range [][]string{{":9000", "state", "time-wait"}, {"sport", "=", ":9000", "state", "time-wait"}, {"--port", "9000", "--state", "TIME_WAIT"}} {
		rows := listJSON(t, append([]string{"-N", ns.Name}, args...)...)
		if len(rows) != 2 || countRows(rows, "TIME_WAIT", 9000) != 2 {
			t.Errorf("%v: %d rows, want the 2 TIME_WAIT entries", args, len(rows))
		}
	}
	// The TIME_WAIT age grows between runs.
	a := listJSON(t, "-N", ns.Name, "state", "time-wait")
	time.Sleep(200 * time.Millisecond)
	b := listJSON(t, "-N", ns.Name, "state", "time-wait")
	for i := range a {
		if b[i].Cookie == a[i].Cookie && b[i].AgeMs < a[i].AgeMs+150 {
			t.Errorf("TIME_WAIT %s aged from %d to %d ms over 200 ms", a[i].Cookie, a[i].AgeMs, b[i].AgeMs)
		}
	}

	// Run inside the namespace rather than pointing at it.
	cmd := ns.Command(binary, "list", "--json", "-l", "-6")
	out, err := cmd.Output()
	if err != nil || strings.Count(string(out), "\n") != 1 || !strings.Contains(string(out), `"local":"[::1]:9000"`) {
		t.Errorf("ip netns exec ... list -l -6: %v, %q", err, out)
	}
}

func TestIntegrationListTable(t *testing.T) {
	ns := nstest.New(t)
	nstest.RunSeed(t, ns, nstest.SeedOptions{})
	waitSeed(t, ns)
	r := sockscope(t, "list", "-N", ns.Name, "-p", ":9000")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 1+6+1 {
		t.Fatalf("want header, 6 rows and a summary:\n%s", r.stdout)
	}
	for _, col := range []string{"State", "Recv-Q", "Send-Q", "Local", "Peer", "Age", "Left", "Timer", "Process"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header %q lacks %s", lines[0], col)
		}
	}
	if want := "Total: 6  LISTEN 2  TIME_WAIT 2  CLOSE_WAIT 1  FIN_WAIT2 1"; lines[len(lines)-1] != want {
		t.Errorf("summary %q, want %q", lines[len(lines)-1], want)
	}
	if strings.Contains(r.stdout, "\x1b[") {
		t.Error("colours written to a pipe")
	}
	// A TIME_WAIT row shows its exact age and its time left, which add
	// up to the kernel's 60 s.
	tw := regexp.MustCompile(`(?m)^TIME_WAIT\s+0\s+0\s+\S+\s+\S+\s+(\S+)\s+(\S+)\s+timewait `).FindAllStringSubmatch(r.stdout, -1)
	if len(tw) != 2 {
		t.Errorf("want 2 TIME_WAIT rows with age and time left:\n%s", r.stdout)
	}
	for _, m := range tw {
		age, err1 := time.ParseDuration(m[1])
		left, err2 := time.ParseDuration(m[2])
		if err1 != nil || err2 != nil || age+left < 59900*time.Millisecond || age+left > 60100*time.Millisecond {
			t.Errorf("TIME_WAIT age %s + left %s, want two durations adding up to 60s", m[1], m[2])
		}
	}
	c := sockscope(t, "list", "-N", ns.Name, "--color=always", ":9000")
	for _, want := range []string{"\x1b[32mLISTEN", "\x1b[33mTIME_WAIT", "\x1b[31mCLOSE_WAIT"} {
		if !strings.Contains(c.stdout, want) {
			t.Errorf("--color=always lacks %q", want)
		}
	}
	h := sockscope(t, "list", "-N", ns.Name, "-H", ":9000")
	if strings.Count(h.stdout, "\n") != 6 || strings.Contains(h.stdout, "State") || strings.Contains(h.stdout, "Total") {
		t.Errorf("-H output:\n%s", h.stdout)
	}
	// Nothing matching is not an error.
	if e := sockscope(t, "list", "-N", ns.Name, ":1"); e.code != 0 || !strings.Contains(e.stdout, "Total: 0") {
		t.Errorf("empty result: exit %d, %q", e.code, e.stdout)
	}
}

// The claims the README makes about bind() and TIME_WAIT, checked against
// the kernel: while the TIME_WAIT entries live, a plain bind fails with
// EADDRINUSE and SO_REUSEADDR binds, but only when the server that left them
// had set SO_REUSEADDR too (a TIME_WAIT entry keeps its socket's option).
func TestIntegrationBindClaims(t *testing.T) {
	for _, tc := range []struct {
		name      string
		origReuse bool
		reuseErr  error
	}{
		{"server with SO_REUSEADDR", true, nil},
		{"server without SO_REUSEADDR", false, unix.EADDRINUSE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := nstest.New(t)
			seed := nstest.RunSeed(t, ns, nstest.SeedOptions{ReuseAddr: tc.origReuse})
			waitSeed(t, ns)
			seed.CloseListeners() // the server exits
			// Its accepted CLOSE_WAIT connection would also hold the port;
			// the tutorial's server had only closed connections.
			unix.Close(seed.HalfClosed)
			seed.HalfClosed = -1
			deadline := time.Now().Add(2 * time.Second)
			for len(listJSON(t, "-N", ns.Name, "sport = :9000", "exclude", "time-wait")) != 0 {
				if time.Now().After(deadline) {
					t.Fatal("sockets other than TIME_WAIT still hold :9000")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if n := len(listJSON(t, "-N", ns.Name, "sport = :9000", "state", "time-wait")); n != 2 {
				t.Fatalf("%d TIME_WAIT entries on :9000, want 2", n)
			}
			for _, addr := range []string{"127.0.0.1:9000", "0.0.0.0:9000"} {
				ap := netip.MustParseAddrPort(addr)
				var plain, reuse error
				ns.Do(func() error {
					plain = nstest.TryBind(ap, false)
					reuse = nstest.TryBind(ap, true)
					return nil
				})
				if !errors.Is(plain, unix.EADDRINUSE) {
					t.Errorf("bind %s without SO_REUSEADDR: %v, want EADDRINUSE (errno 98)", addr, plain)
				}
				if !errors.Is(reuse, tc.reuseErr) && !(reuse == nil && tc.reuseErr == nil) {
					t.Errorf("bind %s with SO_REUSEADDR: %v, want %v", addr, reuse, tc.reuseErr)
				}
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		token string
	}{
		{[]string{"list", "sport", "=", ":99999"}, ":99999"},
		{[]string{"list", "state", "tim-wait"}, "tim-wait"},
		{[]string{"list", "--port", "abc"}, "abc"},
		{[]string{"list", "--port", "9000,99999"}, "99999"},
		{[]string{"list", "--state", "listen,bogus"}, "bogus"},
		{[]string{"list", "(", "sport", "=", ":80"}, "("},
		{[]string{"list", "src", "1.2.3.400"}, "1.2.3.400"},
		{[]string{"list", "src", "10.0.0.0/40"}, "10.0.0.0/40"},
		{[]string{"list", "foo"}, "foo"},
		{[]string{"list", "-x"}, "-x"},
		{[]string{"list", "--bogus"}, "--bogus"},
		{[]string{"list", "--color", "sometimes"}, "sometimes"},
		{[]string{"list", "-N", "sockscope-no-such-namespace"}, "sockscope-no-such-namespace"},
		{[]string{"list", "-N", "/etc/hostname"}, "/etc/hostname"},
		{[]string{"frobnicate"}, "frobnicate"},
		{[]string{"state", "tim-wait"}, "tim-wait"},
		{[]string{"-i", "abc", ":9000"}, "abc"},
		{[]string{"-i", "0", ":9000"}, "0"},
		{[]string{"--interval", "-1s"}, "-1s"},
		{[]string{"list", "-i", "1s"}, "-i"},
		{[]string{"--json", ":9000"}, "--json"},
		{[]string{"watch", "--for", "abc"}, "abc"},
		{[]string{"watch", "state", "bogus"}, "bogus"},
		{[]string{"agent", "bogus"}, "bogus"},
		{[]string{"agent", "start", "now"}, "now"},
		{[]string{"watch", "-N", "sockscope-no-such-namespace"}, "sockscope-no-such-namespace"},
		{[]string{"timewait", "-i", "0"}, "0"},
		{[]string{"timewait", "--for", "800h"}, "800h"},
		{[]string{"timewait", "sport", "<", ":70000"}, ":70000"},
		{[]string{"timewait", "--color", "never"}, "--color"},
		{[]string{"bind"}, "0 arguments"},
		{[]string{"bind", ":99999"}, ":99999"},
		{[]string{"bind", "1.2.3.4.5:80"}, "1.2.3.4.5:80"},
		{[]string{"bind", ":80", ":81"}, ":81"},
		{[]string{"bind", "--wait=soon", ":80"}, "soon"},
		{[]string{"bind", "-N", "sockscope-no-such-namespace", ":80"}, "sockscope-no-such-namespace"},
		{[]string{"demo"}, "server"},
		{[]string{"demo", "serve"}, "serve"},
		{[]string{"demo", "server", "--port", "70000"}, "demo server: --port 70000"},
		{[]string{"demo", "server", "-n", "-1"}, "--count -1"},
		{[]string{"demo", "client", "--port", "0"}, "--port 0"},
		{[]string{"demo", "client", "--bogus"}, "demo client: unknown flag: --bogus"},
		{[]string{"demo", "client", "--addr", "localhost"}, "localhost"},
		{[]string{"demo", "client", "-N", "sockscope-no-such-namespace"}, "sockscope-no-such-namespace"},
		{[]string{"stats", "-i", "fast"}, "fast"},
		{[]string{"stats", "extra"}, "extra"},
		{[]string{"stats", "-N", "/etc/hostname"}, "/etc/hostname"},
		{[]string{"exporter", "--listen", "nowhere"}, "nowhere"},
		{[]string{"exporter", "--port", "http"}, "http"},
		{[]string{"exporter", "--listen", "127.0.0.1:99999"}, "99999"},
		{[]string{"exporter", "--listen", "example.com:9815"}, "example.com"},
		{[]string{"exporter", "-N", "sockscope-no-such-namespace"}, "sockscope-no-such-namespace"},
		{[]string{"exporter", "state", "tim-wait"}, "tim-wait"},
		{[]string{"exporter", "--state", "bogus"}, "bogus"},
		{[]string{"exporter", "-N", "a", "-N", "a"}, "twice"},
		{[]string{"list", "--port", ""}, `""`},
		{[]string{"list", "--state", ""}, `""`},
		{[]string{"bind", "[::1:9000"}, "[::1:9000"},
		{[]string{"bind", "1.2.3.4]:80"}, "1.2.3.4]:80"},
		{[]string{"bind", "[1.2.3.4]:80"}, "[1.2.3.4]:80"},
		{[]string{"bind", "::1:80"}, "::1:80"},
		{[]string{"stats", "--for", "1s"}, "--for"},
		{[]string{"watch", "-i", "1ms"}, "1ms"},
		{[]string{"list", "sport ="}, "missing a port"},
		{[]string{"list", "()"}, ")"},
		{[]string{"list", "sport = :80 or"}, "missing a condition"},
		{[]string{"list", "src 10.0.0.0/8/8"}, "10.0.0.0/8/8"},
		{[]string{"list", "dst [::1]:x"}, "[::1]:x"},
		{[]string{"list", "--procfs", "dev lo"}, "dev"},
		{[]string{"list", "--procfs", "not dev 1"}, "dev"},
		{[]string{"watch", "--procfs", "dev 1 or :80"}, "dev"},
		{[]string{"list", "--columns", ""}, `--columns ""`},
		{[]string{"list", "-o", ""}, `--columns ""`},
		{[]string{"list", "--color", ""}, `--color ""`},
	} {
		r := sockscope(t, tc.args...)
		if r.code != 2 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 ||
			!strings.Contains(r.stderr, tc.token) || strings.Contains(r.stderr, "goroutine") {
			t.Errorf("sockscope %q: exit %d, stdout %q, stderr %q; want exit 2 and one line naming %q",
				tc.args, r.code, r.stdout, r.stderr, tc.token)
		}
	}
}

func TestDashboardNeedsATerminal(t *testing.T) {
	r := sockscope(t, ":9000")
	if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "needs a terminal") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("dashboard to a pipe: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
