package filter

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/sockscope/sockscope/pkg/sock"
)

// runBytecode mirrors the kernel's inet_diag_bc_audit and inet_diag_bc_run
// (net/ipv4/inet_diag.c) closely enough to check the compiler between runs
// against the real kernel: audit follows the "yes" chain and accepts only
// jumps to op boundaries on it, to the end, or 4 bytes past it.
func runBytecode(t testing.TB, bc []byte, s *sock.Socket) bool {
	boundaries := map[int]bool{len(bc): true}
	for off := 0; off < len(bc); {
		code, yes, no := bc[off], int(bc[off+1]), int(binary.NativeEndian.Uint16(bc[off+2:]))
		boundaries[off] = true
		minLen := 4
		switch code {
		case bcSCond, bcDCond:
			minLen = 12
			switch bc[off+4] {
			case 0:
			case 2:
				minLen += 4
			case 10:
				minLen += 16
			default:
				t.Fatalf("bad hostcond family %d in %x", bc[off+4], bc)
			}
		case bcSEq, bcDEq, bcSGe, bcSLe, bcDGe, bcDLe, bcDev:
			minLen = 8
		case bcJmp:
		default:
			t.Fatalf("unknown op %d in %x", code, bc)
		}
		left := len(bc) - off
		if yes < minLen || yes > left+4 || yes%4 != 0 || no < minLen || no > left+4 || no%4 != 0 {
			t.Fatalf("op at %d fails the audit (yes %d no %d min %d left %d): %x", off, yes, no, minLen, left, bc)
		}
		off += yes
	}
	for off := 0; off < len(bc); {
		if no := int(binary.NativeEndian.Uint16(bc[off+2:])); off+no < len(bc) && !boundaries[off+no] {
			t.Fatalf("op at %d jumps into the middle of an op: %x", off, bc)
		}
		off += int(bc[off+1])
	}

	sport, dport := s.Local.Port(), s.Peer.Port()
	off := 0
	for off < len(bc) {
		code := bc[off]
		ok := true
		arg := func() uint16 { return binary.NativeEndian.Uint16(bc[off+6:]) }
		switch code {
		case bcJmp:
			ok = false
		case bcSEq:
			ok = sport == arg()
		case bcDEq:
			ok = dport == arg()
		case bcSGe:
			ok = sport >= arg()
		case bcSLe:
			ok = sport <= arg()
		case bcDGe:
			ok = dport >= arg()
		case bcDLe:
			ok = dport <= arg()
		case bcDev:
			ok = s.IfIndex == binary.NativeEndian.Uint32(bc[off+4:])
		case bcSCond, bcDCond:
			fam, plen := bc[off+4], int(bc[off+5])
			port := int32(binary.NativeEndian.Uint32(bc[off+8:]))
			ap := s.Local
			if code == bcDCond {
				ap = s.Peer
			}
			addr := ap.Addr().AsSlice()
			switch {
			case port != -1 && int(port) != int(ap.Port()):
				ok = false
			case fam != 0 && fam != uint8(s.Family):
				ok = s.Family == sock.IPv6 && fam == 2 && ap.Addr().Is4In6() && bitsMatch(addr[12:], bc[off+12:], plen)
			case plen == 0:
			default:
				ok = bitsMatch(addr, bc[off+12:], plen)
			}
		}
		if ok {
			off += int(bc[off+1])
		} else {
			off += int(binary.NativeEndian.Uint16(bc[off+2:]))
		}
	}
	return off == len(bc)
}

func bitsMatch(a, b []byte, bits int) bool {
	for i := 0; bits > 0; i++ {
		n := min(bits, 8)
		mask := byte(0xff << (8 - n))
		if a[i]&mask != b[i]&mask {
			return false
		}
		bits -= n
	}
	return true
}

// samples is a spread of sockets for checking programs against Match.
var samples = func() []*sock.Socket {
	var out []*sock.Socket
	for _, st := range sock.States {
		out = append(out,
			sk(sock.IPv4, st, "127.0.0.1:9000", "127.0.0.1:40000"),
			sk(sock.IPv4, st, "10.1.2.3:80", "192.168.0.9:1023"),
			sk(sock.IPv4, st, "0.0.0.0:22", "0.0.0.0:0"),
			sk(sock.IPv6, st, "[::1]:9000", "[::1]:50000"),
			sk(sock.IPv6, st, "[::ffff:127.0.0.1]:8080", "[::ffff:10.0.0.1]:9000"),
			sk(sock.IPv6, st, "[2001:db8::1]:443", "[2001:db9::2]:1024"),
			bound(sk(sock.IPv4, st, "127.0.0.1:22", "127.0.0.1:50000"), 1),
			bound(sk(sock.IPv6, st, "[fe80::1]:80", "[fe80::2]:40000"), 2),
		)
	}
	return out
}()

func bound(s *sock.Socket, ifindex uint32) *sock.Socket {
	s.IfIndex = ifindex
	return s
}

// checkProgram asserts that the kernel path (state mask, families,
// bytecode, then Match when Residual) selects exactly what Match selects.
func checkProgram(t testing.TB, e Expr) {
	p := Compile(e, Options{})
	for _, s := range samples {
		want := e == nil || e.Match(s)
		got := p.States.Has(s.State) && hasFamily(p.Families, s.Family)
		if got && p.Bytecode != nil {
			got = runBytecode(t, p.Bytecode, s)
		}
		if got && p.Residual {
			got = p.Match(s)
		} else if !got && want {
			t.Fatalf("%q: the kernel path drops %v %v %v %v, which matches", e, s.Family, s.State, s.Local, s.Peer)
		}
		if got != want {
			t.Fatalf("%q on %v %v %v %v: kernel path %v, Match %v (program %+v)", e, s.Family, s.State, s.Local, s.Peer, got, want, p)
		}
	}
}

func hasFamily(fs []sock.Family, f sock.Family) bool {
	for _, x := range fs {
		if x == f {
			return true
		}
	}
	return false
}

func TestProgramsAgreeWithMatch(t *testing.T) {
	for _, in := range goldenInputs {
		e, err := Parse([]string{in})
		if err != nil {
			t.Fatal(err)
		}
		checkProgram(t, e)
	}
}

func FuzzFilter(f *testing.F) {
	for _, in := range goldenInputs {
		f.Add(in)
	}
	f.Add("((((")
	f.Add("src [::1]:99999")
	f.Add(":* and not :*")
	f.Fuzz(func(t *testing.T, in string) {
		e, err := Parse([]string{in})
		if err != nil {
			if _, ok := err.(*Error); !ok || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Parse(%q): %v is not a one-line *Error", in, err)
			}
			return
		}
		if e == nil {
			return
		}
		again, err := Parse([]string{e.String()})
		if err != nil || again.String() != e.String() {
			t.Fatalf("%q renders as %q which re-parses as %v (%v)", in, e, again, err)
		}
		checkProgram(t, e)
	})
}
