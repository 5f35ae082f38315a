package monitor_test

import (
	"context"
	"flag"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sockscope/sockscope/pkg/exporter"
	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/nstest"
	"github.com/sockscope/sockscope/pkg/source"
	"golang.org/x/sys/unix"
)

var soakFor = flag.Duration("soak", 2*time.Minute, "how long the soak test runs")

// The dashboard's core loop and the exporter, left running under churn
// (about 1,000 connections opened and closed a second), keep their
// goroutines and heap on a plateau, and the tracker holds exactly the live
// sockets.
func TestIntegrationSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("a soak takes minutes")
	}
	t.Parallel()
	ns := nstest.New(t)
	conn := nstest.Connect(t, ns, netip.MustParseAddrPort("127.0.0.1:9000"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var opened atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ns.Do(func() error { // the generator: 10 connections every 10 ms
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for ctx.Err() == nil {
				<-tick.C
				for range 10 {
					c, err := nstest.Dial(netip.MustParseAddrPort("127.0.0.1:9000"))
					if err != nil {
						continue
					}
					s, _, err := unix.Accept4(conn.Listener, unix.SOCK_CLOEXEC)
					if err == nil {
						// Reset: no TIME_WAIT piles up, so the live
						// count stays level and any growth is ours.
						unix.SetsockoptLinger(s, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
						unix.Close(s)
					}
					unix.Close(c)
					opened.Add(1)
				}
			}
			return nil
		})
	}()

	all := filter.Compile(nil, filter.Options{})
	src, err := source.Open(all, source.Options{Netns: ns.NS(t), Totals: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	destroys, err := src.Destroys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var m *monitor.Monitor
	frames, off, maxTracked := 0, 0, 0
	m = monitor.New(src, monitor.Options{Interval: 100 * time.Millisecond}, func(f *monitor.Frame) {
		mu.Lock()
		defer mu.Unlock()
		frames++
		// The first frame is sent before the tracker takes its snapshot
		// in (track.Preview): it holds none of it yet.
		want := len(f.Entries)
		if frames == 1 {
			want = 0
		}
		if n := m.Tracked(); n != want {
			off++
		} else {
			maxTracked = max(maxTracked, n)
		}
	})
	wg.Add(1)
	go func() { defer wg.Done(); m.Run(ctx, nil, destroys) }()

	expSrc, err := source.Open(all, source.Options{Netns: ns.NS(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer expSrc.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(exporter.New([]exporter.Target{{Netns: ns.NS(t), Source: expSrc}}, exporter.Options{Ports: []uint16{9000}}))
	scrapes := 0
	wg.Add(1)
	go func() { // Prometheus, scraping twice a second
		defer wg.Done()
		for ctx.Err() == nil {
			if _, err := reg.Gather(); err != nil {
				t.Errorf("scrape: %v", err)
				return
			}
			scrapes++
			time.Sleep(500 * time.Millisecond)
		}
	}()

	type sample struct {
		goroutines int
		heap       uint64
	}
	measure := func() sample {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return sample{runtime.NumGoroutine(), ms.HeapAlloc}
	}
	warm := *soakFor / 4
	time.Sleep(warm)
	base := measure()
	var peak sample
	for end := time.Now().Add(*soakFor - warm); time.Now().Before(end); {
		time.Sleep(5 * time.Second)
		s := measure()
		peak.goroutines = max(peak.goroutines, s.goroutines)
		peak.heap = max(peak.heap, s.heap)
	}
	cancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	rate := float64(opened.Load()) / soakFor.Seconds()
	t.Logf("%.0f connections/s, %d frames, %d scrapes, tracked at most %d; goroutines %d -> peak %d, heap %d KB -> peak %d KB",
		rate, frames, scrapes, maxTracked, base.goroutines, peak.goroutines, base.heap>>10, peak.heap>>10)
	if rate < 500 {
		t.Errorf("the generator reached only %.0f connections/s", rate)
	}
	if off != 0 {
		t.Errorf("%d of %d frames tracked more or fewer sockets than were live", off, frames)
	}
	if peak.goroutines > base.goroutines+2 {
		t.Errorf("goroutines grew from %d to %d", base.goroutines, peak.goroutines)
	}
	if peak.heap > 2*base.heap+8<<20 {
		t.Errorf("heap grew from %d KB to %d KB", base.heap>>10, peak.heap>>10)
	}
}
