package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/sockscope/sockscope/pkg/sock"
)

// Constants from include/uapi/linux/netlink.h, sock_diag.h and inet_diag.h.
const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	tcpDiagGetSock   = 18 // TCPDIAG_GETSOCK: the first inet_diag request
	nlmsgError       = 2  // NLMSG_ERROR
	nlmsgDone        = 3  // NLMSG_DONE
	nlmFRequest      = 0x1
	nlmFDump         = 0x300 // NLM_F_ROOT|NLM_F_MATCH

	inetDiagReqBytecode = 1 // INET_DIAG_REQ_BYTECODE
	inetDiagInfo        = 2 // INET_DIAG_INFO

	ipprotoTCP = 6

	sizeofNlmsghdr  = 16
	sizeofReqV2     = 56 // struct inet_diag_req_v2
	sizeofReqV1     = 60 // struct inet_diag_req
	sizeofDiagMsg   = 72 // struct inet_diag_msg
	sizeofRtattr    = 4
	sizeofNlmsgerr  = 4 // the errno part of struct nlmsgerr that we read
	maxBytecodeSize = 0xffff - sizeofRtattr
)

// Ext is a set of inet_diag extensions (idiag_ext): bit N-1 asks for
// attribute N.
type Ext uint8

// ExtInfo asks for struct tcp_info (INET_DIAG_INFO). It is the costly one:
// ask only when it is shown.
const ExtInfo Ext = 1 << (inetDiagInfo - 1)

// Request is what one dump asks the kernel for.
type Request struct {
	Families []sock.Family // nil means IPv4 and IPv6
	States   sock.StateMask
	Ext      Ext
	Bytecode []byte // an inet_diag bytecode program; nil accepts every socket
}

var native = binary.NativeEndian

// bothFamilies, as the family of a dump, asks for IPv4 and IPv6 in one
// walk of the kernel's tables (see appendRequest).
const bothFamilies sock.Family = 0

// appendRequest encodes a netlink dump request for one family into dst.
//
// For bothFamilies it encodes the first inet_diag request
// (TCPDIAG_GETSOCK, struct inet_diag_req), which the kernel still serves
// and which dumps every family in a single walk of the socket tables:
// where a SOCK_DIAG_BY_FAMILY request names one family, dumping both
// walks every socket twice, and at 100k sockets a walk that matches
// nothing costs as much as the process's whole start. It carries the same
// state mask, extensions and bytecode.
func appendRequest(dst []byte, seq uint32, fam sock.Family, r *Request) ([]byte, error) {
	if len(r.Bytecode) > maxBytecodeSize {
		return dst, fmt.Errorf("bytecode of %d bytes exceeds the netlink attribute limit", len(r.Bytecode))
	}
	states := r.States
	if states.Has(sock.SynRecv) {
		// Request sockets live in their own state since 4.4; ss asks for both.
		states |= sock.MaskOf(sock.NewSynRecv)
	}
	typ, size := uint16(sockDiagByFamily), sizeofReqV2
	if fam == bothFamilies {
		typ, size = tcpDiagGetSock, sizeofReqV1
	}
	total := sizeofNlmsghdr + size
	if r.Bytecode != nil {
		total += sizeofRtattr + align4(len(r.Bytecode))
	}
	start := len(dst)
	dst = append(dst, make([]byte, total)...)
	b := dst[start:]
	native.PutUint32(b[0:], uint32(total))
	native.PutUint16(b[4:], typ)
	native.PutUint16(b[6:], nlmFRequest|nlmFDump)
	native.PutUint32(b[8:], seq)
	req := b[sizeofNlmsghdr:]
	if fam == bothFamilies {
		// family (ignored), address lengths, extensions, the socket id
		// (zero: no port or address), states, tables (unused).
		req[3] = uint8(r.Ext)
		native.PutUint32(req[52:], uint32(states))
	} else {
		req[0] = uint8(fam)
		req[1] = ipprotoTCP
		req[2] = uint8(r.Ext)
		native.PutUint32(req[4:], uint32(states))
	}
	if r.Bytecode != nil {
		a := req[size:]
		native.PutUint16(a[0:], uint16(sizeofRtattr+len(r.Bytecode)))
		native.PutUint16(a[2:], inetDiagReqBytecode)
		copy(a[sizeofRtattr:], r.Bytecode)
	}
	return dst, nil
}

