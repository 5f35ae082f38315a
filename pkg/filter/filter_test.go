package filter

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/sockscope/sockscope/pkg/sock"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const goldenPath = "../../testdata/filter/compile.golden"

// goldenInputs cover every form of the language; the golden file holds the
// canonical rendering and the compiled program of each.
var goldenInputs = []string{
	"",
	":9000",
	"state time-wait",
	":9000 state time-wait",
	"sport = :9000 state time-wait",
	"state time-wait sport = :9000",
	"state listen state time-wait",
	"state all exclude listen",
	"exclude time-wait",
	"state connected",
	"state synchronized",
	"state bucket",
	"state big",
	"state syn-recv",
	"state TIME_WAIT",
	"state listening",
	"sport = :80",
	"sport == 80",
	"sport eq :80",
	"sport :80",
	"sport != :80",
	"sport < :1024",
	"sport <= :1024",
	"sport > :1024",
	"sport >= :1024",
	"dport gt :1024",
	"( sport = :9000 or dport = :9000 )",
	"(sport=:9000||dport=:9000)",
	"sport >= :1000 and sport <= :2000",
	"sport >= :1000 && sport <= :2000",
	"sport = :22 & dport > :1023",
	"not sport = :22",
	"! ( sport = :22 or sport = :80 )",
	"src 127.0.0.1",
	"src = 127.0.0.1",
	"src != 127.0.0.1",
	"src 127.0.0.0/8",
	"src 10.1.2.3/8",
	"src 127.0.0.1:9000",
	"dst [::1]:9000",
	"dst ::1",
	"dst [::1]",
	"dst 2001:db8::/32",
	"dst [2001:db8::]/32",
	"src *:9000",
	"src :9000",
	"state listen or sport = :9000",
	"state established and ( dport = :443 or dport = :80 )",
	"state time-wait or state close-wait",
	"state listen and state time-wait",
	"not state listen",
	"exclude listen sport = :9000",
	// ss(8)'s examples and the rest of ss's own forms.
	"state established ( dport = :ssh or sport = :ssh )",
	"state fin-wait-1 ( sport = :http or sport = :https ) dst 193.233.7/24",
	"state established dst 10.0.0.0/8",
	"state established sport = :22 or dport = :22",
	"sport = :22 or sport = :80 dst 10/8",
	"sport = :1 or sport = :2 and sport = :3",
	"state unconnected",
	"state closed",
	"state syn-rcv",
	"excl listen",
	"sport geq :1024",
	"dport leq 1024",
	"sport neq :80",
	"sport lt :1024",
	"sport = :0x50",
	"sport = :010",
	"dport = :www",
	"sport = *",
	"dport != :*",
	"src 127.1",
	"dst 10/8",
	"dst 10.0.0.0/255.0.0.0",
	"src 10.0.0.0/8:80",
	"dst [2001:db8::/32]:443",
	"dst 2001:db8::/32:443",
	"dst ::1/0xff.0.0.0",
	"src any",
	"dst all:80",
	"src inet:127.0.0.1",
	"src inet:*",
	"sport = inet6::22",
	"dev 1",
	"dev != 1",
	"dev 2 or src 127.0.0.1",
	"family inet6",
}

func TestGolden(t *testing.T) {
	var b strings.Builder
	for _, in := range goldenInputs {
		e, err := Parse(strings.Fields(in))
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		p := Compile(e, Options{})
		fmt.Fprintf(&b, "%s\n  filter:   %s\n  states:   %s\n  families: %v\n  bytecode: %s\n  residual: %v\n",
			in, p, maskNames(p.States), p.Families, hex.EncodeToString(p.Bytecode), p.Residual)
	}
	if *update {
		if err := os.WriteFile(goldenPath, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("compiled filters differ from %s (go test -update rewrites it):\n%s", goldenPath, diff(string(want), got))
	}
}

func maskNames(m sock.StateMask) string {
	var n []string
	for st := sock.Established; st <= sock.NewSynRecv; st++ {
		if m.Has(st) {
			n = append(n, st.String())
		}
	}
	return strings.Join(n, ",")
}

func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n want %q\n  got %q", i+1, a, b)
		}
	}
	return ""
}

