package sockdiag

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/sockscope/sockscope/pkg/sock"
	"golang.org/x/sys/unix"
)

// The builders below lay out the kernel's structures by hand, independently
// of wire.go: host-order fields with binary.NativeEndian, ports in network
// order, addresses as raw bytes.

// wtAttr is one netlink attribute (struct rtattr and its payload).
type wtAttr struct {
	typ  uint16
	data []byte
}

// wtDiag describes one struct inet_diag_msg.
type wtDiag struct {
	family, state, timer, retrans uint8
	sport, dport                  uint16
	src, dst                      []byte // 4 or 16 raw bytes; nil for zero
	ifindex                       uint32
	cookie                        [2]uint32
	expires, rqueue, wqueue       uint32
	uid, inode                    uint32
	attrs                         []wtAttr
}

// bytes encodes the inet_diag_msg (72 bytes) followed by its attributes,
// each padded to 4 bytes.
func (d wtDiag) bytes() []byte {
	m := make([]byte, 72)
	m[0], m[1], m[2], m[3] = d.family, d.state, d.timer, d.retrans
	binary.BigEndian.PutUint16(m[4:], d.sport)
	binary.BigEndian.PutUint16(m[6:], d.dport)
	copy(m[8:24], d.src)
	copy(m[24:40], d.dst)
	ne := binary.NativeEndian
	ne.PutUint32(m[40:], d.ifindex)
	ne.PutUint32(m[44:], d.cookie[0])
	ne.PutUint32(m[48:], d.cookie[1])
	ne.PutUint32(m[52:], d.expires)
	ne.PutUint32(m[56:], d.rqueue)
	ne.PutUint32(m[60:], d.wqueue)
	ne.PutUint32(m[64:], d.uid)
	ne.PutUint32(m[68:], d.inode)
	for _, a := range d.attrs {
		m = append(m, wtRtattr(a.typ, a.data)...)
	}
	return m
}

