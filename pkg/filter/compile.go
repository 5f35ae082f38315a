package filter

import (
	"encoding/binary"

	"github.com/sockscope/sockscope/pkg/sock"
)

// Program is a compiled filter: what to ask the kernel for, and whether
// the answer still needs checking in user space.
type Program struct {
	Expr     Expr // the whole filter; nil matches everything
	Families []sock.Family
	States   sock.StateMask
	Bytecode []byte // nil when the kernel need not filter by address or port
	// Residual is set when the kernel's answer is a superset and Match must
	// run on every socket it returns.
	Residual bool
}

// Match reports whether s passes the whole filter.
func (p *Program) Match(s *sock.Socket) bool {
	return p.Expr == nil || p.Expr.Match(s)
}

// StatesOnly says whether the filter selects by state alone: no address,
// port, family or other test. A count of the sockets in those states
// (such as one walk of the kernel's tables, which reads no address) is
// then what a dump with the filter would count.
func (p *Program) StatesOnly() bool {
	return p.Bytecode == nil && !p.Residual && len(p.Families) == 2
}

// String renders the filter as the language would write it.
func (p *Program) String() string {
	if p.Expr == nil {
		return "all"
	}
	return p.Expr.String()
}

// Options changes how a filter compiles.
type Options struct {
	// UserSpace leaves all filtering to Match: the kernel dumps everything.
	// It is the reference the kernel path is tested against.
	UserSpace bool
}

var families = [...]sock.Family{sock.IPv4, sock.IPv6}

// Compile turns e into a Program. The state mask and the families keep
// only what e can match; the bytecode holds the address and port tests when
// they do not depend on the state or family, which is the usual case.
func Compile(e Expr, opt Options) *Program {
	p := &Program{Expr: e, Families: families[:], States: sock.AllStates}
	if opt.UserSpace {
		p.Residual = e != nil
		return p
	}
	if e == nil {
		return p
	}
	// Evaluate the state and family tests for each (family, state) pair;
	// what is left must hold in the kernel.
	p.Families, p.States = nil, 0
	var residuals []Expr
	exact := true
	for _, f := range families {
		keep := false
		for st := sock.Established; st <= sock.NewSynRecv; st++ {
			r := simplify(bind(e, f, st))
			if r == Const(false) {
				continue
			}
			keep = true
			p.States |= sock.MaskOf(st)
			if !containsExpr(residuals, r) {
				residuals = append(residuals, r)
				exact = exact && len(residuals) == 1
			}
		}
		if keep {
			p.Families = append(p.Families, f)
		}
	}
	// NewSynRecv stands for SynRecv in records; ask for both or neither.
	if p.States.Has(sock.NewSynRecv) || p.States.Has(sock.SynRecv) {
		p.States |= sock.MaskOf(sock.SynRecv, sock.NewSynRecv)
	}
	// With differing residuals the kernel filters by their union, a
	// superset, and Match decides.
	kernel := simplify(OrOf(residuals...))
	p.Residual = !exact
	if kernel != nil && kernel != Const(true) && kernel != Const(false) {
		p.Bytecode = assemble(kernel)
		if p.Bytecode == nil {
			p.Residual = true // too long for the kernel: filter here
		}
	}
	return p
}

func containsExpr(list []Expr, e Expr) bool {
	for _, x := range list {
		if x.String() == e.String() {
			return true
		}
	}
	return false
}

// bind replaces the state and family tests by their value for (f, st).
func bind(e Expr, f sock.Family, st sock.State) Expr {
	switch x := e.(type) {
	case StateIn:
		return Const(x.Mask.Has(st))
	case FamilyIs:
		return Const(x.Family == f)
	case And:
		return And{bind(x.L, f, st), bind(x.R, f, st)}
	case Or:
		return Or{bind(x.L, f, st), bind(x.R, f, st)}
	case Not:
		return Not{bind(x.X, f, st)}
	}
	return e
}

// simplify folds constants away: the result is a Const or has none inside.
func simplify(e Expr) Expr {
	switch x := e.(type) {
	case And:
		l, r := simplify(x.L), simplify(x.R)
		switch {
		case l == Const(false) || r == Const(false):
			return Const(false)
		case l == Const(true):
			return r
		case r == Const(true):
			return l
		}
		return And{l, r}
	case Or:
		l, r := simplify(x.L), simplify(x.R)
		switch {
		case l == Const(true) || r == Const(true):
			return Const(true)
		case l == Const(false):
			return r
		case r == Const(false):
			return l
		}
		return Or{l, r}
	case Not:
		switch y := simplify(x.X).(type) {
		case Const:
			return !y
		case Not:
			return y.X
		default:
			return Not{y}
		}
	}
	return e
}

// Bytecode op codes, from include/uapi/linux/inet_diag.h.
const (
	bcJmp   = 1
	bcSGe   = 2
	bcSLe   = 3
	bcDGe   = 4
	bcDLe   = 5
	bcSCond = 7
	bcDCond = 8
	bcDev   = 9 // INET_DIAG_BC_DEV_COND: the bound interface, no capability needed
	bcSEq   = 11
	bcDEq   = 12
)

