package nsfind

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sockscope/sockscope/pkg/nstest"
	"golang.org/x/sys/unix"
)

// kernelAtLeast reports whether the running kernel is major.minor or
// later.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(unix.ByteSliceToString(u.Release[:]), ".", 3)
	if len(parts) < 2 {
		t.Fatalf("kernel release %q", u.Release)
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		t.Fatalf("kernel release %q", u.Release)
	}
	return ma > major || ma == major && mi >= minor
}

// listns(2) is there from Linux 6.19: it lists a namespace held only by a
// name, and the ID it gives opens that namespace. Before, ListNet says
// ErrNoListns and nothing else, so the callers fall back to walking
// /proc.
func TestListNet(t *testing.T) {
	ns := nstest.New(t)
	id, err := IDOf(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	ids, err := ListNet()
	if !kernelAtLeast(t, 6, 19) {
		if !errors.Is(err, ErrNoListns) || !errors.Is(err, unix.ENOSYS) || ids != nil {
			t.Fatalf("listns before Linux 6.19: %v, %v; want ENOSYS, said as ErrNoListns", ids, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("listns on Linux 6.19 or later: %v", err)
	}
	if !slices.Contains(ids, id) || !slices.IsSorted(ids) {
		t.Fatalf("listns gave %d IDs, sorted %v; want %s's ID %d among them", len(ids), slices.IsSorted(ids), ns.Name, id)
	}
	ino, err := InodeOfID(id)
	if err != nil {
		t.Fatal(err)
	}
	if want := ns.NS(t).Inode; ino != want {
		t.Errorf("ID %d opens net:[%d]; want net:[%d]", id, ino, want)
	}
}
