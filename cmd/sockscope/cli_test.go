package main

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/nstest"
)

// The command line itself, through the built binary: version, completion,
// suggestions, help, repeated flags, limits of the machine, and output
// that cannot be written.

// runIn runs the binary with its stdout on out (a buffer or a file) and a
// deadline, so that a hang fails the test instead of stalling it.
func runIn(t *testing.T, timeout time.Duration, out any, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var outb, errb bytes.Buffer
	switch o := out.(type) {
	case *os.File:
		cmd.Stdout = o
	case nil:
		cmd.Stdout = &outb
	default:
		t.Fatalf("runIn: stdout %T", out)
	}
	cmd.Stderr = &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("sockscope %q did not end within %v (stderr %q)", args, timeout, errb.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running sockscope %q: %v", args, err)
	}
	return result{outb.String(), errb.String(), code}
}

// oneLine reports whether s is exactly one line, newline-terminated.
func oneLine(s string) bool { return strings.Count(s, "\n") == 1 && strings.HasSuffix(s, "\n") }

func TestVersion(t *testing.T) {
	a := sockscope(t, "--version")
	b := sockscope(t, "version")
	for _, r := range []result{a, b} {
		if r.code != 0 || r.stderr != "" || !oneLine(r.stdout) || !strings.HasPrefix(r.stdout, "sockscope ") {
			t.Errorf("exit %d, stdout %q, stderr %q; want exit 0 and one line 'sockscope VERSION'", r.code, r.stdout, r.stderr)
		}
	}
	if a.stdout != b.stdout {
		t.Errorf("--version says %q, version says %q", a.stdout, b.stdout)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := sockscope(t, "completion", sh)
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "sockscope") {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", sh, r.code, len(r.stdout), r.stderr)
		}
	}
}

// complete asks cobra's hidden __complete command what the shell would be
// offered for args (the last one being the word under the cursor).
func complete(t *testing.T, args ...string) []string {
	t.Helper()
	r := sockscope(t, append([]string{"__complete"}, args...)...)
	if r.code != 0 {
		t.Fatalf("__complete %q: exit %d, stderr %q", args, r.code, r.stderr)
	}
	var words []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, ":") {
			return words // the directive ends the list
		}
		if l != "" {
			word, _, _ := strings.Cut(l, "\t") // a description follows a tab
			words = append(words, word)
		}
	}
	t.Fatalf("__complete %q: no directive line in %q", args, r.stdout)
	return nil
}

func offers(words []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, x := range words {
			found = found || x == w
		}
		if !found {
			return false
		}
	}
	return true
}

func TestDynamicCompletion(t *testing.T) {
	if w := complete(t, "list", "state", ""); !offers(w, "time-wait", "close-wait") {
		t.Errorf("list state <TAB> offers %q", w)
	}
	if w := complete(t, "list", "--state", "listen,ti"); !offers(w, "listen,time-wait") {
		t.Errorf("list --state listen,ti<TAB> offers %q", w)
	}
	// A name already in the list is not offered again: given twice, it
	// is refused.
	if w := complete(t, "list", "-o", "state,"); !offers(w, "state,local") || offers(w, "state,state") {
		t.Errorf("-o state, completes to %q: want the other columns, not state again", w)
	}
	if w := complete(t, ""); !offers(w, "list", "watch", "timewait", "bind", "demo", "stats", "exporter", "version") {
		t.Errorf("sockscope <TAB> offers %q", w)
	}
	ns := nstest.New(t)
	for _, args := range [][]string{{"-N", ""}, {"list", "-N", ""}} {
		if w := complete(t, args...); !offers(w, ns.Name) {
			t.Errorf("%q <TAB> offers %q, want the namespace %s", args, w, ns.Name)
		}
	}
}

