package kbtf

import (
	"os"
	"strings"
	"testing"
)

func load(t *testing.T) *Kernel {
	t.Helper()
	k, err := Load()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Load: %v", err)
		}
		t.Skipf("no kernel BTF here: %v", err)
	}
	return k
}

// Members are found through anonymous unions and nested structs, with
// their sizes; a missing one, a bitfield or a wrong size is an error that
// names it.
func TestMember(t *testing.T) {
	k := load(t)
	skc, err := k.Struct("sock_common")
	if err != nil {
		t.Fatal(err)
	}
	var f Fields
	// skc_family and skc_state sit in the struct itself; skc_num in an
	// anonymous struct inside an anonymous union; skc_net.net in a
	// named struct member.
	family := f.Of(skc, 2, "skc_family")
	state := f.Of(skc, 1, "skc_state")
	num := f.Of(skc, 2, "skc_num")
	dport := f.Of(skc, 2, "skc_dport")
	f.Of(skc, 8, "skc_net", "net")
	if err := f.Err(); err != nil {
		t.Fatal(err)
	}
	// The kernel's layout since 2.6: the port pair just before the
	// family, the state two bytes after it.
	if state != family+2 || dport+2 != num || num+2 != family {
		t.Errorf("skc_dport %d, skc_num %d, skc_family %d, skc_state %d: not the kernel's order", dport, num, family, state)
	}
	for _, c := range []struct {
		path []string
		size int
		want string
	}{
		{[]string{"skc_nosuch"}, 0, "no member [skc_nosuch]"},
		{[]string{"skc_family"}, 4, "is 2 bytes, not 4"},
		{[]string{"skc_reuse"}, 0, "bitfield"},
	} {
		var g Fields
		g.Of(skc, c.size, c.path...)
		if err := g.Err(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v (%d bytes): %v, want an error saying %q", c.path, c.size, err, c.want)
		}
	}
	if _, err := k.Struct("sockscope_no_such_struct"); err == nil {
		t.Error("Struct of a name the kernel lacks: no error")
	}
}