// The canonical rendering parses back to the same filter.
func TestRoundTrip(t *testing.T) {
	for _, in := range goldenInputs {
		e, err := Parse([]string{in})
		if err != nil || e == nil {
			continue
		}
		again, err := Parse([]string{e.String()})
		if err != nil {
			t.Errorf("%q renders as %q, which does not parse: %v", in, e, err)
			continue
		}
		if again.String() != e.String() {
			t.Errorf("%q: %q re-renders as %q", in, e, again)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		in    string
		token string
		col   int
		msg   string
	}{
		{"sport = :99999", ":99999", 9, "port out of range"},
		{"state tim-wait", "tim-wait", 7, "unknown TCP state"},
		{":9000 state tim-wait", "tim-wait", 13, "unknown TCP state"},
		{"sport = :abc", ":abc", 9, "not a port number"},
		{"sport =", "", 8, "missing a port"},
		{"( sport = :80", "(", 1, "unbalanced parenthesis"},
		{"sport = :80 )", ")", 13, "unbalanced parenthesis"},
		{"()", ")", 2, "unbalanced parenthesis"},
		{"sport ~ :80", "~", 7, "not a port number"},
		{"sport =< :80", "=<", 7, "unknown operator"},
		{"sport => :80", "=>", 7, "unknown operator"},
		{"sport = :80 &&& dport = :1", "&&&", 13, "operator without"},
		{"src 300.1.1.1", "300.1.1.1", 5, "not an IP address"},
		{"src 10.0.0.0/33", "10.0.0.0/33", 5, "not an address prefix"},
		{"src [::1", "[::1", 5, "missing ]"},
		{"src 127.0.0.1:", "127.0.0.1:", 5, "missing a port number"},
		{"src < 127.0.0.1", "<", 5, "addresses compare only"},
		{"src", "", 4, "missing a value"},
		{"state", "", 6, "missing a state"},
		{"and sport = :80", "and", 1, "missing a condition"},
		{"sport = :80 or", "", 15, "missing a condition"},
		{"not", "", 4, "missing a condition"},
		{"foo", "foo", 1, "unknown word"},
		{":", ":", 1, "missing a port number"},
		{"= :80", "=", 1, "operator without"},
		{"src fe80::1%eth0", "fe80::1%eth0", 5, "not an IP address"},
		{"src /tmp/.X11-unix/*", "/tmp/.X11-unix/*", 5, "unix socket path"},
		{"src unix:/tmp/x", "unix:/tmp/x", 5, "a unix address"},
		{"dst netlink:kernel", "netlink:kernel", 5, "a netlink address"},
		{"src localhost", "localhost", 5, "does not look up host names"},
		{"src inet7:10.0.0.1", "inet7:10.0.0.1", 5, `"inet7:" is not an address family`},
		{"dst inet66:[::1]:80", "inet66:[::1]:80", 5, `"inet66:" is not an address family`},
		{"dst ipv4:10.0.0.1:80", "ipv4:10.0.0.1:80", 5, `"ipv4:" is not an address family`},
		{"dst localhost:80", "localhost:80", 5, "does not look up host names"},
		{"src 08.0.0.1", "08.0.0.1", 5, "not an IP address"},
		{"dst default/8", "default/8", 5, "not an address prefix"},
		{"dst 10.0.0.0/255.0.255.0", "10.0.0.0/255.0.255.0", 5, "not an address prefix"},
		{"sport = :nosuchservice", ":nosuchservice", 9, "not a port number"},
		{"sport = :08", ":08", 9, "not a port number"},
		{"sport = :-1", ":-1", 9, "not a port number"},
		{"sport < *", "*", 9, "the any port"},
		{"sport = unix::80", "unix::80", 9, "a unix address"},
		{"src inet:127.0.0.1 dst ::1", "::1", 24, "not an inet address"},
		{"sport = inet6::22 src 10.0.0.1", "10.0.0.1", 23, "not an inet6 address"},
		{"fwmark = 0x1/0x3", "fwmark", 1, "socket mark"},
		{"sport = :80 mark 1", "mark", 13, "socket mark"},
		{"cgroup /system.slice", "cgroup", 1, "cgroup id"},
		{"not autobound", "autobound", 5, "autobound"},
		{"dev < 1", "<", 5, "interfaces compare only"},
		{"dev no-such-interface0", "no-such-interface0", 5, "no such network interface"},
		{"dev", "", 4, "missing a value"},
		{"family unix", "unix", 8, "unknown family"},
		{"state listen or", "", 16, "missing a condition"},
		{"state", "", 6, "missing a state"},
		{"excl bogus", "bogus", 6, "unknown TCP state"},
	} {
		_, err := Parse(strings.Fields(tc.in))
		var fe *Error
		if !errors.As(err, &fe) {
			t.Errorf("Parse(%q) = %v, want a filter error", tc.in, err)
			continue
		}
		if fe.Token != tc.token || fe.Col != tc.col || !strings.Contains(fe.Msg, tc.msg) {
			t.Errorf("Parse(%q): %v; want %q at column %d (%s)", tc.in, err, tc.token, tc.col, tc.msg)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q): error spans lines: %q", tc.in, err)
		}
	}
}

func TestSpec(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string
		err  string
	}{
		{Spec{Ports: []string{"9000,9001"}}, "sport = :9000 or dport = :9000 or sport = :9001 or dport = :9001", ""},
		{Spec{Ports: []string{"9000"}, Args: []string{"state", "time-wait"}}, "(sport = :9000 or dport = :9000) and (state time-wait)", ""},
		{Spec{States: []string{"listen,TIME_WAIT"}}, "state time-wait state listen", ""},
		{Spec{IPv6: true, Listening: true}, "family inet6 and (state listen)", ""},
		{Spec{IPv4: true, IPv6: true}, "all", ""},
		{Spec{Ports: []string{"abc"}}, "", `invalid --port value: not a port number: "abc" at column 1`},
		{Spec{Ports: []string{"80,70000"}}, "", `invalid --port value: port out of range 0-65535: "70000" at column 4`},
		{Spec{Ports: []string{"80,"}}, "", `invalid --port value: empty item in list: "80," at column 4`},
		{Spec{States: []string{"listen,tim-wait"}}, "", `invalid --state value: unknown TCP state: "tim-wait" at column 8`},
	} {
		e, err := tc.spec.Build()
		got := "all"
		if e != nil {
			got = e.String()
		}
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%+v: error %v, want %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%+v: %q, %v; want %q", tc.spec, got, err, tc.want)
		}
	}
}

