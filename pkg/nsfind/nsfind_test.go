package nsfind

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/nstest"
	"golang.org/x/sys/unix"
)

func TestParseMountinfoLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		ino  uint64
		mnt  string
		ok   bool
	}{
		{"43 42 0:4 net:[4026532177] /run/netns/probe1 rw shared:2 - nsfs nsfs rw", 4026532177, "/run/netns/probe1", true},
		{`50 42 0:4 net:[4026532300] /run/docker/netns/a\040b rw - nsfs nsfs rw`, 4026532300, "/run/docker/netns/a b", true},
		{"51 42 0:4 uts:[4026532301] /tmp/uts rw - nsfs nsfs rw", 0, "", false}, // not a network namespace
		{"22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw", 0, "", false},   // not nsfs
		{"52 42 0:4 net:[x] /tmp/bad rw - nsfs nsfs rw", 0, "", false},          // not a number
		{"garbage", 0, "", false},
	} {
		ino, mnt, ok := parseMountinfoLine(tc.line)
		if ino != tc.ino || mnt != tc.mnt || ok != tc.ok {
			t.Errorf("parseMountinfoLine(%q) = %d, %q, %v; want %d, %q, %v", tc.line, ino, mnt, ok, tc.ino, tc.mnt, tc.ok)
		}
	}
}

// unshared is nstest.Unshared with the namespace's inode.
func unshared(t *testing.T) (*exec.Cmd, uint64) {
	t.Helper()
	cmd, ns := nstest.Unshared(t)
	return cmd, ns.Inode
}

// stop kills a process and waits for it, so that only what else holds
// its namespace keeps it alive.
func stop(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}

// Twenty namespaces of the four kinds, each held by one thing only: a
// name, a process, a bind mount outside /run/netns, an open descriptor.
// Scan finds each once, says what holds it, and gives a path that opens
// it.
func TestIntegrationScanFindsEveryKind(t *testing.T) {
	type want struct {
		kind, holder string
	}
	wants := map[uint64]want{}
	dir := t.TempDir()
	for i := range 5 {
		// A name under /run/netns, no process.
		ns := nstest.New(t)
		wants[ns.NS(t).Inode] = want{"name", ns.Name}

		// A process, no name.
		cmd, ino := unshared(t)
		wants[ino] = want{"pid", strconv.Itoa(cmd.Process.Pid)}

		// A bind mount outside /run/netns, after its process is gone.
		cmd, ino = unshared(t)
		mnt := filepath.Join(dir, fmt.Sprintf("mnt%d", i))
		if err := os.WriteFile(mnt, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid), mnt, "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("bind-mounting a namespace: %v", err)
		}
		t.Cleanup(func() {
			if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
				t.Errorf("unmounting %s: %v", mnt, err)
			}
		})
		stop(t, cmd)
		wants[ino] = want{"mount", mnt}

		// An open descriptor in this process, after its process is gone.
		cmd, ino = unshared(t)
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		stop(t, cmd)
		wants[ino] = want{"fd", fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())}
	}

	found, err := Scan(Options{Descriptors: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) == 0 || !found[0].Self {
		t.Fatalf("the first namespace found is not this process's: %+v", found)
	}
	byIno := map[uint64]Namespace{}
	for _, n := range found {
		if _, dup := byIno[n.Inode]; dup {
			t.Errorf("net:[%d] found twice", n.Inode)
		}
		byIno[n.Inode] = n
	}
	for ino, w := range wants {
		n, ok := byIno[ino]
		if !ok {
			t.Errorf("%s namespace net:[%d] (%s) not found", w.kind, ino, w.holder)
			continue
		}
		var held bool
		var path string
		switch w.kind {
		case "name":
			held, path = slices.Contains(n.Names, w.holder), filepath.Join("/run/netns", w.holder)
		case "pid":
			held, path = slices.Contains(n.PIDs, atoi(w.holder)), "/proc/"+w.holder+"/ns/net"
		case "mount":
			held, path = slices.Contains(n.Mounts, w.holder), w.holder
		case "fd":
			held, path = slices.Contains(n.FDs, w.holder), w.holder
		}
		if !held || n.Path != path {
			t.Errorf("%s namespace net:[%d]: %+v; want it held by %s and opened at %s", w.kind, ino, n, w.holder, path)
			continue
		}
		// The path opens that very namespace.
		got, err := netns.Resolve(n.Path)
		if err != nil || got.Inode != ino {
			t.Errorf("%s: resolved %+v, %v; want net:[%d]", n.Path, got, err, ino)
		}
	}

	// Without the descriptor walk, a namespace held only by one is not
	// found: the option is what finds it.
	quick, err := Scan(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range quick {
		if w, ok := wants[n.Inode]; ok && w.kind == "fd" {
			t.Errorf("net:[%d], held only by a descriptor, found without the descriptor walk: %+v", n.Inode, n)
		}
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return n
}

// BenchmarkScan is a rescan of a host with 200 namespaces and 2,000
// processes (100 of them in namespaces of their own, the rest in this
// one), as a live front end would repeat it every second:
//
//	go test ./pkg/nsfind -run '^$' -bench Scan -benchmem
func BenchmarkScan(b *testing.B) {
	for range 100 {
		nstest.New(b)
	}
	for i := range 2000 {
		args := []string{"sleep", "600"}
		if i < 100 {
			args = append([]string{"unshare", "--net"}, args...)
		}
		cmd := exec.Command(args[0], args[1:]...)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	for _, opt := range []Options{{}, {Descriptors: true}} {
		b.Run(fmt.Sprintf("descriptors=%v", opt.Descriptors), func(b *testing.B) {
			n := 0
			for b.Loop() {
				found, err := Scan(opt)
				if err != nil {
					b.Fatal(err)
				}
				n = len(found)
			}
			b.ReportMetric(float64(n), "namespaces")
		})
	}
}

// A namespace held only by a mount in another mount namespace, the host's
// as a container sees it: found through that namespace's process
// (HostPID), and opened through /proc/PID/root.
func TestIntegrationScanHostMounts(t *testing.T) {
	// A process in a mount namespace of its own, in which a namespace is
	// bind-mounted: this test's mount namespace does not see that mount.
	dir := t.TempDir()
	mnt := filepath.Join(dir, "held")
	if err := os.WriteFile(mnt, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	held, ino := unshared(t)
	host := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		fmt.Sprintf("mount --bind /proc/%d/ns/net %s && echo ready && exec sleep 600", held.Process.Pid, mnt))
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Process.Kill(); host.Wait() })
	buf := make([]byte, 6)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("the other mount namespace: %q, %v", buf, err)
	}
	stop(t, held) // only the mount holds it now

	own, err := Scan(Options{HostPID: os.Getpid()}) // the same mount namespace: nothing more
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range own {
		if n.Inode == ino {
			t.Fatalf("net:[%d] found without reading the other mount namespace: %+v", ino, n)
		}
	}
	found, err := Scan(Options{HostPID: host.Process.Pid})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("/proc/%d/root%s", host.Process.Pid, mnt)
	for _, n := range found {
		if n.Inode != ino {
			continue
		}
		if n.Path != want || !slices.Contains(n.Mounts, want) {
			t.Errorf("net:[%d]: %+v; want it held by the mount %s", ino, n, want)
		}
		got, err := netns.Resolve(n.Path)
		if err != nil || got.Inode != ino {
			t.Errorf("%s opens %+v, %v; want net:[%d]", n.Path, got, err, ino)
		}
		return
	}
	t.Errorf("net:[%d], mounted at %s in pid %d's mount namespace, not found", ino, mnt, host.Process.Pid)
}
