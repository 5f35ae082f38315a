// Package prefault maps the pages of a large new slice (a dump of 100k
// sockets is 10 MB, a million's 100 MB) in one call, before they are
// written.
//
// Why: a Go program gets its memory from the kernel in 4 KiB pages that
// fault in one at a time on first write, and on nested virtualisation
// (many cloud VMs) each fault costs 12 to 20 µs. The first poll of 110k
// sockets wrote 13,000 fresh pages, a third of the time to the
// dashboard's first frame. MADV_POPULATE_WRITE (Linux 5.14) maps a range
// in one call: on an AMD EPYC guest, the dashboard's first 0.6 s at 110k
// sockets went from 13,000 faults and 400 ms of CPU to 4,600 and 325 ms.
//
// Huge pages were tried too (MADV_HUGEPAGE before populating). They made
// the first poll cheaper still, but every later poll slower: the
// dashboard's steady CPU at 110k rose from 12% to 16% of a core on that
// guest. So pages stay the kernel's choice.
//
// Mapped is not yet cheap on such a guest: the hypervisor still makes
// its own entry for each page at the program's first access, about 11 µs
// a page (measured: 88 MB populated in 15 ms, then written a byte a page
// in 250 ms, and again in 0.7 ms). A read does it as well as a write, and
// from any thread. So, as the JVM's AlwaysPreTouch does with threads of
// its own, a goroutine reads one byte of each page, first to last, while
// the caller writes them. A dump, whose kernel fills a page in 40 µs,
// finds every page ready: the first poll of a million sockets went from
// 1.17 to 0.89 s (four runs each). A writer as fast as the reader
// shares the work with it. On a machine where first access costs
// nothing, the reader takes a millisecond of an idle processor per
// 100 MB. With one processor (the dashboard after its first frame) there
// is none idle, and no reader.
//
// The advice never changes what the memory holds: it maps the
// zero-filled pages a first write would have, and leaves mapped ones as
// they are. A kernel without it refuses with EINVAL; the pages then fault
// in on first write as before, and prefault stops asking.
package prefault

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MinBytes is the least Make maps ahead: smaller slices mostly come from
// memory the heap has touched already, and a call costs more than the few
// faults it would save.
const MinBytes = 1 << 20

// madvPopulateWrite is MADV_POPULATE_WRITE (include/uapi/asm-generic/mman-common.h).
const madvPopulateWrite = 23

// refused holds the kernel's first refusal; once set, Make only makes.
var refused atomic.Pointer[error]

// Make returns make([]T, n, c) with the pages of its first use elements
// mapped when they are at least MinBytes. use is what the caller is about
// to write: the room beyond it stays unmapped until it is needed, so that
// it costs no memory.
func Make[T any](n, c, use int) []T {
	s := make([]T, n, c)
	if use = min(use, c); use > 0 {
		ready(unsafe.Pointer(unsafe.SliceData(s)), uintptr(use)*unsafe.Sizeof(s[:1][0]))
	}
	return s
}

// Grow returns s with room for at least more elements beyond its length:
// s itself if it has it, else a copy in a new slice (a quarter more room,
// as append gives a large slice; the next more elements mapped).
// Appending element by element to a slice that grows by itself writes
// each new page on first touch, and copies more.
func Grow[T any](s []T, more int) []T {
	if cap(s)-len(s) >= more {
		return s
	}
	g := Make[T](len(s), max(cap(s)+cap(s)/4, len(s)+more), len(s)+more)
	copy(g, s)
	return g
}

// Err returns why the kernel refused the advice, nil when it has not.
func Err() error {
	if p := refused.Load(); p != nil {
		return *p
	}
	return nil
}

// ready maps the whole pages of [p, p+size).
func ready(p unsafe.Pointer, size uintptr) {
	if size < MinBytes || refused.Load() != nil {
		return
	}
	page := uintptr(unix.Getpagesize())
	start := (uintptr(p) + page - 1) &^ (page - 1)
	end := (uintptr(p) + size) &^ (page - 1)
	if end <= start {
		return
	}
	// The range is inside a live Go object (p is its first byte), and
	// madvise neither moves nor frees it.
	b := unsafe.Slice((*byte)(unsafe.Add(p, start-uintptr(p))), end-start)
	if err := unix.Madvise(b, madvPopulateWrite); err != nil {
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			return // a signal or a transient shortage: ask again next time
		}
		// EINVAL: a kernel before 5.14. ENOMEM: memory is short, and
		// the pages will fault in (or fail) as they would have anyway.
		// Nothing is lost but the head start.
		err = fmt.Errorf("madvise(MADV_POPULATE_WRITE): %w", err)
		refused.CompareAndSwap(nil, &err)
		return
	}
	if runtime.GOMAXPROCS(0) < 2 {
		// No processor to spare: a reader would only take turns with
		// the writer, and with the goroutines that answer the user.
		return
	}
	readers.Add(1)
	go func() {
		defer readers.Done()
		// b keeps the slice's memory alive until every page is read.
		s, n := readPages(b, page)
		sum.Add(uint64(s))
		pagesRead.Add(int64(n))
	}()
}

// pagesRead counts the pages the readers have read (for tests).
var pagesRead atomic.Int64

// readers counts the page readers still running (tests wait for them).
var readers sync.WaitGroup

// sum takes what readPages read, so that its reads are not dropped as
// unused.
var sum atomic.Uint64

// readPages reads a byte of each page of b and returns their sum and
// how many it read.
//
// The caller may be writing b meanwhile: the bytes read are thrown away,
// and reading a byte never changes what a write leaves. The race
// detector is told not to look (go:norace), as it would report every
// page the two touch in turn.
//
//go:norace
func readPages(b []byte, page uintptr) (s byte, n int) {
	for i := 0; i < len(b); i += int(page) {
		s += b[i]
		n++
	}
	return s, n
}