// wtRtattr encodes one attribute, padded to 4 bytes.
func wtRtattr(typ uint16, data []byte) []byte {
	b := make([]byte, 4, 4+len(data)+3)
	binary.NativeEndian.PutUint16(b[0:], uint16(4+len(data)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// wtFrame wraps payload in a struct nlmsghdr whose length is the true one,
// padded to 4 bytes.
func wtFrame(typ uint16, seq uint32, payload []byte) []byte {
	return wtFrameLen(uint32(16+len(payload)), typ, seq, payload)
}

// wtFrameLen is wtFrame with a chosen nlmsg_len, true or not.
func wtFrameLen(l uint32, typ uint16, seq uint32, payload []byte) []byte {
	b := make([]byte, 16, 16+len(payload)+3)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], l)
	ne.PutUint16(b[4:], typ)
	ne.PutUint16(b[6:], 0x2) // NLM_F_MULTI, as the kernel sets in a dump
	ne.PutUint32(b[8:], seq)
	ne.PutUint32(b[12:], 4060) // port id
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// wtDiagFrame is one SOCK_DIAG_BY_FAMILY message.
func wtDiagFrame(seq uint32, d wtDiag) []byte { return wtFrame(20, seq, d.bytes()) }

// wtDone is NLMSG_DONE with the dump's int error (0 or -errno).
func wtDone(seq uint32, errno int32) []byte {
	p := make([]byte, 4)
	binary.NativeEndian.PutUint32(p, uint32(errno))
	return wtFrame(3, seq, p)
}

// wtError is NLMSG_ERROR: struct nlmsgerr, the error then the request's
// header.
func wtError(seq uint32, errno int32) []byte {
	p := make([]byte, 4+16)
	binary.NativeEndian.PutUint32(p, uint32(errno))
	binary.NativeEndian.PutUint32(p[4:], 72)
	binary.NativeEndian.PutUint16(p[8:], 20)
	binary.NativeEndian.PutUint32(p[12:], seq)
	return wtFrame(2, seq, p)
}

func wtCat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// wtGot is one socket parseBatch emitted, with a copy of its tcp_info.
type wtGot struct {
	s    sock.Socket
	info []byte
	// hadInfo tells a nil info from an empty INET_DIAG_INFO attribute.
	hadInfo bool
}

func wtParse(b []byte, seq uint32) ([]wtGot, batchResult, error) {
	var got []wtGot
	res, err := parseBatch(b, seq, func(s *sock.Socket, info []byte) {
		got = append(got, wtGot{s: *s, info: bytes.Clone(info), hadInfo: info != nil})
	})
	return got, res, err
}

// wtRes names a batchResult in failure messages.
type wtRes batchResult

func (r wtRes) String() string {
	switch batchResult(r) {
	case batchMore:
		return "batchMore"
	case batchDone:
		return "batchDone"
	}
	return "batchResult(" + strconv.Itoa(int(r)) + ")"
}

var (
	wtV4Local = []byte{192, 0, 2, 1}
	wtV4Peer  = []byte{198, 51, 100, 7}
	wtV6Local = netip.MustParseAddr("2001:db8::1").AsSlice()
	wtV6Peer  = netip.MustParseAddr("fe80::1234:5678:9abc:def0").AsSlice()
)

// wtEstablished4 is a plain ESTABLISHED IPv4 socket with a given cookie.
func wtEstablished4(cookie uint32) wtDiag {
	return wtDiag{family: 2, state: 1, sport: 9000, dport: 40000 + uint16(cookie),
		src: wtV4Local, dst: wtV4Peer, cookie: [2]uint32{cookie, 0}, inode: 1000 + cookie}
}

func TestParseDiagMsgFields(t *testing.T) {
	tests := []struct {
		name string
		in   wtDiag
		want sock.Socket
		// timer is what the Timer prints as.
		timer string
	}{
		{
			name: "ipv4 established",
			in: wtDiag{
				family: 2, state: 1, timer: 1, retrans: 3,
				sport: 9000, dport: 0xbeef, src: wtV4Local, dst: wtV4Peer,
				ifindex: 7, cookie: [2]uint32{0x89abcdef, 0x01234567},
				expires: 204, rqueue: 11, wqueue: 0x80000001, uid: 1000, inode: 0xfedcba98,
			},
			want: sock.Socket{
				Family: sock.IPv4, State: sock.Established, Timer: sock.TimerRetrans, Retrans: 3,
				Local:   sock.MustParseEndpoint("192.0.2.1:9000"),
				Peer:    sock.MustParseEndpoint("198.51.100.7:48879"),
				IfIndex: 7, Cookie: 0x0123456789abcdef,
				Expires: 204, RecvQ: 11, SendQ: 0x80000001, UID: 1000, Inode: 0xfedcba98,
				Info: -1,
			},
			timer: "retrans",
		},
		{
			name: "ipv6 time-wait",
			in: wtDiag{
				family: 10, state: 6, timer: 3,
				sport: 443, dport: 65535, src: wtV6Local, dst: wtV6Peer,
				ifindex: 2, cookie: [2]uint32{1, 2}, expires: 59999,
			},
			want: sock.Socket{
				Family: sock.IPv6, State: sock.TimeWait, Timer: sock.TimerTimeWait,
				Local:   sock.MustParseEndpoint("[2001:db8::1]:443"),
				Peer:    sock.MustParseEndpoint("[fe80::1234:5678:9abc:def0]:65535"),
				IfIndex: 2, Cookie: 2<<32 | 1, Expires: 59999, Info: -1,
			},
			timer: "timewait",
		},
		{
			name: "ipv6 v4-mapped listener",
			in: wtDiag{
				family: 10, state: 10, sport: 22,
				src:    netip.MustParseAddr("::ffff:10.1.2.3").AsSlice(),
				wqueue: 4096, uid: 0xffffffff, inode: 1, cookie: [2]uint32{0xffffffff, 0xffffffff},
			},
			want: sock.Socket{
				Family: sock.IPv6, State: sock.Listen,
				// Kept as a 16-byte address: unmapping is not the parser's job.
				Local: sock.MustParseEndpoint("[::ffff:10.1.2.3]:22"),
				Peer:  sock.EndpointOf(netip.AddrPortFrom(netip.IPv6Unspecified(), 0)),
				SendQ: 4096, UID: 0xffffffff, Inode: 1, Cookie: 0xffffffffffffffff, Info: -1,
			},
			timer: "",
		},
		{
			name: "unknown timer kept as a number",
			in: wtDiag{
				family: 2, state: 5, timer: 9, retrans: 255,
				sport: 1, dport: 2, src: []byte{127, 0, 0, 1}, dst: []byte{127, 0, 0, 2},
			},
			want: sock.Socket{
				Family: sock.IPv4, State: sock.FinWait2, Timer: sock.Timer(9), Retrans: 255,
				Local: sock.MustParseEndpoint("127.0.0.1:1"),
				Peer:  sock.MustParseEndpoint("127.0.0.2:2"),
				Info:  -1,
			},
			timer: "timer9",
		},
		{
			name: "ipv4 ignores the rest of the 16-byte address fields",
			in: wtDiag{
				family: 2, state: 8, sport: 80, dport: 81,
				src: []byte{10, 0, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4, 5, 6, 7, 8},
				dst: []byte{10, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
			},
			want: sock.Socket{
				Family: sock.IPv4, State: sock.CloseWait,
				Local: sock.MustParseEndpoint("10.0.0.1:80"),
				Peer:  sock.MustParseEndpoint("10.0.0.2:81"),
				Info:  -1,
			},
			timer: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Directly, and through parseBatch.
			var s sock.Socket
			info, err := parseDiagMsg(tt.in.bytes(), &s)
			if err != nil {
				t.Fatalf("parseDiagMsg: %v", err)
			}
			if info != nil {
				t.Errorf("info = %d bytes, want nil without INET_DIAG_INFO", len(info))
			}
			if s != tt.want {
				t.Errorf("parseDiagMsg:\n got %+v\nwant %+v", s, tt.want)
			}
			if got := s.Timer.String(); got != tt.timer {
				t.Errorf("Timer.String() = %q, want %q", got, tt.timer)
			}

			got, res, err := wtParse(wtCat(wtDiagFrame(1, tt.in), wtDone(1, 0)), 1)
			if err != nil || res != batchDone {
				t.Fatalf("parseBatch = %v, %v; want batchDone, nil", wtRes(res), err)
			}
			if len(got) != 1 || got[0].s != tt.want {
				t.Errorf("parseBatch emitted %+v, want exactly %+v", got, tt.want)
			}
		})
	}
}

func TestParseDiagMsgErrors(t *testing.T) {
	good := wtEstablished4(1).bytes()
	tests := []struct {
		name      string
		msg       []byte
		truncated bool   // want errors.Is(err, ErrTruncated)
		contains  string // in the error text
	}{
		{name: "empty", msg: nil, truncated: true},
		{name: "71 bytes", msg: good[:71], truncated: true},
		{name: "unknown family", msg: wtDiag{family: 1, state: 1}.bytes(), contains: "family 1"},
		{name: "AF_UNSPEC", msg: wtDiag{family: 0}.bytes(), contains: "family 0"},
		{name: "attribute length below header", msg: wtCat(good, []byte{3, 0, 2, 0}), truncated: true},
		{name: "attribute length zero", msg: wtCat(good, []byte{0, 0, 2, 0}), truncated: true},
		{name: "attribute longer than message", msg: wtCat(good, []byte{9, 0, 2, 0, 1, 2, 3, 4}), truncated: true},
		{
			name:      "second attribute overruns",
			msg:       wtCat(good, wtRtattr(8, []byte{1}), []byte{200, 0, 2, 0, 0, 0, 0, 0}),
			truncated: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s sock.Socket
			info, err := parseDiagMsg(tt.msg, &s)
			if err == nil {
				t.Fatalf("parseDiagMsg succeeded (info %d bytes, socket %+v), want an error", len(info), s)
			}
			if got := errors.Is(err, ErrTruncated); got != tt.truncated {
				t.Errorf("errors.Is(%q, ErrTruncated) = %v, want %v", err, got, tt.truncated)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q does not mention %q", err, tt.contains)
			}
		})
	}
}

func TestParseDiagMsgAttributes(t *testing.T) {
	tcpInfo := make([]byte, 232)
	for i := range tcpInfo {
		tcpInfo[i] = byte(i)
	}
	base := wtEstablished4(1)
	tests := []struct {
		name  string
		attrs []byte // raw attribute bytes after the 72-byte header
		want  []byte // the info slice; nil for none
	}{
		{name: "no attributes", want: nil},
		{
			name: "info among others, as the kernel sends it",
			attrs: wtCat(wtRtattr(8, []byte{0}), wtRtattr(15, make([]byte, 4)),
				wtRtattr(21, make([]byte, 8)), wtRtattr(22, []byte{0, 0}), wtRtattr(2, tcpInfo)),
			want: tcpInfo,
		},
		{name: "info first", attrs: wtCat(wtRtattr(2, tcpInfo[:104]), wtRtattr(15, make([]byte, 4))), want: tcpInfo[:104]},
		{name: "info with NLA_F_NESTED set", attrs: wtRtattr(0x8000|2, tcpInfo[:8]), want: tcpInfo[:8]},
		{name: "empty info", attrs: wtRtattr(2, nil), want: []byte{}},
		{name: "other attributes only", attrs: wtCat(wtRtattr(15, make([]byte, 4)), wtRtattr(4, []byte("cubic\x00"))), want: nil},
		{
			// The last attribute may end the message without its padding.
			name:  "last attribute unpadded",
			attrs: wtCat(wtRtattr(2, tcpInfo[:6]), wtRtattr(8, []byte{1})[:5]),
			want:  tcpInfo[:6],
		},
		{
			// Fewer than 4 bytes cannot hold an attribute and are ignored.
			name:  "trailing bytes shorter than an attribute header",
			attrs: wtCat(wtRtattr(2, tcpInfo[:4]), []byte{0xff, 0xff}),
			want:  tcpInfo[:4],
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := wtCat(base.bytes(), tt.attrs)
			var s sock.Socket
			info, err := parseDiagMsg(m, &s)
			if err != nil {
				t.Fatalf("parseDiagMsg: %v", err)
			}
			if (info == nil) != (tt.want == nil) || !bytes.Equal(info, tt.want) {
				t.Fatalf("info = %v (nil %v), want %v (nil %v)", info, info == nil, tt.want, tt.want == nil)
			}
			if len(info) > 0 && &info[0] != &m[72+wtInfoOffset(t, tt.attrs)] {
				t.Errorf("info does not alias the message")
			}
			if s.Cookie != 1 || s.State != sock.Established || s.Info != -1 {
				t.Errorf("socket = %+v, attributes changed the header fields", s)
			}
		})
	}
}

