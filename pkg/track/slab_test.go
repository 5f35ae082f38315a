package track

import (
	"testing"
	"time"
	"unsafe"

	"github.com/sockscope/sockscope/pkg/procs"
	"github.com/sockscope/sockscope/pkg/sock"
)

// TestRecordsReused checks that a gone socket's record, taken back by the
// slab and handed to the next new socket, carries nothing of the old
// one: no owner, no history, no times.
func TestRecordsReused(t *testing.T) {
	owners := map[uint32]procs.Process{11: {PID: 4242, Command: "server"}}
	lookup := lookupIn(owners)
	tr := New(lookup)
	tr.Update(snapAt(0, est(1, 11)))
	closing := est(1, 11)
	closing.State = sock.CloseWait
	tr.Update(snapAt(time.Second, closing)) // a transition: a history
	if h := tr.History(Key{Cookie: 1}); len(h) != 1 {
		t.Fatalf("history of 1: %v, want one change", h)
	}
	live := tr.slab.live
	tr.Update(snapAt(2 * time.Second)) // 1 is gone: its record is free
	if len(tr.slab.free) != 1 || tr.slab.live != live-1 {
		t.Fatalf("after a socket went: %d free, %d live; want 1 and %d", len(tr.slab.free), tr.slab.live, live-1)
	}
	freed := tr.slab.free[0]
	v := tr.Update(snapAt(3*time.Second, est(2, 0)))
	if r, _ := tr.recs.Get(Key{Cookie: 2}); r != freed {
		t.Fatalf("the new socket's record is not the freed one: the slab does not reuse")
	}
	e := entry(t, v, 2)
	if e.Process != nil || e.AgeSource != AgeFirstSeen || e.Age != 0 || !e.FirstSeen().Equal(t0.Add(3*time.Second)) {
		t.Errorf("a new socket in a reused record: process %v, age %v (%v), first seen %v", e.Process, e.Age, e.AgeSource, e.FirstSeen())
	}
	if h := tr.History(Key{Cookie: 2}); len(h) != 0 {
		t.Errorf("a new socket in a reused record has the old one's history: %v", h)
	}
	if len(v.Events) != 1 || v.Events[0].Kind != EventNew {
		t.Errorf("events %+v, want one new socket", v.Events)
	}
}

// TestSlabGrows checks that records past the first poll's reservation come
// from new slices, and that every record handed out is distinct.
func TestSlabGrows(t *testing.T) {
	var s slab
	s.reserve(3, 3)
	seen := map[*record]bool{}
	for i := range 3 + 2*minSlab {
		r := s.get()
		if seen[r] {
			t.Fatalf("record %d handed out twice", i)
		}
		seen[r] = true
		r.inode = uint32(i) // a write to each: the race detector sees overlap
	}
	if s.live != 3+2*minSlab {
		t.Errorf("live %d, want %d", s.live, 3+2*minSlab)
	}
}

// A record is 88 bytes: a million sockets hold a million of them, and
// every 8 bytes more is 8 MB more.
func TestRecordSize(t *testing.T) {
	if n := unsafe.Sizeof(record{}); n > 88 {
		t.Errorf("a record takes %d bytes, want at most 88", n)
	}
}
