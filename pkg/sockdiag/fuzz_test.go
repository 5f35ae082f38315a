package sockdiag

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/sock"
	"golang.org/x/sys/unix"
)

// FuzzParseBatch feeds parseBatch arbitrary receive buffers. It must never
// panic, and a batch it accepts holds only IPv4 and IPv6 sockets whose
// addresses match their family.
func FuzzParseBatch(f *testing.F) {
	f.Add(wtReadSeed(f, "seed-inet.bin"), uint32(5))
	f.Add(wtReadSeed(f, "seed-inet6.bin"), uint32(6))

	ti := make([]byte, 232)
	binary.NativeEndian.PutUint32(ti[68:], 1000)
	v4 := wtEstablished4(1)
	v4.attrs = []wtAttr{{8, []byte{0}}, {2, ti}}
	v6 := wtDiag{family: 10, state: 10, sport: 9000, src: wtV6Local, inode: 7, attrs: []wtAttr{{2, ti[:104]}}}
	for _, b := range [][]byte{
		nil,
		wtCat(wtDiagFrame(1, v4), wtDiagFrame(1, v6), wtDone(1, 0)),
		wtCat(wtError(1, 0), wtDiagFrame(1, v4), wtDone(1, -int32(unix.ENOENT))),
		wtError(1, -int32(unix.EPERM)),
		wtCat(wtDiagFrame(0, v4), wtDone(0, 0), wtDiagFrame(1, v6)),
		wtFrame(20, 1, v4.bytes()[:71]),
		wtFrame(20, 1, wtCat(v4.bytes()[:72], []byte{3, 0, 2, 0})),
		wtDiagFrame(1, wtDiag{family: 1}),
		wtFrameLen(12, 20, 1, nil),
		wtCat(wtDiagFrame(1, v4), []byte{1, 2, 3}),
	} {
		f.Add(b, uint32(1))
	}

	f.Fuzz(func(t *testing.T, b []byte, seq uint32) {
		in := append([]byte(nil), b...)
		var emitted []sock.Socket
		res, err := parseBatch(b, seq, func(s *sock.Socket, info []byte) {
			emitted = append(emitted, *s)
			if s.Info != -1 {
				t.Errorf("emitted Info = %d, want -1", s.Info)
			}
			if len(info) > len(b) {
				t.Errorf("info of %d bytes from a %d-byte buffer", len(info), len(b))
			}
			var ti sock.TCPInfo
			parseTCPInfo(info, &ti)
		})
		if string(in) != string(b) {
			t.Fatal("parseBatch modified its input")
		}
		if res != batchMore && res != batchDone {
			t.Fatalf("result %d", res)
		}
		if err != nil {
			// The collector drains the socket unless the dump is over:
			// only the kernel's own errno ends it.
			var errno unix.Errno
			if isErrno := errors.As(err, &errno); isErrno != (res == batchDone) {
				t.Errorf("error %q (errno %v) with result %d", err, isErrno, res)
			}
			return
		}
		for i, s := range emitted {
			switch s.Family {
			case sock.IPv4:
				if !s.Local.Addr().Is4() || !s.Peer.Addr().Is4() {
					t.Errorf("socket %d: IPv4 with addresses %v, %v", i, s.Local, s.Peer)
				}
			case sock.IPv6:
				if !s.Local.Addr().Is6() || !s.Peer.Addr().Is6() {
					t.Errorf("socket %d: IPv6 with addresses %v, %v", i, s.Local, s.Peer)
				}
			default:
				t.Errorf("socket %d: family %d accepted without error: %+v", i, s.Family, s)
			}
		}
	})
}

// FuzzParseTCPInfo feeds parseTCPInfo arbitrary attributes: it must never
// panic, and fields the bytes reach are decoded while the others stay zero.
func FuzzParseTCPInfo(f *testing.F) {
	for _, g := range wtSeedInfos(f) {
		f.Add(g)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 104))
	f.Add(make([]byte, 123))
	f.Add(make([]byte, 300))

	f.Fuzz(func(t *testing.T, b []byte) {
		got := sock.TCPInfo{RTT: -1, SndCwnd: 1, BytesAcked: 1, MinRTT: -1}
		parseTCPInfo(b, &got)
		ne := binary.NativeEndian
		var rtt time.Duration
		var cwnd uint32
		var acked uint64
		if len(b) >= 72 {
			rtt = time.Duration(ne.Uint32(b[68:])) * time.Microsecond
		}
		if len(b) >= 84 {
			cwnd = ne.Uint32(b[80:])
		}
		if len(b) >= 128 {
			acked = ne.Uint64(b[120:])
		}
		if got.RTT != rtt || got.SndCwnd != cwnd || got.BytesAcked != acked {
			t.Errorf("%d bytes: rtt %v, cwnd %d, acked %d; want %v, %d, %d",
				len(b), got.RTT, got.SndCwnd, got.BytesAcked, rtt, cwnd, acked)
		}
		if len(b) < 152 && got.MinRTT != 0 {
			t.Errorf("%d bytes: min_rtt %v, want 0", len(b), got.MinRTT)
		}
	})
}

// wtSeedInfos returns the tcp_info attributes of the captured dumps.
func wtSeedInfos(f *testing.F) [][]byte {
	var out [][]byte
	for _, seed := range wtSeeds() {
		_, err := parseBatch(wtReadSeed(f, seed.name), seed.seq, func(_ *sock.Socket, info []byte) {
			if info != nil {
				out = append(out, append([]byte(nil), info...))
			}
		})
		if err != nil {
			f.Fatal(err)
		}
	}
	return out
}
