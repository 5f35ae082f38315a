package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/nstest"
	"golang.org/x/sys/unix"
)

// listeners opens n listeners on ports from 9000 inside ns, held by this
// process until the test ends.
func listeners(t *testing.T, ns netns.NS, n int) {
	t.Helper()
	for i := range n {
		var fd int
		if err := ns.Run(func() (err error) {
			fd, err = nstest.Listen(netip.MustParseAddrPort(fmt.Sprintf("0.0.0.0:%d", 9000+i)), false)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
	}
}

type netnsLine struct {
	Netns struct {
		Inode        uint64 `json:"inode"`
		Label        string `json:"label"`
		Runtime      string `json:"runtime"`
		Container    string `json:"container"`
		Pod          string `json:"pod"`
		PodNamespace string `json:"pod_namespace"`
		PID          int    `json:"pid"`
		Host         bool   `json:"host"`
	} `json:"netns"`
	Counts map[string]int `json:"counts"`
	Total  int            `json:"total"`
}

// sockscope netns finds namespaces of every kind, says who they belong
// to, counts their sockets by state and puts the most first.
func TestIntegrationNetnsSummary(t *testing.T) {
	const cid = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	uid := "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901"
	logs := t.TempDir()
	if err := os.Mkdir(filepath.Join(logs, "shop_cart-7f9c_"+uid), 0o755); err != nil {
		t.Fatal(err)
	}
	root := nstest.Cgroup(t, "/sys/fs/cgroup/unified", "sockscope-test-netns-"+strconv.Itoa(os.Getpid()))

	type want = netnsWant
	wants := map[uint64]want{}
	// Named namespaces, with 1 and 2 listeners.
	for n := 1; n <= 2; n++ {
		ns := nstest.New(t)
		listeners(t, ns.NS(t), n)
		wants[ns.NS(t).Inode] = want{label: ns.Name, listen: n}
	}
	// A Docker container's process: 3 listeners.
	docker := nstest.Cgroup(t, root, "docker-"+cid+".scope")
	cmd, ns := nstest.Unshared(t)
	nstest.Join(t, docker, cmd.Process.Pid)
	listeners(t, ns, 3)
	wants[ns.Inode] = want{label: "docker:" + cid[:12], runtime: "docker", listen: 3}
	// A pod's containerd container: 4 listeners.
	pod := nstest.Cgroup(t, root, "kubepods.slice/kubepods-pod"+strings.ReplaceAll(uid, "-", "_")+".slice/cri-containerd-"+cid+".scope")
	cmd, ns = nstest.Unshared(t)
	nstest.Join(t, pod, cmd.Process.Pid)
	listeners(t, ns, 4)
	wants[ns.Inode] = want{label: "shop/cart-7f9c", runtime: "containerd", listen: 4}

	// With the filter each namespace is dumped; without one, as root, the
	// namespaces in the host's shared table are counted in one walk of it
	// (tablecount). Both say the same.
	for _, filter := range [][]string{{"state", "listening"}, nil} {
		checkNetnsSummary(t, wants, append([]string{"netns", "--json", "--sort", "listen", "--pod-logs", logs}, filter...)...)
	}
	// The table says the same, one line per namespace, with a header.
	tbl := sockscope(t, "netns", "--sort", "listen", "--pod-logs", logs, "state", "listening")
	if !strings.HasPrefix(tbl.stdout, "NETNS ") || !strings.Contains(tbl.stdout, "pod shop/cart-7f9c") ||
		!strings.Contains(tbl.stdout, "docker "+cid[:12]) {
		t.Errorf("netns table:\n%s", tbl.stdout)
	}
	bad := sockscope(t, "netns", "--sort", "bogus")
	if bad.code != 2 || !strings.Contains(bad.stderr, "bogus") {
		t.Errorf("netns --sort bogus: exit %d, stderr %q", bad.code, bad.stderr)
	}
}

type netnsWant struct {
	label, runtime string
	listen         int
}

// checkNetnsSummary runs sockscope with args (netns --json --sort listen)
// and checks that each namespace of wants is listed once, with its
// identity, its listeners and nothing else, most listeners first.
func checkNetnsSummary(t *testing.T, wants map[uint64]netnsWant, args ...string) {
	t.Helper()
	r := sockscope(t, args...)
	if r.code != 0 {
		t.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
	}
	// As root the walk loads: no namespace is dumped on its own for
	// want of it.
	if strings.Contains(r.stderr, "dumped on its own") {
		t.Errorf("%v: %s", args, r.stderr)
	}
	var order []uint64
	seen := map[uint64]netnsLine{}
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		var l netnsLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if _, dup := seen[l.Netns.Inode]; dup {
			t.Errorf("net:[%d] listed twice", l.Netns.Inode)
		}
		seen[l.Netns.Inode] = l
		if _, ours := wants[l.Netns.Inode]; ours {
			order = append(order, l.Netns.Inode)
		}
	}
	for ino, w := range wants {
		l, ok := seen[ino]
		if !ok {
			t.Errorf("%v: net:[%d] (%s) not listed", args, ino, w.label)
			continue
		}
		if l.Netns.Label != w.label || l.Netns.Runtime != w.runtime || l.Counts["LISTEN"] != w.listen || l.Total != w.listen {
			t.Errorf("%v: net:[%d]: %+v; want %s (%s) with %d listeners and nothing else", args, ino, l, w.label, w.runtime, w.listen)
		}
	}
	// Most listeners first.
	for i := 1; i < len(order); i++ {
		if wants[order[i-1]].listen < wants[order[i]].listen {
			t.Errorf("%v: %s before %s", args, wants[order[i-1]].label, wants[order[i]].label)
		}
	}
}
