package filter

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/sockscope/sockscope/pkg/sock"
)

// Error is a bad filter: what is wrong, the token at fault and its column
// (1-based) in the filter as written.
type Error struct {
	Msg   string
	Token string // "" at the end of the input
	Col   int
}

func (e *Error) Error() string {
	if e.Token == "" {
		return fmt.Sprintf("%s at the end of the filter (column %d)", e.Msg, e.Col)
	}
	return fmt.Sprintf("%s: %q at column %d", e.Msg, e.Token, e.Col)
}

type token struct {
	text string
	col  int // 1-based
}

const opChars = "=!<>&|"

// lex splits the filter into words, parentheses and operators, so that
// "sport=:9000" and "(sport = :9000)" read the same as the spaced forms.
func lex(s string) []token {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '(' || c == ')':
			toks = append(toks, token{s[i : i+1], i + 1})
			i++
		case strings.IndexByte(opChars, c) >= 0:
			// A run of operator characters is one token, so "=<" is
			// reported as an unknown operator rather than two odd ones.
			j := i + 1
			for j < len(s) && strings.IndexByte(opChars, s[j]) >= 0 {
				j++
			}
			toks = append(toks, token{s[i:j], i + 1})
			i = j
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n()"+opChars, rune(s[j])) {
				j++
			}
			toks = append(toks, token{s[i:j], i + 1})
			i = j
		}
	}
	return toks
}

type parser struct {
	toks []token
	pos  int
	end  int // column just past the input
	opt  ParseOptions
	// fam is the family the last inet: or inet6: prefix chose; ss shows
	// only that family, whatever the rest of the expression says.
	fam sock.Family
}

// ParseOptions changes how a filter is read.
type ParseOptions struct {
	// IfIndex finds a network interface by name for "dev NAME": 0 and no
	// error when there is none, an error (shown as the reason) when the
	// name cannot be used. Nil looks in the caller's network namespace;
	// a caller that shows another namespace passes a lookup there.
	IfIndex func(name string) (uint32, error)
}

// Parse reads a filter written as command-line words, which are joined with
// spaces first. An empty filter yields nil: every socket.
func Parse(args []string) (Expr, error) { return ParseWith(args, ParseOptions{}) }

// ParseWith is Parse with options.
func ParseWith(args []string, opt ParseOptions) (Expr, error) {
	src := strings.Join(args, " ")
	p := &parser{toks: lex(src), end: len(src) + 1, opt: opt}
	if len(p.toks) == 0 {
		return nil, nil
	}
	e, err := p.group()
	if err != nil {
		return nil, err
	}
	if t, ok := p.peek(); ok {
		if t.text == ")" {
			return nil, p.errAt(t, "unbalanced parenthesis")
		}
		return nil, p.errAt(t, "unexpected word")
	}
	if p.fam != 0 {
		e = And{e, FamilyIs{p.fam}}
	}
	return e, nil
}

func (p *parser) peek() (token, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return token{col: p.end}, false
}

func (p *parser) next() (token, bool) {
	t, ok := p.peek()
	if ok {
		p.pos++
	}
	return t, ok
}

func (p *parser) errAt(t token, format string, a ...any) *Error {
	return &Error{Msg: fmt.Sprintf(format, a...), Token: t.text, Col: t.col}
}

func isWord(t token, words ...string) bool {
	for _, w := range words {
		if strings.EqualFold(t.text, w) {
			return true
		}
	}
	return false
}

var (
	andWords   = []string{"and", "&&", "&"}
	orWords    = []string{"or", "||", "|"}
	stateWords = []string{"state", "exclude", "excl"}
)

