package prefault

import (
	"os"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resident counts the pages of b's page-aligned part that are mapped
// (mincore), and how many pages that part has.
func resident(t *testing.T, b []byte) (in, pages int) {
	t.Helper()
	page := os.Getpagesize()
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	skip := int((uintptr(page) - p%uintptr(page)) % uintptr(page))
	part := b[skip : skip+(len(b)-skip)/page*page]
	vec := make([]byte, len(part)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(part))), uintptr(len(part)), uintptr(unsafe.Pointer(unsafe.SliceData(vec)))); errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	for _, v := range vec {
		in += int(v & 1)
	}
	return in, len(vec)
}

// TestMakeMapsAtOnce checks, on the running kernel, that a large slice
// comes back with its pages mapped before any write: the faults it saves
// are the point of the package.
func TestMakeMapsAtOnce(t *testing.T) {
	b := Make[byte](0, 24<<20, 16<<20)
	if err := Err(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the kernel refused the advice (CI's kernels take both): %v", err)
		}
		t.Skipf("the kernel refused the advice: %v", err)
	}
	in, pages := resident(t, b[:16<<20])
	if in != pages {
		t.Errorf("%d of the first %d pages mapped after Make, want all", in, pages)
	}
	if len(b) != 0 || cap(b) != 24<<20 {
		t.Errorf("Make(0, 24 MiB): len %d cap %d", len(b), cap(b))
	}
}

// TestAdviceKeepsContents checks that readying memory already written
// leaves every byte as it was, and that Grow copies what it holds.
func TestAdviceKeepsContents(t *testing.T) {
	b := make([]byte, 9<<20+123)
	for i := range b {
		b[i] = byte(i*7 + i>>12)
	}
	ready(unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b)))
	for i := range b {
		if b[i] != byte(i*7+i>>12) {
			t.Fatalf("byte %d changed by the advice: %#x", i, b[i])
		}
	}
	g := Grow(b, 1)
	if len(g) != len(b) || cap(g) < cap(b)+cap(b)/4 {
		t.Fatalf("Grow: len %d cap %d, want %d and at least %d", len(g), cap(g), len(b), cap(b)+cap(b)/4)
	}
	for i := range g {
		if g[i] != b[i] {
			t.Fatalf("byte %d not copied by Grow", i)
		}
	}
	if s := Grow(g, 1); unsafe.SliceData(s) != unsafe.SliceData(g) {
		t.Errorf("Grow made a new slice with room to spare")
	}
}

// TestPagesReadWhileWritten checks that after Make a reader goes over
// every page of the part mapped, and that a writer working meanwhile
// finds every byte it wrote: the reads are thrown away. Under -race it
// also checks that the reader is not reported (go:norace). With one
// processor there is no reader.
func TestPagesReadWhileWritten(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	readers.Wait()
	before := pagesRead.Load()
	Make[byte](12<<20, 12<<20, 12<<20)
	readers.Wait()
	if n := pagesRead.Load() - before; n != 0 {
		t.Errorf("with one processor a reader read %d pages, want none", n)
	}
	runtime.GOMAXPROCS(2)
	before = pagesRead.Load()
	b := Make[byte](12<<20, 12<<20, 12<<20)
	if err := Err(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the kernel refused the advice (CI's kernels take both): %v", err)
		}
		t.Skipf("the kernel refused the advice: %v", err)
	}
	for i := range b {
		b[i] = byte(i>>12) ^ byte(i)
	}
	readers.Wait()
	page := os.Getpagesize()
	// The whole pages of b: all of them, or one fewer if b does not start
	// on a page.
	want := int64(len(b) / page)
	if uintptr(unsafe.Pointer(unsafe.SliceData(b)))%uintptr(page) != 0 {
		want--
	}
	if got := pagesRead.Load() - before; got != want {
		t.Errorf("the reader read %d pages of a 12 MiB slice, want %d", got, want)
	}
	for i := range b {
		if b[i] != byte(i>>12)^byte(i) {
			t.Fatalf("byte %d is %#x after the reader, want %#x", i, b[i], byte(i>>12)^byte(i))
		}
	}
}
