package filter

import (
	"fmt"
	"net/netip"
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
}

// Parse reads a filter written as command-line words, which are joined with
// spaces first. An empty filter yields nil: every socket.
func Parse(args []string) (Expr, error) {
	src := strings.Join(args, " ")
	p := &parser{toks: lex(src), end: len(src) + 1}
	if len(p.toks) == 0 {
		return nil, nil
	}
	e, err := p.orExpr()
	if err != nil {
		return nil, err
	}
	if t, ok := p.peek(); ok {
		if t.text == ")" {
			return nil, p.errAt(t, "unbalanced parenthesis")
		}
		return nil, p.errAt(t, "unexpected word")
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

func (p *parser) orExpr() (Expr, error) {
	l, err := p.andExpr()
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.peek()
		if !ok || !isWord(t, "or", "||", "|") {
			return l, nil
		}
		p.pos++
		r, err := p.andExpr()
		if err != nil {
			return nil, err
		}
		l = Or{l, r}
	}
}

func (p *parser) andExpr() (Expr, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.peek()
		if !ok || t.text == ")" || isWord(t, "or", "||", "|") {
			return l, nil
		}
		if isWord(t, "and", "&&", "&") {
			p.pos++
		}
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = And{l, r}
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
		e, err := p.orExpr()
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
	case isWord(t, "state", "exclude"):
		p.pos--
		return p.stateClause()
	case isWord(t, "sport", "dport"):
		return p.portCond(t, isWord(t, "dport"))
	case isWord(t, "src", "dst"):
		return p.hostCond(t, isWord(t, "dst"))
	case strings.HasPrefix(t.text, ":"):
		port, err := parsePort(t, t.text[1:])
		if err != nil {
			return nil, err
		}
		return EitherPort(port), nil
	case isWord(t, "and", "&&", "&", "or", "||", "|"):
		return nil, p.errAt(t, "missing a condition before")
	}
	if strings.ContainsAny(t.text, opChars) {
		return nil, p.errAt(t, "operator without a sport, dport, src or dst before it")
	}
	return nil, p.errAt(t, "unknown word (want state, exclude, sport, dport, src, dst or :PORT)")
}

// stateClause reads consecutive state/exclude items into one set, as ss
// does: items add (state) or remove (exclude) states, and a clause that
// begins with exclude starts from every state.
func (p *parser) stateClause() (Expr, error) {
	var mask sock.StateMask
	first := true
	for {
		kw, ok := p.peek()
		if !ok || !isWord(kw, "state", "exclude") {
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
		if isWord(kw, "exclude") {
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
// or ss name, or one of ss's groups.
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
		"<": OpLt, "lt": OpLt, "<=": OpLe, "le": OpLe, ">": OpGt, "gt": OpGt, ">=": OpGe, "ge": OpGe,
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

func (p *parser) portCond(kw token, dst bool) (Expr, error) {
	op, _, err := p.operator(kw)
	if err != nil {
		return nil, err
	}
	t, ok := p.next()
	if !ok || t.text == "(" || t.text == ")" {
		return nil, p.errAt(t, "missing a port after %q", kw.text)
	}
	s := strings.TrimPrefix(strings.TrimPrefix(t.text, "*"), ":")
	port, err := parsePort(t, s)
	if err != nil {
		return nil, err
	}
	return PortCmp{Dst: dst, Op: op, Port: port}, nil
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
	c, err := parseHost(t)
	if err != nil {
		return nil, err
	}
	c.Dst = dst
	if op == OpNe {
		return Not{c}, nil
	}
	return c, nil
}

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

// parseHost reads ADDR, ADDR/PREFIX, ADDR:PORT, [V6]:PORT, [V6]/PREFIX,
// *:PORT, :PORT and *.
func parseHost(t token) (HostCond, error) {
	s := t.text
	c := HostCond{Port: -1}
	bad := func(msg string) (HostCond, error) {
		return HostCond{}, &Error{Msg: msg, Token: t.text, Col: t.col}
	}
	var host, port string
	switch {
	case strings.HasPrefix(s, "["):
		i := strings.IndexByte(s, ']')
		if i < 0 {
			return bad("missing ] in address")
		}
		host, s = s[1:i], s[i+1:]
		switch {
		case s == "":
		case strings.HasPrefix(s, ":"):
			port = s[1:]
			if port == "" {
				return bad("missing a port number")
			}
		case strings.HasPrefix(s, "/"):
			host += s
		default:
			return bad("unexpected text after ]")
		}
	case strings.Count(s, ":") > 1 || strings.Contains(s, "/"):
		host = s // an IPv6 address or a prefix, no port
	default:
		host = s
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			host, port = s[:i], s[i+1:]
			if port == "" {
				return bad("missing a port number")
			}
		}
	}
	if port != "" && port != "*" {
		p, err := parsePort(t, port)
		if err != nil {
			return HostCond{}, err
		}
		c.Port = int(p)
	}
	if host == "" || host == "*" {
		if port == "" && host == "" {
			return bad("missing an address")
		}
		return c, nil
	}
	if strings.Contains(host, "/") {
		pf, err := netip.ParsePrefix(host)
		if err != nil {
			return bad("not an address prefix")
		}
		c.Prefix = pf.Masked()
		return c, nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return bad("not an IP address")
	}
	c.Prefix = netip.PrefixFrom(a, a.BitLen())
	return c, nil
}
