package sockdiag

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"github.com/vishvananda/netns"
)

// sockstat reads the namespace's TCP socket counts from /proc/net/sockstat
// and sockstat6: a cheap total ("N sockets in the namespace") that does not
// need an unfiltered dump. The files are opened inside the namespace once;
// a proc/net file keeps answering for the namespace it was opened in.
type sockstat struct {
	v4, v6 *os.File
	buf    []byte
}

func openSockstat(target netns.NsHandle) (*sockstat, error) {
	var st sockstat
	open := func() error {
		var err error
		if st.v4, err = os.Open("/proc/thread-self/net/sockstat"); err != nil {
			return err
		}
		st.v6, err = os.Open("/proc/thread-self/net/sockstat6")
		if err != nil {
			st.v4.Close()
		}
		return err
	}
	if !target.IsOpen() {
		if err := open(); err != nil {
			return nil, err
		}
		st.buf = make([]byte, 1024)
		return &st, nil
	}
	errc := make(chan error, 1)
	go func() {
		// The thread is left locked, so it dies with this goroutine
		// instead of returning to the pool inside another namespace.
		runtime.LockOSThread()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		errc <- open()
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	st.buf = make([]byte, 1024)
	return &st, nil
}

// total returns the TCP sockets in use (IPv4 and IPv6, listeners included)
// plus the TIME_WAIT entries.
func (s *sockstat) total() (int, error) {
	v4, err := s.field(s.v4, "TCP:", "inuse")
	if err != nil {
		return 0, err
	}
	tw, err := s.field(s.v4, "TCP:", "tw")
	if err != nil {
		return 0, err
	}
	v6, err := s.field(s.v6, "TCP6:", "inuse")
	if err != nil {
		return 0, err
	}
	return v4 + tw + v6, nil
}

func (s *sockstat) field(f *os.File, line, key string) (int, error) {
	n, err := f.ReadAt(s.buf, 0)
	if n == 0 && err != nil {
		return 0, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	for _, l := range bytes.Split(s.buf[:n], []byte("\n")) {
		if !bytes.HasPrefix(l, []byte(line)) {
			continue
		}
		fields := bytes.Fields(l[len(line):])
		for i := 0; i+1 < len(fields); i += 2 {
			if string(fields[i]) == key {
				return strconv.Atoi(string(fields[i+1]))
			}
		}
	}
	return 0, fmt.Errorf("reading %s: no %s %s", f.Name(), line, key)
}

func (s *sockstat) close() {
	s.v4.Close()
	s.v6.Close()
}
