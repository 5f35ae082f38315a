package sockdiag

import (
	"os"
	"testing"
	"time"

	sns "github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/nstest"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// benchNetns returns the namespace to benchmark: SOCKSCOPE_BENCH_NETNS
// (a population built by cmd/sockload), or a small one made here.
func benchNetns(b *testing.B) string {
	if ns := os.Getenv("SOCKSCOPE_BENCH_NETNS"); ns != "" {
		return ns
	}
	ns := nstest.New(b)
	nstest.RunSeed(b, ns, nstest.SeedOptions{})
	return ns.Name
}

// benchDumper opens a collector on the benchmark's namespace, with a
// snapshot sized as a source sizes its snapshots (the last dump and an
// eighth) by a first dump, and filled once: the growth of a slice from
// nothing, and the first write of its pages, are fresh memory a running
// sockscope does not pay per dump (its snapshots are reused). Left to the
// first timed dump, the pages' faults (2,700 of them at 110k sockets,
// about 50 ms here) weighed on the few a second's benchmark runs: the
// collector measured 1.15 to 1.22x the bare loop where it is 1.01 to
// 1.05x (five runs each of sockbench's command, 110k sockets).
func benchDumper(b *testing.B) (*Collector, *Request, *sock.Snapshot) {
	c, err := Open(nstest.Resolve(b, benchNetns(b)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	req := &Request{States: sock.AllStates}
	var snap sock.Snapshot
	if err := c.Dump(req, &snap); err != nil {
		b.Fatal(err)
	}
	n := len(snap.Sockets)
	snap.Sockets = make([]sock.Socket, 0, n+n/8+64)
	dumpOnce(b, c, req, &snap)
	return c, req, &snap
}

func dumpOnce(b *testing.B, c *Collector, req *Request, snap *sock.Snapshot) {
	snap.Sockets, snap.Infos, snap.Dumped = snap.Sockets[:0], snap.Infos[:0], 0
	if err := c.Dump(req, snap); err != nil {
		b.Fatal(err)
	}
}

// bareReceive sends Dump's request and only receives the replies: the
// floor a collector cannot go below.
func bareReceive(b *testing.B, c *Collector, req *Request) {
	fd := c.fd
	c.seq++
	var err error
	if c.req, err = appendRequest(c.req[:0], c.seq, bothFamilies, req); err != nil { // as Dump asks
		b.Fatal(err)
	}
	if err := sendto(fd, c.req, true); err != nil {
		b.Fatal(err)
	}
	for done := false; !done; {
		n, err := c.recv(fd)
		if err != nil {
			b.Fatal(err)
		}
		// Only look for the end: the last message's type.
		for m := c.buf[:n]; len(m) >= sizeofNlmsghdr; {
			l := int(native.Uint32(m))
			if native.Uint16(m[4:]) == nlmsgDone {
				done = true
			}
			m = m[min(align4(l), len(m)):]
		}
	}
}

// BenchmarkDump is a full dump, every state, both families, no tcp_info.
func BenchmarkDump(b *testing.B) {
	c, req, snap := benchDumper(b)
	b.ReportAllocs()
	for b.Loop() {
		dumpOnce(b, c, req, snap)
	}
	b.ReportMetric(float64(len(snap.Sockets)), "sockets/op")
}

// BenchmarkBareReceive is bareReceive alone.
func BenchmarkBareReceive(b *testing.B) {
	c, req, _ := benchDumper(b)
	b.ReportAllocs()
	for b.Loop() {
		bareReceive(b, c, req)
	}
}

// BenchmarkDumpAgainstBare alternates a dump and a bare receive, each
// timed: on a machine whose speed drifts (a busy neighbour, a population
// that churns) the two see the same machine, and their ratio means
// something where two benchmarks run a minute apart do not.
func BenchmarkDumpAgainstBare(b *testing.B) {
	c, req, snap := benchDumper(b)
	var dump, bare time.Duration
	for b.Loop() {
		t0 := time.Now()
		dumpOnce(b, c, req, snap)
		t1 := time.Now()
		bareReceive(b, c, req)
		dump, bare = dump+t1.Sub(t0), bare+time.Since(t1)
	}
	b.ReportMetric(float64(dump.Nanoseconds())/float64(b.N), "dump-ns/op")
	b.ReportMetric(float64(bare.Nanoseconds())/float64(b.N), "bare-ns/op")
	b.ReportMetric(float64(len(snap.Sockets)), "sockets/op")
}

// BenchmarkNetlinkSocketDiagTCP is the netlink library's one-call dump, for
// reference.
func BenchmarkNetlinkSocketDiagTCP(b *testing.B) {
	h, err := netns.GetFromPath(sns.PathOf(benchNetns(b)))
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	// Naming the family matters: without it the handle dumps the caller's
	// namespace.
	nh, err := netlink.NewHandleAt(h, unix.NETLINK_INET_DIAG)
	if err != nil {
		b.Fatal(err)
	}
	defer nh.Close()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		v4, err := nh.SocketDiagTCP(unix.AF_INET)
		if err != nil {
			b.Fatal(err)
		}
		v6, err := nh.SocketDiagTCP(unix.AF_INET6)
		if err != nil {
			b.Fatal(err)
		}
		n = len(v4) + len(v6)
	}
	b.ReportMetric(float64(n), "sockets/op")
}