// group reads the filter or a parenthesised part of it. A state clause at
// its start followed directly by a condition applies to all the rest, as
// ss reads "state established sport = :22 or dport = :22": the states are
// not a term of the expression there. Followed by and/or (which ss
// rejects), the clause is an ordinary term.
func (p *parser) group() (Expr, error) {
	if t, ok := p.peek(); ok && isWord(t, stateWords...) {
		st, err := p.stateClause()
		if err != nil {
			return nil, err
		}
		t, ok := p.peek()
		switch {
		case !ok || t.text == ")":
			return st, nil
		case isWord(t, andWords...) || isWord(t, orWords...):
			return p.chain(st)
		}
		rest, err := p.chain(nil)
		if err != nil {
			return nil, err
		}
		return And{st, rest}, nil
	}
	return p.chain(nil)
}

// chain reads terms joined by and, or, or nothing (and), strictly from
// left to right: ss's grammar (misc/ssfilter.y) gives "and" and "or" the
// same precedence, so "a or b and c" is "(a or b) and c". ss(8) says and
// binds tighter, but sockscope selects what ss does. l, when not nil, is
// the first term, already read.
func (p *parser) chain(l Expr) (Expr, error) {
	if l == nil {
		var err error
		if l, err = p.unary(); err != nil {
			return nil, err
		}
	}
	for {
		t, ok := p.peek()
		if !ok || t.text == ")" {
			return l, nil
		}
		or := isWord(t, orWords...)
		if or || isWord(t, andWords...) {
			p.pos++
		}
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		if or {
			l = Or{l, r}
		} else {
			l = And{l, r}
		}
	}
}

func (p *parser) unary() (Expr, error) {
	t, ok := p.next()
	if !ok {
		return nil, p.errAt(t, "missing a condition")
	}
	switch {
	case isWord(t, "not", "!"):
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return Not{x}, nil
	case t.text == "(":
		e, err := p.group()
		if err != nil {
			return nil, err
		}
		c, ok := p.next()
		if !ok || c.text != ")" {
			return nil, p.errAt(t, "unbalanced parenthesis")
		}
		return e, nil
	case t.text == ")":
		return nil, p.errAt(t, "unbalanced parenthesis")
	case isWord(t, stateWords...):
		p.pos--
		return p.stateClause()
	case isWord(t, "sport", "dport"):
		return p.portCond(t, isWord(t, "dport"))
	case isWord(t, "src", "dst"):
		return p.hostCond(t, isWord(t, "dst"))
	case isWord(t, "dev"):
		return p.devCond(t)
	case isWord(t, "family"):
		return p.familyCond(t)
	case isWord(t, "fwmark", "mark"):
		// The dump carries no mark (INET_DIAG_MARK), and the kernel's
		// MARK_COND alone would leave the user-space check unable to
		// agree with it.
		return nil, p.errAt(t, "cannot filter on the socket mark: sockscope's dump does not carry it (INET_DIAG_MARK)")
	case isWord(t, "cgroup"):
		return nil, p.errAt(t, "cannot filter on the cgroup: sockscope's dump does not carry the socket's cgroup id (INET_DIAG_CGROUP_ID)")
	case isWord(t, "autobound"):
		// ss tests the kernel's bind lock (INET_DIAG_BC_AUTO) and the
		// local port range together; the lock is not in the dump.
		return nil, p.errAt(t, "cannot filter on autobound: sockscope's dump does not say whether a port was bound explicitly")
	case t.text == ":*":
		// Any port, local or peer: every socket, as sport = :* is.
		return HostCond{Port: -1}, nil
	case strings.HasPrefix(t.text, ":"):
		port, err := parsePortName(t, t.text[1:])
		if err != nil {
			return nil, err
		}
		return EitherPort(port), nil
	case isWord(t, andWords...) || isWord(t, orWords...):
		return nil, p.errAt(t, "missing a condition before")
	}
	if strings.ContainsAny(t.text, opChars) {
		return nil, p.errAt(t, "operator without a sport, dport, src, dst or dev before it")
	}
	return nil, p.errAt(t, "unknown word (want state, exclude, sport, dport, src, dst, dev, family or :PORT)")
}

