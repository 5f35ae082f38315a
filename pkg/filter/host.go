package filter

import (
	"bufio"
	"fmt"
	"math/bits"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/sockscope/sockscope/pkg/sock"
)

// The host and port syntax follows iproute2's parse_hostcond (misc/ss.c)
// and get_prefix_1 (lib/utils.c), so that what ss accepts means the same
// here. Where ss would ask DNS, sockscope refuses: a filter must not depend
// on the network, and a name can stand for several addresses.

// familyPrefixes are the [FAMILY:] prefixes of ss's host syntax. Only inet
// and inet6 can select TCP sockets.
var familyPrefixes = []struct {
	prefix string
	family sock.Family // 0: not a TCP family
}{
	{"inet6:", sock.IPv6},
	{"inet:", sock.IPv4},
	{"unix:", 0},
	{"link:", 0},
	{"netlink:", 0},
	{"vsock:", 0},
}

// cutFamily removes a [FAMILY:] prefix from s. A prefix of a family that
// holds no TCP sockets, or a unix path, is an error rather than a filter
// that silently matches nothing.
func cutFamily(t token, s string) (rest string, fam sock.Family, err error) {
	for _, fp := range familyPrefixes {
		if !strings.HasPrefix(s, fp.prefix) {
			continue
		}
		if fp.family == 0 {
			return "", 0, &Error{Msg: "a " + strings.TrimSuffix(fp.prefix, ":") + " address selects no TCP socket (sockscope shows TCP only)", Token: t.text, Col: t.col}
		}
		return s[len(fp.prefix):], fp.family, nil
	}
	if strings.HasPrefix(s, "/") || strings.HasPrefix(s, "@") {
		// ss -x src /tmp/.X11-unix/*: a unix socket path or abstract name.
		return "", 0, &Error{Msg: "a unix socket path selects no TCP socket (sockscope shows TCP only)", Token: t.text, Col: t.col}
	}
	if word, ok := unknownFamily(s); ok {
		return "", 0, &Error{Msg: fmt.Sprintf("%q is not an address family (inet: or inet6: select TCP sockets)", word+":"), Token: t.text, Col: t.col}
	}
	return s, 0, nil
}

// unknownFamily reports a mistyped family prefix, as in "inet7:10.0.0.1":
// a word that is no IPv6 group (it has a letter past f) before a colon,
// followed by an address rather than a port. Read as ss reads it, the
// last colon would split it into a host "inet7" and a port "10.0.0.1",
// and the error would blame the port.
func unknownFamily(s string) (string, bool) {
	word, rest, ok := strings.Cut(s, ":")
	if !ok || word == "" || rest == "" || !strings.ContainsAny(rest, ".:[") {
		return "", false
	}
	pastHex := false
	for i, r := range word {
		switch {
		case r >= 'g' && r <= 'z':
			pastHex = true
		case r >= 'a' && r <= 'f', i > 0 && r >= '0' && r <= '9':
		default:
			return "", false
		}
	}
	return word, pastHex
}

