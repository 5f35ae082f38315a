package monitor

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

// steps is a Source that plays socket tables, one per poll.
type steps struct {
	mu    sync.Mutex
	clock time.Time
	next  int
	table [][]sock.Socket
}

func (s *steps) Snapshot() (*sock.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clock = s.clock.Add(time.Second)
	snap := &sock.Snapshot{Time: s.clock, Sockets: append([]sock.Socket(nil), s.table[min(s.next, len(s.table)-1)]...)}
	s.next++
	return snap, nil
}

func (s *steps) SetProgram(*filter.Program) {}
func (s *steps) SetInfo(bool)               {}

// Announcements already waiting when a tick comes are taken before the
// poll, so the socket's end is dated by the kernel every time, not only
// when select happens to pick the announcement first.
func TestDestroysBeforeThePoll(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	cw := sock.Socket{Cookie: 7, Family: sock.IPv4, State: sock.CloseWait,
		Local: netip.MustParseAddrPort("127.0.0.1:9000"), Peer: netip.MustParseAddrPort("127.0.0.1:40000")}
	for round := range 20 {
		src := &steps{clock: t0, table: [][]sock.Socket{{cw}, {}}}
		frames := make(chan *Frame, 4)
		m := New(src, Options{Now: func() time.Time { return t0 }}, func(f *Frame) { frames <- f })
		tick := make(chan time.Time)
		destroys := make(chan sock.Destroy, 1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx, tick, destroys) }()
		<-frames // the first poll shows the CLOSE_WAIT socket
		closed := t0.Add(1500 * time.Millisecond)
		destroys <- sock.Destroy{Cookie: 7, At: closed}
		tick <- time.Time{}
		f := <-frames
		cancel()
		<-done
		if len(f.Events) != 1 || f.Events[0].Kind != track.EventGone || !f.Events[0].Exact || !f.Events[0].At.Equal(closed) {
			t.Fatalf("round %d: events %+v, want the socket gone at its announcement", round, f.Events)
		}
	}
}
