package bindprobe

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/nstest"
	"golang.org/x/sys/unix"
)

func TestIntegrationProbe(t *testing.T) {
	ns := nstest.New(t)
	nstest.Connect(t, ns, netip.MustParseAddrPort("127.0.0.1:9000"))
	for _, tc := range []struct {
		addr  string
		plain error
		reuse error
	}{
		{"127.0.0.1:9000", unix.EADDRINUSE, unix.EADDRINUSE}, // a live listener
		{"0.0.0.0:9000", unix.EADDRINUSE, unix.EADDRINUSE},   // the wildcard overlaps it
		{"127.0.0.2:9000", nil, nil},                         // another address on lo
		{"127.0.0.1:9001", nil, nil},
		{"[::1]:9000", nil, nil},
		{"10.9.9.9:9000", unix.EADDRNOTAVAIL, unix.EADDRNOTAVAIL}, // no such address here
	} {
		res, err := Probe(ns.NS(t), netip.MustParseAddrPort(tc.addr))
		if err != nil {
			t.Fatalf("%s: %v", tc.addr, err)
		}
		if !errors.Is(res[Plain], tc.plain) && !(res[Plain] == nil && tc.plain == nil) ||
			!errors.Is(res[ReuseAddr], tc.reuse) && !(res[ReuseAddr] == nil && tc.reuse == nil) {
			t.Errorf("%s: plain %v, reuseaddr %v; want %v, %v", tc.addr, res[Plain], res[ReuseAddr], tc.plain, tc.reuse)
		}
	}
	// The probe runs in the namespace: in the caller's, 127.0.0.1:9000 is
	// (normally) free.
	if _, err := Probe(netns.NS{Arg: "/nonexistent", Path: "/nonexistent"}, netip.MustParseAddrPort("127.0.0.1:9000")); err == nil {
		t.Error("a namespace path that does not exist was accepted")
	}
}
