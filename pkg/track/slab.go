package track

import "github.com/sockscope/sockscope/pkg/prefault"

// slab hands out records from large slices and takes back those of gone
// sockets for the next ones. One record per allocation made the first
// poll of 110k sockets 110k small objects on fresh pages (a third of the
// page faults before its first frame), and each garbage collection then
// marked every one of them. A slab is one object, its memory mapped in
// one call (prefault).
//
// The records' memory is the largest table's the tracker has held: a
// record freed goes back to the free list, not to the heap.
type slab struct {
	free []*record
	rest []record // what is left of the latest slice
	live int      // records handed out and not taken back
}

// minSlab is the smallest slice a slab takes when it runs out: 24 KiB.
const minSlab = 256

// get returns a record that nothing refers to; its fields are zero.
func (s *slab) get() *record {
	s.live++
	if n := len(s.free); n > 0 {
		r := s.free[n-1]
		s.free = s.free[:n-1]
		return r
	}
	if len(s.rest) == 0 {
		// An eighth more of what is held, as a table grows.
		n := max(minSlab, s.live/8)
		s.reserve(n, n)
	}
	r := &s.rest[0]
	s.rest = s.rest[1:]
	return r
}

// put takes back r, whose socket is gone: nothing may refer to it any
// more (the tracker drops it from its map and never keeps a gone
// record's address). Clearing it lets go of its process and history.
func (s *slab) put(r *record) {
	*r = record{}
	s.free = append(s.free, r)
	s.live--
}

// reserve makes room for n more records without another allocation, the
// memory of the first use of them mapped at once.
func (s *slab) reserve(n, use int) {
	if len(s.rest) < n {
		s.rest = prefault.Make[record](n, n, use)
	}
}
