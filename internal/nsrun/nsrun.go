// Package nsrun runs a function inside another network namespace.
//
// Linux keeps the network namespace per thread: f runs on a thread that
// joins the namespace and is never given back to the Go scheduler (it
// exits with its goroutine), so no other goroutine ever runs inside the
// namespace by accident. Sockets and files f opens keep answering for that
// namespace after it returns.
package nsrun

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Run calls f inside the namespace at path ("" runs f here, directly).
func Run(path string, f func() error) error {
	if path == "" {
		return f()
	}
	h, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	defer h.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("entering network namespace %s: %w", path, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