func TestDidYouMean(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lsit"}, "did you mean list"},
		{[]string{"wach"}, "did you mean watch"},
		{[]string{"demo", "clint"}, "did you mean client"},
	} {
		r := sockscope(t, tc.args...)
		if r.code != 2 || r.stdout != "" || !oneLine(r.stderr) || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("sockscope %q: exit %d, stderr %q; want exit 2 and one line with %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
	// A filter with a bad state is not a mistyped 'stats'.
	r := sockscope(t, "state", "tim-wait")
	if r.code != 2 || !oneLine(r.stderr) || !strings.Contains(r.stderr, "tim-wait") || strings.Contains(r.stderr, "did you mean") {
		t.Errorf("sockscope state tim-wait: exit %d, stderr %q; want the filter error, no suggestion", r.code, r.stderr)
	}
}

func TestOnePrefix(t *testing.T) {
	for _, args := range [][]string{{"--bogus"}, {"list", "--bogus"}, {"--version", "--bogus"}} {
		r := sockscope(t, args...)
		if r.code != 2 || !oneLine(r.stderr) || !strings.HasPrefix(r.stderr, "sockscope: ") ||
			strings.Contains(r.stderr, "sockscope: sockscope:") || !strings.Contains(r.stderr, "--bogus") {
			t.Errorf("sockscope %q: exit %d, stderr %q; want one line with one prefix", args, r.code, r.stderr)
		}
	}
}

// The root command's own messages (the dashboard's flags, checked before
// it needs a terminal) name it once too.
func TestOnePrefixForTheRootCommand(t *testing.T) {
	for _, args := range [][]string{{"-N", ""}, {"--all-netns", "-N", "x"}} {
		r := sockscope(t, args...)
		if r.code != 2 || !oneLine(r.stderr) || !strings.HasPrefix(r.stderr, "sockscope: ") || strings.Contains(r.stderr, "sockscope: sockscope:") {
			t.Errorf("sockscope %q: exit %d, stderr %q; want one line with one prefix", args, r.code, r.stderr)
		}
	}
}

func TestHelpShowsSwitches(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"list", "--help"}, []string{"-p, --processes", "-H, --no-header", "-N, --netns"}},
		{[]string{"--help"}, []string{"-p, --processes", "list", "watch"}},
		{[]string{"exporter", "--help"}, []string{"-l, --listening", "--track"}},
		{[]string{"demo", "server", "--help"}, []string{"--reuseaddr", "--linger0"}},
	} {
		r := sockscope(t, tc.args...)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("sockscope %q: exit %d, stderr %q", tc.args, r.code, r.stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("sockscope %q lacks %q:\n%s", tc.args, w, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "[=true|false]") || strings.Contains(r.stdout, "[=false]") {
			t.Errorf("sockscope %q shows a switch as a valued flag:\n%s", tc.args, r.stdout)
		}
	}
}

func TestRepeatedFlags(t *testing.T) {
	ns := nstest.New(t)
	r := sockscope(t, "list", "-N", ns.Name, "--color", "never", "--color", "always", "-H")
	if r.code != 0 || !oneLine(r.stderr) || !strings.Contains(r.stderr, "--color") {
		t.Errorf("--color twice: exit %d, stderr %q; want exit 0 and one note naming --color", r.code, r.stderr)
	}
	r = sockscope(t, "list", "-N", ns.Name, "-H", "-H")
	if r.code != 0 || r.stderr != "" {
		t.Errorf("-H -H: exit %d, stderr %q; want no note", r.code, r.stderr)
	}
}

func TestNamespaceGivenTwice(t *testing.T) {
	a := nstest.New(t)
	r := sockscope(t, "list", "-N", a.Name, "-N", a.Path())
	if r.code != 2 || !oneLine(r.stderr) || !strings.Contains(r.stderr, a.Name) || !strings.Contains(r.stderr, "same") {
		t.Errorf("list -N NAME -N PATH: exit %d, stderr %q; want exit 2 naming both as the same", r.code, r.stderr)
	}
	r = sockscope(t, "list", "--all-netns", "-N", a.Name)
	if r.code != 2 || !oneLine(r.stderr) || !strings.Contains(r.stderr, "--all-netns") {
		t.Errorf("list --all-netns -N NAME: exit %d, stderr %q; want exit 2", r.code, r.stderr)
	}
	// The exporter reads many, but not one twice. A deadline, in case it
	// serves instead of refusing.
	r = runIn(t, 20*time.Second, nil, "exporter", "-N", a.Name, "-N", a.Path(), "--listen", "127.0.0.1:0")
	if r.code != 2 || !oneLine(r.stderr) || !strings.Contains(r.stderr, "same") {
		t.Errorf("exporter -N NAME -N PATH: exit %d, stderr %q; want exit 2 and one line saying they are the same", r.code, r.stderr)
	}
}

// An empty -N (a script's unset variable) is bad input for every command
// that takes -N, never a quiet read of sockscope's own namespace.
func TestEmptyNamespaceName(t *testing.T) {
	for _, args := range [][]string{{"list"}, {"watch", "--for", "1s"}, {"stats"}, {"bind", ":9000"},
		{"demo", "client"}, {"exporter", "--listen", "127.0.0.1:0"}} {
		r := runIn(t, 10*time.Second, nil, append(args, "-N", "")...)
		if r.code != 2 || !oneLine(r.stderr) || !strings.Contains(r.stderr, `-N ""`) || r.stdout != "" {
			t.Errorf("%v -N '': exit %d, stdout %q, stderr %q; want exit 2 naming the empty -N", args, r.code, r.stdout, r.stderr)
		}
	}
}

