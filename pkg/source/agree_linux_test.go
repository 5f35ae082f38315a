package source

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/nstest"
	"golang.org/x/sys/unix"
)

// population builds a varied, quiet socket table in ns: the tutorial's
// experiment on 9000, a dual-stack listener whose IPv4 clients show up as
// v4-mapped IPv6 sockets, connections to 127.0.0.2 and over ::1.
func population(t *testing.T, ns *nstest.NS) {
	nstest.RunSeed(t, ns, nstest.SeedOptions{})
	var fds []int
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	err := ns.Do(func() error {
		pairs := []struct{ listen, dial string }{
			{"[::]:8081", "127.0.0.1:8081"},
			{"[::]:8081", "[::1]:8081"},
			{"127.0.0.2:7000", "127.0.0.2:7000"},
			{"[::1]:6000", "[::1]:6000"},
			{"0.0.0.0:1023", "127.0.0.3:1023"},
		}
		listeners := map[string]int{}
		for _, p := range pairs {
			lfd, ok := listeners[p.listen]
			if !ok {
				var err error
				if lfd, err = nstest.Listen(netip.MustParseAddrPort(p.listen), false); err != nil {
					return err
				}
				listeners[p.listen] = lfd
				fds = append(fds, lfd)
			}
			for range 3 {
				c, err := nstest.Dial(netip.MustParseAddrPort(p.dial))
				if err != nil {
					return err
				}
				a, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
				if err != nil {
					return err
				}
				fds = append(fds, c, a)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("building the population: %v", err)
	}
}

func cookies(t *testing.T, k *Kernel) []uint64 {
	t.Helper()
	snap, err := k.Snapshot()
	if err != nil {
		t.Fatalf("snapshot for %q: %v", k.prog.Load(), err)
	}
	var out []uint64
	for _, s := range snap.Sockets {
		out = append(out, s.Cookie)
	}
	slices.Sort(out)
	return out
}

// kernelAndUserSpace opens two sources on ns for the same filter: one that
// lets the kernel filter, one that filters everything in user space.
func agree(t *testing.T, ns *nstest.NS, e filter.Expr) (n int) {
	t.Helper()
	kp := filter.Compile(e, filter.Options{})
	up := filter.Compile(e, filter.Options{UserSpace: true})
	k, err := Open(kp, Options{Netns: ns.NS(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	u, err := Open(up, Options{Netns: ns.NS(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	got, want := cookies(t, k), cookies(t, u)
	if !slices.Equal(got, want) {
		t.Errorf("filter %q: kernel path (states %b, bytecode %x, residual %v) selects %d sockets, user space %d",
			e, kp.States, kp.Bytecode, kp.Residual, len(got), len(want))
	}
	return len(want)
}

func settle(t *testing.T, ns *nstest.NS) {
	// Wait for the experiment's closes to finish so the table is still.
	e, err := filter.Parse([]string{"state time-wait or state fin-wait-2"})
	if err != nil {
		t.Fatal(err)
	}
	k, err := Open(filter.Compile(e, filter.Options{}), Options{Netns: ns.NS(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	deadline := time.Now().Add(2 * time.Second)
	for len(cookies(t, k)) != 3 {
		if time.Now().After(deadline) {
			t.Fatal("the experiment's sockets did not settle")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIntegrationKernelAndUserSpaceAgree(t *testing.T) {
	ns := nstest.New(t)
	population(t, ns)
	settle(t, ns)
	filters := []string{
		"", ":9000", "state time-wait", ":9000 state time-wait", "sport = :9000 state time-wait",
		"state listen", "exclude listen", "state connected", "state bucket", "state big",
		"sport = :8081", "dport = :8081", "sport != :8081", "sport < :1024", "sport <= :1023",
		"sport > :8080", "sport >= :8081", "dport gt :7000", "dport lt :7000",
		"src 127.0.0.1", "src 127.0.0.2", "src 127.0.0.0/8", "src ::1", "dst ::1", "src ::/0",
		"src 0.0.0.0/0", "src [::1]:6000", "dst 127.0.0.2:7000", "src *:8081", "src != 127.0.0.1",
		"src ::ffff:127.0.0.1", "dst ::ffff:127.0.0.0/104",
		"state listen or sport = :9000", "state established and ( dport = :8081 or dport = :6000 )",
		"not ( sport = :9000 or dport = :9000 )", "( state time-wait or state close-wait ) and src 127.0.0.1",
		"state listen and state time-wait",
	}
	// The namespace's total (from sockstat) is what an unfiltered dump sees.
	k, err := Open(filter.Compile(nil, filter.Options{}), Options{Netns: ns.NS(t), Totals: true})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := k.Snapshot()
	k.Close()
	if err != nil || snap.Total != len(snap.Sockets) || snap.Total == 0 {
		t.Errorf("total %d, unfiltered dump %d sockets (%v)", snap.Total, len(snap.Sockets), err)
	}
	counts := map[string]int{}
	for _, f := range filters {
		e, err := filter.Parse(strings.Fields(f))
		if err != nil {
			t.Fatalf("%q: %v", f, err)
		}
		counts[f] = agree(t, ns, e)
	}
	// Guard against a vacuous pass: the population is what we built.
	for f, want := range map[string]int{
		":9000 state time-wait": 2, "state listen": 6, "sport = :8081": 7, "src 127.0.0.2": 4, // clients of 127.0.0.2 leave from 127.0.0.1
		"dst 127.0.0.2:7000": 3, "src ::ffff:127.0.0.1": 3, "state listen and state time-wait": 0,
	} {
		if counts[f] != want {
			t.Errorf("%q selects %d sockets, want %d", f, counts[f], want)
		}
	}
}

// Random filters: the kernel accepts every program the compiler emits (it
// audits bytecode and answers EINVAL otherwise) and agrees with user space.
func TestIntegrationRandomFiltersAgree(t *testing.T) {
	ns := nstest.New(t)
	population(t, ns)
	settle(t, ns)
	r := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	ports := []int{9000, 8081, 7000, 6000, 1023, 1024, 0, 65535}
	hosts := []string{"127.0.0.1", "127.0.0.2", "127.0.0.0/8", "::1", "::/0", "::ffff:127.0.0.1", "[::1]:6000", "*:9000", "0.0.0.0/0"}
	states := []string{"listen", "time-wait", "established", "close-wait", "fin-wait-2", "connected", "bucket"}
	var gen func(depth int) string
	gen = func(depth int) string {
		k := r.IntN(9)
		if depth > 3 {
			k = r.IntN(5)
		}
		switch k {
		case 0:
			return fmt.Sprintf("%s %s :%d", []string{"sport", "dport"}[r.IntN(2)], []string{"=", "!=", "<", "<=", ">", ">="}[r.IntN(6)], ports[r.IntN(len(ports))])
		case 1:
			return fmt.Sprintf("%s %s", []string{"src", "dst"}[r.IntN(2)], hosts[r.IntN(len(hosts))])
		case 2:
			return "state " + states[r.IntN(len(states))]
		case 3:
			return "exclude " + states[r.IntN(len(states))]
		case 4:
			return fmt.Sprintf(":%d", ports[r.IntN(len(ports))])
		case 5, 6:
			return "( " + gen(depth+1) + " or " + gen(depth+1) + " )"
		case 7:
			return gen(depth+1) + " and " + gen(depth+1)
		default:
			return "not ( " + gen(depth+1) + " )"
		}
	}
	for range 150 {
		f := gen(0)
		e, err := filter.Parse([]string{f})
		if err != nil {
			t.Fatalf("generated %q does not parse: %v", f, err)
		}
		agree(t, ns, e)
	}
}
