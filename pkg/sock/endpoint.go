package sock

import (
	"net/netip"
)

// Endpoint is an address and port, as netip.AddrPort, in 20 bytes and
// without a pointer: netip.Addr keeps its kind behind one, which made every
// Socket 24 bytes larger and every snapshot a thing the garbage collector
// must scan (at 110k sockets, two snapshots of 12 MB each, marked at every
// collection). Sockets carry no IPv6 zone, so nothing is lost.
type Endpoint struct {
	ip   [16]byte
	port uint16
	kind uint8 // 0: invalid, 4 or 6
}

// EndpointOf is ap as an Endpoint (its zone, if any, dropped).
func EndpointOf(ap netip.AddrPort) Endpoint {
	a := ap.Addr()
	switch {
	case a.Is4():
		var e Endpoint
		copy(e.ip[:], a.AsSlice())
		e.port, e.kind = ap.Port(), 4
		return e
	case a.Is6():
		return Endpoint{ip: a.As16(), port: ap.Port(), kind: 6}
	}
	return Endpoint{}
}

// Endpoint4 is an IPv4 address and port.
func Endpoint4(ip [4]byte, port uint16) Endpoint {
	var e Endpoint
	copy(e.ip[:], ip[:])
	e.port, e.kind = port, 4
	return e
}

// Endpoint16 is an IPv6 address (an IPv4-mapped one stays IPv6) and port.
func Endpoint16(ip [16]byte, port uint16) Endpoint {
	return Endpoint{ip: ip, port: port, kind: 6}
}

// MustParseEndpoint parses s as netip.MustParseAddrPort does (tests).
func MustParseEndpoint(s string) Endpoint { return EndpointOf(netip.MustParseAddrPort(s)) }

// Addr is the address.
func (e Endpoint) Addr() netip.Addr {
	switch e.kind {
	case 4:
		return netip.AddrFrom4([4]byte(e.ip[:4]))
	case 6:
		return netip.AddrFrom16(e.ip)
	}
	return netip.Addr{}
}

// Port is the port.
func (e Endpoint) Port() uint16 { return e.port }

// AddrPort is e as a netip.AddrPort.
func (e Endpoint) AddrPort() netip.AddrPort { return netip.AddrPortFrom(e.Addr(), e.port) }

// IsValid reports whether e holds an address.
func (e Endpoint) IsValid() bool { return e.kind != 0 }

// String is as netip.AddrPort's: 1.2.3.4:80, [::1]:80.
func (e Endpoint) String() string { return e.AddrPort().String() }

// AppendTo appends String's text to b.
func (e Endpoint) AppendTo(b []byte) []byte { return e.AddrPort().AppendTo(b) }

// MarshalText is netip.AddrPort's text.
func (e Endpoint) MarshalText() ([]byte, error) { return e.AddrPort().MarshalText() }

// UnmarshalText reads netip.AddrPort's text.
func (e *Endpoint) UnmarshalText(text []byte) error {
	var ap netip.AddrPort
	if err := ap.UnmarshalText(text); err != nil {
		return err
	}
	*e = EndpointOf(ap)
	return nil
}
