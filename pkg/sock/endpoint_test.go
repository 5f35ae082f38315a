package sock

import (
	"net/netip"
	"reflect"
	"testing"
)

// An Endpoint reads and prints as the netip.AddrPort it was made from.
func TestEndpointIsAddrPort(t *testing.T) {
	for _, s := range []string{"127.0.0.1:9000", "0.0.0.0:0", "[::1]:443", "[::]:0", "[::ffff:10.0.0.1]:80", "[2001:db8::1]:65535"} {
		ap := netip.MustParseAddrPort(s)
		e := EndpointOf(ap)
		if e.AddrPort() != ap || e.String() != ap.String() || e.Addr() != ap.Addr() || e.Port() != ap.Port() || !e.IsValid() {
			t.Errorf("%s: Endpoint reads %v (%s)", s, e.AddrPort(), e)
		}
		if string(e.AppendTo([]byte("x"))) != "x"+ap.String() {
			t.Errorf("%s: AppendTo %q", s, e.AppendTo(nil))
		}
		text, err := e.MarshalText()
		var back Endpoint
		if err != nil || back.UnmarshalText(text) != nil || back != e {
			t.Errorf("%s: text %q (%v) reads back as %v", s, text, err, back)
		}
	}
	a4 := netip.MustParseAddr("10.1.2.3").As4()
	if Endpoint4(a4, 80) != MustParseEndpoint("10.1.2.3:80") {
		t.Error("Endpoint4 differs from the parsed endpoint")
	}
	if (Endpoint{}).IsValid() || (Endpoint{}).String() != (netip.AddrPort{}).String() {
		t.Error("the zero Endpoint is not the zero AddrPort")
	}
}

// A Socket holds no pointer: a snapshot is one allocation the garbage
// collector does not scan, and it stays 88 bytes.
func TestSocketHasNoPointers(t *testing.T) {
	var walk func(reflect.Type) bool
	walk = func(ty reflect.Type) bool {
		switch ty.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.String, reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
			return true
		case reflect.Struct:
			for i := range ty.NumField() {
				if walk(ty.Field(i).Type) {
					return true
				}
			}
		case reflect.Array:
			return walk(ty.Elem())
		}
		return false
	}
	if walk(reflect.TypeFor[Socket]()) {
		t.Error("Socket holds a pointer")
	}
	if n := reflect.TypeFor[Socket]().Size(); n != 88 {
		t.Errorf("Socket is %d bytes, want 88", n)
	}
}
