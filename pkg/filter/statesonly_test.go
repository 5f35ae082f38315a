package filter

import (
	"testing"
)

// The one walk counts by state only: a filter on anything else (ports,
// addresses, a family) has each namespace dumped with it.
func TestStatesOnly(t *testing.T) {
	for _, c := range []struct {
		spec Spec
		want bool
	}{
		{Spec{}, true},
		{Spec{Args: []string{"state", "listening", "or", "state", "close-wait"}}, true},
		{Spec{Listening: true}, true},
		{Spec{States: []string{"time-wait"}}, true},
		{Spec{Args: []string{":9000"}}, false},
		{Spec{Ports: []string{"443"}}, false},
		{Spec{IPv4: true}, false},
		{Spec{Args: []string{"state", "established", "and", "dst", "10.0.0.0/8"}}, false},
	} {
		e, err := c.spec.Build()
		if err != nil {
			t.Fatalf("%+v: %v", c.spec, err)
		}
		if got := Compile(e, Options{}).StatesOnly(); got != c.want {
			t.Errorf("%+v: StatesOnly %v, want %v", c.spec, got, c.want)
		}
	}
}
