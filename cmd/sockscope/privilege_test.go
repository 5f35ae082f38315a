package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/nstest"
	"golang.org/x/sys/unix"
)

// Not root: the dump works (the kernel allows it), and owners of other
// users' sockets show as unknown with one notice, not an error per row.
func TestIntegrationUnprivileged(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil || os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root and setpriv")
		}
		t.Skip("needs root and setpriv")
	}
	ns := nstest.New(t)
	nstest.RunSeed(t, ns, nstest.SeedOptions{Tutorial: true})
	// nobody cannot enter root's build directory: copy the binary out.
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "sockscope")
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	// Run as nobody inside the namespace: ip netns exec enters it as
	// root, setpriv then drops to nobody.
	cmd := exec.Command("ip", "netns", "exec", ns.Name, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
		bin, "list", "-p", ":9000")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("list as nobody: %v: %s", err, stderr.String())
	}
	if !strings.Contains(out.String(), "TIME_WAIT 2") || !strings.Contains(out.String(), "LISTEN 1") {
		t.Errorf("list as nobody:\n%s", out.String())
	}
	// The listener belongs to root (this test): its owner is unknown.
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "LISTEN") && !strings.HasSuffix(strings.TrimSpace(l), "-") {
			t.Errorf("root's listener shows an owner to nobody: %q", l)
		}
	}
	if n := strings.Count(stderr.String(), "\n"); n != 1 || !strings.Contains(stderr.String(), "could not be inspected") {
		t.Errorf("want one notice on stderr, got %q", stderr.String())
	}
	// The live modes too: polls, lookups and destroy events need no
	// privilege.
	for _, args := range [][]string{{"watch", "--for", "1s", ":9000"}, {"timewait", "--for", "1s", "--json"}, {"bind", ":9001"}, {"stats"}} {
		cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name, setpriv, "--reuid=65534", "--regid=65534",
			"--clear-groups", bin}, args...)...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		err := cmd.Run()
		// watch would read the kernel's state changes as root: without
		// BPF it polls, and says so once.
		want := ""
		if args[0] == "watch" {
			want = "exact transitions need BPF"
		}
		if err != nil || (want == "" && errb.Len() != 0) ||
			(want != "" && (strings.Count(errb.String(), "\n") != 1 || !strings.Contains(errb.String(), want))) {
			t.Errorf("%v as nobody: %v, stderr %q", args, err, errb.String())
		}
	}
}

// sockscope never shells out: none of its own packages imports os/exec.
// (tcell, the dashboard's terminal library, may run infocmp to learn a
// terminal it does not know; that is the only program the binary can start.)
func TestNoShellingOut(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "github.com/sockscope/") {
			continue
		}
		for _, imp := range f[1:] {
			if imp == "os/exec" {
				t.Errorf("%s imports os/exec", f[0])
			}
		}
	}
}

