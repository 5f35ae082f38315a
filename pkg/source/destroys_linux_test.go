package source

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/nstest"
	"golang.org/x/sys/unix"
)

// A fault in the destroy-event reader closes its channel and is kept for
// DestroysErr, so the monitor can say it once; it neither crashes the
// process nor vanishes.
func TestIntegrationDestroysFaultIsKept(t *testing.T) {
	ns := nstest.New(t)
	k, err := Open(filter.Compile(nil, filter.Options{}), Options{Netns: ns.NS(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := k.Destroys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if k.DestroysErr() != nil {
		t.Fatalf("a fault before any: %v", k.DestroysErr())
	}
	// The reader matches each announcement against the filter: without
	// one, it faults on the first.
	k.prog.Store(nil)
	ap := netip.MustParseAddrPort("127.0.0.1:9000")
	if err := ns.Do(func() error {
		lfd, err := nstest.Listen(ap, false)
		if err != nil {
			return err
		}
		defer unix.Close(lfd)
		fd, err := nstest.Dial(ap)
		if err != nil {
			return err
		}
		return unix.Close(fd)
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-ch:
		for ok {
			_, ok = <-ch
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the announcements did not stop")
	}
	if err := k.DestroysErr(); err == nil || !strings.Contains(err.Error(), "destroy events stopped") {
		t.Errorf("DestroysErr %v, want the fault", err)
	}
}