// parseHost reads ss's HOST without its family prefix: ADDR, ADDR/PREFIX,
// ADDR:PORT, ADDR/PREFIX:PORT, [V6ADDR]:PORT, [V6ADDR/PREFIX]:PORT, *:PORT,
// :PORT and *, where ADDR may be abbreviated as iproute2 allows
// ("193.233.7/24") or be any, all or default (every address), and PORT is
// a number, a service name or *. fam, when not zero, is the family an
// earlier inet: or inet6: prefix set: ss reads every later address in it.
// As sockscope's own comfort, a bare IPv6 address ("::1") or [V6]/PREFIX is
// read too, where ss takes the last colon for a port separator and fails.
func parseHost(t token, s string, fam sock.Family) (HostCond, error) {
	c := HostCond{Port: -1}
	bad := func(msg string) (HostCond, error) {
		return HostCond{}, &Error{Msg: msg, Token: t.text, Col: t.col}
	}
	var host, port string
	hasPort := false
	// splitPort cuts a port off s at its last colon, looking only past a
	// slash as ss does, so that "10.0.0.0/8:80" has a port and
	// "2001:db8::/32" has none.
	splitPort := func(s string) (string, string, bool) {
		from := max(strings.IndexByte(s, '/'), 0)
		i := strings.LastIndexByte(s[from:], ':')
		if i < 0 {
			return s, "", false
		}
		return s[:from+i], s[from+i+1:], true
	}
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
			port, hasPort = s[1:], true
		case strings.HasPrefix(s, "/"):
			var pfx string
			pfx, port, hasPort = splitPort(s)
			host += pfx
		default:
			return bad("unexpected text after ]")
		}
	case strings.HasPrefix(s, "*"):
		host, s = "*", s[1:]
		switch {
		case s == "":
		case strings.HasPrefix(s, ":"):
			port, hasPort = s[1:], true
		default:
			return bad("unexpected text after *")
		}
	case !strings.Contains(s, "/") && strings.Count(s, ":") > 1:
		host = s // a bare IPv6 address, no port
	default:
		host, port, hasPort = splitPort(s)
	}
	if hasPort {
		if port == "" {
			return bad("missing a port number")
		}
		if port != "*" {
			p, err := parsePortName(t, port)
			if err != nil {
				return HostCond{}, err
			}
			c.Port = int(p)
		}
	}
	switch host {
	case "":
		if !hasPort {
			return bad("missing an address")
		}
		return c, nil
	case "*", "any", "all", "default":
		// Every address, as in iproute2's get_addr_1.
		return c, nil
	}
	pf, err := parsePrefix(host, fam)
	if err != nil {
		return bad(err.Error())
	}
	c.Prefix = pf
	return c, nil
}

type hostError string

func (e hostError) Error() string { return string(e) }

