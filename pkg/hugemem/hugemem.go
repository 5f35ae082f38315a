// Package hugemem makes the large slices of a big socket table (a dump of
// 100k sockets is 10 MB, a million's 100 MB) ready for writing in one
// call, in 2 MiB pages where the kernel has them.
//
// Why: a Go program gets its memory from the kernel in 4 KiB pages that
// fault in one at a time on first write. On nested virtualisation (many
// cloud VMs) such a fault costs 12 to 20 µs, and the first poll of 110k
// sockets wrote 13,000 fresh pages: a third of the time to the
// dashboard's first frame. The Go heap gets no huge pages when the
// kernel's transparent huge pages are "madvise" (the distributions'
// default), and the runtime leaves them alone. So for a slice of several
// MB just made, Make advises MADV_HUGEPAGE for the 2 MiB-aligned part of
// it and MADV_POPULATE_WRITE (Linux 5.14) to map it at once. Measured on
// an AMD EPYC guest: 16 MB written page by page, 61 to 88 ms; after the
// two advices, 0.5 to 15 ms.
//
// Neither advice changes what the memory holds: POPULATE_WRITE maps the
// zero-filled pages a first write would have, and leaves mapped ones as
// they are. A kernel without either (or with transparent huge pages off)
// refuses with EINVAL; the pages then fault in on first write as before,
// and hugemem stops asking.
package hugemem

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the x86-64 and arm64 (4 KiB base) PMD size: the kernel maps
// a huge page only over a whole aligned 2 MiB of one mapping.
const hugePage = 2 << 20

// MinBytes is the smallest slice Make readies: a slice smaller than two
// huge pages may hold none whole, and small slices come from memory the
// heap has mostly touched already.
const MinBytes = 2 * hugePage

// madvPopulateWrite is MADV_POPULATE_WRITE (include/uapi/asm-generic/mman-common.h).
const madvPopulateWrite = 23

// hugeRefused and populateRefused hold the kernel's first refusal of
// each advice; once one is set, that advice is no longer asked for.
var hugeRefused, populateRefused atomic.Pointer[error]

// Make returns make([]T, n, c), its memory mapped for writing when it is
// at least MinBytes.
func Make[T any](n, c int) []T {
	s := make([]T, n, c)
	if c > 0 {
		ready(unsafe.Pointer(unsafe.SliceData(s)), uintptr(c)*unsafe.Sizeof(s[:1][0]))
	}
	return s
}

// Grow returns s with room for at least more elements beyond its length:
// s itself if it has it, else a copy in a slice of twice the room, made
// by Make. Appending element by element to a slice that doubles by
// itself writes each new page on first touch, and copies more.
func Grow[T any](s []T, more int) []T {
	if cap(s)-len(s) >= more {
		return s
	}
	g := Make[T](len(s), max(2*cap(s), len(s)+more))
	copy(g, s)
	return g
}

// Err returns why the kernel refused either advice, nil when it has not.
func Err() error {
	var errs []error
	for _, p := range []*atomic.Pointer[error]{&hugeRefused, &populateRefused} {
		if e := p.Load(); e != nil {
			errs = append(errs, *e)
		}
	}
	return errors.Join(errs...)
}

// ready advises [p, p+size): huge pages for its 2 MiB-aligned interior,
// and every page of it mapped at once (the edges in small pages, which
// saves the faults if not the zeroing).
func ready(p unsafe.Pointer, size uintptr) {
	if size < MinBytes {
		return
	}
	page := uintptr(unix.Getpagesize())
	if hugeRefused.Load() == nil {
		if b := within(p, size, hugePage); b != nil {
			if err := unix.Madvise(b, unix.MADV_HUGEPAGE); err != nil {
				refuse(&hugeRefused, fmt.Errorf("madvise(MADV_HUGEPAGE): %w", err))
			}
		}
	}
	if populateRefused.Load() == nil {
		if b := within(p, size, page); b != nil {
			if err := unix.Madvise(b, madvPopulateWrite); err != nil {
				// EINVAL: a kernel before 5.14. ENOMEM: memory is short,
				// and the pages will fault in (or fail) as they would
				// have anyway. Nothing is lost but the head start.
				refuse(&populateRefused, fmt.Errorf("madvise(MADV_POPULATE_WRITE): %w", err))
			}
		}
	}
}

// within returns the align-aligned part of [p, p+size) as a byte slice,
// nil when there is none. The range is inside a live Go object (p is its
// first byte), and madvise neither moves nor frees it.
func within(p unsafe.Pointer, size, align uintptr) []byte {
	start := (uintptr(p) + align - 1) &^ (align - 1)
	end := (uintptr(p) + size) &^ (align - 1)
	if end <= start {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Add(p, start-uintptr(p))), end-start)
}

// refuse keeps the first refusal in to.
func refuse(to *atomic.Pointer[error], err error) {
	if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
		return // a signal or a transient shortage: ask again next time
	}
	to.CompareAndSwap(nil, &err)
}
