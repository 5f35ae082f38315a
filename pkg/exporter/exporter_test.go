package exporter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/netns"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/tablecount"
	"github.com/sockscope/sockscope/pkg/track"
)

// scripted returns the same table on every dump and counts the dumps; it
// can hold a dump open to test sharing.
type scripted struct {
	socks []sock.Socket
	dumps atomic.Int32
	gate  chan struct{} // when set, each dump waits for a value
	fail  error
}

func (s *scripted) Snapshot() (*sock.Snapshot, error) {
	s.dumps.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	if s.fail != nil {
		return nil, s.fail
	}
	return &sock.Snapshot{Time: time.Now(), Sockets: s.socks}, nil
}

// Stream hands the scripted sockets on in batches of two, as a kernel
// source hands on its batches.
func (s *scripted) Stream(fn func(*sock.Snapshot) error) error {
	snap, err := s.Snapshot()
	if err != nil {
		return err
	}
	for i := 0; i < len(snap.Sockets); i += 2 {
		if err := fn(&sock.Snapshot{Time: snap.Time, Sockets: snap.Sockets[i:min(i+2, len(snap.Sockets))]}); err != nil {
			return err
		}
	}
	return nil
}

func (s *scripted) SetProgram(*filter.Program) {}
func (s *scripted) SetInfo(bool)               {}

func sk(st sock.State, local, peer string, expires uint32) sock.Socket {
	s := sock.Socket{State: st, Family: sock.IPv4, Local: sock.MustParseEndpoint(local), Peer: sock.MustParseEndpoint(peer)}
	if st == sock.TimeWait {
		s.Timer, s.Expires = sock.TimerTimeWait, expires
	}
	return s
}

// The tutorial's table: a listener, two TIME_WAIT entries and a CLOSE_WAIT
// on 9000, plus a connection on another port.
func table() []sock.Socket {
	return []sock.Socket{
		sk(sock.Listen, "0.0.0.0:9000", "0.0.0.0:0", 0),
		sk(sock.TimeWait, "127.0.0.1:9000", "127.0.0.1:40001", 55000),
		sk(sock.TimeWait, "127.0.0.1:9000", "127.0.0.1:40002", 30000),
		sk(sock.CloseWait, "127.0.0.1:9000", "127.0.0.1:40003", 0),
		sk(sock.Established, "127.0.0.1:40004", "127.0.0.1:22", 0),
	}
}