// appendLookup encodes a request for one socket by its addresses, ports and
// cookie (no NLM_F_DUMP): the kernel answers with that socket or an error.
func appendLookup(dst []byte, seq uint32, s *sock.Socket) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, sizeofNlmsghdr+sizeofReqV2)...)
	b := dst[start:]
	native.PutUint32(b[0:], sizeofNlmsghdr+sizeofReqV2)
	native.PutUint16(b[4:], sockDiagByFamily)
	native.PutUint16(b[6:], nlmFRequest)
	native.PutUint32(b[8:], seq)
	req := b[sizeofNlmsghdr:]
	req[0] = uint8(s.Family)
	req[1] = ipprotoTCP
	native.PutUint32(req[4:], uint32(sock.AllStates))
	id := req[8:]
	binary.BigEndian.PutUint16(id[0:], s.Local.Port())
	binary.BigEndian.PutUint16(id[2:], s.Peer.Port())
	if s.Family == sock.IPv4 {
		a, p := s.Local.Addr().As4(), s.Peer.Addr().As4()
		copy(id[4:], a[:])
		copy(id[20:], p[:])
	} else {
		a, p := s.Local.Addr().As16(), s.Peer.Addr().As16()
		copy(id[4:], a[:])
		copy(id[20:], p[:])
	}
	native.PutUint32(id[36:], s.IfIndex)
	native.PutUint32(id[40:], uint32(s.Cookie))
	native.PutUint32(id[44:], uint32(s.Cookie>>32))
	return dst
}

func align4(n int) int { return (n + 3) &^ 3 }

// ErrTruncated means a netlink message was cut short: the kernel and this
// parser disagree on a length.
var ErrTruncated = errors.New("truncated netlink message")

// batchResult tells the receive loop how a batch of messages ended.
type batchResult int

const (
	batchMore batchResult = iota // the dump goes on
	batchDone                    // NLMSG_DONE seen
)

// parseBatch walks the netlink messages in b (one recv's worth), calling
// emit for every inet_diag_msg of sequence seq. info is the raw tcp_info
// attribute, nil when absent; it aliases b.
func parseBatch(b []byte, seq uint32, emit func(s *sock.Socket, info []byte)) (batchResult, error) {
	var s sock.Socket
	return parseBatchInto(b, seq, func() *sock.Socket { return &s }, true,
		func(s *sock.Socket, info []byte) bool { emit(s, info); return true })
}

// parseBatchInto is parseBatch decoding each socket where slot says, so
// that a collector decodes straight into its snapshot. Without
// attrs it does not read the attributes (info is always nil): tcp_info is
// the only one sockscope uses, and a dump that did not ask for it has half
// a dozen others per socket the walk would step through for nothing.
func parseBatchInto(b []byte, seq uint32, slot func() *sock.Socket, attrs bool, emit func(s *sock.Socket, info []byte) bool) (batchResult, error) {
	for len(b) >= sizeofNlmsghdr {
		l := int(native.Uint32(b[0:]))
		typ := native.Uint16(b[4:])
		mseq := native.Uint32(b[8:])
		if l < sizeofNlmsghdr || l > len(b) {
			return batchMore, fmt.Errorf("message length %d of %d bytes left: %w", l, len(b), ErrTruncated)
		}
		msg := b[sizeofNlmsghdr:l]
		next := align4(l)
		if next > len(b) {
			next = len(b)
		}
		b = b[next:]
		if mseq != seq {
			continue // a reply to an earlier, abandoned request
		}
		switch typ {
		case nlmsgDone:
			// inet_diag puts the dump's error, if any, in the DONE payload.
			if len(msg) >= 4 {
				if e := int32(native.Uint32(msg)); e < 0 {
					return batchDone, errnoErr(-e)
				}
			}
			return batchDone, nil
		case nlmsgError:
			if len(msg) < sizeofNlmsgerr {
				return batchMore, fmt.Errorf("error message: %w", ErrTruncated)
			}
			if e := int32(native.Uint32(msg)); e < 0 {
				return batchDone, errnoErr(-e)
			}
			continue // an ACK
		case sockDiagByFamily, tcpDiagGetSock: // answers carry the request's type
			var info []byte
			var err error
			s := slot()
			if attrs {
				info, err = parseDiagMsg(msg, s)
			} else {
				err = parseDiagHead(msg, s)
			}
			if err != nil {
				return batchMore, err
			}
			emit(s, info)
		}
	}
	if len(b) != 0 {
		return batchMore, fmt.Errorf("%d stray bytes after the last message: %w", len(b), ErrTruncated)
	}
	return batchMore, nil
}

// parseAnswers reads the kernel's answers to n lookups sent with sequence
// numbers base, base+1, ...: each is a socket or an error, and answer is
// called with the lookup's index and the one or the other (s is decoded
// into scratch, valid during the call). Messages of other requests (what a
// failed dump left queued) are skipped.
func parseAnswers(b []byte, base uint32, n int, scratch *sock.Socket, answer func(i int, s *sock.Socket, err error)) error {
	for len(b) >= sizeofNlmsghdr {
		l := int(native.Uint32(b[0:]))
		typ := native.Uint16(b[4:])
		i := native.Uint32(b[8:]) - base // wraps with the sequence numbers
		if l < sizeofNlmsghdr || l > len(b) {
			return fmt.Errorf("message length %d of %d bytes left: %w", l, len(b), ErrTruncated)
		}
		msg := b[sizeofNlmsghdr:l]
		b = b[min(align4(l), len(b)):]
		if i >= uint32(n) {
			continue
		}
		switch typ {
		case nlmsgError:
			if len(msg) < sizeofNlmsgerr {
				return fmt.Errorf("error message: %w", ErrTruncated)
			}
			if e := int32(native.Uint32(msg)); e < 0 {
				answer(int(i), nil, errnoErr(-e))
			}
		case sockDiagByFamily:
			if err := parseDiagHead(msg, scratch); err != nil {
				return err
			}
			answer(int(i), scratch, nil)
		}
	}
	if len(b) != 0 {
		return fmt.Errorf("%d stray bytes after the last message: %w", len(b), ErrTruncated)
	}
	return nil
}