// wtInfoOffset finds the payload offset of the first INET_DIAG_INFO in attrs.
func wtInfoOffset(t *testing.T, attrs []byte) int {
	t.Helper()
	for off := 0; off+4 <= len(attrs); {
		l := int(binary.NativeEndian.Uint16(attrs[off:]))
		if binary.NativeEndian.Uint16(attrs[off+2:])&0x3fff == 2 {
			return off + 4
		}
		off += (l + 3) &^ 3
	}
	t.Fatal("no INET_DIAG_INFO in the test's attributes")
	return 0
}

func TestParseBatch(t *testing.T) {
	const seq = 5
	s1, s2, s3 := wtEstablished4(1), wtEstablished4(2), wtEstablished4(3)
	tests := []struct {
		name    string
		in      []byte
		cookies []uint64 // of the emitted sockets, in order
		res     batchResult
		errIs   error  // want errors.Is(err, errIs); nil for no error
		errText string // when errIs is nil but an error is wanted
	}{
		{name: "empty buffer", in: nil, res: batchMore},
		{name: "messages without DONE", in: wtCat(wtDiagFrame(seq, s1), wtDiagFrame(seq, s2)), cookies: []uint64{1, 2}, res: batchMore},
		{
			name:    "DONE ends the batch",
			in:      wtCat(wtDiagFrame(seq, s1), wtDiagFrame(seq, s2), wtDone(seq, 0), wtDiagFrame(seq, s3)),
			cookies: []uint64{1, 2}, res: batchDone,
		},
		{name: "DONE alone", in: wtDone(seq, 0), res: batchDone},
		{name: "DONE without payload", in: wtFrame(3, seq, nil), res: batchDone},
		{name: "DONE with a positive int is not an error", in: wtDone(seq, 7), res: batchDone},
		{
			name:    "DONE carrying -ENOENT",
			in:      wtCat(wtDiagFrame(seq, s1), wtDone(seq, -int32(unix.ENOENT))),
			cookies: []uint64{1}, res: batchDone, errIs: unix.ENOENT,
		},
		{
			name:    "NLMSG_ERROR carrying -EPERM",
			in:      wtCat(wtDiagFrame(seq, s1), wtError(seq, -int32(unix.EPERM)), wtDiagFrame(seq, s2)),
			cookies: []uint64{1}, res: batchDone, errIs: unix.EPERM,
		},
		{name: "NLMSG_ERROR carrying -EINVAL alone", in: wtError(seq, -int32(unix.EINVAL)), res: batchDone, errIs: unix.EINVAL},
		{
			name:    "ACK is ignored",
			in:      wtCat(wtError(seq, 0), wtDiagFrame(seq, s1), wtDone(seq, 0)),
			cookies: []uint64{1}, res: batchDone,
		},
		{name: "NLMSG_ERROR too short", in: wtFrame(2, seq, []byte{0xfe, 0xff}), res: batchMore, errIs: ErrTruncated},
		{
			name: "other sequence numbers are skipped",
			in: wtCat(wtDiagFrame(seq-1, s1), wtError(seq-1, -int32(unix.EBUSY)), wtDone(seq-1, -int32(unix.ENOENT)),
				wtDiagFrame(seq, s2), wtDiagFrame(seq+1, s3), wtDone(seq+1, 0), wtDone(seq, 0)),
			cookies: []uint64{2}, res: batchDone,
		},
		{
			name:    "garbage of another sequence is skipped",
			in:      wtCat(wtFrame(20, seq-1, []byte{1, 2, 3}), wtDiagFrame(seq-1, wtDiag{family: 1}), wtDiagFrame(seq, s1)),
			cookies: []uint64{1}, res: batchMore,
		},
		{
			name:    "other message types are ignored",
			in:      wtCat(wtFrame(1, seq, nil), wtFrame(4, seq, make([]byte, 8)), wtFrame(21, seq, make([]byte, 3)), wtDiagFrame(seq, s1)),
			cookies: []uint64{1}, res: batchMore,
		},
		{name: "header length below 16", in: wtFrameLen(12, 20, seq, s1.bytes()), res: batchMore, errIs: ErrTruncated},
		{name: "header length zero", in: wtFrameLen(0, 3, seq, make([]byte, 4)), res: batchMore, errIs: ErrTruncated},
		{
			name:    "header length beyond the buffer",
			in:      wtCat(wtDiagFrame(seq, s1), wtFrameLen(16+72+4, 20, seq, s2.bytes())),
			cookies: []uint64{1}, res: batchMore, errIs: ErrTruncated,
		},
		{name: "header length 4 GiB", in: wtFrameLen(0xffffffff, 20, seq, s1.bytes()), res: batchMore, errIs: ErrTruncated},
		{
			name:    "cut inside the last header",
			in:      wtCat(wtDiagFrame(seq, s1), wtDiagFrame(seq, s2)[:15]),
			cookies: []uint64{1}, res: batchMore, errIs: ErrTruncated,
		},
		{
			name:    "stray bytes after the last message",
			in:      wtCat(wtDiagFrame(seq, s1), []byte{0, 0, 0, 0}),
			cookies: []uint64{1}, res: batchMore, errIs: ErrTruncated,
		},
		{
			name:    "inet_diag_msg shorter than 72 bytes",
			in:      wtCat(wtDiagFrame(seq, s1), wtFrame(20, seq, s2.bytes()[:71]), wtDone(seq, 0)),
			cookies: []uint64{1}, res: batchMore, errIs: ErrTruncated,
		},
		{
			name:    "bad attribute length",
			in:      wtCat(wtFrame(20, seq, wtCat(s1.bytes(), []byte{2, 0, 2, 0})), wtDone(seq, 0)),
			res:     batchMore,
			errIs:   ErrTruncated,
			errText: "attribute",
		},
		{
			name:    "attribute overruns the message into the next one",
			in:      wtCat(wtFrame(20, seq, wtCat(s1.bytes(), []byte{0x40, 0, 2, 0})), wtDiagFrame(seq, s2), wtDone(seq, 0)),
			res:     batchMore,
			errIs:   ErrTruncated,
			errText: "attribute",
		},
		{
			name:    "unknown address family",
			in:      wtCat(wtDiagFrame(seq, s1), wtDiagFrame(seq, wtDiag{family: 1, state: 1, cookie: [2]uint32{9, 0}}), wtDone(seq, 0)),
			cookies: []uint64{1}, res: batchMore, errText: "address family 1",
		},
		{
			// The last message's padding may be missing from the buffer.
			name:    "unpadded last message",
			in:      wtFrame(20, seq, wtCat(s1.bytes(), wtRtattr(8, []byte{1})[:5]))[:16+72+5],
			cookies: []uint64{1}, res: batchMore,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, res, err := wtParse(tt.in, seq)
			var cookies []uint64
			for _, g := range got {
				cookies = append(cookies, g.s.Cookie)
			}
			if !slices.Equal(cookies, tt.cookies) {
				t.Errorf("emitted cookies %v, want %v", cookies, tt.cookies)
			}
			if res != tt.res {
				t.Errorf("result = %v, want %v", wtRes(res), wtRes(tt.res))
			}
			wantErr := tt.errIs != nil || tt.errText != ""
			switch {
			case err == nil && wantErr:
				t.Fatalf("no error, want one (errors.Is %v, text %q)", tt.errIs, tt.errText)
			case err != nil && !wantErr:
				t.Fatalf("unexpected error: %v", err)
			case err == nil:
				return
			}
			if tt.errIs != nil && !errors.Is(err, tt.errIs) {
				t.Errorf("error %q (%T) is not %v", err, err, tt.errIs)
			}
			if tt.errIs == nil && errors.Is(err, ErrTruncated) {
				t.Errorf("error %q wraps ErrTruncated, want another error", err)
			}
			if !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("error %q does not mention %q", err, tt.errText)
			}
		})
	}
}

