package main

import (
	"strings"
	"testing"

	"github.com/sockscope/sockscope/pkg/nstest"
)

// -o picks and orders list's columns; JSON keeps every key whatever -o
// says; a bad column name is bad input naming it.
func TestIntegrationListColumns(t *testing.T) {
	ns := nstest.New(t)
	nstest.RunSeed(t, ns, nstest.SeedOptions{})
	waitSeed(t, ns)
	r := sockscope(t, "list", "-N", ns.Name, "-o", "retrans,state,local", ":9000")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) < 3 || strings.Join(strings.Fields(lines[0]), " ") != "Retrans State Local" {
		t.Fatalf("list -o: exit %d, stderr %q:\n%s", r.code, r.stderr, r.stdout)
	}
	listeners := 0
	for _, l := range lines[1 : len(lines)-1] {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "0" || !strings.Contains(f[2], ":") {
			t.Errorf("row %q: want retrans, state, local address", l)
		}
		if len(f) == 3 && f[1] == "LISTEN" && strings.HasSuffix(f[2], ":9000") {
			listeners++
		}
	}
	if listeners == 0 {
		t.Errorf("no LISTEN row on local port 9000:\n%s", r.stdout)
	}
	// -p adds the process column when -o does not name it.
	p := sockscope(t, "list", "-N", ns.Name, "-p", "-o", "state", "state", "listening")
	if h := strings.Fields(strings.SplitN(p.stdout, "\n", 2)[0]); len(h) != 2 || h[1] != "Process" {
		t.Errorf("list -p -o state: header %q, want State Process", h)
	}
	// A process column named in -o looks the owners up without -p: a
	// column of "-" would say none is known.
	o := sockscope(t, "list", "-N", ns.Name, "-o", "state,process", "state", "listening")
	olines := strings.Split(strings.TrimSuffix(o.stdout, "\n"), "\n")
	if o.code != 0 || len(olines) < 3 {
		t.Fatalf("list -o state,process: exit %d, stderr %q:\n%s", o.code, o.stderr, o.stdout)
	}
	for _, l := range olines[1 : len(olines)-1] {
		if f := strings.Fields(l); len(f) != 2 || !strings.Contains(f[1], "/") {
			t.Errorf("list -o state,process: row %q, want a state and its owner's pid/command", l)
		}
	}
	rows := listJSON(t, "-N", ns.Name, "-o", "state", ":9000")
	if len(rows) == 0 {
		t.Fatal("no JSON rows")
	}
	bad := sockscope(t, "list", "-o", "state,rtt")
	if bad.code != 2 || strings.Count(bad.stderr, "\n") != 1 || !strings.Contains(bad.stderr, `"rtt"`) {
		t.Errorf("list -o state,rtt: exit %d, stderr %q; want exit 2 naming rtt", bad.code, bad.stderr)
	}
}
