package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/nstest"
)

// tmux drives a real terminal: a private server socket, one session running
// a plain shell.
type tmux struct {
	t      *testing.T
	socket string
	// patience is how long waitFor waits (10 s unless a test sets it):
	// not a timing under test, only how long to wait before giving up.
	patience time.Duration
}

// tmuxServers numbers the tmux servers the tests start.
var tmuxServers atomic.Int64

func newTmux(t *testing.T, w, h int) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is not installed")
		}
		t.Skip("tmux is not installed")
	}
	// A server of its own for every terminal: one test's kill-server is
	// still shutting its server down when the next test starts, and a
	// new session on that socket fails with "server exited unexpectedly".
	tm := &tmux{t: t, socket: fmt.Sprintf("sockscope-test-%d-%d", os.Getpid(), tmuxServers.Add(1))}
	tm.run("new-session", "-d", "-s", "main", "-x", fmt.Sprint(w), "-y", fmt.Sprint(h),
		"env", "PS1=$ ", "TERM=xterm-256color", "bash", "--norc", "--noprofile")
	t.Cleanup(func() {
		// kill-server leaves the server's socket file behind: ask for its
		// path first, and remove it once the server is gone.
		path, perr := exec.Command("tmux", "-L", tm.socket, "display-message", "-p", "#{socket_path}").Output()
		exec.Command("tmux", "-L", tm.socket, "kill-server").Run()
		if perr != nil {
			t.Logf("tmux socket %s: its path: %v", tm.socket, perr)
			return
		}
		if err := os.Remove(strings.TrimSpace(string(path))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Logf("removing the tmux socket: %v", err)
		}
	})
	return tm
}

func (tm *tmux) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", tm.socket}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %v: %v: %s", args, err, out)
	}
	return string(out)
}

func (tm *tmux) send(keys ...string) { tm.run(append([]string{"send-keys", "-t", "main"}, keys...)...) }

