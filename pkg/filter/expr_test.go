package filter

import "testing"

func TestHasDev(t *testing.T) {
	for _, c := range []struct {
		e    Expr
		want bool
	}{
		{nil, false},
		{DevIs{IfIndex: 1}, true},
		{Not{X: DevIs{IfIndex: 1}}, true},
		{And{L: StateIn{}, R: Or{L: PortCmp{Port: 80}, R: Not{X: DevIs{IfIndex: 2}}}}, true},
		{And{L: StateIn{}, R: Or{L: PortCmp{Port: 80}, R: Not{X: Const(true)}}}, false},
	} {
		if got := HasDev(c.e); got != c.want {
			t.Errorf("HasDev(%v) = %v, want %v", c.e, got, c.want)
		}
	}
}
