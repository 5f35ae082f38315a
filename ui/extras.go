package ui

import (
	"fmt"

	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/track"
	"github.com/sockscope/sockscope/pkg/twstat"
)

// extras is the dashboard's adapter on the monitor's loop: what only the
// dashboard shows (the inspected socket's history, the kernel's TIME_WAIT
// settings while the w panel is open, the TCP counters behind the status
// line's rates) is read there, after each poll, and travels in
// Frame.Extra as an extra. Its fields belong to the loop's goroutine: the
// UI changes them only through monitor.Do.
type extras struct {
	detail    track.Key // the zero Key: no socket inspected
	wantTW    bool
	timeWait  func() (twstat.Context, error)
	counters  func() (map[string]int64, error)
	twFailed  bool // the TIME_WAIT settings failed once: said once
	cntFailed bool
}

// extra is one frame's dashboard data; never changed once made.
type extra struct {
	Detail   track.Key
	History  []track.Transition
	TimeWait *twstat.Context
	Counters map[string]int64
}

var _ monitor.Extras = (*extras)(nil)

// Extra reads what the open panes need. A source that fails is said
// once, in the frame's Warn, not on every poll.
func (x *extras) Extra(_ *monitor.Frame, t *track.Tracker) (any, error) {
	e := &extra{Detail: x.detail}
	if x.detail != (track.Key{}) {
		e.History = t.History(x.detail)
	}
	var warn error
	if x.counters != nil {
		c, err := x.counters()
		switch {
		case err == nil:
			e.Counters, x.cntFailed = c, false
		case !x.cntFailed:
			x.cntFailed = true
			warn = fmt.Errorf("reading the TCP counters: %w", err)
		}
	}
	if x.wantTW && x.timeWait != nil {
		k, err := x.timeWait()
		switch {
		case err == nil:
			e.TimeWait, x.twFailed = &k, false
		case !x.twFailed:
			x.twFailed = true
			tw := fmt.Errorf("reading the kernel's TIME_WAIT settings: %w", err)
			if warn != nil {
				tw = fmt.Errorf("%w; %w", warn, tw) // one line: it goes in the status line
			}
			warn = tw
		}
	}
	return e, warn
}

// extraOf is the frame's dashboard data; an empty one for a frame
// without (a failed dump).
func extraOf(f *monitor.Frame) *extra {
	if f != nil {
		if e, ok := f.Extra.(*extra); ok {
			return e
		}
	}
	return &extra{}
}
