package main

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/kevents"
	"github.com/sockscope/sockscope/pkg/nstest"
	"golang.org/x/sys/unix"
)

func bpffsMounted() bool {
	var fs unix.Statfs_t
	return unix.Statfs(kevents.BPFFS, &fs) == nil && fs.Type == unix.BPF_FS_MAGIC
}

// After 'agent start', a connection opened 3 s before sockscope runs
// shows its exact age, 3 s within 50 ms of this test's clock, for both
// ends and the listener; a socket older than the agent keeps ">=".
// 'agent stop' leaves nothing pinned, and no bpffs mount it made.
func TestIntegrationAgentExactAges(t *testing.T) {
	nstest.HostLock(t) // the agent is the host's
	if os.Getuid() != 0 && os.Getenv("CI") != "true" {
		t.Skip("the agent needs root")
	}
	ns := nstest.New(t)
	ns.Listen(t, netip.MustParseAddrPort("127.0.0.1:9001")) // before the agent
	wasMounted := bpffsMounted()
	if r := sockscope(t, "agent", "start"); r.code != 0 || !strings.Contains(r.stdout, "the agent runs from") {
		t.Fatalf("agent start: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			sockscope(t, "agent", "stop")
		}
	})
	if r := sockscope(t, "agent", "start"); r.code != 0 || !strings.Contains(r.stdout, "runs already") {
		t.Errorf("a second agent start: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}

	opened := time.Now()
	nstest.Connect(t, ns, netip.MustParseAddrPort("127.0.0.1:9000"))
	time.Sleep(3 * time.Second)
	before := time.Now()
	rows := listJSON(t, "-N", ns.Name)
	after := time.Now()
	lo, hi := before.Sub(opened)-50*time.Millisecond, after.Sub(opened)+50*time.Millisecond
	stamped := 0
	for _, r := range rows {
		age := time.Duration(r.AgeMs) * time.Millisecond
		switch {
		case r.LocalPort == 9001:
			if r.AgeSource != "at-least" || r.AgeExact {
				t.Errorf("the listener older than the agent: %+v; want an age of at least", r)
			}
		case r.LocalPort == 9000 || r.PeerPort == 9000:
			stamped++
			if r.AgeSource != "kernel" || !r.AgeExact || age < lo || age > hi {
				t.Errorf("%s %s %s: age %v (%s, exact %v); want %v to %v from the kernel", r.State, r.Local, r.Peer,
					age, r.AgeSource, r.AgeExact, lo, hi)
			}
		}
	}
	if stamped != 3 {
		t.Errorf("%d sockets of the connection and its listener; want 3: %+v", stamped, rows)
	}
	if r := sockscope(t, "agent", "status"); r.code != 0 || !strings.Contains(r.stdout, "the agent runs since") {
		t.Errorf("agent status: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}

	stopped = true
	if r := sockscope(t, "agent", "stop"); r.code != 0 || !strings.Contains(r.stdout, "nothing of it is left") {
		t.Errorf("agent stop: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(kevents.AgentDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after agent stop: %v", kevents.AgentDir, err)
	}
	if !wasMounted && bpffsMounted() {
		t.Errorf("bpffs is left mounted at %s", kevents.BPFFS)
	}
	if r := sockscope(t, "agent", "status"); r.code != 0 || !strings.Contains(r.stdout, "not running") {
		t.Errorf("agent status after stop: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	// Without the agent, the same sockets are "at least" again.
	for _, r := range listJSON(t, "-N", ns.Name, ":9000") {
		if r.AgeSource != "at-least" {
			t.Errorf("after the agent stopped: %+v", r)
		}
	}
}
