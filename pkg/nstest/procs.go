package nstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	sns "github.com/sockscope/sockscope/pkg/netns"
	"golang.org/x/sys/unix"
)

// Unshared starts a process (sleep) in a network namespace of its own,
// with no name, and returns it and its namespace; the process is killed
// when the test ends (or earlier, by the test, to leave the namespace
// held by something else).
func Unshared(t testing.TB) (*exec.Cmd, sns.NS) {
	t.Helper()
	cmd := exec.Command("unshare", "--net", "sleep", "600")
	if err := cmd.Start(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("unshare: %v", err)
		}
		t.Skipf("unshare: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	self, err := sns.Self()
	if err != nil {
		t.Fatal(err)
	}
	// unshare enters the new namespace, then execs sleep: wait until the
	// process shows a namespace other than ours, and is sleep (a test
	// that names the process must not read "unshare").
	path := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
	comm := fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var st unix.Stat_t
		name, err := os.ReadFile(comm)
		if unix.Stat(path, &st) == nil && st.Ino != self.Inode && err == nil && string(name) == "sleep\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never left this namespace as sleep (comm %q, %v)", cmd.Process.Pid, name, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	ns, err := sns.Resolve(path)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, ns
}

// Cgroup makes a cgroup directory rel below root (cgroup2 here is at
// /sys/fs/cgroup/unified) and removes it and its parents up to root when
// the test ends. Processes put in it must end before that: start them
// after calling Cgroup, so that their cleanup runs first.
func Cgroup(t testing.TB, root, rel string) string {
	t.Helper()
	dir := filepath.Join(root, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("making cgroup %s: %v", dir, err)
		}
		t.Skipf("making cgroup %s: %v", dir, err)
	}
	t.Cleanup(func() {
		// Innermost first. A cgroup goes once its processes have exited,
		// which the kernel notes a moment after they are reaped. A parent
		// that still holds another test cgroup is left to that one's
		// cleanup.
		for d := dir; d != root && d != "." && d != "/"; d = filepath.Dir(d) {
			if d != dir && hasSubdirs(d) {
				break
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				err := os.Remove(d)
				if err == nil || os.IsNotExist(err) {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("removing cgroup %s: %v", d, err)
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	})
	return dir
}

// hasSubdirs reports whether the cgroup dir has child cgroups.
func hasSubdirs(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if e.IsDir() {
			return true
		}
	}
	return false
}

// Join moves pid into the cgroup directory dir.
func Join(t testing.TB, dir string, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(pid)), 0o644); err != nil {
		t.Fatalf("moving pid %d into %s: %v", pid, dir, err)
	}
}
