package sockdiag

import (
	"os"
	"testing"

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

// BenchmarkDump is a full dump, every state, both families, no tcp_info.
func BenchmarkDump(b *testing.B) {
	c, err := Open(nstest.Resolve(b, benchNetns(b)))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := &Request{States: sock.AllStates}
	var snap sock.Snapshot
	b.ReportAllocs()
	for b.Loop() {
		snap.Sockets, snap.Infos, snap.Dumped = snap.Sockets[:0], snap.Infos[:0], 0
		if err := c.Dump(req, &snap); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(snap.Sockets)), "sockets/op")
}

// BenchmarkBareReceive sends the same requests and only receives the
// replies: the floor a collector cannot go below.
func BenchmarkBareReceive(b *testing.B) {
	c, err := Open(nstest.Resolve(b, benchNetns(b)))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := &Request{States: sock.AllStates}
	fd := c.sock.GetFd()
	b.ReportAllocs()
	for b.Loop() {
		for _, fam := range []sock.Family{bothFamilies} { // as Dump asks
			c.seq++
			c.req, _ = appendRequest(c.req[:0], c.seq, fam, req)
			if err := sendto(fd, c.req); err != nil {
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
	}
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