func TestParseBatchInfo(t *testing.T) {
	ti := make([]byte, 232)
	binary.NativeEndian.PutUint32(ti[68:], 1500)
	s1 := wtEstablished4(1)
	s1.attrs = []wtAttr{{8, []byte{0}}, {2, ti}}
	s2 := wtEstablished4(2) // no tcp_info, as TIME_WAIT sockets come
	s3 := wtEstablished4(3)
	s3.attrs = []wtAttr{{2, ti[:104]}}
	in := wtCat(wtDiagFrame(5, s1), wtDiagFrame(5, s2), wtDiagFrame(5, s3), wtDone(5, 0))

	got, res, err := wtParse(in, 5)
	if err != nil || res != batchDone {
		t.Fatalf("parseBatch = %v, %v; want batchDone, nil", wtRes(res), err)
	}
	if len(got) != 3 {
		t.Fatalf("emitted %d sockets, want 3", len(got))
	}
	for i, want := range []struct {
		hadInfo bool
		info    []byte
	}{{true, ti}, {false, nil}, {true, ti[:104]}} {
		g := got[i]
		if g.hadInfo != want.hadInfo || !bytes.Equal(g.info, want.info) {
			t.Errorf("socket %d: info %d bytes (present %v), want %d bytes (present %v)",
				i, len(g.info), g.hadInfo, len(want.info), want.hadInfo)
		}
		// The socket itself never points at an info: the collector does.
		if g.s.Info != -1 {
			t.Errorf("socket %d: Info = %d, want -1", i, g.s.Info)
		}
	}
	var info sock.TCPInfo
	parseTCPInfo(got[0].info, &info)
	if info.RTT != 1500*time.Microsecond {
		t.Errorf("RTT from the emitted info = %v, want 1.5ms", info.RTT)
	}
}

