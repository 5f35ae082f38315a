package filter

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/sockscope/sockscope/pkg/sock"
)

// Expr is a node of a parsed filter. Expressions are immutable.
type Expr interface {
	// Match reports whether s satisfies the expression.
	Match(s *sock.Socket) bool
	// String renders the expression in the filter language.
	String() string
}

// Const is a filter that matches everything (true) or nothing (false).
type Const bool

// StateIn matches sockets whose state is in Mask.
type StateIn struct{ Mask sock.StateMask }

// FamilyIs matches sockets of one address family (the -4 and -6 flags).
type FamilyIs struct{ Family sock.Family }

// CmpOp is a port comparison.
type CmpOp uint8

// The comparisons the kernel has (eq, le, ge) and their negations.
const (
	OpEq CmpOp = iota
	OpNe
	OpLt
	OpLe
	OpGt
	OpGe
)

var opNames = [...]string{OpEq: "=", OpNe: "!=", OpLt: "<", OpLe: "<=", OpGt: ">", OpGe: ">="}

// PortCmp compares the source (local) or destination (peer) port.
type PortCmp struct {
	Dst  bool
	Op   CmpOp
	Port uint16
}

// HostCond matches the local (src) or peer (dst) address against a prefix
// and optionally a port, with the kernel's semantics: an IPv4 prefix also
// matches an IPv4-mapped address on an IPv6 socket.
type HostCond struct {
	Dst    bool
	Prefix netip.Prefix // invalid: any address
	Port   int          // -1: any port
}

// DevIs matches sockets bound to one network interface (ss's dev): the
// kernel's idiag_if, 0 for a socket bound to none.
type DevIs struct{ IfIndex uint32 }

// And, Or and Not combine expressions.
type (
	And struct{ L, R Expr }
	Or  struct{ L, R Expr }
	Not struct{ X Expr }
)

// HasDev reports whether e tests the bound interface anywhere (dev).
func HasDev(e Expr) bool {
	switch x := e.(type) {
	case DevIs:
		return true
	case And:
		return HasDev(x.L) || HasDev(x.R)
	case Or:
		return HasDev(x.L) || HasDev(x.R)
	case Not:
		return HasDev(x.X)
	}
	return false
}

func (c Const) Match(*sock.Socket) bool      { return bool(c) }
func (c StateIn) Match(s *sock.Socket) bool  { return c.Mask.Has(s.State) }
func (c FamilyIs) Match(s *sock.Socket) bool { return s.Family == c.Family }
func (c DevIs) Match(s *sock.Socket) bool    { return s.IfIndex == c.IfIndex }
func (e And) Match(s *sock.Socket) bool      { return e.L.Match(s) && e.R.Match(s) }
func (e Or) Match(s *sock.Socket) bool       { return e.L.Match(s) || e.R.Match(s) }
func (e Not) Match(s *sock.Socket) bool      { return !e.X.Match(s) }

func (c PortCmp) Match(s *sock.Socket) bool {
	p := s.Local.Port()
	if c.Dst {
		p = s.Peer.Port()
	}
	switch c.Op {
	case OpEq:
		return p == c.Port
	case OpNe:
		return p != c.Port
	case OpLt:
		return p < c.Port
	case OpLe:
		return p <= c.Port
	case OpGt:
		return p > c.Port
	default:
		return p >= c.Port
	}
}

func (c HostCond) Match(s *sock.Socket) bool {
	ap := s.Local
	if c.Dst {
		ap = s.Peer
	}
	if c.Port >= 0 && int(ap.Port()) != c.Port {
		return false
	}
	if !c.Prefix.IsValid() {
		return true
	}
	a := ap.Addr()
	if c.Prefix.Addr().Is4() && s.Family == sock.IPv6 {
		// inet_diag_bc_run: an IPv4 condition matches a v4-mapped address.
		if !a.Is4In6() {
			return false
		}
		a = a.Unmap()
	} else if c.Prefix.Addr().Is4() != (s.Family == sock.IPv4) {
		return false
	}
	return c.Prefix.Contains(a)
}

func (c Const) String() string {
	if c {
		return "all"
	}
	return "none"
}