func TestMetrics(t *testing.T) {
	src := &scripted{socks: table()}
	e := New([]Target{{Netns: netns.NS{Arg: "web", Path: "/run/netns/web"}, Source: src, Counters: func() (map[string]int64, error) {
		return map[string]int64{"OutRsts": 7, "TCPTimeWaitOverflow": 0, "NotExported": 1}, nil
	}}}, Options{Ports: []uint16{9000}, Version: "test"})

	want := `
# HELP sockscope_tcp_timewait_age_seconds Ages of the live TIME_WAIT entries (exact: 60 s minus the kernel's timer).
# TYPE sockscope_tcp_timewait_age_seconds histogram
sockscope_tcp_timewait_age_seconds_bucket{netns="web",le="1"} 0
sockscope_tcp_timewait_age_seconds_bucket{netns="web",le="5"} 1
sockscope_tcp_timewait_age_seconds_bucket{netns="web",le="10"} 1
sockscope_tcp_timewait_age_seconds_bucket{netns="web",le="20"} 1
sockscope_tcp_timewait_age_seconds_bucket{netns="web",le="30"} 2
sockscope_tcp_timewait_age_seconds_bucket{netns="web",le="40"} 2
sockscope_tcp_timewait_age_seconds_bucket{netns="web",le="50"} 2
sockscope_tcp_timewait_age_seconds_bucket{netns="web",le="55"} 2
sockscope_tcp_timewait_age_seconds_bucket{netns="web",le="59"} 2
sockscope_tcp_timewait_age_seconds_bucket{netns="web",le="60"} 2
sockscope_tcp_timewait_age_seconds_bucket{netns="web",le="+Inf"} 2
sockscope_tcp_timewait_age_seconds_sum{netns="web"} 35
sockscope_tcp_timewait_age_seconds_count{netns="web"} 2
# HELP sockscope_tcp_out_rsts_total The kernel's OutRsts counter: RST segments sent.
# TYPE sockscope_tcp_out_rsts_total counter
sockscope_tcp_out_rsts_total{netns="web"} 7
# HELP sockscope_tcp_timewait_overflow_total The kernel's TCPTimeWaitOverflow counter: TIME_WAIT entries not made: tcp_max_tw_buckets reached.
# TYPE sockscope_tcp_timewait_overflow_total counter
sockscope_tcp_timewait_overflow_total{netns="web"} 0
# HELP sockscope_scrape_success 1 when the last dump of the namespace succeeded.
# TYPE sockscope_scrape_success gauge
sockscope_scrape_success{netns="web"} 1
`
	if err := testutil.CollectAndCompare(e, strings.NewReader(want),
		"sockscope_tcp_timewait_age_seconds", "sockscope_tcp_out_rsts_total", "sockscope_tcp_timewait_overflow_total",
		"sockscope_scrape_success"); err != nil {
		t.Error(err)
	}

	get := func(state, family, port string) float64 {
		t.Helper()
		ch := make(chan prometheus.Metric, 1000)
		e.Collect(ch)
		close(ch)
		for m := range ch {
			if m.Desc() != e.d.sockets {
				continue
			}
			var got map[string]string = map[string]string{}
			pb := metricPB(t, m)
			for _, l := range pb.Label {
				got[l.GetName()] = l.GetValue()
			}
			if got["state"] == state && got["family"] == family && got["local_port"] == port && got["netns"] == "web" {
				return pb.GetGauge().GetValue()
			}
		}
		t.Fatalf("no series for %s %s %q", state, family, port)
		return 0
	}
	for _, c := range []struct {
		state, family, port string
		want                float64
	}{
		{"TIME_WAIT", "ipv4", "9000", 2}, {"TIME_WAIT", "ipv4", "", 0}, {"LISTEN", "ipv4", "9000", 1},
		{"CLOSE_WAIT", "ipv4", "9000", 1}, {"ESTABLISHED", "ipv4", "", 1}, {"ESTABLISHED", "ipv4", "9000", 0},
		{"TIME_WAIT", "ipv6", "", 0}, {"SYN_SENT", "ipv6", "9000", 0},
	} {
		if got := get(c.state, c.family, c.port); got != c.want {
			t.Errorf("sockscope_tcp_sockets{state=%q,family=%q,local_port=%q} = %v, want %v", c.state, c.family, c.port, got, c.want)
		}
	}
	// Bounded: 11 states x 2 families x (1 named port + the rest).
	if n := testutil.CollectAndCount(e, "sockscope_tcp_sockets"); n != 44 {
		t.Errorf("%d sockets series, want 44", n)
	}
}

func TestConcurrentScrapesShareOneDump(t *testing.T) {
	src := &scripted{socks: table(), gate: make(chan struct{})}
	e := New([]Target{{Source: src}}, Options{})
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			testutil.CollectAndCount(e, "sockscope_tcp_sockets")
		}()
	}
	// Let the first dump start, then give the others time to join it.
	for src.dumps.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	src.gate <- struct{}{}
	wg.Wait()
	if n := src.dumps.Load(); n != 1 {
		t.Errorf("5 concurrent scrapes ran %d dumps, want 1", n)
	}
}