// fullTCPInfo is what the tcp_info tests' values read as, every field the
// parser knows set.
var fullTCPInfo = sock.TCPInfo{
	CAState: 4, Options: 7,
	RTO: 204 * time.Millisecond, ATO: 40 * time.Millisecond, SndMSS: 1448, RcvMSS: 536,
	Unacked: 3, Lost: 1, Retrans: 2,
	LastDataSent: 120 * time.Millisecond, LastDataRecv: 130 * time.Millisecond, LastAckRecv: 140 * time.Millisecond,
	PMTU: 1500, RTT: 12345 * time.Microsecond, RTTVar: 678 * time.Microsecond,
	SndSsth: 0x7fffffff, SndCwnd: 10, TotalRetrans: 17,
	BytesAcked: 1<<40 | 5, BytesReceived: 1<<33 | 9, SegsOut: 100, SegsIn: 90,
	MinRTT: 4321 * time.Microsecond, DeliveryRate: 125_000_000,
	BytesSent: 1 << 35, BytesRetrans: 4096,
}

func TestParseTCPInfo(t *testing.T) {
	full := make([]byte, 232)
	ne := binary.NativeEndian
	full[1] = 4    // tcpi_ca_state: TCP_CA_Loss
	full[5] = 0x07 // tcpi_options
	ne.PutUint32(full[8:], 204000)
	ne.PutUint32(full[12:], 40000)
	ne.PutUint32(full[16:], 1448)
	ne.PutUint32(full[20:], 536)
	ne.PutUint32(full[24:], 3)
	ne.PutUint32(full[32:], 1)
	ne.PutUint32(full[36:], 2)
	ne.PutUint32(full[44:], 120)
	ne.PutUint32(full[52:], 130)
	ne.PutUint32(full[56:], 140)
	ne.PutUint32(full[60:], 1500)
	ne.PutUint32(full[68:], 12345) // tcpi_rtt, µs
	ne.PutUint32(full[72:], 678)
	ne.PutUint32(full[76:], 0x7fffffff)
	ne.PutUint32(full[80:], 10) // tcpi_snd_cwnd
	ne.PutUint32(full[100:], 17)
	ne.PutUint64(full[120:], 1<<40|5) // tcpi_bytes_acked
	ne.PutUint64(full[128:], 1<<33|9)
	ne.PutUint32(full[136:], 100)
	ne.PutUint32(full[140:], 90)
	ne.PutUint32(full[148:], 4321) // tcpi_min_rtt, µs
	ne.PutUint64(full[160:], 125_000_000)
	ne.PutUint64(full[200:], 1<<35)
	ne.PutUint64(full[208:], 4096)

	wantFull := fullTCPInfo
	// An old kernel's 104-byte struct ends after tcpi_total_retrans.
	want104 := wantFull
	want104.BytesAcked, want104.BytesReceived, want104.SegsOut, want104.SegsIn = 0, 0, 0, 0
	want104.MinRTT, want104.DeliveryRate, want104.BytesSent, want104.BytesRetrans = 0, 0, 0, 0
	// Cut inside tcpi_bytes_acked: a partial field reads as zero.
	want124 := want104
	// Up to tcpi_min_rtt (4.6's 152 bytes).
	want152 := want104
	want152.BytesAcked, want152.BytesReceived, want152.SegsOut, want152.SegsIn = 1<<40|5, 1<<33|9, 100, 90
	want152.MinRTT = 4321 * time.Microsecond
	// Cut inside tcpi_rtt.
	want70 := sock.TCPInfo{
		CAState: 4, Options: 7,
		RTO: 204 * time.Millisecond, ATO: 40 * time.Millisecond, SndMSS: 1448, RcvMSS: 536,
		Unacked: 3, Lost: 1, Retrans: 2,
		LastDataSent: 120 * time.Millisecond, LastDataRecv: 130 * time.Millisecond, LastAckRecv: 140 * time.Millisecond,
		PMTU: 1500,
	}

	tests := []struct {
		name string
		in   []byte
		want sock.TCPInfo
	}{
		{"full 232 bytes", full, wantFull},
		{"longer than known", append(bytes.Clone(full), make([]byte, 100)...), wantFull},
		{"old kernel 104 bytes", full[:104], want104},
		{"cut inside bytes_acked", full[:124], want124},
		{"152 bytes", full[:152], want152},
		{"cut inside rtt", full[:70], want70},
		{"one byte", full[:1], sock.TCPInfo{}},
		{"two bytes", full[:2], sock.TCPInfo{CAState: 4}},
		{"empty", []byte{}, sock.TCPInfo{}},
		{"nil", nil, sock.TCPInfo{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Start from garbage: every field must be overwritten.
			got := sock.TCPInfo{RTT: time.Hour, SndCwnd: 99, BytesAcked: 99, MinRTT: time.Hour, CAState: 99}
			parseTCPInfo(tt.in, &got)
			if got != tt.want {
				t.Errorf("parseTCPInfo(%d bytes):\n got %+v\nwant %+v", len(tt.in), got, tt.want)
			}
		})
	}
}

