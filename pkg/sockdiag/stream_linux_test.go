package sockdiag

import (
	"errors"
	"slices"
	"testing"
	"unsafe"

	"github.com/sockscope/sockscope/pkg/nstest"
	"github.com/sockscope/sockscope/pkg/sock"
)

// listeners opens n IPv4 and n IPv6 listeners in ns, closed at the end of
// the test: 2n sockets, several kernel batches.
// Stream hands a dump on a kernel batch at a time: the same sockets as
// Dump, over several calls. An error of the callback ends the dump, comes
// back as it is, and leaves the collector ready for the next dump.
func TestIntegrationStream(t *testing.T) {
	ns := nstest.New(t)
	const n = 1000
	ns.Listeners(t, n)
	c := openIn(t, ns.Name)
	want := cookies(dump(t, c, all()))
	if len(want) != 2*n {
		t.Fatalf("Dump found %d sockets, want %d", len(want), 2*n)
	}

	var batch sock.Snapshot
	var got []string
	calls := 0
	err := c.Stream(all(), &batch, 0, func(b *sock.Snapshot) error {
		if b != &batch {
			t.Error("the callback got another snapshot than the batch")
		}
		calls++
		got = append(got, cookies(b)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("Stream gave %d sockets, Dump %d; they differ", len(got), len(want))
	}
	if calls < 2 {
		t.Errorf("%d sockets in %d call(s): not a batch at a time", len(got), calls)
	}
	if batch.Dumped != 2*n || len(batch.Sockets) != 0 {
		t.Errorf("after the stream: Dumped %d (want %d), %d sockets left in the batch", batch.Dumped, 2*n, len(batch.Sockets))
	}

	// Each batch is made once at its size: a stream that gathers 700
	// sockets a call hands them on in the one array it started with.
	const least = 700
	var first *sock.Socket
	calls = 0
	err = c.Stream(all(), &batch, least, func(b *sock.Snapshot) error {
		calls++
		if first == nil {
			first = unsafe.SliceData(b.Sockets)
		}
		if unsafe.SliceData(b.Sockets) != first || cap(b.Sockets) < least+maxPerBatch {
			t.Errorf("call %d: the batch was made again (%d sockets, room for %d)", calls, len(b.Sockets), cap(b.Sockets))
		}
		return nil
	})
	if err != nil || calls < 2 {
		t.Errorf("a stream of at least %d a call: %v after %d call(s)", least, err, calls)
	}

	enough := errors.New("enough")
	calls = 0
	err = c.Stream(all(), &batch, 0, func(*sock.Snapshot) error {
		calls++
		return enough
	})
	if err != enough || calls != 1 {
		t.Errorf("callback's error: Stream returned %v after %d call(s), want it as it is after 1", err, calls)
	}
	if again := cookies(dump(t, c, all())); !slices.Equal(again, want) {
		t.Errorf("the dump after a stopped stream found %d sockets, want %d", len(again), len(want))
	}
}