func (c StateIn) String() string {
	if c.Mask&sock.AllStates == sock.AllStates&^sock.MaskOf(sock.NewSynRecv) || c.Mask == sock.AllStates {
		return "state all"
	}
	var parts []string
	for _, st := range sock.States {
		if c.Mask.Has(st) {
			parts = append(parts, "state "+st.SSName())
		}
	}
	if len(parts) == 0 {
		return "exclude all" // parses back to the empty set
	}
	return strings.Join(parts, " ")
}

func (c FamilyIs) String() string { return "family " + c.Family.String() }

// String writes the index, not a name: the name belongs to one namespace
// and may be gone by the time the rendering is read back.
func (c DevIs) String() string { return fmt.Sprintf("dev %d", c.IfIndex) }

func (c PortCmp) String() string {
	return fmt.Sprintf("%s %s :%d", side(c.Dst, "sport", "dport"), opNames[c.Op], c.Port)
}

func (c HostCond) String() string {
	h := "*"
	if c.Prefix.IsValid() {
		h = c.Prefix.String()
		if c.Prefix.IsSingleIP() {
			h = c.Prefix.Addr().String()
		}
		if c.Prefix.Addr().Is6() && c.Port >= 0 {
			h = "[" + h + "]"
		}
	}
	if c.Port >= 0 {
		h += fmt.Sprintf(":%d", c.Port)
	}
	return side(c.Dst, "src", "dst") + " " + h
}

func (e And) String() string { return render(e) }
func (e Or) String() string  { return render(e) }
func (e Not) String() string { return render(e) }

// render writes a compound expression into one buffer: filters of
// thousands of terms render in linear time.
func render(e Expr) string {
	var b strings.Builder
	write(&b, e, false)
	return b.String()
}

// write renders e, parenthesising compound operands so the rendering
// parses back to the same tree.
func write(b *strings.Builder, e Expr, operand bool) {
	switch x := e.(type) {
	case And:
		if operand {
			b.WriteByte('(')
		}
		write(b, x.L, !isAnd(x.L))
		b.WriteString(" and ")
		write(b, x.R, true)
		if operand {
			b.WriteByte(')')
		}
	case Or:
		if operand {
			b.WriteByte('(')
		}
		write(b, x.L, !isOr(x.L))
		b.WriteString(" or ")
		write(b, x.R, !isOr(x.R))
		if operand {
			b.WriteByte(')')
		}
	case Not:
		b.WriteString("not ")
		write(b, x.X, true)
	case StateIn:
		if operand {
			b.WriteString("(" + x.String() + ")")
		} else {
			b.WriteString(x.String())
		}
	default:
		b.WriteString(e.String())
	}
}

func isAnd(e Expr) bool { _, ok := e.(And); return ok }
func isOr(e Expr) bool  { _, ok := e.(Or); return ok }

func side(dst bool, src, d string) string {
	if dst {
		return d
	}
	return src
}

// all of these are expressions
var (
	_ Expr = Const(true)
	_ Expr = StateIn{}
	_ Expr = FamilyIs{}
	_ Expr = PortCmp{}
	_ Expr = HostCond{}
	_ Expr = DevIs{}
	_ Expr = And{}
	_ Expr = Or{}
	_ Expr = Not{}
)

// AndOf joins expressions with "and", skipping nil ones; nil when all are.
func AndOf(es ...Expr) Expr { return fold(es, func(l, r Expr) Expr { return And{l, r} }) }

// OrOf joins expressions with "or", skipping nil ones; nil when all are.
func OrOf(es ...Expr) Expr { return fold(es, func(l, r Expr) Expr { return Or{l, r} }) }

func fold(es []Expr, join func(l, r Expr) Expr) Expr {
	var out Expr
	for _, e := range es {
		switch {
		case e == nil:
		case out == nil:
			out = e
		default:
			out = join(out, e)
		}
	}
	return out
}

// EitherPort matches sockets whose local or peer port is p: the bare ":p"
// form and --port.
func EitherPort(p uint16) Expr {
	return Or{PortCmp{Op: OpEq, Port: p}, PortCmp{Dst: true, Op: OpEq, Port: p}}
}
