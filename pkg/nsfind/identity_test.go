package nsfind

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/sockscope/sockscope/pkg/nstest"
)

const cid = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseCgroup(t *testing.T) {
	for _, tc := range []struct {
		name, content string
		want          Cgroup
	}{
		{"docker under systemd", "0::/system.slice/docker-" + cid + ".scope\n", Cgroup{Runtime: "docker", Container: cid}},
		{"docker under cgroupfs", "12:memory:/docker/" + cid + "\n1:name=systemd:/docker/" + cid + "\n", Cgroup{Runtime: "docker", Container: cid}},
		{"containerd in a pod (systemd)", "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/cri-containerd-" + cid + ".scope\n",
			Cgroup{Runtime: "containerd", Container: cid, PodUID: "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901"}},
		{"containerd in a pod (cgroupfs, v1)", "9:name=systemd:/kubepods/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/cri-containerd-" + cid + "\n4:pids:/kubepods/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/" + cid + "\n",
			Cgroup{PodUID: "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901"}},
		{"crio", "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/crio-" + cid + ".scope\n",
			Cgroup{Runtime: "crio", Container: cid, PodUID: "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901"}},
		{"podman", "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + cid + ".scope\n", Cgroup{Runtime: "podman", Container: cid}},
		{"a systemd service", "0::/system.slice/nginx.service\n", Cgroup{Unit: "nginx.service"}},
		{"the root", "0::/\n9:name=systemd:/\n", Cgroup{}},
		{"a name that is no container", "0::/system.slice/docker-notanid.scope\n", Cgroup{Unit: "docker-notanid.scope"}},
	} {
		if got := ParseCgroup(tc.content); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// A pod's namespace and name come from the kubelet's log directory.
func TestPodFromLogs(t *testing.T) {
	dir := t.TempDir()
	uid := "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901"
	for _, d := range []string{"kube-system_coredns-5d78c9869d-abcde_" + uid, "default_web-0_99999999-0000-0000-0000-000000000000"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if ns, name := podFromLogs(dir, uid); ns != "kube-system" || name != "coredns-5d78c9869d-abcde" {
		t.Errorf("pod %q/%q, want kube-system/coredns-5d78c9869d-abcde", ns, name)
	}
	if ns, name := podFromLogs(dir, "00000000-0000-0000-0000-000000000000"); ns != "" || name != "" {
		t.Errorf("an unknown pod: %q/%q", ns, name)
	}
}

// A namespace whose process sits in cgroups named as Docker and as a
// containerd container of a Kubernetes pod is identified as those, with
// the pod's name from a log directory the test makes.
func TestIntegrationIdentify(t *testing.T) {
	// Everything the test makes sits in one directory of its own, removed
	// last.
	unified := nstest.Cgroup(t, "/sys/fs/cgroup/unified", "sockscope-test-"+strconv.Itoa(os.Getpid()))
	uid := "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901"
	logs := t.TempDir()
	if err := os.Mkdir(filepath.Join(logs, "shop_cart-7f9c_"+uid), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cgroup             string
		runtime, container string
		podUID, label      string
	}{
		{"docker-" + cid + ".scope", "docker", cid, "", "docker:" + cid[:12]},
		{"kubepods.slice/kubepods-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/cri-containerd-" + cid + ".scope",
			"containerd", cid, uid, "shop/cart-7f9c"},
	} {
		dir := nstest.Cgroup(t, unified, tc.cgroup)
		cmd, ino := unshared(t)
		nstest.Join(t, dir, cmd.Process.Pid)
		found, err := Scan(Options{})
		if err != nil {
			t.Fatal(err)
		}
		var n *Namespace
		for i := range found {
			if found[i].Inode == ino {
				n = &found[i]
			}
		}
		if n == nil {
			t.Fatalf("net:[%d] not found", ino)
		}
		id := Identify(n, IdentifyOptions{PodLogs: logs})
		if id.Runtime != tc.runtime || id.Container != tc.container || id.PodUID != tc.podUID ||
			id.Label != tc.label || id.PID != cmd.Process.Pid || id.Command != "sleep" {
			t.Errorf("%s: %+v; want %s %s, pod %q, label %q, pid %d (sleep)", tc.cgroup, id,
				tc.runtime, tc.container, tc.podUID, tc.label, cmd.Process.Pid)
		}
	}
	// The host's own is "host".
	found, err := Scan(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if id := Identify(&found[0], IdentifyOptions{PodLogs: logs}); !found[0].Self || id.Label != "host" {
		t.Errorf("the first namespace: %+v, %+v; want this host's, labelled host", found[0], id)
	}
}

// The host's namespace is the one its first process and the kernel's
// threads are in, whichever sockscope runs in: run by ip netns exec, its
// own goes by its name.
func TestHostIsTheFirstProcesses(t *testing.T) {
	self := &Namespace{Inode: 7, Names: []string{"uxa"}, Self: true}
	init := &Namespace{Inode: 8, PIDs: []int{2, 3}} // pid 1 unreadable
	if id := Identify(self, IdentifyOptions{}); id.Label != "uxa" {
		t.Errorf("sockscope's own namespace, named uxa: labelled %q", id.Label)
	}
	if id := Identify(init, IdentifyOptions{}); id.Label != "host" || !init.Init() || self.Init() {
		t.Errorf("pid 1's namespace: labelled %q (Init %v, the other's %v)", id.Label, init.Init(), self.Init())
	}
}