// An insn is one bytecode op. Every op continues with the next one when its
// test holds ("yes" falls through), because the kernel's audit walks the
// program along the yes branches; "no" jumps forward to a label.
type insn struct {
	code    uint8
	no      int    // label
	payload []byte // bytes after the 4-byte op header
}

const rejectLabel = -1

// maxBytecode keeps jump offsets within the op's 16-bit "no" field and the
// program within one netlink attribute.
const maxBytecode = 0xffff - 8

type assembler struct {
	ins    []insn
	labels []int // label -> index of the insn it precedes
}

func (a *assembler) label() int {
	a.labels = append(a.labels, -1)
	return len(a.labels) - 1
}

func (a *assembler) place(l int) { a.labels[l] = len(a.ins) }

// cond emits e so that control falls through when e holds and jumps to
// onFalse when it does not. e holds no constants (see simplify).
func (a *assembler) cond(e Expr, onFalse int) {
	switch x := e.(type) {
	case And:
		a.cond(x.L, onFalse)
		a.cond(x.R, onFalse)
	case Or:
		right, done := a.label(), a.label()
		a.cond(x.L, right)
		a.ins = append(a.ins, insn{code: bcJmp, no: done})
		a.place(right)
		a.cond(x.R, onFalse)
		a.place(done)
	case Not:
		holds := a.label()
		a.cond(x.X, holds)
		a.ins = append(a.ins, insn{code: bcJmp, no: onFalse})
		a.place(holds)
	case PortCmp:
		a.port(x, onFalse)
	case HostCond:
		a.ins = append(a.ins, insn{code: pick(x.Dst, bcSCond, bcDCond), no: onFalse, payload: hostcond(x)})
	case DevIs:
		// ss leaves dev to user space (it has no bytecode for it); the
		// kernel compares the same field it reports as idiag_if.
		a.ins = append(a.ins, insn{code: bcDev, no: onFalse, payload: binary.NativeEndian.AppendUint32(nil, x.IfIndex)})
	default:
		panic("filter: cannot compile " + e.String())
	}
}

// port emits a port comparison. The kernel has =, <= and >=; the others
// are their negations.
func (a *assembler) port(c PortCmp, onFalse int) {
	op := func(eq, le, ge uint8) uint8 {
		switch c.Op {
		case OpEq, OpNe:
			return eq
		case OpLe, OpGt:
			return le
		default:
			return ge
		}
	}
	code := op(pick(c.Dst, bcSEq, bcDEq), pick(c.Dst, bcSLe, bcDLe), pick(c.Dst, bcSGe, bcDGe))
	// The port travels in the "no" field of a second op.
	arg := make([]byte, 4)
	binary.NativeEndian.PutUint16(arg[2:], c.Port)
	if c.Op == OpEq || c.Op == OpLe || c.Op == OpGe {
		a.ins = append(a.ins, insn{code: code, no: onFalse, payload: arg})
		return
	}
	holds := a.label()
	a.ins = append(a.ins, insn{code: code, no: holds, payload: arg})
	a.ins = append(a.ins, insn{code: bcJmp, no: onFalse})
	a.place(holds)
}

func pick(dst bool, s, d uint8) uint8 {
	if dst {
		return d
	}
	return s
}

// hostcond encodes struct inet_diag_hostcond and the address that follows.
func hostcond(c HostCond) []byte {
	var fam uint8 // AF_UNSPEC
	var addr []byte
	bits := 0
	if c.Prefix.IsValid() {
		if c.Prefix.Addr().Is4() {
			fam, addr = uint8(sock.IPv4), c.Prefix.Addr().AsSlice()
		} else {
			fam, addr = uint8(sock.IPv6), c.Prefix.Addr().AsSlice()
		}
		bits = c.Prefix.Bits()
	}
	b := make([]byte, 8+len(addr))
	b[0] = fam
	b[1] = uint8(bits)
	binary.NativeEndian.PutUint32(b[4:], uint32(int32(c.Port)))
	copy(b[8:], addr)
	return b
}

// assemble compiles e into an inet_diag bytecode program that ends at the
// accept position (the program's end) when e holds and jumps 4 bytes past
// it (reject) when it does not.
func assemble(e Expr) []byte {
	a := &assembler{}
	a.cond(e, rejectLabel)
	offs := make([]int, len(a.ins)+1)
	for i, in := range a.ins {
		offs[i+1] = offs[i] + 4 + len(in.payload)
	}
	total := offs[len(a.ins)]
	if total+4 > maxBytecode {
		return nil
	}
	out := make([]byte, 0, total)
	for i, in := range a.ins {
		target := total + 4
		if in.no != rejectLabel {
			target = offs[a.labels[in.no]]
		}
		size := 4 + len(in.payload)
		out = append(out, in.code, uint8(size))
		out = binary.NativeEndian.AppendUint16(out, uint16(target-offs[i]))
		out = append(out, in.payload...)
	}
	return out
}
