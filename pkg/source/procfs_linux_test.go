package source

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/nstest"
	"github.com/sockscope/sockscope/pkg/sock"
)

// The /proc fallback, forced, sees the same sockets as sock_diag: same
// states, addresses, owners and TIME_WAIT timers, and filters the same way.
func TestIntegrationProcfsMatchesNetlink(t *testing.T) {
	ns := nstest.New(t)
	population(t, ns)
	settle(t, ns)
	row := func(s *sock.Socket) string {
		return fmt.Sprintf("%v %v %v %v uid=%d inode=%d timer=%v", s.Family, s.State, s.Local, s.Peer, s.UID, s.Inode, s.Timer)
	}
	for _, f := range []string{"", ":9000 state time-wait", "src 127.0.0.2", "state established dport = :8081", "exclude listen"} {
		e, err := filter.Parse(strings.Fields(f))
		if err != nil {
			t.Fatal(err)
		}
		prog := filter.Compile(e, filter.Options{})
		var rows [2][]string
		var tw [2]map[string]uint32
		var read [2]time.Time // before the first read, after the second
		for i, procfs := range []bool{false, true} {
			k, err := Open(prog, Options{Netns: ns.NS(t), Procfs: procfs})
			if err != nil {
				t.Fatal(err)
			}
			if (k.Notice != "") != procfs {
				t.Errorf("procfs %v: notice %q", procfs, k.Notice)
			}
			snap, err := k.Snapshot()
			k.Close()
			if err != nil {
				t.Fatal(err)
			}
			// From before sock_diag's read to after /proc's.
			read[i] = snap.Time
			if procfs {
				read[i] = time.Now()
			}
			tw[i] = map[string]uint32{}
			for j := range snap.Sockets {
				s := &snap.Sockets[j]
				rows[i] = append(rows[i], row(s))
				if s.State == sock.TimeWait {
					tw[i][row(s)] = s.Expires
				}
			}
			slices.Sort(rows[i])
		}
		if !slices.Equal(rows[0], rows[1]) {
			t.Errorf("filter %q: sock_diag and /proc differ:\n%s\n---\n%s", f, strings.Join(rows[0], "\n"), strings.Join(rows[1], "\n"))
		}
		// /proc was read later, by as long as the two reads lay apart (on
		// a busy machine, more than 100 ms), and counts in clock ticks
		// (10 ms) where sock_diag counts in jiffies.
		apart := uint32(read[1].Sub(read[0]).Milliseconds()) + 20
		for r, e0 := range tw[0] {
			if e1 := tw[1][r]; e1 > e0 || e0-e1 > apart {
				t.Errorf("%s: TIME_WAIT timer %d ms by sock_diag, %d by /proc, read %d ms later", r, e0, e1, apart-20)
			}
		}
		if f == "" && len(rows[0]) < 20 {
			t.Errorf("only %d sockets compared", len(rows[0]))
		}
	}
}