// TestParseTCPInfoAgreesWithUnix reads struct tcp_info as golang.org/x/sys
// lays it out (generated from the kernel's headers), not at the offsets
// the parser was written with: every field it reads holds a value of its
// own, and every field beside them another, so that a field read at a
// neighbour's offset shows.
func TestParseTCPInfoAgreesWithUnix(t *testing.T) {
	ti := unix.TCPInfo{
		State: 1, Ca_state: 4, Retransmits: 201, Probes: 202, Backoff: 203, Options: 7,
		Rto: 204000, Ato: 40000, Snd_mss: 1448, Rcv_mss: 536, Unacked: 3, Sacked: 205,
		Lost: 1, Retrans: 2, Fackets: 206, Last_data_sent: 120, Last_ack_sent: 207,
		Last_data_recv: 130, Last_ack_recv: 140, Pmtu: 1500, Rcv_ssthresh: 208,
		Rtt: 12345, Rttvar: 678, Snd_ssthresh: 0x7fffffff, Snd_cwnd: 10, Advmss: 209,
		Reordering: 210, Rcv_rtt: 211, Rcv_space: 212, Total_retrans: 17,
		Pacing_rate: 213, Max_pacing_rate: 214, Bytes_acked: 1<<40 | 5, Bytes_received: 1<<33 | 9,
		Segs_out: 100, Segs_in: 90, Notsent_bytes: 215, Min_rtt: 4321, Data_segs_in: 216,
		Data_segs_out: 217, Delivery_rate: 125_000_000, Busy_time: 218, Rwnd_limited: 219,
		Sndbuf_limited: 220, Delivered: 221, Delivered_ce: 222, Bytes_sent: 1 << 35,
		Bytes_retrans: 4096, Dsack_dups: 223,
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&ti)), unsafe.Sizeof(ti))
	var got sock.TCPInfo
	parseTCPInfo(b, &got)
	want := fullTCPInfo
	if got != want {
		t.Errorf("parseTCPInfo of unix.TCPInfo:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseTCPInfoWindowScale(t *testing.T) {
	// tcpi_snd_wscale:4, tcpi_rcv_wscale:4 share byte 6; on little-endian
	// ABIs the first bit-field takes the low nibble.
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("bit-field layout differs on big-endian hosts")
	}
	b := make([]byte, 8)
	b[6] = 0xa7
	var got sock.TCPInfo
	parseTCPInfo(b, &got)
	if got.SndWScale != 7 || got.RcvWSc != 10 {
		t.Errorf("byte 6 = 0xa7: SndWScale %d, RcvWSc %d; want 7, 10", got.SndWScale, got.RcvWSc)
	}
}

func TestAppendRequest(t *testing.T) {
	bc5 := []byte{1, 2, 3, 4, 5}
	bc8 := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	tests := []struct {
		name   string
		seq    uint32
		fam    sock.Family
		req    Request
		states uint32 // idiag_states as sent
		total  int
	}{
		{
			name: "ipv4 two states with info", seq: 42, fam: sock.IPv4,
			req:    Request{States: sock.MaskOf(sock.Established, sock.Listen), Ext: ExtInfo},
			states: 1<<1 | 1<<10, total: 72,
		},
		{
			name: "ipv6 SYN_RECV adds NEW_SYN_RECV", seq: 0xfffffffe, fam: sock.IPv6,
			req:    Request{States: sock.MaskOf(sock.SynRecv)},
			states: 1<<3 | 1<<12, total: 72,
		},
		{
			name: "all states", seq: 1, fam: sock.IPv4,
			req:    Request{States: sock.AllStates, Ext: ExtInfo},
			states: 0x1ffe, total: 72,
		},
		{
			name: "NEW_SYN_RECV alone stays alone", seq: 1, fam: sock.IPv4,
			req:    Request{States: sock.MaskOf(sock.NewSynRecv)},
			states: 1 << 12, total: 72,
		},
		{
			name: "no states", seq: 7, fam: sock.IPv6,
			req:    Request{},
			states: 0, total: 72,
		},
		{
			name: "bytecode padded", seq: 3, fam: sock.IPv4,
			req:    Request{States: sock.MaskOf(sock.TimeWait), Bytecode: bc5},
			states: 1 << 6, total: 72 + 4 + 8,
		},
		{
			name: "bytecode already aligned", seq: 3, fam: sock.IPv6,
			req:    Request{States: sock.MaskOf(sock.TimeWait, sock.SynRecv), Ext: 0xff, Bytecode: bc8},
			states: 1<<6 | 1<<3 | 1<<12, total: 72 + 4 + 8,
		},
		{
			name: "largest bytecode", seq: 9, fam: sock.IPv4,
			req:    Request{States: sock.MaskOf(sock.Established), Bytecode: bytes.Repeat([]byte{0xa5}, 65531)},
			states: 1 << 1, total: 72 + 4 + 65532,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Append after a prefix, into a buffer whose spare capacity holds
			// garbage: the request must not pick any of it up.
			prefix := []byte{0xde, 0xad, 0xbe}
			dst := make([]byte, len(prefix), len(prefix)+tt.total+64)
			for i := range dst[:cap(dst)] {
				dst[:cap(dst)][i] = 0xee
			}
			copy(dst, prefix)
			out, err := appendRequest(dst, tt.seq, tt.fam, &tt.req)
			if err != nil {
				t.Fatalf("appendRequest: %v", err)
			}
			if !bytes.Equal(out[:len(prefix)], prefix) {
				t.Fatalf("prefix clobbered: % x", out[:len(prefix)])
			}
			b := out[len(prefix):]
			if len(b) != tt.total {
				t.Fatalf("request is %d bytes, want %d", len(b), tt.total)
			}
			ne := binary.NativeEndian
			if l := ne.Uint32(b[0:]); l != uint32(tt.total) {
				t.Errorf("nlmsg_len = %d, want %d", l, tt.total)
			}
			if typ := ne.Uint16(b[4:]); typ != 20 {
				t.Errorf("nlmsg_type = %d, want 20 (SOCK_DIAG_BY_FAMILY)", typ)
			}
			if fl := ne.Uint16(b[6:]); fl != 0x301 {
				t.Errorf("nlmsg_flags = %#x, want 0x301 (NLM_F_REQUEST|NLM_F_DUMP)", fl)
			}
			if s := ne.Uint32(b[8:]); s != tt.seq {
				t.Errorf("nlmsg_seq = %d, want %d", s, tt.seq)
			}
			if pid := ne.Uint32(b[12:]); pid != 0 {
				t.Errorf("nlmsg_pid = %d, want 0", pid)
			}
			r := b[16:]
			if r[0] != uint8(tt.fam) || r[1] != 6 || r[2] != uint8(tt.req.Ext) || r[3] != 0 {
				t.Errorf("family, protocol, ext, pad = %d, %d, %#x, %d; want %d, 6, %#x, 0",
					r[0], r[1], r[2], r[3], tt.fam, tt.req.Ext)
			}
			if s := ne.Uint32(r[4:]); s != tt.states {
				t.Errorf("idiag_states = %#x, want %#x", s, tt.states)
			}
			if id := r[8:56]; !bytes.Equal(id, make([]byte, 48)) {
				t.Errorf("inet_diag_sockid not zero: % x", id)
			}
			a := r[56:]
			if tt.req.Bytecode == nil {
				if len(a) != 0 {
					t.Errorf("%d bytes after inet_diag_req_v2 without bytecode", len(a))
				}
				return
			}
			n := len(tt.req.Bytecode)
			if al := ne.Uint16(a[0:]); int(al) != 4+n {
				t.Errorf("rta_len = %d, want %d", al, 4+n)
			}
			if at := ne.Uint16(a[2:]); at != 1 {
				t.Errorf("rta_type = %d, want 1 (INET_DIAG_REQ_BYTECODE)", at)
			}
			if !bytes.Equal(a[4:4+n], tt.req.Bytecode) {
				t.Errorf("bytecode not copied verbatim")
			}
			if pad := a[4+n:]; !bytes.Equal(pad, make([]byte, len(pad))) || (4+n+len(pad))%4 != 0 {
				t.Errorf("padding % x after %d bytes of bytecode, want zeros up to a multiple of 4", pad, n)
			}
		})
	}
}

