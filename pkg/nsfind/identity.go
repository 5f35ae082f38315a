package nsfind

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Identity is what a person recognises a namespace by. It is read from
// what the host shows anyway: names, mounts, the processes' commands and
// cgroup paths, and the kubelet's log directories. No container runtime is
// asked and nothing goes over the network.
type Identity struct {
	// Label names it in a word: "host", its ip netns name, the container
	// ("docker:0123456789ab", or the pod's namespace/name), a mount path,
	// or "pid N (command)".
	Label string
	// Runtime and Container identify a container: docker, containerd,
	// crio or podman, and its full id. Empty for none.
	Runtime, Container string
	// Unit is the systemd unit the first process runs in, when it is no
	// container's.
	Unit string
	// PodUID is a Kubernetes pod's UID, from the kubepods cgroup path;
	// PodNamespace and PodName come from the kubelet's log directory
	// (<namespace>_<name>_<uid>) when the node keeps one.
	PodUID, PodNamespace, PodName string
	// PID and Command are the first process in it; 0 and "" for none.
	PID     int
	Command string
}

// Name is a namespace as the front ends show it: who it belongs to, and
// whether it is still there.
type Name struct {
	Inode                     uint64
	Label                     string // "host", an ip netns name, a container, a pod...
	Runtime, Container        string // a container's runtime and full id
	Pod, PodNamespace, PodUID string // a Kubernetes pod
	PID                       int    // its first process; 0 for none
	Command                   string
	Since                     time.Time // when sockscope first read it
	Host                      bool      // sockscope's own namespace
	Fixed                     bool      // named on the command line (-N)
	Gone                      bool      // no longer found
}

// Names looks up the name of the namespace with an inode (as
// sock.Socket.Netns carries it).
type Names func(inode uint32) (*Name, bool)

// IdentifyOptions say where to look; the zero value is this host's.
type IdentifyOptions struct {
	Proc    string // /proc
	PodLogs string // /var/log/pods
}

// Identify tells who n belongs to, from its first process (if any) and
// what holds it.
func Identify(n *Namespace, opt IdentifyOptions) Identity {
	if opt.Proc == "" {
		opt.Proc = "/proc"
	}
	if opt.PodLogs == "" {
		opt.PodLogs = "/var/log/pods"
	}
	var id Identity
	if len(n.PIDs) > 0 {
		id.PID = n.PIDs[0]
		dir := filepath.Join(opt.Proc, strconv.Itoa(id.PID))
		if b, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
			id.Command = strings.TrimSpace(string(b))
		}
		// The first process whose cgroup names a container tells; the
		// first process alone may be a runtime's helper.
		for _, pid := range n.PIDs {
			b, err := os.ReadFile(filepath.Join(opt.Proc, strconv.Itoa(pid), "cgroup"))
			if err != nil {
				continue // exited, or not ours to see
			}
			c := ParseCgroup(string(b))
			if id.Unit == "" {
				id.Unit = c.Unit
			}
			if c.Container != "" || c.PodUID != "" {
				id.Runtime, id.Container, id.PodUID = c.Runtime, c.Container, c.PodUID
				break
			}
		}
	}
	if id.PodUID != "" {
		id.PodNamespace, id.PodName = podFromLogs(opt.PodLogs, id.PodUID)
	}
	switch {
	case n.Init():
		id.Label = "host"
	case len(n.Names) > 0:
		id.Label = n.Names[0]
	case id.PodName != "":
		id.Label = id.PodNamespace + "/" + id.PodName
	case id.PodUID != "":
		id.Label = "pod:" + id.PodUID
	case id.Container != "":
		id.Label = id.Runtime + ":" + short(id.Container)
	case len(n.Mounts) > 0:
		id.Label = n.Mounts[0]
	case id.PID != 0:
		id.Label = fmt.Sprintf("pid %d (%s)", id.PID, id.Command)
	default:
		id.Label = fmt.Sprintf("net:[%d]", n.Inode)
	}
	return id
}

// Owner says who the namespace belongs to, in a few words: "pod
// shop/cart-7f9c", "docker 0123456789ab", a systemd unit, or "-".
func (id *Identity) Owner() string {
	switch {
	case id.PodName != "":
		return "pod " + id.PodNamespace + "/" + id.PodName
	case id.PodUID != "":
		return "pod " + id.PodUID
	case id.Container != "":
		return id.Runtime + " " + short(id.Container)
	case id.Unit != "":
		return id.Unit
	}
	return "-"
}

