package nstest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Subscriptions counts the sock_diag sockets process pid holds in the
// namespace that listen to multicast groups: the destroy announcements'
// subscriptions, one per namespace a live mode reads while it takes ends
// from them.
func (n *NS) Subscriptions(t testing.TB, pid int) int {
	t.Helper()
	held := map[string]bool{}
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(fd)
		if err != nil {
			continue // closed since the listing
		}
		if ino, ok := strings.CutPrefix(l, "socket:["); ok {
			held[strings.TrimSuffix(ino, "]")] = true
		}
	}
	count := 0
	// /proc/thread-self/net is the namespace of the reading thread.
	if err := n.Do(func() error {
		f, err := os.Open("/proc/thread-self/net/netlink")
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[1] != "4" {
				continue
			}
			groups, err := strconv.ParseUint(fields[3], 16, 32)
			if err != nil {
				return fmt.Errorf("netlink table: groups %q: %w", fields[3], err)
			}
			if groups != 0 && held[fields[9]] {
				count++
			}
		}
		return sc.Err()
	}); err != nil {
		t.Fatalf("reading the netlink sockets of %s: %v", n.Name, err)
	}
	return count
}
