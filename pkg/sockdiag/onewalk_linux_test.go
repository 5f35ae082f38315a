package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/nstest"
	"github.com/sockscope/sockscope/pkg/sock"
	"golang.org/x/sys/unix"
)

// cookies lists a snapshot's sockets as "family state cookie", sorted.
func cookies(snap *sock.Snapshot) []string {
	var out []string
	for _, s := range snap.Sockets {
		out = append(out, fmt.Sprintf("%v %v %#x", s.Family, s.State, s.Cookie))
	}
	slices.Sort(out)
	return out
}

// A dump of both families is one walk of the kernel's tables (the first
// inet_diag request): it must return exactly what the two one-family dumps
// return, IPv4 first, with the state mask and the bytecode honoured.
func TestIntegrationBothFamiliesInOneWalk(t *testing.T) {
	ns := nstest.New(t)
	nstest.RunSeed(t, ns, nstest.SeedOptions{})
	c := openIn(t, ns.Name)
	waitFor(t, c, all(), "TIME_WAIT and FIN_WAIT2", func(s *sock.Snapshot) bool {
		return count(s, sock.TimeWait, 9000) == 2 && count(s, sock.FinWait2, seedClientPort(s)) == 1
	})
	e, err := filter.Parse([]string{"sport = :9000"})
	if err != nil {
		t.Fatal(err)
	}
	port := filter.Compile(e, filter.Options{})
	for _, tc := range []struct {
		name string
		req  Request
	}{
		{"every socket", Request{States: sock.AllStates}},
		{"listeners and TIME_WAIT", Request{States: sock.MaskOf(sock.Listen, sock.TimeWait)}},
		{"bytecode: sport = :9000", Request{States: port.States, Bytecode: port.Bytecode}},
		{"tcp_info", Request{States: sock.MaskOf(sock.Listen, sock.CloseWait), Ext: ExtInfo}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want sock.Snapshot
			for _, f := range []sock.Family{sock.IPv4, sock.IPv6} {
				r := tc.req
				r.Families = []sock.Family{f}
				if err := c.Dump(&r, &want); err != nil {
					t.Fatal(err)
				}
			}
			got := dump(t, c, &tc.req)
			if !c.oneWalk {
				t.Fatal("this kernel refused the request for both families")
			}
			if g, w := cookies(got), cookies(&want); !slices.Equal(g, w) {
				t.Fatalf("one walk:\n%q\ntwo walks:\n%q", g, w)
			}
			v6 := slices.IndexFunc(got.Sockets, func(s sock.Socket) bool { return s.Family == sock.IPv6 })
			if v6 < 0 {
				t.Fatalf("no IPv6 socket in %q", cookies(got))
			}
			if i := slices.IndexFunc(got.Sockets[v6:], func(s sock.Socket) bool { return s.Family == sock.IPv4 }); i >= 0 {
				t.Errorf("IPv4 socket after IPv6 ones: %q", cookies(got))
			}
			for _, s := range got.Sockets {
				if !tc.req.States.Has(s.State) && !(s.State == sock.NewSynRecv && tc.req.States.Has(sock.SynRecv)) {
					t.Errorf("%v socket outside the mask", s.State)
				}
				if tc.req.Bytecode != nil && s.Local.Port() != 9000 {
					t.Errorf("bytecode let %v through", s.Local)
				}
				wantInfo := tc.req.Ext&ExtInfo != 0
				if (s.Info >= 0) != wantInfo || (wantInfo && int(s.Info) >= len(got.Infos)) {
					t.Errorf("%v %v: tcp_info index %d of %d", s.Family, s.State, s.Info, len(got.Infos))
				}
			}
		})
	}
}

// A kernel that refuses the request for both families gets one request per
// family, from then on; a request the kernel refuses in either form (a bad
// bytecode) is an error and changes nothing.
func TestIntegrationOneWalkRefused(t *testing.T) {
	ns := nstest.New(t)
	nstest.RunSeed(t, ns, nstest.SeedOptions{})
	c := openIn(t, ns.Name)
	var snap sock.Snapshot
	bad := &Request{States: sock.AllStates, Bytecode: []byte{0xff, 0, 4, 0}} // no such operation
	if err := c.Dump(bad, &snap); !errors.Is(err, unix.EINVAL) {
		t.Errorf("a bytecode the kernel rejects: %v, want EINVAL", err)
	}
	if !c.oneWalk {
		t.Error("a rejected bytecode stopped the one-walk dumps")
	}
	want := cookies(waitFor(t, c, all(), "TIME_WAIT and FIN_WAIT2", func(s *sock.Snapshot) bool {
		return count(s, sock.TimeWait, 9000) == 2 && count(s, sock.FinWait2, seedClientPort(s)) == 1
	}))
	refuse := func(fd int, b []byte) (int, error) {
		c.drain(fd) // the kernel did answer; read that answer away
		n := sizeofNlmsghdr + 4 + sizeofNlmsghdr
		binary.NativeEndian.PutUint32(b[0:], uint32(n))
		binary.NativeEndian.PutUint16(b[4:], nlmsgError)
		binary.NativeEndian.PutUint16(b[6:], 0)
		binary.NativeEndian.PutUint32(b[8:], c.seq)
		binary.NativeEndian.PutUint32(b[12:], 0)
		errno := -int32(unix.EINVAL)
		binary.NativeEndian.PutUint32(b[16:], uint32(errno))
		clear(b[20:n])
		return n, nil
	}
	c.recvFn = (&faulty{at: 1, fault: refuse}).recv
	got := dump(t, c, all())
	if c.oneWalk {
		t.Error("still asking for both families after a refusal")
	}
	if g := cookies(got); !slices.Equal(g, want) {
		t.Errorf("after the refusal:\n%q\nwant\n%q", g, want)
	}
}