func TestAppendRequestBytecodeTooLong(t *testing.T) {
	for _, n := range []int{65532, 65535, 1 << 20} {
		dst := []byte{1, 2, 3}
		out, err := appendRequest(dst, 1, sock.IPv4, &Request{States: sock.AllStates, Bytecode: make([]byte, n)})
		if err == nil {
			t.Errorf("bytecode of %d bytes accepted", n)
		}
		if !bytes.Equal(out, dst) {
			t.Errorf("bytecode of %d bytes: dst changed to %d bytes", n, len(out))
		}
	}
}

// TestAppendRequestParsesBack checks the request against the parser's own
// framing: one well-formed message of the given sequence.
func TestAppendRequestParsesBack(t *testing.T) {
	var b []byte
	var err error
	for seq := uint32(1); seq <= 3; seq++ {
		b, err = appendRequest(b, seq, sock.IPv6, &Request{States: sock.AllStates, Bytecode: []byte{1, 2, 3}})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Under a sequence number none of them carries, parseBatch only walks
	// the frames: every length must land on the next header exactly.
	got, res, err := wtParse(b, 99)
	if err != nil || res != batchMore || len(got) != 0 {
		t.Errorf("walking three requests: %d sockets, %v, %v; want 0, batchMore, nil", len(got), wtRes(res), err)
	}
}

// The captured dumps: see TestIntegrationSeedExperiment (go test -update
// rewrites them; the exact values below then need refreshing).

type wtSeedFile struct {
	name string
	seq  uint32
	want []sock.Socket
}

func wtSeeds() []wtSeedFile {
	ap := sock.MustParseEndpoint
	return []wtSeedFile{
		{
			name: "seed-inet.bin", seq: 5,
			want: []sock.Socket{
				{Family: sock.IPv4, State: sock.Listen, Local: ap("127.0.0.1:9000"), Peer: ap("0.0.0.0:0"),
					Cookie: 3, SendQ: 16, Inode: 6972, Info: -1},
				{Family: sock.IPv4, State: sock.TimeWait, Timer: sock.TimerTimeWait,
					Local: ap("127.0.0.1:9000"), Peer: ap("127.0.0.1:58010"),
					Cookie: 4, Expires: 59696, Info: -1},
				{Family: sock.IPv4, State: sock.FinWait2, Local: ap("127.0.0.1:58014"), Peer: ap("127.0.0.1:9000"),
					Cookie: 5, Inode: 6978, Info: -1},
				{Family: sock.IPv4, State: sock.CloseWait, Local: ap("127.0.0.1:9000"), Peer: ap("127.0.0.1:58014"),
					Cookie: 6, RecvQ: 1, Inode: 6979, Info: -1},
			},
		},
		{
			name: "seed-inet6.bin", seq: 6,
			want: []sock.Socket{
				{Family: sock.IPv6, State: sock.Listen, Local: ap("[::1]:9000"), Peer: ap("[::]:0"),
					Cookie: 7, SendQ: 16, Inode: 6973, Info: -1},
				{Family: sock.IPv6, State: sock.TimeWait, Timer: sock.TimerTimeWait,
					Local: ap("[::1]:9000"), Peer: ap("[::1]:44632"),
					Cookie: 8, Expires: 59696, Info: -1},
			},
		},
	}
}

func wtReadSeed(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wtSplitMessages cuts a captured reply at every message boundary, as recv
// batches would be.
func wtSplitMessages(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 16 {
			t.Fatalf("%d stray bytes in the capture", len(b))
		}
		n := min((int(binary.NativeEndian.Uint32(b))+3)&^3, len(b))
		if n < 16 {
			t.Fatalf("bad message length %d in the capture", n)
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func TestGoldenSeeds(t *testing.T) {
	for _, seed := range wtSeeds() {
		t.Run(seed.name, func(t *testing.T) {
			raw := wtReadSeed(t, seed.name)
			got, res, err := wtParse(raw, seed.seq)
			if err != nil {
				t.Fatalf("parseBatch: %v", err)
			}
			if res != batchDone {
				t.Errorf("result = %v, want batchDone at the end of the capture", wtRes(res))
			}

			// What the experiment set up, whatever the kernel numbered.
			fam := seed.want[0].Family
			lo := netip.MustParseAddr("127.0.0.1")
			if fam == sock.IPv6 {
				lo = netip.IPv6Loopback()
			}
			byState := map[sock.State][]wtGot{}
			for _, g := range got {
				s := g.s
				if s.Family != fam {
					t.Errorf("%v socket in the %v capture: %+v", s.Family, fam, s)
				}
				if s.Local.Addr() != lo || (s.Peer.Addr() != lo && s.State != sock.Listen) {
					t.Errorf("socket not on loopback: %+v", s)
				}
				if s.Info != -1 {
					t.Errorf("Info = %d, want -1: %+v", s.Info, s)
				}
				byState[s.State] = append(byState[s.State], g)
			}
			wantCount := map[sock.State]int{sock.Listen: 1, sock.TimeWait: 1}
			if fam == sock.IPv4 {
				wantCount[sock.CloseWait], wantCount[sock.FinWait2] = 1, 1
			}
			for st, n := range wantCount {
				if len(byState[st]) != n {
					t.Errorf("%d %v sockets, want %d", len(byState[st]), st, n)
				}
			}
			if len(got) != len(seed.want) {
				t.Errorf("%d sockets, want %d", len(got), len(seed.want))
			}
			for _, g := range byState[sock.Listen] {
				if g.s.Local.Port() != 9000 || g.s.Peer.Port() != 0 || g.s.Inode == 0 || g.s.Timer != sock.TimerNone {
					t.Errorf("LISTEN socket %+v: want local :9000, no peer, an inode, no timer", g.s)
				}
			}
			for _, g := range byState[sock.TimeWait] {
				s := g.s
				if s.Local.Port() != 9000 || s.Timer != sock.TimerTimeWait || s.Inode != 0 ||
					s.Expires <= 55000 || s.Expires > 60000 {
					t.Errorf("TIME_WAIT socket %+v: want local :9000, timer 3, inode 0, expires in (55000,60000]", s)
				}
				if g.hadInfo {
					t.Errorf("TIME_WAIT socket has %d bytes of tcp_info, want none", len(g.info))
				}
			}
			for _, g := range byState[sock.CloseWait] {
				if g.s.Local.Port() != 9000 || g.s.Inode == 0 {
					t.Errorf("CLOSE_WAIT socket %+v: want local :9000 and an inode", g.s)
				}
			}
			for _, g := range byState[sock.FinWait2] {
				if g.s.Peer.Port() != 9000 || g.s.Local.Port() == 9000 {
					t.Errorf("FIN_WAIT2 socket %+v: want a client towards :9000", g.s)
				}
				if cw := byState[sock.CloseWait]; len(cw) == 1 && cw[0].s.Peer != g.s.Local {
					t.Errorf("CLOSE_WAIT peer %v is not the FIN_WAIT2 client %v", cw[0].s.Peer, g.s.Local)
				}
			}
			for _, g := range got {
				if g.s.State != sock.TimeWait && (!g.hadInfo || len(g.info) < 104) {
					t.Errorf("%v socket has %d bytes of tcp_info, want a full struct", g.s.State, len(g.info))
				}
			}

			// And exactly what this capture holds.
			for i := range min(len(got), len(seed.want)) {
				if got[i].s != seed.want[i] {
					t.Errorf("socket %d:\n got %+v\nwant %+v", i, got[i].s, seed.want[i])
				}
			}
			seen := map[uint64]bool{}
			for _, g := range got {
				if seen[g.s.Cookie] {
					t.Errorf("cookie %d seen twice", g.s.Cookie)
				}
				seen[g.s.Cookie] = true
			}

			// Cut into recv batches at every message boundary, the reply
			// decodes the same, and only its last batch is done.
			parts := wtSplitMessages(t, raw)
			var again []wtGot
			for i, p := range parts {
				g, res, err := wtParse(p, seed.seq)
				if err != nil {
					t.Fatalf("batch %d: %v", i, err)
				}
				if want := map[bool]batchResult{true: batchDone, false: batchMore}[i == len(parts)-1]; res != want {
					t.Errorf("batch %d of %d: %v, want %v", i, len(parts), wtRes(res), wtRes(want))
				}
				again = append(again, g...)
			}
			if len(again) != len(got) {
				t.Fatalf("message by message: %d sockets, want %d", len(again), len(got))
			}
			for i := range got {
				if again[i].s != got[i].s || !bytes.Equal(again[i].info, got[i].info) {
					t.Errorf("message by message, socket %d differs: %+v", i, again[i].s)
				}
			}

			// Another request's sequence number sees nothing.
			if g, res, err := wtParse(raw, seed.seq+100); len(g) != 0 || res != batchMore || err != nil {
				t.Errorf("wrong sequence: %d sockets, %v, %v; want 0, batchMore, nil", len(g), wtRes(res), err)
			}
		})
	}
}

func TestGoldenSeedTCPInfo(t *testing.T) {
	got, _, err := wtParse(wtReadSeed(t, "seed-inet.bin"), 5)
	if err != nil {
		t.Fatal(err)
	}
	infos := map[sock.State]sock.TCPInfo{}
	for _, g := range got {
		if g.hadInfo {
			var ti sock.TCPInfo
			parseTCPInfo(g.info, &ti)
			infos[g.s.State] = ti
		}
	}
	fw, ok := infos[sock.FinWait2]
	if !ok {
		t.Fatal("no tcp_info for the FIN_WAIT2 socket")
	}
	wantFW := sock.TCPInfo{
		RTT: 646 * time.Microsecond, RTTVar: 1284 * time.Microsecond, MinRTT: 6 * time.Microsecond,
		RTO: 204 * time.Millisecond, SndMSS: 32768, RcvMSS: 536, SndCwnd: 11, SndSsth: 0x7fffffff,
		PMTU: 65535, LastDataSent: 304 * time.Millisecond, LastDataRecv: 304 * time.Millisecond,
		LastAckRecv: 296 * time.Millisecond, BytesAcked: 2, DeliveryRate: 6383791,
		SegsOut: 3, SegsIn: 2, Options: 7, SndWScale: 10, RcvWSc: 10,
	}
	if fw != wantFW {
		t.Errorf("FIN_WAIT2 tcp_info:\n got %+v\nwant %+v", fw, wantFW)
	}
	cw := infos[sock.CloseWait]
	if cw.BytesReceived != 1 || cw.RTT != 7*time.Microsecond || cw.SndCwnd != 10 || cw.ATO != 40*time.Millisecond {
		t.Errorf("CLOSE_WAIT tcp_info %+v: want 1 byte received, rtt 7µs, cwnd 10, ato 40ms", cw)
	}
}
