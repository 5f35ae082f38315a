package main

import (
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/kevents"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

// When the kernel's news of a change is lost (its ring was full), watch
// shows the poll's event for it, and claims no exact time in a state
// whose start it did not hear of; with every change told it prints the
// kernel's alone, exactly dated.
func TestKernelFeedWithLostNews(t *testing.T) {
	k := newKernelFeed(filter.Compile(nil, filter.Options{}), func(uint32) bool { return true }, false)
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var printed []track.Event
	emit := func(ev *track.Event) { printed = append(printed, *ev) }
	tell := func(cookie uint64, from, to sock.State, ms int) {
		t.Helper()
		printed = printed[:0]
		k.events(&kevents.Transition{At: at(ms), Cookie: cookie, From: from, To: to, Family: sock.IPv4}, emit)
	}
	poll := func(cookie uint64, from, to sock.State, ms int) (track.Event, bool) {
		sk := sock.Socket{Cookie: cookie, State: to}
		ev := track.Event{Kind: track.EventChange, At: at(ms), Entry: track.Entry{Socket: &sk}, From: from, To: to}
		return ev, k.adjust(&ev)
	}

	// Told throughout: the kernel's events, exact; the poll's repeat them.
	tell(1, sock.Close, sock.SynSent, 0)
	tell(1, sock.SynSent, sock.Established, 1)
	tell(1, sock.Established, sock.FinWait1, 40)
	if len(printed) != 1 || !printed[0].InStateExact || printed[0].InState != 39*time.Millisecond {
		t.Errorf("a change told after the one before: %+v; want one event, 39ms exactly in ESTABLISHED", printed)
	}
	if _, shown := poll(1, sock.Established, sock.FinWait1, 50); shown {
		t.Error("the poll's change the kernel told is printed again")
	}

	// ESTABLISHED -> FIN_WAIT1 lost: the next change says no exact time
	// in FIN_WAIT1, and the poll's change into FIN_WAIT1 shows.
	tell(2, sock.Close, sock.SynSent, 0)
	tell(2, sock.SynSent, sock.Established, 1)
	tell(2, sock.FinWait1, sock.FinWait2, 60)
	if len(printed) != 1 || printed[0].InStateExact || printed[0].InStateAtLeast || printed[0].InState != 59*time.Millisecond {
		t.Errorf("a change after a lost one: %+v; want 59ms, neither exact nor at least", printed)
	}
	if _, shown := poll(2, sock.Established, sock.FinWait1, 50); !shown {
		t.Error("the poll's change into FIN_WAIT1, whose news was lost, is not printed")
	}
	if _, shown := poll(2, sock.FinWait1, sock.FinWait2, 70); shown {
		t.Error("the poll's change into FIN_WAIT2, which the kernel told, is printed again")
	}

	// Into TIME_WAIT: dated by the close; exact after the change told
	// before it, not after a lost one.
	tell(1, sock.FinWait1, sock.FinWait2, 45)
	tell(1, sock.FinWait2, sock.Close, 80)
	ev, shown := poll(1, sock.FinWait2, sock.TimeWait, 85) // the timer's date, within twTimerSlack
	if !shown || !ev.At.Equal(at(80)) || !ev.InStateExact || ev.InState != 35*time.Millisecond {
		t.Errorf("into TIME_WAIT after every change told: %+v; want dated by the close, 35ms exactly", ev)
	}
	tell(2, sock.FinWait2, sock.Close, 90) // FIN_WAIT1 -> FIN_WAIT2 told at 60
	tell(3, sock.Close, sock.SynSent, 0)
	tell(3, sock.SynSent, sock.Established, 1)
	tell(3, sock.FinWait2, sock.Close, 90) // into FIN_WAIT1, FIN_WAIT2: lost
	if ev, _ := poll(2, sock.FinWait2, sock.TimeWait, 95); !ev.InStateExact || ev.InState != 30*time.Millisecond {
		t.Errorf("into TIME_WAIT, FIN_WAIT2 told: %+v; want 30ms exactly", ev)
	}
	ev, shown = poll(3, sock.Established, sock.TimeWait, 95)
	if !shown || ev.InStateExact || ev.InStateAtLeast || ev.InState != 89*time.Millisecond {
		t.Errorf("into TIME_WAIT after lost changes: %+v; want 89ms, neither exact nor at least", ev)
	}
}