// stateClause reads consecutive state/exclude items into one set, as ss
// does: items add (state) or remove (exclude) states, and a clause that
// begins with exclude starts from every state.
func (p *parser) stateClause() (Expr, error) {
	var mask sock.StateMask
	first := true
	for {
		kw, ok := p.peek()
		if !ok || !isWord(kw, stateWords...) {
			break
		}
		p.pos++
		name, ok := p.next()
		if !ok || name.text == "(" || name.text == ")" {
			return nil, p.errAt(name, "missing a state after %q", kw.text)
		}
		m, ok := StateGroup(name.text)
		if !ok {
			return nil, p.errAt(name, "unknown TCP state")
		}
		if !isWord(kw, "state") {
			if first {
				mask = sock.AllStates
			}
			mask &^= m
		} else {
			mask |= m
		}
		first = false
	}
	return StateIn{mask}, nil
}

// StateGroup returns the states a name stands for: one state by its kernel
// or ss name (ss's scan_state also takes unconnected and syn-rcv), or one
// of ss's groups.
func StateGroup(name string) (sock.StateMask, bool) {
	const (
		all    = sock.AllStates
		bucket = 1<<sock.SynRecv | 1<<sock.NewSynRecv | 1<<sock.TimeWait
		conn   = all &^ (1<<sock.Listen | 1<<sock.Close)
	)
	switch strings.ToLower(name) {
	case "all":
		return all, true
	case "connected":
		return conn, true
	case "synchronized":
		return conn &^ (1 << sock.SynSent), true
	case "bucket":
		return bucket, true
	case "big":
		return all &^ bucket, true
	case "unconnected":
		return sock.MaskOf(sock.Close), true
	case "syn-rcv":
		name = "syn-recv"
	}
	st, ok := sock.ParseState(name)
	if !ok {
		return 0, false
	}
	m := sock.MaskOf(st)
	if st == sock.SynRecv {
		m |= sock.MaskOf(sock.NewSynRecv)
	}
	return m, true
}

func (p *parser) operator(kw token) (CmpOp, bool, error) {
	t, ok := p.peek()
	if !ok {
		return 0, false, p.errAt(t, "missing a value after %q", kw.text)
	}
	ops := map[string]CmpOp{
		"=": OpEq, "==": OpEq, "eq": OpEq, "!=": OpNe, "ne": OpNe, "neq": OpNe,
		"<": OpLt, "lt": OpLt, "<=": OpLe, "le": OpLe, "leq": OpLe,
		">": OpGt, "gt": OpGt, ">=": OpGe, "ge": OpGe, "geq": OpGe,
	}
	op, ok := ops[strings.ToLower(t.text)]
	if !ok {
		if strings.ContainsAny(t.text, opChars) {
			return 0, false, p.errAt(t, "unknown operator")
		}
		return OpEq, false, nil // "sport :80" means equal, as in ss
	}
	p.pos++
	return op, true, nil
}

// portCond reads {sport|dport} [OP] [FAMILY:][:]PORT. PORT may be * (any
// port) with = and !=, as in ss.
func (p *parser) portCond(kw token, dst bool) (Expr, error) {
	op, _, err := p.operator(kw)
	if err != nil {
		return nil, err
	}
	t, ok := p.next()
	if !ok || t.text == "(" || t.text == ")" {
		return nil, p.errAt(t, "missing a port after %q", kw.text)
	}
	s, err := p.family(t)
	if err != nil {
		return nil, err
	}
	if s == "*" || s == ":*" {
		any := HostCond{Dst: dst, Port: -1}
		switch op {
		case OpEq:
			return any, nil
		case OpNe:
			return Not{any}, nil
		}
		return nil, p.errAt(t, "the any port * compares only with = or !=")
	}
	s = strings.TrimPrefix(strings.TrimPrefix(s, "*"), ":")
	port, err := parsePortName(t, s)
	if err != nil {
		return nil, err
	}
	return PortCmp{Dst: dst, Op: op, Port: port}, nil
}