// parsePrefix reads ADDR or ADDR/PREFIX as get_prefix_1 does: IPv6 when
// the address has a colon, else IPv4 in iproute2's legacy form; the
// prefix length may be a number or a dotted netmask.
func parsePrefix(s string, fam sock.Family) (netip.Prefix, error) {
	addr, plen, slash := strings.Cut(s, "/")
	if slash && (addr == "any" || addr == "all" || addr == "default") {
		return netip.Prefix{}, hostError("not an address prefix")
	}
	var a netip.Addr
	if strings.Contains(addr, ":") {
		var err error
		a, err = netip.ParseAddr(addr)
		if err != nil || a.Zone() != "" || !a.Is6() {
			return netip.Prefix{}, hostError("not an IP address")
		}
	} else {
		var ok bool
		if a, ok = parseIPv4(addr); !ok {
			if looksLikeName(addr) {
				return netip.Prefix{}, hostError("not an IP address (sockscope does not look up host names)")
			}
			return netip.Prefix{}, hostError("not an IP address")
		}
	}
	if fam != 0 && familyOf(a) != fam {
		return netip.Prefix{}, hostError("not an " + fam.String() + " address, the family an earlier " + fam.String() + ": prefix set")
	}
	bits := a.BitLen()
	if slash {
		n, ok := parseNetmask(plen)
		if !ok || n > bits {
			return netip.Prefix{}, hostError("not an address prefix")
		}
		bits = n
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

func familyOf(a netip.Addr) sock.Family {
	if a.Is4() {
		return sock.IPv4
	}
	return sock.IPv6
}

// looksLikeName tells a host name ("localhost", "example.com") from a
// malformed address, for a more useful error.
func looksLikeName(s string) bool {
	for _, c := range s {
		if c >= 'g' && c <= 'z' || c >= 'G' && c <= 'Z' || c == '-' {
			return true
		}
	}
	return false
}

// parseIPv4 reads an IPv4 address as iproute2's get_addr_ipv4 does: one to
// four parts, each a C number (decimal, 0x hex, 0 octal) up to 255, the
// missing parts zero at the END: "193.233.7" is 193.233.7.0 and "10" is
// 10.0.0.0 (inet_aton would read them otherwise).
func parseIPv4(s string) (netip.Addr, bool) {
	var b [4]byte
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	for i, p := range parts {
		n, ok := parseCNumber(p)
		if !ok || n > 255 {
			return netip.Addr{}, false
		}
		b[i] = byte(n)
	}
	return netip.AddrFrom4(b), true
}

// parseNetmask reads a prefix length as get_netmask does: a C number, or
// a dotted IPv4 netmask of contiguous ones ("255.255.255.0" is 24).
func parseNetmask(s string) (int, bool) {
	if n, ok := parseCNumber(s); ok {
		return int(min(n, 1<<16)), true
	}
	a, ok := parseIPv4(s)
	if !ok {
		return 0, false
	}
	m := a.As4()
	mask := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	if mask&(^mask>>1) != 0 { // a one after a zero: not contiguous
		return 0, false
	}
	return bits.OnesCount32(mask), true
}

// parseCNumber reads an unsigned number as C's strtoul with base 0 does,
// without its sign and blanks: 0x1f is hex, 017 octal, 17 decimal. ss
// reads ports, address parts and prefix lengths this way.
func parseCNumber(s string) (uint64, bool) {
	base := uint64(10)
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" {
		return 0, false
	}
	var n uint64
	for _, c := range []byte(s) {
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		n = min(n*base+d, 1<<32) // saturate: anything above is out of range
	}
	return n, true
}

// parsePortName reads a port as ss does: a C number or a TCP service name
// from /etc/services ("ssh", "http", "www").
func parsePortName(t token, s string) (uint16, error) {
	if s == "" {
		return 0, &Error{Msg: "missing a port number", Token: t.text, Col: t.col}
	}
	if n, ok := parseCNumber(s); ok {
		if n > 65535 {
			return 0, &Error{Msg: "port out of range 0-65535", Token: t.text, Col: t.col}
		}
		return uint16(n), nil
	}
	if p, ok := lookupService(s); ok {
		return p, nil
	}
	return 0, &Error{Msg: "not a port number or a TCP service name in " + servicesPath, Token: t.text, Col: t.col}
}

// servicesPath is the services database ss reads through getservbyname.
var servicesPath = "/etc/services"

// builtinServices stands in when servicesPath cannot be read: the names
// ss(8)'s examples use and a few more whose IANA numbers never change.
var builtinServices = map[string]uint16{
	"ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "http": 80, "www": 80,
	"pop3": 110, "imap": 143, "imap2": 143, "https": 443, "imaps": 993, "pop3s": 995,
}

var services = sync.OnceValue(func() map[string]uint16 {
	f, err := os.Open(servicesPath)
	if err != nil {
		return builtinServices
	}
	defer f.Close()
	m := map[string]uint16{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		num, proto, ok := strings.Cut(fields[1], "/")
		if !ok || proto != "tcp" {
			continue
		}
		n, ok := parseCNumber(num)
		if !ok || n > 65535 || strings.HasPrefix(num, "0") && num != "0" {
			continue
		}
		// The first line naming a service wins, as with glibc's files
		// backend; aliases count as names.
		for _, name := range append(fields[:1:1], fields[2:]...) {
			if _, dup := m[name]; !dup {
				m[name] = uint16(n)
			}
		}
	}
	if sc.Err() != nil {
		// A file read half-way would answer some names and not others:
		// the built-in list answers the same way every time.
		return builtinServices
	}
	return m
})

// ServicePort finds a TCP service's port by name in /etc/services (or
// the built-in list), as a filter's port does.
func ServicePort(name string) (uint16, bool) { return lookupService(name) }

// lookupService finds a TCP service by name; like getservbyname, it is
// case-sensitive.
func lookupService(name string) (uint16, bool) {
	p, ok := services()[name]
	return p, ok
}
