package sockdiag

import (
	"net/netip"
	"strconv"

	"github.com/sockscope/sockscope/pkg/sock"
)

func netipLoopback(port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
}

func itoa(n int) string { return strconv.Itoa(n) }

// seedClientPort is the local port of the experiment's half-closed client:
// the one non-9000 socket whose peer is :9000 and that is not TIME_WAIT.
func seedClientPort(snap *sock.Snapshot) uint16 {
	for _, s := range snap.Sockets {
		if s.Peer.Port() == 9000 && s.Local.Port() != 9000 {
			return s.Local.Port()
		}
	}
	return 0
}