// childPID is the pid of the command the pane's shell runs now.
func (tm *tmux) childPID() int {
	tm.t.Helper()
	shell := strings.TrimSpace(tm.run("display-message", "-p", "-t", "main", "#{pane_pid}"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%s/task/%s/children", shell, shell))
		if err != nil {
			tm.t.Fatalf("the pane's shell: %v", err)
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			pid, err := strconv.Atoi(f[0])
			if err != nil {
				tm.t.Fatalf("the pane's shell's children %q: %v", b, err)
			}
			return pid
		}
		if time.Now().After(deadline) {
			tm.t.Fatal("the pane's shell runs no command")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (tm *tmux) capture() string { return tm.run("capture-pane", "-p", "-t", "main") }

func (tm *tmux) waitFor(what string, cond func(string) bool) string {
	tm.t.Helper()
	patience := tm.patience
	if patience == 0 {
		patience = 10 * time.Second
	}
	deadline := time.Now().Add(patience)
	for {
		s := tm.capture()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("waiting for %s; pane:\n%s", what, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var twRow = regexp.MustCompile(`(?m)^TIME_WAIT\s+127\.0\.0\.1:9000\s+127\.0\.0\.1:(\d+)\s+(\d+\.\d)s\s+(\d+\.\d)s`)

// timeWaitAges maps each TIME_WAIT row's peer port to its age in seconds.
func timeWaitAges(pane string) map[string]float64 {
	ages := map[string]float64{}
	for _, m := range twRow.FindAllStringSubmatch(pane, -1) {
		var a float64
		fmt.Sscan(m[2], &a)
		ages[m[1]] = a
	}
	return ages
}

func tableRows(pane string) []string {
	var rows []string
	for _, l := range strings.Split(pane, "\n") {
		if strings.Contains(l, "0.0.0.0:") || strings.Contains(l, "127.0.0.1:") {
			rows = append(rows, l)
		}
	}
	return rows
}

// The dashboard as a person uses it: the real binary in a terminal, inside
// a private namespace holding the tutorial's experiment.
func TestIntegrationDashboardInTmux(t *testing.T) {
	ns := nstest.New(t)
	nstest.RunSeed(t, ns, nstest.SeedOptions{Tutorial: true})
	tm := newTmux(t, 120, 40)
	tm.waitFor("the shell prompt", func(s string) bool { return strings.Contains(s, "$") })
	tm.send(fmt.Sprintf("ip netns exec %s %s :9000", ns.Name, binary), "Enter")

	first := tm.waitFor("LISTEN 1 and TIME_WAIT 2", func(s string) bool {
		return strings.Contains(s, "LISTEN 1") && strings.Contains(s, "TIME_WAIT 2") && len(timeWaitAges(s)) == 2
	})
	if !strings.Contains(first, "CLOSE_WAIT 0") || !strings.Contains(first, "filter: :9000") {
		t.Errorf("header or status line:\n%s", first)
	}
	a := timeWaitAges(first)
	second := tm.waitFor("the TIME_WAIT ages to grow", func(s string) bool {
		b := timeWaitAges(s)
		if len(b) != 2 {
			return false
		}
		for port, age := range a {
			if b[port] < age+1 {
				return false
			}
		}
		return true
	})
	for port, age := range timeWaitAges(second) {
		if age < 0 || age > 60 {
			t.Errorf("TIME_WAIT to port %s aged %.1fs", port, age)
		}
	}

	tm.send("t")
	narrowed := tm.waitFor("only the TIME_WAIT rows", func(s string) bool {
		r := tableRows(s)
		return len(r) == 2 && strings.HasPrefix(r[0], "TIME_WAIT") && strings.HasPrefix(r[1], "TIME_WAIT")
	})
	if !strings.Contains(narrowed, "LISTEN 1") || !strings.Contains(narrowed, "only TIME_WAIT") {
		t.Errorf("after t the header should still count LISTEN:\n%s", narrowed)
	}

	tm.send("q")
	tm.waitFor("the shell back", func(s string) bool {
		return !strings.Contains(s, "TIME_WAIT 2") && strings.HasSuffix(strings.TrimRight(s, "\n "), "$")
	})
	// The terminal is sane again: typed text echoes and the exit status
	// was 0.
	tm.send("echo exit=$?", "Enter")
	tm.waitFor("exit=0", func(s string) bool { return strings.Contains(s, "\nexit=0") })
}

// SIGTERM ends the dashboard through its context: the terminal is restored
// just as with q.
func TestIntegrationDashboardSIGTERM(t *testing.T) {
	ns := nstest.New(t)
	nstest.RunSeed(t, ns, nstest.SeedOptions{Tutorial: true})
	tm := newTmux(t, 100, 30)
	tm.waitFor("the shell prompt", func(s string) bool { return strings.Contains(s, "$") })
	tm.send(fmt.Sprintf("ip netns exec %s %s -p :9000", ns.Name, binary), "Enter")
	tm.waitFor("the dashboard", func(s string) bool { return strings.Contains(s, "TIME_WAIT 2") })
	out, err := exec.Command("pkill", "-TERM", "-f", "^"+regexp.QuoteMeta(binary)+" -p :9000$").CombinedOutput()
	if err != nil {
		t.Fatalf("pkill: %v %s", err, out)
	}
	tm.waitFor("the shell back", func(s string) bool {
		return !strings.Contains(s, "TIME_WAIT 2") && strings.HasSuffix(strings.TrimRight(s, "\n "), "$")
	})
	tm.send("echo status=$?", "Enter")
	tm.waitFor("the exit status", func(s string) bool { return strings.Contains(s, "\nstatus=0") })
}

// An empty table takes every movement key: the real binary, nothing on
// port 9000 yet, at the smallest supported terminal. Each key is sent a
// few times, then q must bring the shell back with status 0.
func TestIntegrationDashboardEmptyTableKeysInTmux(t *testing.T) {
	ns := nstest.New(t)
	tm := newTmux(t, 80, 24)
	tm.waitFor("the shell prompt", func(s string) bool { return strings.Contains(s, "$") })
	tm.send(fmt.Sprintf("ip netns exec %s %s :9000", ns.Name, binary), "Enter")
	tm.waitFor("an empty dashboard", func(s string) bool { return strings.Contains(s, "shown 0 / matched 0") })
	// tmux key names for Down, Up, PgDn, PgUp, Home, End, Left, Right,
	// Ctrl-F, Ctrl-B, and the letter keys tview moves with.
	for _, k := range []string{"Down", "Up", "NPage", "PPage", "Home", "End", "Left", "Right",
		"C-f", "C-b", "j", "k", "g", "G", "h", "Enter"} {
		for range 3 {
			tm.send(k)
		}
	}
	// l shows only LISTEN, of which there is none: still empty.
	tm.send("l")
	tm.waitFor("the LISTEN toggle", func(s string) bool { return strings.Contains(s, "only LISTEN") })
	tm.send("Down", "Up", "NPage", "PPage", "j", "k")
	tm.send("q")
	tm.waitFor("the shell back", func(s string) bool {
		return !strings.Contains(s, "shown 0") && strings.HasSuffix(strings.TrimRight(s, "\n "), "$")
	})
	tm.send("echo exit=$?", "Enter")
	tm.waitFor("exit=0", func(s string) bool { return strings.Contains(s, "\nexit=0") })
}

// SIGINT, SIGQUIT (Ctrl-\) and SIGHUP end the dashboard as SIGTERM does:
// the screen is restored, no goroutine dump is left on it, and the exit
// status is 0.
func TestIntegrationDashboardSignalsRestoreTheTerminal(t *testing.T) {
	ns := nstest.New(t)
	nstest.RunSeed(t, ns, nstest.SeedOptions{Tutorial: true})
	for _, sig := range []string{"INT", "QUIT", "HUP"} {
		t.Run(sig, func(t *testing.T) {
			tm := newTmux(t, 100, 30)
			tm.waitFor("the shell prompt", func(s string) bool { return strings.Contains(s, "$") })
			tm.send(fmt.Sprintf("ip netns exec %s %s -4 :9000", ns.Name, binary), "Enter")
			tm.waitFor("the dashboard", func(s string) bool { return strings.Contains(s, "TIME_WAIT 2") })
			out, err := exec.Command("pkill", "-"+sig, "-f", "^"+regexp.QuoteMeta(binary)+" -4 :9000$").CombinedOutput()
			if err != nil {
				t.Fatalf("pkill -%s: %v %s", sig, err, out)
			}
			s := tm.waitFor("the shell back", func(s string) bool {
				return !strings.Contains(s, "TIME_WAIT 2") && strings.HasSuffix(strings.TrimRight(s, "\n "), "$")
			})
			if strings.Contains(s, "goroutine") || strings.Contains(s, "SIGQUIT") {
				t.Errorf("a trace was left on the terminal:\n%s", s)
			}
			tm.send("echo status=$?", "Enter")
			tm.waitFor("the exit status", func(s string) bool { return strings.Contains(s, "\nstatus=0") })
		})
	}
}

// At 80x24 with -p the Process column is past the edge: → brings it in,
// the state column staying, and it stays through the polls after.
func TestIntegrationDashboardSidewaysInTmux(t *testing.T) {
	ns := nstest.New(t)
	nstest.RunSeed(t, ns, nstest.SeedOptions{Tutorial: true}) // owned by this test's process
	tm := newTmux(t, 80, 24)
	tm.waitFor("the shell prompt", func(s string) bool { return strings.Contains(s, "$") })
	tm.send(fmt.Sprintf("ip netns exec %s %s -p -4 :9000", ns.Name, binary), "Enter")
	tm.waitFor("the dashboard", func(s string) bool { return strings.Contains(s, "TIME_WAIT 2") })
	owner := fmt.Sprintf("%d/", os.Getpid())
	for range 8 {
		tm.send("Right")
	}
	shown := func(s string) bool {
		return strings.Contains(s, "‹Process") && strings.Contains(s, owner) && strings.Contains(s, "LISTEN ")
	}
	tm.waitFor("the Process column, scrolled in", shown)
	time.Sleep(2500 * time.Millisecond) // two polls at the default 1 s
	if s := tm.capture(); !shown(s) {
		t.Errorf("the table scrolled back after a poll:\n%s", s)
	}
	tm.send("Left", "Left", "Left", "Left", "Left", "Left", "Left", "Left")
	tm.waitFor("the table back at its start", func(s string) bool {
		return !strings.Contains(s, "‹") && strings.Contains(s, "Local") && strings.Contains(s, "Peer")
	})
	tm.send("q")
}
