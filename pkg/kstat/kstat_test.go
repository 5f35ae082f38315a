package kstat

import (
	"os/exec"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/nstest"
)

func TestParseCounters(t *testing.T) {
	out := map[string]int64{}
	b := []byte("Ip: Forwarding\nIp: 1\nTcp: RtoAlgorithm ActiveOpens MaxConn\nTcp: 1 42 -1\n")
	if err := parseCounters(b, "Tcp:", out); err != nil {
		t.Fatal(err)
	}
	if out["ActiveOpens"] != 42 || out["MaxConn"] != -1 || len(out) != 3 {
		t.Errorf("parsed %v", out)
	}
	for _, bad := range []string{"Tcp: A B\nTcp: 1\n", "Tcp: A\nTcp: x\n", "Udp: A\nUdp: 1\n"} {
		if err := parseCounters([]byte(bad), "Tcp:", map[string]int64{}); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
}

func TestIntegrationNamespaceFiles(t *testing.T) {
	ns := nstest.New(t)
	if out, err := exec.Command("ip", "netns", "exec", ns.Name, "sysctl", "-qw", "net.ipv4.tcp_max_tw_buckets=7").CombinedOutput(); err != nil {
		t.Fatalf("sysctl: %v %s", err, out)
	}
	nstest.RunSeed(t, ns, nstest.SeedOptions{})
	r, err := Open(ns.NS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	here, err := Open(netns.NS{})
	if err != nil {
		t.Fatal(err)
	}
	defer here.Close()

	tw, err := r.TimeWait()
	if err != nil {
		t.Fatal(err)
	}
	mine, err := here.TimeWait()
	if err != nil {
		t.Fatal(err)
	}
	if tw.MaxBuckets != 7 || mine.MaxBuckets == 7 {
		t.Errorf("tcp_max_tw_buckets: namespace %d (want 7), caller %d", tw.MaxBuckets, mine.MaxBuckets)
	}
	if tw.FinTimeout <= 0 || tw.Reuse < 0 {
		t.Errorf("settings %+v", tw)
	}

	// The experiment made three connections: three active opens, and two
	// TIME_WAIT entries once the closes settle.
	deadline := time.Now().Add(2 * time.Second)
	for {
		c, err := r.Sockets()
		if err != nil {
			t.Fatal(err)
		}
		// Listeners (2), CLOSE_WAIT and FIN_WAIT2 (2); the greeted
		// clients are closed.
		if c.TimeWait == 2 && c.InUse4+c.InUse6 == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sockstat counts %+v, want 2 TIME_WAIT and 4 in use", c)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cs, err := r.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if cs["ActiveOpens"] != 3 || cs["PassiveOpens"] != 3 {
		t.Errorf("ActiveOpens %d PassiveOpens %d, want 3 and 3", cs["ActiveOpens"], cs["PassiveOpens"])
	}
	if _, ok := cs["TCPTimeWaitOverflow"]; !ok {
		t.Error("no TCPTimeWaitOverflow counter")
	}
}
