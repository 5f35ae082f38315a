package main

import (
	"testing"

	"github.com/sockscope/sockscope/pkg/filter"
)

// The one walk counts by state only: a filter on anything else (ports,
// addresses, a family) has each namespace dumped with it.
func TestStatesOnly(t *testing.T) {
	for _, c := range []struct {
		spec filter.Spec
		want bool
	}{
		{filter.Spec{}, true},
		{filter.Spec{Args: []string{"state", "listening", "or", "state", "close-wait"}}, true},
		{filter.Spec{Listening: true}, true},
		{filter.Spec{States: []string{"time-wait"}}, true},
		{filter.Spec{Args: []string{":9000"}}, false},
		{filter.Spec{Ports: []string{"443"}}, false},
		{filter.Spec{IPv4: true}, false},
		{filter.Spec{Args: []string{"state", "established", "and", "dst", "10.0.0.0/8"}}, false},
	} {
		e, err := c.spec.Build()
		if err != nil {
			t.Fatalf("%+v: %v", c.spec, err)
		}
		if got := statesOnly(filter.Compile(e, filter.Options{})); got != c.want {
			t.Errorf("%+v: statesOnly %v, want %v", c.spec, got, c.want)
		}
	}
}