func TestFailedDump(t *testing.T) {
	src := &scripted{fail: context.DeadlineExceeded}
	e := New([]Target{{Netns: netns.NS{Arg: "x", Path: "/run/netns/x"}, Source: src}}, Options{})
	want := `
# HELP sockscope_scrape_success 1 when the last dump of the namespace succeeded.
# TYPE sockscope_scrape_success gauge
sockscope_scrape_success{netns="x"} 0
`
	if err := testutil.CollectAndCompare(e, strings.NewReader(want), "sockscope_scrape_success"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(e, "sockscope_tcp_sockets"); n != 0 {
		t.Errorf("a failed dump exported %d socket series", n)
	}
}

// Counters that cannot be read are said by a metric of their own; the
// sockets are exported all the same.
func TestFailedCounters(t *testing.T) {
	ok := func() (map[string]int64, error) { return map[string]int64{"OutRsts": 3}, nil }
	bad := func() (map[string]int64, error) { return nil, errors.New("no /proc/net/snmp") }
	e := New([]Target{
		{Netns: netns.NS{Arg: "good", Path: "/run/netns/good"}, Source: &scripted{socks: table()}, Counters: ok},
		{Netns: netns.NS{Arg: "bad", Path: "/run/netns/bad"}, Source: &scripted{socks: table()}, Counters: bad},
	}, Options{})
	want := `
# HELP sockscope_counters_success 1 when the namespace's TCP counters were read on the last scrape.
# TYPE sockscope_counters_success gauge
sockscope_counters_success{netns="bad"} 0
sockscope_counters_success{netns="good"} 1
# HELP sockscope_scrape_success 1 when the last dump of the namespace succeeded.
# TYPE sockscope_scrape_success gauge
sockscope_scrape_success{netns="bad"} 1
sockscope_scrape_success{netns="good"} 1
`
	if err := testutil.CollectAndCompare(e, strings.NewReader(want), "sockscope_counters_success", "sockscope_scrape_success"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(e, "sockscope_tcp_out_rsts_total"); n != 1 {
		t.Errorf("%d counter series, want the good namespace's one", n)
	}
}

func TestSeveralNamespaces(t *testing.T) {
	a, b := &scripted{socks: table()}, &scripted{socks: table()[:1]}
	e := New([]Target{{Netns: netns.NS{Arg: "a", Path: "/run/netns/a"}, Source: a}, {Netns: netns.NS{Arg: "b", Path: "/run/netns/b"}, Source: b}}, Options{})
	want := `
# HELP sockscope_scrape_success 1 when the last dump of the namespace succeeded.
# TYPE sockscope_scrape_success gauge
sockscope_scrape_success{netns="a"} 1
sockscope_scrape_success{netns="b"} 1
`
	if err := testutil.CollectAndCompare(e, strings.NewReader(want), "sockscope_scrape_success"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(e, "sockscope_tcp_sockets"); n != 2*22 {
		t.Errorf("%d series for two namespaces, want 44", n)
	}
}

func TestTrackedTransitionsAndLifetimes(t *testing.T) {
	tr := newTracked([]string{"n"})
	tr.frame(&monitor.Frame{Events: []track.Event{
		{Kind: track.EventChange, From: sock.Established, To: sock.FinWait2},
		{Kind: track.EventChange, From: sock.FinWait2, To: sock.TimeWait},
		{Kind: track.EventChange, From: sock.FinWait2, To: sock.TimeWait},
		{Kind: track.EventGone, From: sock.TimeWait, TimeWait: &track.TimeWaitEnd{Length: 60700 * time.Millisecond}},
		{Kind: track.EventGone, From: sock.Established}, // not a TIME_WAIT end
	}})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) { tr.collect(ch, newDescs([]string{"netns"})) }))
	want := `
# HELP sockscope_tcp_transitions_total State changes seen, by old and new state.
# TYPE sockscope_tcp_transitions_total counter
sockscope_tcp_transitions_total{from="ESTABLISHED",netns="n",to="FIN_WAIT2"} 1
sockscope_tcp_transitions_total{from="FIN_WAIT2",netns="n",to="TIME_WAIT"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sockscope_tcp_transitions_total"); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "sockscope_tcp_timewait_lifetime_seconds" {
			found = true
			h := mf.Metric[0].GetHistogram()
			if h.GetSampleCount() != 1 || h.GetSampleSum() != 60.7 {
				t.Errorf("lifetime histogram: count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
			}
			for _, b := range h.Bucket {
				want := uint64(0)
				if b.GetUpperBound() >= 60.7 {
					want = 1
				}
				if b.GetCumulativeCount() != want {
					t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
				}
			}
		}
	}
	if !found {
		t.Error("no sockscope_tcp_timewait_lifetime_seconds histogram")
	}
}

// The tracker's health is a metric: 1 while its polls succeed, 0 after a
// failed one.
func TestTrackSuccess(t *testing.T) {
	tr := newTracked([]string{"n"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) { tr.collect(ch, newDescs([]string{"netns"})) }))
	check := func(want float64) {
		t.Helper()
		exp := fmt.Sprintf(`
# HELP sockscope_track_success 1 when the background tracker's last poll of the namespace succeeded (--track).
# TYPE sockscope_track_success gauge
sockscope_track_success{netns="n"} %v
`, want)
		if err := testutil.GatherAndCompare(reg, strings.NewReader(exp), "sockscope_track_success"); err != nil {
			t.Error(err)
		}
	}
	tr.frame(&monitor.Frame{})
	check(1)
	tr.frame(&monitor.Frame{Err: errors.New("dump failed")})
	check(0)
	tr.frame(&monitor.Frame{})
	check(1)
}

// collectorFunc adapts a collect function for a test registry.
type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

// With discovery, each scrape exports the namespaces there now, labelled
// with who they belong to; one that went away has no series any more, and
// a failed search keeps the last namespaces and says so.
func TestDiscoveredNamespaces(t *testing.T) {
	shop := Target{Labels: []string{"shop/cart", "0123abcd", "cart", "shop"}, Source: &scripted{socks: table()},
		MaxTimeWait: func() (int, error) { return 4096, nil }}
	host := Target{Labels: []string{"host", "", "", ""}, Source: &scripted{socks: table()[:1]}}
	var (
		now     = []Target{host, shop}
		failing error
	)
	e := New(nil, Options{Identity: true, Discover: func() ([]Target, error) { return now, failing }})
	want := func(extra string) string {
		return `
# HELP sockscope_netns_discovery_success 1 when the last search for the host's network namespaces succeeded (--all-netns).
# TYPE sockscope_netns_discovery_success gauge
` + extra + `
# HELP sockscope_scrape_success 1 when the last dump of the namespace succeeded.
# TYPE sockscope_scrape_success gauge
sockscope_scrape_success{container_id="",netns="host",pod="",pod_namespace=""} 1
`
	}
	shopLine := `sockscope_scrape_success{container_id="0123abcd",netns="shop/cart",pod="cart",pod_namespace="shop"} 1`
	if err := testutil.CollectAndCompare(e, strings.NewReader(want("sockscope_netns_discovery_success 1")+shopLine+"\n"),
		"sockscope_scrape_success", "sockscope_netns_discovery_success"); err != nil {
		t.Error(err)
	}
	if err := testutil.CollectAndCompare(e, strings.NewReader(`
# HELP sockscope_tcp_max_tw_buckets The namespace's net.ipv4.tcp_max_tw_buckets: TIME_WAIT entries past it are not made (sockscope_tcp_timewait_overflow_total counts them).
# TYPE sockscope_tcp_max_tw_buckets gauge
sockscope_tcp_max_tw_buckets{container_id="0123abcd",netns="shop/cart",pod="cart",pod_namespace="shop"} 4096
`), "sockscope_tcp_max_tw_buckets"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(e, "sockscope_tcp_sockets"); n != 2*22 {
		t.Errorf("%d socket series for two namespaces, want 44", n)
	}

	// The pod goes away: its series with it.
	now = []Target{host}
	if err := testutil.CollectAndCompare(e, strings.NewReader(want("sockscope_netns_discovery_success 1")),
		"sockscope_scrape_success", "sockscope_netns_discovery_success"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(e, "sockscope_tcp_sockets"); n != 22 {
		t.Errorf("%d socket series after a namespace went away, want 22", n)
	}

	// The search fails: what it still has is exported, and the failure
	// said.
	failing = errors.New("no /proc")
	if err := testutil.CollectAndCompare(e, strings.NewReader(want("sockscope_netns_discovery_success 0")),
		"sockscope_scrape_success", "sockscope_netns_discovery_success"); err != nil {
		t.Error(err)
	}
}

// With --all-netns one tracker follows every namespace: each namespace's
// transitions and lifetimes go to its own series, with the labels of the
// scrape's namespace of the same inode; one that goes away is forgotten.
func TestTrackAllNamespaces(t *testing.T) {
	in := func(ino uint32, ev track.Event) track.Event {
		ev.Entry = track.Entry{Socket: &sock.Socket{Netns: ino, State: ev.To}}
		return ev
	}
	live := map[uint32]bool{11: true, 22: true}
	a := &trackedAll{live: func(ino uint32) bool { return live[ino] }, by: map[uint32]*tally{}}
	a.frame(&monitor.Frame{Events: []track.Event{
		in(11, track.Event{Kind: track.EventChange, From: sock.Established, To: sock.CloseWait}),
		in(22, track.Event{Kind: track.EventChange, From: sock.Established, To: sock.FinWait1}),
		in(22, track.Event{Kind: track.EventChange, From: sock.Established, To: sock.FinWait1}),
		in(22, track.Event{Kind: track.EventGone, From: sock.TimeWait, TimeWait: &track.TimeWaitEnd{Length: 61 * time.Second}}),
	}})
	targets := []Target{
		{Netns: netns.NS{Inode: 11}, Labels: []string{"shop/cart", "0123abcd", "cart", "shop"}},
		{Netns: netns.NS{Inode: 22}, Labels: []string{"db", "", "", ""}},
		{Netns: netns.NS{Inode: 33}, Labels: []string{"host", "", "", ""}}, // nothing happened there yet
	}
	reg := prometheus.NewRegistry()
	d := newDescs(IdentityLabels)
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) { a.collect(ch, d, targets) }))
	want := `
# HELP sockscope_tcp_transitions_total State changes seen, by old and new state.
# TYPE sockscope_tcp_transitions_total counter
sockscope_tcp_transitions_total{container_id="",from="ESTABLISHED",netns="db",pod="",pod_namespace="",to="FIN_WAIT1"} 2
sockscope_tcp_transitions_total{container_id="0123abcd",from="ESTABLISHED",netns="shop/cart",pod="cart",pod_namespace="shop",to="CLOSE_WAIT"} 1
# HELP sockscope_track_success 1 when the background tracker's last poll of the namespace succeeded (--track).
# TYPE sockscope_track_success gauge
sockscope_track_success{container_id="",netns="db",pod="",pod_namespace=""} 1
sockscope_track_success{container_id="",netns="host",pod="",pod_namespace=""} 1
sockscope_track_success{container_id="0123abcd",netns="shop/cart",pod="cart",pod_namespace="shop"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sockscope_tcp_transitions_total", "sockscope_track_success"); err != nil {
		t.Error(err)
	}
	lifetimes := func() map[string]uint64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]uint64{}
		for _, mf := range mfs {
			if mf.GetName() != "sockscope_tcp_timewait_lifetime_seconds" {
				continue
			}
			for _, m := range mf.Metric {
				for _, l := range m.Label {
					if l.GetName() == "netns" {
						out[l.GetValue()] = m.GetHistogram().GetSampleCount()
					}
				}
			}
		}
		return out
	}
	if got := lifetimes(); got["db"] != 1 || got["shop/cart"] != 0 || got["host"] != 0 || len(got) != 3 {
		t.Errorf("lifetime counts by namespace: %v; want db 1, shop/cart 0, host 0", got)
	}

	// The cart's namespace goes away: the next frame forgets it, so a
	// namespace that comes back with its inode starts from nothing.
	delete(live, 11)
	a.frame(&monitor.Frame{})
	if _, ok := a.by[11]; ok {
		t.Error("a gone namespace's counts were kept")
	}
	if a.by[22] == nil || a.by[22].transitions[[2]sock.State{sock.Established, sock.FinWait1}] != 2 {
		t.Errorf("a live namespace's counts were lost: %+v", a.by[22])
	}
	a.frame(&monitor.Frame{Err: errors.New("dump failed")})
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP sockscope_track_success 1 when the background tracker's last poll of the namespace succeeded (--track).
# TYPE sockscope_track_success gauge
sockscope_track_success{container_id="",netns="db",pod="",pod_namespace=""} 0
sockscope_track_success{container_id="",netns="host",pod="",pod_namespace=""} 0
sockscope_track_success{container_id="0123abcd",netns="shop/cart",pod="cart",pod_namespace="shop"} 0
`), "sockscope_track_success"); err != nil {
		t.Error(err)
	}
}

// With the kernel's changes, a tracker counts each step the kernel
// reports (not the ends, to CLOSE) and, of its polls, only the changes
// into TIME_WAIT, which the kernel does not show: no step is counted twice.
func TestKernelTransitions(t *testing.T) {
	in := func(ino uint32, ev track.Event) track.Event {
		ev.Entry = track.Entry{Socket: &sock.Socket{Netns: ino, State: ev.To}}
		return ev
	}
	live := map[uint32]bool{11: true}
	e := New(nil, Options{Identity: true})
	e.all = &trackedAll{live: func(ino uint32) bool { return live[ino] }, by: map[uint32]*tally{}}
	count := e.KernelTransitions(nil)
	count(11, sock.SynSent, sock.Established)
	count(11, sock.Established, sock.CloseWait)
	count(11, sock.LastAck, sock.Close)       // an end
	count(22, sock.SynSent, sock.Established) // a namespace not read
	e.all.frame(&monitor.Frame{Events: []track.Event{
		in(11, track.Event{Kind: track.EventChange, From: sock.Established, To: sock.CloseWait}), // the kernel said it
		in(11, track.Event{Kind: track.EventChange, From: sock.FinWait2, To: sock.TimeWait}),
	}})
	got := e.all.by[11].transitions
	want := map[[2]sock.State]uint64{
		{sock.SynSent, sock.Established}: 1, {sock.Established, sock.CloseWait}: 1, {sock.FinWait2, sock.TimeWait}: 1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("transitions %v; want %v", got, want)
	}
	if _, ok := e.all.by[22]; ok {
		t.Error("a namespace not read was counted")
	}

	// One tracker per target: by the target's inode.
	e = New([]Target{{Netns: netns.NS{Arg: "a"}}}, Options{})
	tr := newTracked([]string{"a"})
	e.tracked = []*tracked{tr}
	count = e.KernelTransitions([]uint32{7})
	count(7, sock.Listen, sock.SynRecv)
	count(8, sock.Listen, sock.SynRecv)
	tr.frame(&monitor.Frame{Events: []track.Event{{Kind: track.EventChange, From: sock.SynRecv, To: sock.Established}}})
	if n := tr.t.transitions[[2]sock.State{sock.Listen, sock.SynRecv}]; n != 1 || len(tr.t.transitions) != 1 {
		t.Errorf("per-target transitions %v; want LISTEN to SYN_RECV once", tr.t.transitions)
	}
}

// fakeCounter is a Counter with a fixed walk.
type fakeCounter struct {
	w     *tablecount.Walk
	err   error
	asked [][]uint32
}

func (f *fakeCounter) Count(inodes []uint32) (*tablecount.Walk, error) {
	f.asked = append(f.asked, inodes)
	return f.w, f.err
}

// The namespaces in the shared table take their counts from the walk and
// are not dumped; one with a table of its own is dumped, whatever the walk
// counted for it; a failed walk dumps them all and says why.
func TestCounterCoversSharedNamespaces(t *testing.T) {
	ports := []uint16{9000}
	counts := func(listen, tw9000 uint32) *tablecount.Counts {
		c := &tablecount.Counts{Sockets: make([][2][16]uint32, 2), TimeWait: tablecount.Ages{LE: make([]uint64, len(ageBuckets))}}
		c.Sockets[0][0][sock.Listen] = listen
		c.Sockets[1][1][sock.TimeWait] = tw9000
		c.TimeWait.N, c.TimeWait.Sum = uint64(tw9000), time.Duration(tw9000)*30*time.Second
		for i, b := range ageBuckets {
			if b >= 30 {
				c.TimeWait.LE[i] = uint64(tw9000)
			}
		}
		return c
	}
	own := &scripted{socks: []sock.Socket{{State: sock.Listen, Family: sock.IPv4, Local: sock.MustParseEndpoint("0.0.0.0:22")}}}
	a, c := &scripted{}, &scripted{}
	fc := &fakeCounter{w: &tablecount.Walk{Netns: 7, Shared: true, Took: time.Millisecond,
		Counts: map[uint32]*tablecount.Counts{1: counts(3, 2), 2: counts(9, 9), 3: counts(1, 0)}}}
	var failed []error
	e := New([]Target{
		{Netns: netns.NS{Arg: "a"}, Source: a, Inode: 1, SharedTable: true},
		{Netns: netns.NS{Arg: "own"}, Source: own, Inode: 2},
		{Netns: netns.NS{Arg: "c"}, Source: c, Inode: 3, SharedTable: true},
	}, Options{Ports: ports, Counter: fc, CounterFailed: func(err error) { failed = append(failed, err) }})
	want := `