// short is a container id as people quote it: its first 12 characters.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Cgroup is what a process's cgroup path says about who runs it.
type Cgroup struct {
	Runtime, Container string
	PodUID             string
	Unit               string // a systemd unit (service or scope), when no container
}

// containerPattern is a runtime's form of a container's cgroup directory.
type containerPattern struct {
	runtime string
	re      *regexp.Regexp
}

// cgroupPatterns are compiled on first use, not when the program starts:
// most runs of sockscope never ask whose a namespace is, and compiling
// them took half a millisecond of every start (GODEBUG=inittrace=1).
var cgroupPatterns = sync.OnceValue(func() (p struct {
	containers []containerPattern
	pod, unit  *regexp.Regexp
}) {
	// A container's own cgroup directory, in the forms the runtimes use
	// under systemd (docker-<id>.scope) and under cgroupfs (/docker/<id>).
	p.containers = []containerPattern{
		{"docker", regexp.MustCompile(`(?:^|/)docker-([0-9a-f]{12,64})\.scope$`)},
		{"docker", regexp.MustCompile(`(?:^|/)docker/([0-9a-f]{12,64})$`)},
		{"containerd", regexp.MustCompile(`(?:^|/)cri-containerd-([0-9a-f]{12,64})\.scope$`)},
		{"containerd", regexp.MustCompile(`(?:^|/)cri-containerd[:/]([0-9a-f]{12,64})$`)},
		{"crio", regexp.MustCompile(`(?:^|/)crio-(?:conmon-)?([0-9a-f]{12,64})\.scope$`)},
		{"crio", regexp.MustCompile(`(?:^|/)crio/([0-9a-f]{12,64})$`)},
		{"podman", regexp.MustCompile(`(?:^|/)libpod-(?:conmon-)?([0-9a-f]{12,64})\.scope$`)},
	}
	// kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice
	// (systemd, the UID's dashes written as underscores) or
	// /kubepods/burstable/pod<uid> (cgroupfs).
	p.pod = regexp.MustCompile(`kubepods[^/]*/(?:[^/]*/)*?[^/]*pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?(?:/|$)`)
	p.unit = regexp.MustCompile(`([^/]+\.(?:service|scope))$`)
	return p
})

// ParseCgroup reads a /proc/PID/cgroup file (cgroup v1 and v2 lines alike:
// "ID:CONTROLLERS:PATH") and says which container, pod or unit the path
// names. The unified (0::) line and name=systemd are preferred: they name
// the unit and the scope.
func ParseCgroup(content string) Cgroup {
	var paths []string
	for _, line := range strings.Split(content, "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[1] == "" || f[1] == "name=systemd" {
			paths = append([]string{f[2]}, paths...) // these first
		} else {
			paths = append(paths, f[2])
		}
	}
	var c Cgroup
	for _, p := range paths {
		if c.Container == "" {
			for _, cp := range cgroupPatterns().containers {
				if m := cp.re.FindStringSubmatch(p); m != nil {
					c.Runtime, c.Container = cp.runtime, m[1]
					break
				}
			}
		}
		if c.PodUID == "" {
			if m := cgroupPatterns().pod.FindStringSubmatch(p); m != nil {
				c.PodUID = strings.ReplaceAll(m[1], "_", "-")
			}
		}
		if c.Unit == "" {
			if m := cgroupPatterns().unit.FindStringSubmatch(p); m != nil {
				c.Unit = m[1]
			}
		}
	}
	if c.Container != "" || c.PodUID != "" {
		c.Unit = "" // the unit is the container's own scope
	}
	return c
}

// podFromLogs finds a pod's namespace and name from the kubelet's log
// directory, <dir>/<namespace>_<name>_<uid>; "" when the node keeps none.
func podFromLogs(dir, uid string) (namespace, name string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", ""
	}
	suffix := "_" + uid
	for _, e := range entries {
		rest, ok := strings.CutSuffix(e.Name(), suffix)
		if !ok {
			continue
		}
		// Namespaces and pod names are DNS labels: no underscores.
		if ns, pod, ok := strings.Cut(rest, "_"); ok && ns != "" && pod != "" {
			return ns, pod
		}
	}
	return "", ""
}
