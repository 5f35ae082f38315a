package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/nstest"
	"golang.org/x/sys/unix"
)

// worldNS is one namespace of the test's host, with what the front ends
// must say of it.
type worldNS struct {
	kind                    string // named, docker, pod, crio, podman, mount, fd
	ns                      netns.NS
	label                   string
	container, pod, podNS   string
	listen, closeWait, port int // port: a listener only this namespace has
	cmd                     *exec.Cmd
	fds                     []int // the sockets the test holds in it
}

// world is a host full of namespaces of every kind.
type world struct {
	t      *testing.T
	logs   string // the fake /var/log/pods
	all    []*worldNS
	byIno  map[uint64]*worldNS
	cgroup string
}

func hexID(seed string) string {
	h := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(h[:])
}

// sockets opens in w's namespace its listeners (ports 9000 up, and its own
// port) and CLOSE_WAIT connections (a client that closed, a server end
// accepted and kept).
func (w *worldNS) sockets(t *testing.T) {
	t.Helper()
	loop := netip.MustParseAddr("127.0.0.1")
	if w.kind != "named" { // unshare leaves loopback down
		if out, err := exec.Command("nsenter", "--net="+w.ns.Path, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
			t.Fatalf("bringing lo up in %s: %v: %s", w.ns.Path, err, out)
		}
	}
	err := w.ns.Run(func() error {
		var first int
		for i := range w.listen - 1 {
			fd, err := nstest.Listen(netip.AddrPortFrom(loop, uint16(9000+i)), false)
			if err != nil {
				return err
			}
			if i == 0 {
				first = fd
			}
			w.fds = append(w.fds, fd)
		}
		fd, err := nstest.Listen(netip.AddrPortFrom(loop, uint16(w.port)), false)
		if err != nil {
			return err
		}
		w.fds = append(w.fds, fd)
		for range w.closeWait {
			c, err := nstest.Dial(netip.AddrPortFrom(loop, 9000))
			if err != nil {
				return err
			}
			s, _, err := unix.Accept4(first, unix.SOCK_CLOEXEC)
			if err != nil {
				return err
			}
			w.fds = append(w.fds, s)
			if err := unix.Close(c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("sockets in %s: %v", w.label, err)
	}
	t.Cleanup(w.closeSockets)
}

func (w *worldNS) closeSockets() {
	for _, fd := range w.fds {
		unix.Close(fd)
	}
	w.fds = nil
}

// newWorld makes per kind namespaces: named, held by a process in a
// Docker, Kubernetes (containerd), CRI-O or Podman cgroup, bind-mounted
// outside /run/netns, and held only by an open descriptor.
func newWorld(t *testing.T, perKind int) *world {
	w := &world{t: t, logs: t.TempDir(), byIno: map[uint64]*worldNS{}}
	w.cgroup = nstest.Cgroup(t, "/sys/fs/cgroup/unified", "sockscope-test-world-"+strconv.Itoa(os.Getpid()))
	mounts := t.TempDir()
	n := 0
	add := func(x *worldNS) {
		n++
		x.listen, x.closeWait, x.port = 2+n%3, n%2, 10000+n
		x.sockets(t)
		w.all = append(w.all, x)
		w.byIno[x.ns.Inode] = x
	}
	// started runs a process in a namespace of its own, in a cgroup rel.
	started := func(rel string) (*exec.Cmd, netns.NS) {
		dir := nstest.Cgroup(t, w.cgroup, rel)
		cmd, ns := nstest.Unshared(t)
		nstest.Join(t, dir, cmd.Process.Pid)
		return cmd, ns
	}
	for i := range perKind {
		named := nstest.New(t)
		add(&worldNS{kind: "named", ns: named.NS(t), label: named.Name})

		id := hexID(fmt.Sprint("docker", i))
		cmd, ns := started("docker-" + id + ".scope")
		add(&worldNS{kind: "docker", ns: ns, label: "docker:" + id[:12], container: id, cmd: cmd})

		id = hexID(fmt.Sprint("pod", i))
		uid := fmt.Sprintf("%08x-aaaa-bbbb-cccc-%012x", i, i)
		pod, podNS := fmt.Sprintf("cart-%d", i), "shop"
		if err := os.Mkdir(filepath.Join(w.logs, podNS+"_"+pod+"_"+uid), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd, ns = started("kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" +
			strings.ReplaceAll(uid, "-", "_") + ".slice/cri-containerd-" + id + ".scope")
		add(&worldNS{kind: "pod", ns: ns, label: podNS + "/" + pod, container: id, pod: pod, podNS: podNS, cmd: cmd})

		id = hexID(fmt.Sprint("crio", i))
		cmd, ns = started("crio-" + id + ".scope")
		add(&worldNS{kind: "crio", ns: ns, label: "crio:" + id[:12], container: id, cmd: cmd})

		id = hexID(fmt.Sprint("podman", i))
		cmd, ns = started("libpod-" + id + ".scope")
		add(&worldNS{kind: "podman", ns: ns, label: "podman:" + id[:12], container: id, cmd: cmd})

		// A bind mount outside /run/netns, after its process is gone.
		cmd, ns = nstest.Unshared(t)
		mnt := filepath.Join(mounts, fmt.Sprintf("ns%d", i))
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
		add(&worldNS{kind: "mount", ns: ns, label: mnt})
		stopProcess(cmd)

		// Only a descriptor this test holds, after its process is gone.
		cmd, ns = nstest.Unshared(t)
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		add(&worldNS{kind: "fd", ns: ns, label: fmt.Sprintf("net:[%d]", ns.Inode)})
		stopProcess(cmd)
	}
	return w
}

func stopProcess(cmd *exec.Cmd) {
	cmd.Process.Kill()
	cmd.Wait()
}

// remove makes a process-held namespace go away: its process exits and
// the test closes its sockets in it.
func (w *world) remove(x *worldNS) {
	stopProcess(x.cmd)
	x.closeSockets()
	delete(w.byIno, x.ns.Inode)
}

type allRow struct {
	State     string `json:"state"`
	LocalPort int    `json:"local_port"`
	Netns     struct {
		Inode        uint64 `json:"inode"`
		Name         string `json:"name"`
		Container    string `json:"container"`
		Pod          string `json:"pod"`
		PodNamespace string `json:"pod_namespace"`
	} `json:"netns"`
}

// checkList runs list --all-netns and checks every namespace of the world:
// its name, container, pod and counts, exactly.
func (w *world) checkList(t *testing.T, gone ...*worldNS) {
	t.Helper()
	r := sockscope(t, "list", "--all-netns", "--json", "--pod-logs", w.logs, "state", "listening", "or", "state", "close-wait")
	if r.code != 0 {
		t.Fatalf("list --all-netns: exit %d, stderr %q", r.code, r.stderr)
	}
	type counts struct{ listen, closeWait int }
	got := map[uint64]*counts{}
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var row allRow
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		x, ours := w.byIno[row.Netns.Inode]
		for _, g := range gone {
			if row.Netns.Inode == g.ns.Inode {
				t.Errorf("a socket of %s, which went away: %s", g.label, sc.Text())
			}
		}
		if !ours {
			continue
		}
		n := row.Netns
		if n.Name != x.label || n.Container != x.container || n.Pod != x.pod || n.PodNamespace != x.podNS {
			t.Errorf("%s namespace net:[%d]: %+v; want %s, container %q, pod %q/%q", x.kind, x.ns.Inode, n, x.label, x.container, x.podNS, x.pod)
		}
		c := got[n.Inode]
		if c == nil {
			c = &counts{}
			got[n.Inode] = c
		}
		switch row.State {
		case "LISTEN":
			c.listen++
		case "CLOSE_WAIT":
			c.closeWait++
		}
	}
	for ino, x := range w.byIno {
		c := got[ino]
		if c == nil || c.listen != x.listen || c.closeWait != x.closeWait {
			t.Errorf("%s namespace %s: %+v; want %d LISTEN and %d CLOSE_WAIT", x.kind, x.label, c, x.listen, x.closeWait)
		}
	}
}

// promSample is one series of an instant query.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func promVector(promURL, q string) ([]promSample, error) {
	resp, err := http.Get(promURL + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, r.Error)
	}
	return r.Data.Result, nil
}

// promTargets says how Prometheus's scrapes of its targets went, for a
// failure's message.
func promTargets(promURL string) string {
	resp, err := http.Get(promURL + "/api/v1/targets")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Active []struct {
				Health             string  `json:"health"`
				LastError          string  `json:"lastError"`
				LastScrapeDuration float64 `json:"lastScrapeDuration"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Sprintf("reading the targets: %v", err)
	}
	var b strings.Builder
	for _, a := range r.Data.Active {
		fmt.Fprintf(&b, "health %s, last scrape %.3f s, last error %q; ", a.Health, a.LastScrapeDuration, a.LastError)
	}
	return b.String()
}

// checkPrometheus waits until Prometheus's view of the exporter agrees
// with the world: per namespace, its identity labels and its LISTEN and
// CLOSE_WAIT counts; gone namespaces have no series.
func (w *world) checkPrometheus(t *testing.T, promURL string, gone ...*worldNS) {
	t.Helper()
	q := `sum without (family, local_port, instance, job) (sockscope_tcp_sockets{state=~"LISTEN|CLOSE_WAIT"})`
	deadline := time.Now().Add(60 * time.Second)
	for {
		samples, err := promVector(promURL, q)
		problem := err
		if err == nil {
			problem = w.comparePrometheus(samples, gone)
		}
		if problem == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus disagrees with the host: %v (its scrapes: %s)", problem, promTargets(promURL))
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Every dump succeeded, the search too: a namespace that went away is
	// no error.
	for _, q := range []string{"sockscope_scrape_success == 0", "sockscope_netns_discovery_success == 0"} {
		if bad, err := promVector(promURL, q); err != nil || len(bad) > 0 {
			t.Errorf("%s: %v, %v", q, bad, err)
		}
	}
	// As root, the world's namespaces, all in the host's shared table,
	// are counted in the scrape's one walk of it rather than dumped each
	// (tablecount), and their counts above came from that walk.
	walked, err := promVector(promURL, "sockscope_scrape_walked")
	if err != nil {
		t.Fatalf("sockscope_scrape_walked: %v", err)
	}
	byLabel := map[string]string{}
	for _, s := range walked {
		byLabel[s.Metric["netns"]] = fmt.Sprint(s.Value[1])
	}
	for _, x := range w.byIno {
		if byLabel[x.label] != "1" {
			t.Errorf("%s: sockscope_scrape_walked %q, want 1", x.label, byLabel[x.label])
		}
	}
}

func (w *world) comparePrometheus(samples []promSample, gone []*worldNS) error {
	byLabel := map[string]map[string]string{} // netns -> state -> value
	for _, s := range samples {
		m := s.Metric
		for _, x := range w.all {
			if x.label == m["netns"] && (m["container_id"] != x.container || m["pod"] != x.pod || m["pod_namespace"] != x.podNS) {
				return fmt.Errorf("%s's series are labelled %v", x.label, m)
			}
		}
		if byLabel[m["netns"]] == nil {
			byLabel[m["netns"]] = map[string]string{}
		}
		byLabel[m["netns"]][m["state"]] = fmt.Sprint(s.Value[1])
	}
	for _, x := range w.byIno {
		got := byLabel[x.label]
		if got["LISTEN"] != strconv.Itoa(x.listen) || got["CLOSE_WAIT"] != strconv.Itoa(x.closeWait) {
			return fmt.Errorf("%s: %v; want LISTEN %d, CLOSE_WAIT %d", x.label, got, x.listen, x.closeWait)
		}
	}
	for _, g := range gone {
		if got, ok := byLabel[g.label]; ok {
			return fmt.Errorf("%s went away, yet has series %v", g.label, got)
		}
	}
	return nil
}

// nsViewRows are the namespace view's rows, without their + or - mark.
func nsViewRows(pane string) []string {
	var rows []string
	in := false
	for _, l := range strings.Split(pane, "\n") {
		switch {
		case strings.Contains(l, "Netns") && strings.Contains(l, "LISTEN"):
			in = true
		case in && strings.HasPrefix(l, "filter:"):
			return rows
		case in && strings.TrimSpace(l) != "":
			rows = append(rows, strings.TrimLeft(l, " +-"))
		}
	}
	return rows
}

// A host with twenty namespaces of every kind: list --all-netns, the
// exporter scraped by a real Prometheus, and the dashboard in tmux say
// each one's identity and counts exactly; a namespace that goes away
// mid-run disappears from all three without an error.
func TestIntegrationAllNetnsWorld(t *testing.T) {
	nstest.HostLock(t) // it reads every namespace on the host
	promBin := needPrometheus(t)
	w := newWorld(t, 20)
	w.checkList(t)

	target := startExporter(t, "exporter", "--all-netns", "--pod-logs", w.logs, "--listen", "127.0.0.1:0",
		"state", "listening", "or", "state", "close-wait")
	// Every namespace on the host, while other packages' tests churn
	// theirs: give each scrape three seconds.
	promURL := startPrometheus(t, promBin, target, 3*time.Second)
	w.checkPrometheus(t, promURL)

	// The dashboard, on the ports only two namespaces listen on.
	var docker, pod *worldNS
	for _, x := range w.all {
		switch {
		case x.kind == "docker" && docker == nil:
			docker = x
		case x.kind == "pod" && pod == nil:
			pod = x
		}
	}
	// Namespaces from other tests may come and go meanwhile: the checks
	// look at this test's two.
	tm := newTmux(t, 100, 30)
	// Other tests' namespaces (a thousand at once, in another package)
	// may make a poll of them all slow, and the dashboard then spaces its
	// polls: wait longer than for one namespace.
	tm.patience = time.Minute
	tm.waitFor("the shell prompt", func(s string) bool { return strings.Contains(s, "$") })
	tm.send(fmt.Sprintf("%s --all-netns --pod-logs %s 'sport = :%d or sport = :%d'", binary, w.logs, docker.port, pod.port), "Enter")
	tm.waitFor("the namespace view", func(s string) bool { return strings.Contains(s, "Netns") && strings.Contains(s, "namespaces") })
	// Most listeners first: these two. The selection follows the
	// namespace it was on through the re-sort, and the view with it, so
	// Home brings the view to the top, where the sort put them (seen: a
	// view left scrolled to a namespace that had sorted below them).
	tm.send("l")
	tm.send("Home")
	listed := func(s string, x *worldNS, count string) bool {
		for _, l := range strings.Split(s, "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == x.label && f[1] == count {
				return true
			}
		}
		return false
	}
	tm.waitFor("both namespaces with a listener each, first", func(s string) bool {
		rows := nsViewRows(s)
		return len(rows) >= 2 && listed(rows[0]+"\n"+rows[1], docker, "1") && listed(rows[0]+"\n"+rows[1], pod, "1")
	})
	// The first row (the container, by name among equals) opens its
	// sockets; Esc comes back.
	tm.send("Home", "Enter")
	tm.waitFor("the container's sockets", func(s string) bool {
		return strings.Contains(s, "netns "+docker.label) && strings.Contains(s, fmt.Sprintf("127.0.0.1:%d", docker.port)) &&
			!strings.Contains(s, fmt.Sprintf("127.0.0.1:%d", pod.port))
	})
	tm.send("Escape")
	tm.waitFor("the namespace view again", func(s string) bool { return listed(s, docker, "1") && listed(s, pod, "1") })

	// The Docker container exits.
	w.remove(docker)
	w.checkList(t, docker)
	w.checkPrometheus(t, promURL, docker)
	// The container's row leaves the top (namespaces that went away are
	// listed last, marked; the simulation-screen test checks the mark) and
	// the status line counts it gone.
	pane := tm.waitFor("the container gone", func(s string) bool {
		return !listed(s, docker, "1") && regexp.MustCompile(`-[1-9]\d* gone`).MatchString(s)
	})
	tm.send("Home")
	tm.waitFor("the pod still first", func(s string) bool {
		rows := nsViewRows(s)
		return len(rows) > 0 && listed(rows[0], pod, "1") && !listed(s, docker, "1")
	})
	if strings.Contains(strings.ToLower(pane), "error") {
		t.Errorf("the dashboard shows an error after a namespace went away:\n%s", pane)
	}
	tm.send("q")
	tm.waitFor("the shell back", func(s string) bool { return strings.HasSuffix(strings.TrimRight(s, "\n "), "$") })
	tm.send("echo exit=$?", "Enter")
	tm.waitFor("exit=0", func(s string) bool { return strings.Contains(s, "\nexit=0") })

	checkCountedView(t, tm, w, pod)
}

// checkCountedView runs the dashboard on two of the world's namespaces
// (-N twice) with a filter on states alone: its namespace view counts
// them in one walk of the kernel's tables, and a namespace opened is
// dumped. The counts are each namespace's exactly, and the namespace
// opened shows its own sockets.
func checkCountedView(t *testing.T, tm *tmux, w *world, pod *worldNS) {
	t.Helper()
	var other *worldNS
	for _, x := range w.all {
		if x.kind == "named" && x.listen != pod.listen {
			other = x
			break
		}
	}
	if other == nil {
		t.Fatal("the world has no named namespace with another listener count than the pod's")
	}
	tm.send("clear", "Enter")
	tm.send(fmt.Sprintf("%s -N %s -N %s --pod-logs %s 'state listening or state close-wait'", binary, pod.ns.Path, other.ns.Path, w.logs), "Enter")
	// By LISTEN, most first: the two rows in a known order.
	tm.send("l")
	row := func(x *worldNS) string {
		return fmt.Sprintf("%d 0 %d 0", x.listen, x.closeWait)
	}
	first, second := pod, other
	if other.listen > pod.listen {
		first, second = other, pod
	}
	// A row's counts, its sparklines left out.
	counts := func(r string) string {
		var n []string
		for _, f := range strings.Fields(r) {
			if _, err := strconv.Atoi(f); err == nil {
				n = append(n, f)
			}
		}
		return strings.Join(n, " ")
	}
	pane := tm.waitFor("both namespaces counted exactly", func(s string) bool {
		rows := nsViewRows(s)
		return len(rows) == 2 && strings.HasSuffix(counts(rows[0]), row(first)) && strings.HasSuffix(counts(rows[1]), row(second))
	})
	if strings.Contains(pane, "dumped at every poll") {
		t.Errorf("the dashboard did not get the walk:\n%s", pane)
	}
	tm.send("Home", "Enter")
	tm.waitFor("the first namespace's own sockets", func(s string) bool {
		return strings.Contains(s, fmt.Sprintf("127.0.0.1:%d", first.port)) && !strings.Contains(s, fmt.Sprintf("127.0.0.1:%d", second.port)) &&
			strings.Contains(s, fmt.Sprintf("LISTEN %d", first.listen))
	})
	tm.send("Escape")
	tm.waitFor("the namespace view again", func(s string) bool { return len(nsViewRows(s)) == 2 })
	tm.send("q")
	tm.waitFor("the shell back", func(s string) bool { return strings.HasSuffix(strings.TrimRight(s, "\n "), "$") })
	tm.send("echo exit=$?", "Enter")
	tm.waitFor("exit=0 again", func(s string) bool {
		return strings.Count(s, "\nexit=0") >= 1 && strings.HasSuffix(strings.TrimRight(s, "\n "), "$")
	})
}