# HELP sockscope_scrape_walked 1 when the namespace's sockets were counted in the scrape's one walk of the kernel's shared tables, 0 when its own dump counted them.
# TYPE sockscope_scrape_walked gauge
sockscope_scrape_walked{netns="a"} 1
sockscope_scrape_walked{netns="c"} 1
sockscope_scrape_walked{netns="own"} 0
`
	if err := testutil.CollectAndCompare(e, strings.NewReader(want), "sockscope_scrape_walked"); err != nil {
		t.Error(err)
	}
	if a.dumps.Load() != 0 || c.dumps.Load() != 0 || own.dumps.Load() != 1 {
		t.Errorf("dumps: a %d, c %d, own %d; want 0, 0, 1", a.dumps.Load(), c.dumps.Load(), own.dumps.Load())
	}
	if len(fc.asked) != 1 || fmt.Sprint(fc.asked[0]) != "[1 2 3]" {
		t.Errorf("the walk was asked for %v, want one walk of [1 2 3]", fc.asked)
	}
	got := map[string]float64{}
	for _, m := range gather(t, e, "sockscope_tcp_sockets") {
		if m.value != 0 {
			got[m.labels] = m.value
		}
	}
	wantSockets := map[string]float64{
		`family="ipv4",local_port="",netns="a",state="LISTEN"`:        3,
		`family="ipv6",local_port="9000",netns="a",state="TIME_WAIT"`: 2,
		`family="ipv4",local_port="",netns="c",state="LISTEN"`:        1,
		`family="ipv4",local_port="",netns="own",state="LISTEN"`:      1, // its dump, not the walk's 9
	}
	if fmt.Sprint(got) != fmt.Sprint(wantSockets) {
		t.Errorf("sockets:\n got %v\nwant %v", got, wantSockets)
	}
	ages := `
