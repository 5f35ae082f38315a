package ui

import (
	"errors"
	"strings"
	"testing"

	"github.com/sockscope/sockscope/pkg/track"
	"github.com/sockscope/sockscope/pkg/twstat"
)

// A source that keeps failing is said once, in the first frame's warning;
// both failures of one frame are said on one line; a recovery is used at
// once and a later failure said again.
func TestExtrasSayFailuresOnce(t *testing.T) {
	fail := true
	x := &extras{
		counters: func() (map[string]int64, error) {
			if fail {
				return nil, errors.New("no snmp")
			}
			return map[string]int64{"OutRsts": 1}, nil
		},
		timeWait: func() (twstat.Context, error) { return twstat.Context{}, errors.New("no sysctl") },
		wantTW:   true,
	}
	tr := track.New(nil)
	var warns []error
	for range 3 {
		_, err := x.Extra(nil, tr)
		warns = append(warns, err)
	}
	if warns[0] == nil || warns[1] != nil || warns[2] != nil {
		t.Fatalf("warnings %v, want one, in the first frame", warns)
	}
	if msg := warns[0].Error(); !strings.Contains(msg, "no snmp") || !strings.Contains(msg, "no sysctl") || strings.Contains(msg, "\n") {
		t.Errorf("warning %q, want both failures on one line", msg)
	}
	fail = false
	e, err := x.Extra(nil, tr)
	if err != nil || e.(*extra).Counters["OutRsts"] != 1 {
		t.Errorf("after recovery: %v, %v", e, err)
	}
	fail = true
	if _, err := x.Extra(nil, tr); err == nil || !strings.Contains(err.Error(), "no snmp") {
		t.Errorf("a failure after a recovery: %v, want it said again", err)
	}
}
