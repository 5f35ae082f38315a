package procnet

import (
	"testing"

	"github.com/sockscope/sockscope/pkg/sock"
)

const tcp4 = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:2328 00000000:0000 0A 00000000:00000010 00:00000000 00000000     0        0 577 1 000000006392f834 100 0 0 10 0
   1: 0100007F:2328 0100007F:B694 06 00000000:00000000 03:0000113F 00000000     0        0 0 3 00000000993ad3ad
   2: 0100007F:B69A 0100007F:2328 01 00000005:00000003 02:00000064 00000002  1000        0 4242 1 0000000000000000 20 4 30 10 -1
`

const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:2328 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 9001 1 0000000000000000 100 0 0 10 0
`

func TestParse(t *testing.T) {
	got, err := Parse([]byte(tcp4), sock.IPv4, nil)
	if err != nil || len(got) != 3 {
		t.Fatalf("%d sockets, %v", len(got), err)
	}
	l, tw, est := got[0], got[1], got[2]
	if l.State != sock.Listen || l.Local != sock.MustParseEndpoint("0.0.0.0:9000") || l.Inode != 577 || l.RecvQ != 16 {
		t.Errorf("listener %+v", l)
	}
	if tw.State != sock.TimeWait || tw.Timer != sock.TimerTimeWait || tw.Expires != 0x113F*10 ||
		tw.Peer != sock.MustParseEndpoint("127.0.0.1:46740") {
		t.Errorf("TIME_WAIT %+v", tw)
	}
	if est.State != sock.Established || est.SendQ != 5 || est.RecvQ != 3 || est.Timer != sock.TimerKeepalive ||
		est.Expires != 1000 || est.Retrans != 2 || est.UID != 1000 || est.Inode != 4242 || est.Info != -1 {
		t.Errorf("established %+v", est)
	}
	if l.Cookie == tw.Cookie || l.Cookie>>63 != 1 {
		t.Errorf("cookies %#x %#x", l.Cookie, tw.Cookie)
	}
	v6, err := Parse([]byte(tcp6), sock.IPv6, nil)
	if err != nil || len(v6) != 1 || v6[0].Local != sock.MustParseEndpoint("[::1]:9000") || v6[0].Family != sock.IPv6 {
		t.Errorf("IPv6: %+v, %v", v6, err)
	}
	for _, bad := range []string{
		"header\n 0: 0100007F 0100007F:0001 01 0:0 0:0 0 0 0 1\n",
		"header\n 0: 0100007X:0001 0100007F:0001 01 0:0 0:0 0 0 0 1\n",
		"header\n 0: 0100007F:0001 0100007F:0001 zz 0:0 0:0 0 0 0 1\n",
		"header\n 0: 0100007F:0001\n",
	} {
		if _, err := Parse([]byte(bad), sock.IPv4, nil); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(tcp4), false)
	f.Add([]byte(tcp6), true)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		fam := sock.IPv4
		if v6 {
			fam = sock.IPv6
		}
		socks, err := Parse(b, fam, nil)
		if err == nil {
			for _, s := range socks {
				if s.Local.Addr().Is4() != (fam == sock.IPv4) {
					t.Fatalf("family %v with address %v", fam, s.Local)
				}
			}
		}
	})
}