# HELP sockscope_tcp_timewait_age_seconds Ages of the live TIME_WAIT entries (exact: 60 s minus the kernel's timer).
# TYPE sockscope_tcp_timewait_age_seconds histogram
` + histText("a", 2, 60, 2) + histText("c", 0, 0, 0) + histText("own", 0, 0, 0)
	if err := testutil.CollectAndCompare(e, strings.NewReader(ages), "sockscope_tcp_timewait_age_seconds"); err != nil {
		t.Error(err)
	}
	if len(failed) != 0 {
		t.Errorf("CounterFailed heard %v", failed)
	}

	fc.err, fc.w = errors.New("walk failed"), nil
	if err := testutil.CollectAndCompare(e, strings.NewReader(strings.ReplaceAll(want, "} 1", "} 0")), "sockscope_scrape_walked"); err != nil {
		t.Error(err)
	}
	if a.dumps.Load() != 1 || c.dumps.Load() != 1 || len(failed) != 1 {
		t.Errorf("after a failed walk: dumps a %d, c %d, failures heard %d; want 1, 1, 1", a.dumps.Load(), c.dumps.Load(), len(failed))
	}
}

// histText is a TIME_WAIT age histogram's exposition: n entries summing to
// sum seconds, le30 of them no older than 30 s (and so every bound after).
func histText(ns string, n int, sum float64, le30 int) string {
	var b strings.Builder
	for _, bound := range ageBuckets {
		v := 0
		if bound >= 30 {
			v = le30
		}
		fmt.Fprintf(&b, "sockscope_tcp_timewait_age_seconds_bucket{netns=%q,le=%q} %d\n", ns, strconv.FormatFloat(bound, 'g', -1, 64), v)
	}
	fmt.Fprintf(&b, "sockscope_tcp_timewait_age_seconds_bucket{netns=%q,le=\"+Inf\"} %d\n", ns, n)
	fmt.Fprintf(&b, "sockscope_tcp_timewait_age_seconds_sum{netns=%q} %g\n", ns, sum)
	fmt.Fprintf(&b, "sockscope_tcp_timewait_age_seconds_count{netns=%q} %d\n", ns, n)
	return b.String()
}

type sample struct {
	labels string
	value  float64
}

// gather collects the samples of metric name from c, as exposed.
func gather(t *testing.T, c prometheus.Collector, name string) []sample {
	t.Helper()
	text, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, name)
	if err != nil {
		t.Fatal(err)
	}
	var out []sample
	for _, line := range strings.Split(string(text), "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		labels, val, ok := strings.Cut(rest, "} ")
		if !ok {
			t.Fatalf("sample %q", line)
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		out = append(out, sample{labels, v})
	}
	return out
}

// The kernel's lost state changes are a counter once the events run, and
// a failed read of them is the scrape's error, not a zero.
func TestKernelEventsLost(t *testing.T) {
	e := New([]Target{{Netns: netns.NS{Arg: "web"}, Source: &scripted{socks: table()}}}, Options{})
	if n := testutil.CollectAndCount(e, "sockscope_kernel_events_lost_total"); n != 0 {
		t.Errorf("%d series of lost events before the kernel's events run; want none", n)
	}
	e.KernelLost(func() (uint64, error) { return 5, nil })
	want := `
# HELP sockscope_kernel_events_lost_total State changes the kernel could not hand on, its ring being full (--track with BPF): sockscope_tcp_transitions_total misses up to this many (the count covers the program's namespaces, not the filter).
# TYPE sockscope_kernel_events_lost_total counter
sockscope_kernel_events_lost_total 5
`
	if err := testutil.CollectAndCompare(e, strings.NewReader(want), "sockscope_kernel_events_lost_total"); err != nil {
		t.Error(err)
	}
	e.KernelLost(func() (uint64, error) { return 0, errors.New("the ring is closed") })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e)
	if _, err := reg.Gather(); err == nil || !strings.Contains(err.Error(), "the ring is closed") {
		t.Errorf("gathering with a failed read: %v; want its error", err)
	}
}