// parseDiagMsg decodes struct inet_diag_msg and its attributes into s.
func parseDiagMsg(m []byte, s *sock.Socket) (info []byte, err error) {
	if err := parseDiagHead(m, s); err != nil {
		return nil, err
	}
	for a := m[sizeofDiagMsg:]; len(a) >= sizeofRtattr; {
		al := int(native.Uint16(a[0:]))
		at := native.Uint16(a[2:]) & 0x3fff // drop NLA_F_NESTED and NLA_F_NET_BYTEORDER
		if al < sizeofRtattr || al > len(a) {
			return nil, fmt.Errorf("attribute %d of length %d with %d bytes left: %w", at, al, len(a), ErrTruncated)
		}
		if at == inetDiagInfo {
			info = a[sizeofRtattr:al]
		}
		a = a[min(align4(al), len(a)):]
	}
	return info, nil
}

// parseDiagHead decodes struct inet_diag_msg, without its attributes.
func parseDiagHead(m []byte, s *sock.Socket) error {
	if len(m) < sizeofDiagMsg {
		return fmt.Errorf("inet_diag_msg of %d bytes: %w", len(m), ErrTruncated)
	}
	fam := sock.Family(m[0])
	// Field by field, every field: a composite literal is built on the
	// stack in narrow stores and copied out in wide loads, which the CPU
	// cannot forward from those stores, and that stall was a third of
	// the collector's own time (perf annotate).
	s.Family = fam
	s.State = sock.State(m[1])
	s.Timer = sock.Timer(m[2])
	s.Retrans = m[3]
	s.IfIndex = native.Uint32(m[40:])
	s.Cookie = uint64(native.Uint32(m[48:]))<<32 | uint64(native.Uint32(m[44:]))
	s.Expires = native.Uint32(m[52:])
	s.RecvQ = native.Uint32(m[56:])
	s.SendQ = native.Uint32(m[60:])
	s.UID = native.Uint32(m[64:])
	s.Inode = native.Uint32(m[68:])
	s.Info = -1
	s.Netns = 0
	sport := binary.BigEndian.Uint16(m[4:])
	dport := binary.BigEndian.Uint16(m[6:])
	switch fam {
	case sock.IPv4:
		s.Local = sock.Endpoint4([4]byte(m[8:12]), sport)
		s.Peer = sock.Endpoint4([4]byte(m[24:28]), dport)
	case sock.IPv6:
		s.Local = sock.Endpoint16([16]byte(m[8:24]), sport)
		s.Peer = sock.Endpoint16([16]byte(m[24:40]), dport)
	default:
		return fmt.Errorf("inet_diag_msg with address family %d", fam)
	}
	return nil
}

// parseTCPInfo decodes the fields of struct tcp_info (include/uapi/linux/tcp.h)
// that b holds; older kernels send a shorter struct.
func parseTCPInfo(b []byte, t *sock.TCPInfo) {
	u8 := func(off int) uint8 {
		if off < len(b) {
			return b[off]
		}
		return 0
	}
	u32 := func(off int) uint32 {
		if off+4 <= len(b) {
			return native.Uint32(b[off:])
		}
		return 0
	}
	u64 := func(off int) uint64 {
		if off+8 <= len(b) {
			return native.Uint64(b[off:])
		}
		return 0
	}
	us := func(off int) time.Duration { return time.Duration(u32(off)) * time.Microsecond }
	ms := func(off int) time.Duration { return time.Duration(u32(off)) * time.Millisecond }
	*t = sock.TCPInfo{
		CAState: u8(1), Options: u8(5),
		SndWScale: u8(6) & 0xf, RcvWSc: u8(6) >> 4,
		RTO: us(8), ATO: us(12), SndMSS: u32(16), RcvMSS: u32(20),
		Unacked: u32(24), Lost: u32(32), Retrans: u32(36),
		LastDataSent: ms(44), LastDataRecv: ms(52), LastAckRecv: ms(56),
		PMTU: u32(60), RTT: us(68), RTTVar: us(72), SndSsth: u32(76), SndCwnd: u32(80),
		TotalRetrans: u32(100), BytesAcked: u64(120), BytesReceived: u64(128),
		SegsOut: u32(136), SegsIn: u32(140), MinRTT: us(148), DeliveryRate: u64(160),
		BytesSent: u64(200), BytesRetrans: u64(208),
	}
}
