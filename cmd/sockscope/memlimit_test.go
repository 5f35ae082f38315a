package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// followLiveHeap leaves the first limit alone until the first frame is in
// (a limit from half a poll's heap made the collector run without pause
// through the rest of a million-socket poll), and then sets it from a
// live heap measured after that.
func TestMemoryLimitWaitsForTheFirstFrame(t *testing.T) {
	const first = 1 << 40
	old := debug.SetMemoryLimit(first)
	defer debug.SetMemoryLimit(old)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		followLiveHeap(ctx, ready, minMemoryLimit, -1)
	}()
	defer func() {
		cancel()
		<-done
	}()
	runtime.GC()
	// Past its first tick (2 s) with no frame yet: unchanged.
	time.Sleep(2500 * time.Millisecond)
	if got := debug.SetMemoryLimit(-1); got != first {
		t.Fatalf("the limit changed to %d before the first frame", got)
	}
	close(ready)
	deadline := time.Now().Add(20 * time.Second)
	for debug.SetMemoryLimit(-1) == first {
		if time.Now().After(deadline) {
			t.Fatal("the limit did not follow the live heap after the first frame")
		}
		// A collection after the frame: the live heap is known. Made
		// again each time: one that ends before followLiveHeap has
		// counted the collections so far does not count (on a busy
		// machine its goroutine can wake after it).
		runtime.GC()
		time.Sleep(50 * time.Millisecond)
	}
	if got := debug.SetMemoryLimit(-1); got < minMemoryLimit || got > 1<<32 {
		t.Errorf("limit %d after the first frame: want the larger of 32 MiB and 125%% of the live heap", got)
	}
}

// The limit leaves 25% of a small live heap as room, at most maxHeadroom
// of a large one, and never goes under base.
func TestLimitFor(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct{ live, want int64 }{
		{0, minMemoryLimit},
		{10 * mb, minMemoryLimit},          // 12.5 MB: the base
		{60 * mb, 75 * mb},                 // 110k sockets: 25%
		{200 * mb, 250 * mb},               // 50 MB of room, under the bound
		{476 * mb, 476*mb + maxHeadroom},   // a million sockets: the bound
		{4096 * mb, 4096*mb + maxHeadroom}, // and beyond
	} {
		if got := limitFor(c.live, minMemoryLimit); got != c.want {
			t.Errorf("live heap %d MB: limit %d MB, want %d MB", c.live/mb, got/mb, c.want/mb)
		}
	}
}
