package source

import (
	"errors"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/nstest"
	"github.com/sockscope/sockscope/pkg/sock"
)

// streamed runs Stream and returns the cookies of each call, each read a
// moment after the call began: a batch the walk wrote into while the
// reader had it would come out wrong.
func streamed(t *testing.T, k *Kernel, stopAt int, stopWith error) ([][]uint64, error) {
	t.Helper()
	var calls [][]uint64
	err := k.Stream(func(b *sock.Snapshot) error {
		time.Sleep(2 * time.Millisecond) // the walk goes on meanwhile
		var c []uint64
		for _, s := range b.Sockets {
			c = append(c, s.Cookie)
		}
		calls = append(calls, c)
		if len(calls) == stopAt {
			return stopWith
		}
		return nil
	})
	return calls, err
}

// With two processors the kernel's walk runs beside the reader: every
// socket comes once, in the walk's order (that of the stream on one
// processor), a few kernel batches at a time, in batches the walk does
// not touch while the reader has them. The reader's error ends the stream
// as it is, and the next stream has every socket again.
func TestIntegrationStreamBeside(t *testing.T) {
	ns := nstest.New(t)
	const n = 3000
	ns.Listeners(t, n)
	k, err := Open(filter.Compile(nil, filter.Options{}), Options{Netns: ns.NS(t), Beside: true})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	alone, err := streamed(t, k, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GOMAXPROCS(2)
	beside, err := streamed(t, k, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, got := slices.Concat(alone...), slices.Concat(beside...)
	if len(want) != 2*n {
		t.Fatalf("the stream on one processor gave %d sockets, want %d", len(want), 2*n)
	}
	if !slices.Equal(got, want) {
		t.Errorf("beside the walk: %d sockets, not those of the stream on one processor in its order (%d)", len(got), len(want))
	}
	if len(beside) < 3 {
		t.Errorf("%d sockets in %d batches: the batches were not reused", len(got), len(beside))
	}
	for i, c := range beside[:len(beside)-1] {
		if len(c) < streamBatch {
			t.Errorf("batch %d of %d has %d sockets, fewer than %d", i+1, len(beside), len(c), streamBatch)
		}
	}

	enough := errors.New("enough")
	calls, err := streamed(t, k, 2, enough)
	if err != enough || len(calls) != 2 {
		t.Errorf("the reader's error: Stream returned %v after %d call(s), want it as it is after 2", err, len(calls))
	}
	again, err := streamed(t, k, -1, nil)
	if err != nil || !slices.Equal(slices.Concat(again...), want) {
		t.Errorf("the stream after a stopped one: %d sockets, %v; want the %d of the first", len(slices.Concat(again...)), err, len(want))
	}

	// A reader that panics: the panic goes on, once the walk has ended,
	// and the source streams again (a walk left waiting for a spare batch
	// would keep the kernel's dump open, and the next one would fail).
	func() {
		defer func() {
			if r := recover(); r != "reader" {
				t.Errorf("the reader's panic: recovered %v", r)
			}
		}()
		calls := 0
		k.Stream(func(*sock.Snapshot) error {
			if calls++; calls == 2 {
				panic("reader")
			}
			return nil
		})
	}()
	again, err = streamed(t, k, -1, nil)
	if err != nil || !slices.Equal(slices.Concat(again...), want) {
		t.Errorf("the stream after a reader's panic: %d sockets, %v; want the %d of the first", len(slices.Concat(again...)), err, len(want))
	}
}