// A FIFO would block an open until a writer came: it is refused at once.
func TestNamespaceFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"list", "stats", "watch"} {
		r := runIn(t, 10*time.Second, nil, cmd, "-N", fifo)
		if r.code != 2 || !oneLine(r.stderr) || !strings.Contains(r.stderr, fifo) {
			t.Errorf("%s -N FIFO: exit %d, stderr %q; want exit 2 and one line naming %s", cmd, r.code, r.stderr, fifo)
		}
	}
}

var (
	plainOnce sync.Once
	plainBin  string
	plainErr  error
)

// plainBinary is the binary without the race detector: its runtime
// reserves terabytes of address space before main runs, so an address
// space limit can only be tested on a plain build.
func plainBinary(t *testing.T) string {
	t.Helper()
	if !raceEnabled {
		return binary
	}
	plainOnce.Do(func() {
		plainBin = filepath.Join(filepath.Dir(binary), "sockscope-plain")
		out, err := exec.Command("go", "build", "-o", plainBin, ".").CombinedOutput()
		if err != nil {
			plainErr = errors.New(string(out))
		}
	})
	if plainErr != nil {
		t.Fatalf("building without -race: %v", plainErr)
	}
	return plainBin
}

// Too few descriptors or too little address space is the machine's
// fault: exit 1 and one line naming the limit, not a runtime trace.
func TestTooLittleOfTheMachine(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs prlimit (util-linux)")
		}
		t.Skip("needs prlimit (util-linux)")
	}
	bin := plainBinary(t)
	// The address space limit is just under what sockscope asks for: much
	// lower (1.5 GB), the Go runtime itself fails now and then before main
	// runs (2 runs in 100 here: its heap's base address is random), which
	// no program can report in one line.
	for _, tc := range []struct{ limit, want string }{
		{"--nofile=16", "file descriptors"},
		{"--as=1950000000", "address space"},
	} {
		cmd := exec.Command(prlimit, tc.limit, bin, "list")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !oneLine(errb.String()) ||
			!strings.Contains(errb.String(), tc.want) || strings.Contains(errb.String(), "goroutine") {
			t.Errorf("prlimit %s sockscope list: %v, stdout %q, stderr %q; want exit 1 and one line naming %s",
				tc.limit, err, out.String(), errb.String(), tc.want)
		}
	}
}

// needRootAndSetpriv returns setpriv's path, or skips (fails under CI).
func needRootAndSetpriv(t *testing.T) string {
	t.Helper()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil || os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root and setpriv")
		}
		t.Skip("needs root and setpriv")
	}
	return setpriv
}

// binaryForNobody copies the binary where nobody may run it.
func binaryForNobody(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sockscope")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// A namespace nobody may enter exists: that is not bad input (exit 1, not
// 2), and the one line says which namespace, not a /proc file.
func TestNamespaceNotEnterable(t *testing.T) {
	setpriv := needRootAndSetpriv(t)
	ns := nstest.New(t)
	bin := binaryForNobody(t)
	// The namespace of pid 1 by its /proc path: nobody may not even open
	// it (EACCES). Not bad input either: exit 1, naming it.
	for _, arg := range []string{ns.Name, ns.Path(), "/proc/1/ns/net"} {
		for _, args := range [][]string{{"list", "-N", arg}, {"list", "--procfs", "-N", arg}, {"stats", "-N", arg},
			{"list", "-N", arg, "dev", "lo"}} {
			cmd := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", bin}, args...)...)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			var ee *exec.ExitError
			msg := errb.String()
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || !oneLine(msg) ||
				strings.HasPrefix(msg, "sockscope: opening /proc/net/tcp") || !strings.Contains(msg, strings.TrimPrefix(arg, "/run/netns/")) {
				t.Errorf("%q as nobody: %v, stdout %q, stderr %q; want exit 1 and one line naming the namespace",
					args, err, out.String(), msg)
			}
		}
	}
}

// Output that cannot be written is an error said on stderr, never a
// silent exit 0.
func TestNoOutputLostSilently(t *testing.T) {
	ns := nstest.New(t)
	// A listener, so that every listing has a row to lose: a listing of
	// nothing (-H, --json) writes nothing, and loses nothing.
	ns.Listen(t, netip.MustParseAddrPort("127.0.0.1:9000"))
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		nstest.Unavailable(t, "no /dev/full: %v", err)
	}
	defer full.Close()
	for _, args := range [][]string{
		{"list", "-N", ns.Name},
		{"list", "--json", "-N", ns.Name},
		{"list", "-H", "-N", ns.Name},
		{"stats", "-N", ns.Name},
		{"stats", "--json", "-N", ns.Name},
		{"version"},
		{"--version"},
		{"--help"},
		{"list", "--help"},
		{"completion", "bash"},
		{"bind", "-N", ns.Name, ":9000"},
		{"bind", "--json", "-N", ns.Name, ":9000"},
		{"demo", "client", "-N", ns.Name, "-n", "0"},
		{"agent", "status"},
	} {
		r := runIn(t, 20*time.Second, full, args...)
		if args[0] == "demo" {
			// Nothing to say, nothing lost.
			if r.code != 0 || r.stderr != "" {
				t.Errorf("%q to /dev/full: exit %d, stderr %q", args, r.code, r.stderr)
			}
			continue
		}
		if r.code != 1 || !oneLine(r.stderr) || !strings.Contains(r.stderr, "no space left on device") ||
			strings.Contains(r.stderr, "goroutine") {
			t.Errorf("%q to /dev/full: exit %d, stderr %q; want exit 1 and one line naming the failure", args, r.code, r.stderr)
		}
		// bind's exit status 1 also means "not bindable": the message
		// must be about writing.
		if args[0] == "bind" && !strings.Contains(r.stderr, "writing") {
			t.Errorf("%q to /dev/full: stderr %q does not say the write failed", args, r.stderr)
		}
	}
}