func sk(fam sock.Family, st sock.State, local, peer string) *sock.Socket {
	return &sock.Socket{Family: fam, State: st, Local: sock.MustParseEndpoint(local), Peer: sock.MustParseEndpoint(peer)}
}

func TestMatch(t *testing.T) {
	tw := sk(sock.IPv4, sock.TimeWait, "127.0.0.1:9000", "127.0.0.1:40000")
	mapped := sk(sock.IPv6, sock.Established, "[::ffff:127.0.0.1]:9000", "[::ffff:10.0.0.2]:5000")
	v6 := sk(sock.IPv6, sock.Listen, "[::1]:9000", "[::]:0")
	for _, tc := range []struct {
		filter string
		s      *sock.Socket
		want   bool
	}{
		{":9000", tw, true},
		{":40000", tw, true},
		{":9001", tw, false},
		{":*", tw, true},
		{":* and :9001", tw, false},
		{"not :*", v6, false},
		{"state time-wait", tw, true},
		{"exclude time-wait", tw, false},
		{"state bucket", tw, true},
		{"state big", tw, false},
		{"sport > :8999 and sport < :9001", tw, true},
		{"sport != :9000", tw, false},
		{"dport >= :40000", tw, true},
		{"src 127.0.0.0/8", tw, true},
		{"src 127.0.0.1:9001", tw, false},
		{"dst 127.0.0.1:40000", tw, true},
		{"src 127.0.0.1", mapped, true}, // an IPv4 condition matches a v4-mapped address
		{"dst 10.0.0.0/8", mapped, true},
		{"src ::1", mapped, false},
		{"src 127.0.0.1", v6, false},
		{"src ::1", v6, true},
		{"src [::1]:9000", v6, true},
		{"src ::/0", tw, false},
		{"src *:9000", v6, true},
		{"state listen or state time-wait", v6, true},
		{"not ( state listen or state time-wait )", tw, false},
		{"dev 0", tw, true},
		{"dev 1", tw, false},
		{"dev != 1", tw, true},
		{"src inet:127.0.0.1", mapped, false}, // ss dumps only AF_INET then
		{"src inet:127.0.0.1", tw, true},
		{"src inet6:[::ffff:127.0.0.1]", mapped, true},
		{"sport = inet6::9000", v6, true},
		{"sport = inet6::9000", tw, false},
		{"state time-wait sport = :9001 or sport = :9000", tw, true},
		{"state listen sport = :9001 or sport = :9000", tw, false}, // the state applies to all the rest
		{":9000 or :1 and :2", tw, false},                          // left to right
		{"src 127.1", tw, false},                                   // 127.1.0.0, as iproute2 reads it
		{"src 127/8", tw, true},
		{"sport = *", tw, true},
		{"sport != *", tw, false},
		{"family inet", tw, true},
		{"family inet6", mapped, true},
	} {
		e, err := Parse([]string{tc.filter})
		if err != nil {
			t.Fatalf("%q: %v", tc.filter, err)
		}
		if got := e.Match(tc.s); got != tc.want {
			t.Errorf("%q on %v %v %v: %v, want %v", tc.filter, tc.s.State, tc.s.Local, tc.s.Peer, got, tc.want)
		}
	}
}

func TestCompileEmpty(t *testing.T) {
	e, err := Parse([]string{"state listen and state time-wait"})
	if err != nil {
		t.Fatal(err)
	}
	p := Compile(e, Options{})
	if p.States != 0 || len(p.Families) != 0 {
		t.Errorf("a filter that can match nothing asks for states %b families %v", p.States, p.Families)
	}
	p = Compile(e, Options{UserSpace: true})
	if p.States != sock.AllStates || p.Bytecode != nil || !p.Residual {
		t.Errorf("user-space program: %+v", p)
	}
}

func TestHugeFilterFallsBackToUserSpace(t *testing.T) {
	var parts []string
	for i := range 6000 {
		parts = append(parts, fmt.Sprintf("sport = :%d or", i+1))
	}
	parts = append(parts, "sport = :9000")
	e, err := Parse(parts)
	if err != nil {
		t.Fatal(err)
	}
	p := Compile(e, Options{})
	if p.Bytecode != nil || !p.Residual {
		t.Fatalf("a %d-term filter compiled to %d bytes of bytecode, residual %v", len(parts), len(p.Bytecode), p.Residual)
	}
	checkProgram(t, e)
}
