package filter

import (
	"fmt"
	"strings"

	"github.com/sockscope/sockscope/pkg/sock"
)

// Spec gathers the simple command-line forms and the positional filter; all
// parts must hold.
type Spec struct {
	Args      []string // the filter language, one word per argument
	Ports     []string // --port values, each N[,N...]
	States    []string // --state values, each STATE[,STATE...]
	IPv4      bool     // -4
	IPv6      bool     // -6
	Listening bool     // -l
	// IfIndex finds an interface by name for "dev NAME" in the namespace
	// shown; nil looks in the caller's (see ParseOptions).
	IfIndex func(name string) (uint32, error)
}

// FlagError is a bad flag value: which flag, and what is wrong with it.
type FlagError struct {
	Flag string
	Err  *Error
}

func (e *FlagError) Error() string {
	return fmt.Sprintf("invalid %s value: %s: %q at column %d", e.Flag, e.Err.Msg, e.Err.Token, e.Err.Col)
}

func (e *FlagError) Unwrap() error { return e.Err }

// Build returns the expression the Spec stands for; nil matches every
// socket.
func (s Spec) Build() (Expr, error) {
	var parts []Expr
	if s.IPv4 != s.IPv6 { // -4 -6 together mean both, as in ss
		f := sock.IPv4
		if s.IPv6 {
			f = sock.IPv6
		}
		parts = append(parts, FamilyIs{f})
	}
	var ports []Expr
	for _, v := range s.Ports {
		for _, t := range splitList(v) {
			if t.text == "" {
				return nil, &FlagError{"--port", &Error{Msg: "empty item in list", Token: v, Col: t.col}}
			}
			p, err := parsePort(t, strings.TrimPrefix(t.text, ":"))
			if err != nil {
				return nil, &FlagError{"--port", err.(*Error)}
			}
			ports = append(ports, EitherPort(p))
		}
	}
	parts = append(parts, OrOf(ports...))
	if len(s.States) > 0 {
		var m sock.StateMask
		for _, v := range s.States {
			for _, t := range splitList(v) {
				if t.text == "" {
					return nil, &FlagError{"--state", &Error{Msg: "empty item in list", Token: v, Col: t.col}}
				}
				g, ok := StateGroup(t.text)
				if !ok {
					return nil, &FlagError{"--state", &Error{Msg: "unknown TCP state", Token: t.text, Col: t.col}}
				}
				m |= g
			}
		}
		parts = append(parts, StateIn{m})
	}
	if s.Listening {
		parts = append(parts, StateIn{sock.MaskOf(sock.Listen)})
	}
	e, err := ParseWith(s.Args, ParseOptions{IfIndex: s.IfIndex})
	if err != nil {
		return nil, err
	}
	return AndOf(append(parts, e)...), nil
}

// splitList splits a comma-separated flag value, keeping columns for errors;
// an empty item is an error token of its own.
func splitList(v string) []token {
	var out []token
	col := 1
	for _, item := range strings.Split(v, ",") {
		out = append(out, token{strings.TrimSpace(item), col})
		col += len(item) + 1
	}
	return out
}