// Ctrl-C (or SIGTERM) ends a demo client whose SYNs nobody answers at
// once, not after the kernel's two minutes of retries.
func TestDemoClientInterrupted(t *testing.T) {
	ns := nstest.New(t)
	// This kernel has no dummy driver: a bridge with an address, and a
	// permanent neighbour entry so that the SYN leaves and nobody answers.
	for _, args := range [][]string{
		{"link", "add", "br0", "type", "bridge"},
		{"addr", "add", "10.9.9.1/24", "dev", "br0"},
		{"link", "set", "br0", "up"},
		{"neigh", "add", "10.9.9.2", "lladdr", "02:00:00:00:00:02", "dev", "br0", "nud", "permanent"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", ns.Name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %q: %v: %s", args, err, out)
		}
	}
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(binary, "demo", "client", "-N", ns.Name, "--addr", "10.9.9.2")
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-done
			})
			// Wait for the SYN to be on its way.
			deadline := time.Now().Add(10 * time.Second)
			for {
				rows := listJSON(t, "-N", ns.Name, "state", "syn-sent")
				if len(rows) == 1 && rows[0].Peer == "10.9.9.2:9000" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no SYN_SENT socket to 10.9.9.2:9000: %+v (client stderr %q)", rows, errb.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil || strings.Contains(errb.String(), "goroutine") {
					t.Errorf("after %v: %v, stdout %q, stderr %q; want exit 0", sig, err, out.String(), errb.String())
				}
				done <- nil // for the cleanup
			case <-time.After(5 * time.Second):
				t.Fatalf("demo client still running 5s after %v", sig)
			}
			// Its socket went with it.
			deadline = time.Now().Add(5 * time.Second)
			for len(listJSON(t, "-N", ns.Name, "state", "syn-sent")) != 0 {
				if time.Now().After(deadline) {
					t.Fatal("the SYN_SENT socket outlived the client")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// What cobra adds itself, help and completion, takes bad input as every
// command does: exit 2, one line naming it, never help and exit 0.
func TestCobraCommandsBadInput(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		token string
	}{
		{[]string{"completion"}, "bash"},
		{[]string{"completion", "tcsh"}, "tcsh"},
		{[]string{"completion", "bash", "extra"}, "extra"},
		{[]string{"completion", "zsh", "--bogus"}, "--bogus"},
		{[]string{"help", "bogus"}, "bogus"},
		{[]string{"help", "lsit"}, "did you mean list"},
		{[]string{"help", "list", "bogus"}, "bogus"},
		{[]string{"version", "extra"}, "extra"},
	} {
		r := sockscope(t, tc.args...)
		if r.code != 2 || r.stdout != "" || !oneLine(r.stderr) || !strings.Contains(r.stderr, tc.token) ||
			strings.Contains(r.stderr, "sockscope: sockscope:") {
			t.Errorf("sockscope %q: exit %d, stdout %d bytes, stderr %q; want exit 2 and one line naming %q",
				tc.args, r.code, len(r.stdout), r.stderr, tc.token)
		}
	}
	// The good forms still work.
	for _, args := range [][]string{{"help"}, {"help", "list"}, {"help", "demo", "server"}, {"completion", "--help"}} {
		if r := sockscope(t, args...); r.code != 0 || r.stdout == "" || r.stderr != "" {
			t.Errorf("sockscope %q: exit %d, stdout %d bytes, stderr %q", args, r.code, len(r.stdout), r.stderr)
		}
	}
}
