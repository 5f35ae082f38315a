package main

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
		if err := cmd.Run(); err != nil || errb.Len() != 0 {
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