// family strips a [FAMILY:] prefix from a host or port and remembers the
// family: like ss, the whole filter then shows that family only.
func (p *parser) family(t token) (string, error) {
	s, fam, err := cutFamily(t, t.text)
	if err != nil {
		return "", err
	}
	if fam != 0 {
		p.fam = fam
	}
	return s, nil
}

func (p *parser) hostCond(kw token, dst bool) (Expr, error) {
	op, _, err := p.operator(kw)
	if err != nil {
		return nil, err
	}
	if op != OpEq && op != OpNe {
		return nil, p.errAt(p.toks[p.pos-1], "addresses compare only with = or !=")
	}
	t, ok := p.next()
	if !ok || t.text == "(" || t.text == ")" {
		return nil, p.errAt(t, "missing an address after %q", kw.text)
	}
	s, err := p.family(t)
	if err != nil {
		return nil, err
	}
	c, err := parseHost(t, s, p.fam)
	if err != nil {
		return nil, err
	}
	c.Dst = dst
	if op == OpNe {
		return Not{c}, nil
	}
	return c, nil
}

// devCond reads dev [=|!=] DEVICE. DEVICE is an interface index (a
// number), a name, or ifN, as iproute2's ll_name_to_index reads it; a
// number is always an index here, where ss would first look for an
// interface named so.
func (p *parser) devCond(kw token) (Expr, error) {
	op, _, err := p.operator(kw)
	if err != nil {
		return nil, err
	}
	if op != OpEq && op != OpNe {
		return nil, p.errAt(p.toks[p.pos-1], "interfaces compare only with = or !=")
	}
	t, ok := p.next()
	if !ok || t.text == "(" || t.text == ")" {
		return nil, p.errAt(t, "missing an interface after %q", kw.text)
	}
	idx, err := p.ifIndex(t)
	if err != nil {
		return nil, err
	}
	if op == OpNe {
		return Not{DevIs{idx}}, nil
	}
	return DevIs{idx}, nil
}

func (p *parser) ifIndex(t token) (uint32, error) {
	if n, ok := parseCNumber(t.text); ok {
		if n > 1<<32-1 {
			return 0, p.errAt(t, "interface index out of range")
		}
		return uint32(n), nil
	}
	lookup := p.opt.IfIndex
	if lookup == nil {
		lookup = func(name string) (uint32, error) {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				return 0, nil // not found: 0
			}
			return uint32(ifi.Index), nil
		}
	}
	idx, err := lookup(t.text)
	if err == nil && idx != 0 {
		return idx, nil
	}
	if n, ok := strings.CutPrefix(t.text, "if"); ok {
		if v, ok := parseCNumber(n); ok && n[0] >= '0' && n[0] <= '9' && v <= 1<<32-1 {
			return uint32(v), nil
		}
	}
	if err != nil {
		return 0, p.errAt(t, "%v", err)
	}
	return 0, p.errAt(t, "no such network interface")
}

// familyCond reads family inet|inet6: sockscope's word for ss's -4 and -6
// (and how -4 and -6 render).
func (p *parser) familyCond(kw token) (Expr, error) {
	t, ok := p.next()
	if !ok || t.text == "(" || t.text == ")" {
		return nil, p.errAt(t, "missing a family after %q", kw.text)
	}
	switch strings.ToLower(t.text) {
	case "inet":
		return FamilyIs{sock.IPv4}, nil
	case "inet6":
		return FamilyIs{sock.IPv6}, nil
	}
	return nil, p.errAt(t, "unknown family (want inet or inet6; sockscope shows TCP only)")
}

// parsePort reads a decimal port, for --port.
func parsePort(t token, s string) (uint16, error) {
	if s == "" {
		return 0, &Error{Msg: "missing a port number", Token: t.text, Col: t.col}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, &Error{Msg: "not a port number", Token: t.text, Col: t.col}
	}
	if n > 65535 {
		return 0, &Error{Msg: "port out of range 0-65535", Token: t.text, Col: t.col}
	}
	return uint16(n), nil
}
