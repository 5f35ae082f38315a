package monitor

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/nstest"
	"github.com/sockscope/sockscope/pkg/source"
	"golang.org/x/sys/unix"
)

// Under churn the tracker holds exactly the live sockets: entries of gone
// sockets are dropped, so its size returns to the live count.
func TestIntegrationTrackerBoundedUnderChurn(t *testing.T) {
	ns := nstest.New(t)
	src, err := source.Open(filter.Compile(nil, filter.Options{}), source.Options{Netns: ns.NS(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	lfd := ns.Listen(t, netip.MustParseAddrPort("127.0.0.1:9000"))

	var mu sync.Mutex
	var mon *Monitor
	frames, maxLive, mismatches := 0, 0, 0
	mon = New(src, Options{Interval: 20 * time.Millisecond}, func(f *Frame) {
		mu.Lock()
		defer mu.Unlock()
		frames++
		maxLive = max(maxLive, len(f.Entries))
		// The first frame is sent before the tracker takes its snapshot
		// in (track.Preview): it holds none of it yet.
		want := len(f.Entries)
		if frames == 1 {
			want = 0
		}
		if mon.Tracked() != want {
			mismatches++
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mon.Run(ctx, nil, nil) }()

	// 3000 connections, each reset on close (SO_LINGER 0) so that nothing
	// stays behind in TIME_WAIT: the live count falls back to the listener.
	// The monitor spaces its polls when a dump is slow (a busy machine):
	// the churn goes on until it has seen ten frames, as long as needed.
	const conns = 3000
	framesSeen := func() int {
		mu.Lock()
		defer mu.Unlock()
		return frames
	}
	churnUntil := time.Now().Add(60 * time.Second)
	err = ns.Do(func() error {
		for i := 0; i < conns || (framesSeen() < 10 && time.Now().Before(churnUntil)); i += 50 {
			var fds []int
			for range 50 {
				c, err := nstest.Dial(netip.MustParseAddrPort("127.0.0.1:9000"))
				if err != nil {
					return err
				}
				a, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
				if err != nil {
					return err
				}
				fds = append(fds, c, a)
			}
			time.Sleep(2 * time.Millisecond)
			for _, fd := range fds {
				unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
				unix.Close(fd)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		ch := make(chan int)
		mon.Do(func() { ch <- mon.Tracked() })
		tracked := <-ch
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		n := frames
		mu.Unlock()
		if tracked == 1 && n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tracker still holds %d entries after the churn; 1 socket is live", tracked)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if mismatches != 0 || frames < 10 || maxLive < 2 {
		t.Errorf("%d frames, %d with tracked != live, at most %d live; want many frames, none off, churn seen", frames, mismatches, maxLive)
	}
}