// A reader that goes away (| head -1) ends the listing quietly, even when
// the table is larger than the pipe's buffer.
func TestIntegrationClosedPipe(t *testing.T) {
	ns := nstest.New(t)
	conn := nstest.Connect(t, ns, netip.MustParseAddrPort("127.0.0.1:9000"))
	var fds []int
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	err := ns.Do(func() error {
		for range 600 { // 1,200 sockets: about 100 KB of table
			c, err := nstest.Dial(netip.MustParseAddrPort("127.0.0.1:9000"))
			if err != nil {
				return err
			}
			s, _, err := unix.Accept4(conn.Listener, unix.SOCK_CLOEXEC)
			if err != nil {
				return err
			}
			fds = append(fds, c, s)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", binary+" list -N "+ns.Name+" | head -1")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	if strings.Count(out.String(), "\n") != 1 || stderr.Len() != 0 {
		t.Errorf("stdout %q, stderr %q", out.String(), stderr.String())
	}
}

// --all-netns as a DaemonSet runs it: root in the host's PID namespace
// with exactly CAP_SYS_ADMIN (to enter namespaces) and CAP_SYS_PTRACE (to
// read other processes' namespace links and descriptors). With both it
// reads every namespace; without CAP_SYS_PTRACE the namespaces only a
// process holds are not found; without CAP_SYS_ADMIN none can be entered,
// which is said once, and the host's own sockets are still read.
func TestIntegrationAllNetnsCapabilities(t *testing.T) {
	nstest.HostLock(t) // it reads every namespace on the host
	setpriv := needRootAndSetpriv(t)
	named := nstest.New(t)
	listeners(t, named.NS(t), 2) // ports 9000 and 9001
	_, held := nstest.Unshared(t)
	if out, err := exec.Command("nsenter", "--net="+held.Path, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("bringing lo up: %v: %s", err, out)
	}
	listeners(t, held, 3) // 9000 to 9002
	self, err := netns.Self()
	if err != nil {
		t.Fatal(err)
	}
	hostFD, err := nstest.Listen(netip.MustParseAddrPort("127.0.0.1:0"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(hostFD)
	sa, err := unix.Getsockname(hostFD)
	if err != nil {
		t.Fatal(err)
	}
	hostPort := sa.(*unix.SockaddrInet4).Port

	run := func(caps string) (map[uint64]int, string) {
		t.Helper()
		cmd := exec.Command(setpriv, "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"+caps,
			binary, "list", "--all-netns", "--json", "state", "listening",
			"(", "(", "sport", ">=", ":9000", "and", "sport", "<=", ":9002", ")", "or", "sport", "=", fmt.Sprintf(":%d", hostPort), ")")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("list --all-netns with caps %q: %v: %s", caps, err, errb.String())
		}
		counts := map[uint64]int{}
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var row allRow
			if l == "" {
				continue
			}
			if err := json.Unmarshal([]byte(l), &row); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			if row.Netns.Inode == self.Inode && row.LocalPort != hostPort {
				continue // the host's own listeners, not this test's
			}
			counts[row.Netns.Inode]++
		}
		// Other tests' namespaces may go away while this one reads them
		// all: the note that says so is theirs.
		var notes []string
		for _, l := range strings.SplitAfter(errb.String(), "\n") {
			if l != "" && !strings.Contains(l, "went away before they could be read") {
				notes = append(notes, l)
			}
		}
		return counts, strings.Join(notes, "")
	}
	namedIno, heldIno := named.NS(t).Inode, held.Inode

	counts, stderr := run(",+sys_admin,+sys_ptrace")
	if counts[namedIno] != 2 || counts[heldIno] != 3 || counts[self.Inode] != 1 || stderr != "" {
		t.Errorf("with CAP_SYS_ADMIN and CAP_SYS_PTRACE: %v, stderr %q; want 2 in %s, 3 in pid-held net:[%d], 1 in the host's",
			counts, stderr, named.Name, heldIno)
	}
	// The exporter with the same two: CAP_SYS_ADMIN also lets it load
	// the program that counts every namespace in one walk of the shared
	// table, so the scrape walks rather than dumps, and says nothing.
	exp := exec.Command(setpriv, "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all,+sys_admin,+sys_ptrace",
		binary, "exporter", "--all-netns", "--listen", "127.0.0.1:0")
	expErr, err := exp.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(); err != nil {
		t.Fatal(err)
	}
	var drained chan struct{} // closed once its stderr is read to the end
	defer func() {
		exp.Process.Kill()
		if drained != nil {
			<-drained // Wait closes the pipe: not before the reads end
		}
		exp.Wait()
	}()
	sc := bufio.NewScanner(expErr)
	var expNotes []string
	for sc.Scan() && !strings.Contains(sc.Text(), "serving http://") {
		expNotes = append(expNotes, sc.Text())
	}
	url := regexp.MustCompile(`http://\S+`).FindString(sc.Text())
	if url == "" || len(expNotes) > 0 {
		t.Fatalf("exporter with CAP_SYS_ADMIN and CAP_SYS_PTRACE said %q, then %q", expNotes, sc.Text())
	}
	drained = make(chan struct{})
	go func() {
		defer close(drained)
		io.Copy(io.Discard, expErr)
	}()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf(`sockscope_scrape_walked{container_id="",netns=%q,pod="",pod_namespace=""} 1`, named.Name),
		fmt.Sprintf(`sockscope_tcp_sockets{container_id="",family="ipv4",local_port="",netns=%q,pod="",pod_namespace="",state="LISTEN"} 2`, named.Name),
	}
	for _, w := range want {
		if !strings.Contains(string(body), w+"\n") {
			t.Errorf("the exporter's scrape lacks %s", w)
		}
	}

	counts, _ = run(",+sys_admin")
	if counts[namedIno] != 2 || counts[heldIno] != 0 {
		t.Errorf("without CAP_SYS_PTRACE: %v; want the named namespace's 2 and not the process-held one", counts)
	}
	counts, stderr = run(",+sys_ptrace")
	if counts[self.Inode] != 1 || counts[namedIno] != 0 || strings.Count(stderr, "\n") != 1 ||
		!strings.Contains(stderr, "cannot enter some network namespaces") || !strings.Contains(stderr, "CAP_SYS_ADMIN") {
		t.Errorf("without CAP_SYS_ADMIN: %v, stderr %q; want the host's socket and one note", counts, stderr)
	}
}
