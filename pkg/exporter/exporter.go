// Package exporter serves the socket table as Prometheus metrics, from the
// same sources and tracker as the other front ends, so the numbers agree.
//
// It is pull-based, like node_exporter: each scrape runs one dump per
// namespace, and scrapes that arrive while one is running share its result,
// so there is no background loop to go stale and a scrape costs at most one
// dump. Transitions and TIME_WAIT lifetimes need a tracker that sees every
// change; when they are enabled, a monitor per namespace keeps one in the
// background.
//
// Cardinality is bounded whatever the traffic: labels are the namespace, the
// state (11), the family (2) and, only for the ports named in Options.Ports,
// the local port. A label per socket port would make every ephemeral port a
// new series and swamp a fleet's Prometheus.
package exporter

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sockscope/sockscope/pkg/kstat"
	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/render"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/tablecount"
	"github.com/sockscope/sockscope/pkg/track"
)

// Streamer is what a scrape reads: the kernel source in the command, a
// scripted one in tests. A scrape counts each batch as it comes and keeps
// none, so its memory does not grow with the socket table.
type Streamer interface {
	Stream(fn func(*sock.Snapshot) error) error
}

// Target is one network namespace to export.
type Target struct {
	Netns netns.NS // its Label is the netns label: "" for the exporter's own
	// Labels are the values of IdentityLabels, with Options.Identity;
	// Netns's label is used without.
	Labels   []string
	Source   Streamer
	Counters func() (map[string]int64, error) // the kernel's TCP counters; nil: none
	// MaxTimeWait reads tcp_max_tw_buckets; nil: not exported.
	MaxTimeWait func() (int, error)
	// Inode is the namespace's inode, for Options.Counter (0: unknown,
	// always dumped). SharedTable says its connections are in the host's
	// shared table (kstat.Reader.SharesHostTable).
	Inode       uint32
	SharedTable bool
}

// labels are the values of the target's namespace labels.
func (t *Target) labels() []string {
	if t.Labels != nil {
		return t.Labels
	}
	return []string{t.Netns.Label()}
}

// Options configures an Exporter.
type Options struct {
	Ports   []uint16 // ports that get their own local_port series
	Version string   // for sockscope_build_info
	// Discover, when set, returns the targets of each scrape (--all-netns:
	// the namespaces there now), instead of the fixed ones. A namespace
	// that is no longer returned has no series from then on. An error says
	// the search failed (sockscope_netns_discovery_success); the targets
	// returned with it, what the search still has, are exported.
	Discover func() ([]Target, error)
	// Identity labels every series with IdentityLabels (Target.Labels)
	// instead of netns alone.
	Identity bool
	// Counter, when set, counts the sockets of every namespace in the
	// tables it walks at once, when a scrape reads more than one
	// namespace: a dump per namespace walks the host's whole shared table
	// each time. The namespaces it does not cover (tables of their own)
	// are dumped. It must count with Ports, in their order, and
	// AgeBounds.
	Counter Counter
	// CounterFailed hears why a walk failed; that scrape dumps every
	// namespace.
	CounterFailed func(error)
}

// Counter counts the sockets of many namespaces in one walk of the
// kernel's tables (tablecount.Counter).
type Counter interface {
	Count(inodes []uint32) (*tablecount.Walk, error)
}

// AgeBounds are the bounds of the TIME_WAIT age histogram, for a Counter.
func AgeBounds() []time.Duration {
	out := make([]time.Duration, len(ageBuckets))
	for i, b := range ageBuckets {
		out[i] = time.Duration(b * float64(time.Second))
	}
	return out
}

// Buckets of the TIME_WAIT histograms, in seconds: ages spread over the 60 s;
// lifetimes cluster just past 60 s (the kernel's timer wheel), early ends
// below.
var (
	ageBuckets      = [...]float64{1, 5, 10, 20, 30, 40, 50, 55, 59, 60}
	lifetimeBuckets = []float64{1, 10, 30, 59, 60, 60.5, 61, 61.5, 62, 63, 65, 70}
)

// IdentityLabels are the labels that say whose namespace a series is, with
// --all-netns: the namespace's name, and the container and pod it belongs
// to where known. Without it, netns alone (the -N name, "" for the
// exporter's own).
var IdentityLabels = []string{"netns", "container_id", "pod", "pod_namespace"}

// descs are the metrics' descriptions; their labels start with the
// namespace's (netns, or IdentityLabels).
type descs struct {
	sockets, age, lifetime, transitions, duration, success, walked, trackOK, countersOK, maxTW, discovery, build, lost *prometheus.Desc
	counters                                                                                                           []*prometheus.Desc
}

func newDescs(id []string) *descs {
	with := func(extra ...string) []string { return append(slices.Clip(id), extra...) }
	d := &descs{
		sockets: prometheus.NewDesc("sockscope_tcp_sockets",
			"TCP sockets by state and family; local_port is set for the ports named with --port-series and empty for the rest, so a sum over it is the total.",
			with("state", "family", "local_port"), nil),
		age: prometheus.NewDesc("sockscope_tcp_timewait_age_seconds",
			"Ages of the live TIME_WAIT entries (exact: 60 s minus the kernel's timer).", id, nil),
		lifetime: prometheus.NewDesc("sockscope_tcp_timewait_lifetime_seconds",
			"Lifetimes of the TIME_WAIT entries seen from entering to leaving.", id, nil),
		transitions: prometheus.NewDesc("sockscope_tcp_transitions_total",
			"State changes seen, by old and new state.", with("from", "to"), nil),
		duration: prometheus.NewDesc("sockscope_scrape_duration_seconds",
			"Time the last dump of the namespace took (for a namespace counted in the one walk of the shared tables, the walk's).", id, nil),
		walked: prometheus.NewDesc("sockscope_scrape_walked",
			"1 when the namespace's sockets were counted in the scrape's one walk of the kernel's shared tables, 0 when its own dump counted them.", id, nil),
		success: prometheus.NewDesc("sockscope_scrape_success",
			"1 when the last dump of the namespace succeeded.", id, nil),
		trackOK: prometheus.NewDesc("sockscope_track_success",
			"1 when the background tracker's last poll of the namespace succeeded (--track).", id, nil),
		countersOK: prometheus.NewDesc("sockscope_counters_success",
			"1 when the namespace's TCP counters were read on the last scrape.", id, nil),
		maxTW: prometheus.NewDesc("sockscope_tcp_max_tw_buckets",
			"The namespace's net.ipv4.tcp_max_tw_buckets: TIME_WAIT entries past it are not made (sockscope_tcp_timewait_overflow_total counts them).", id, nil),
		discovery: prometheus.NewDesc("sockscope_netns_discovery_success",
			"1 when the last search for the host's network namespaces succeeded (--all-netns).", nil, nil),
		lost: prometheus.NewDesc("sockscope_kernel_events_lost_total",
			"State changes the kernel could not hand on, its ring being full (--track with BPF): sockscope_tcp_transitions_total misses up to this many (the count covers the program's namespaces, not the filter).", nil, nil),
		build: prometheus.NewDesc("sockscope_build_info",
			"sockscope's version.", []string{"version"}, nil),
	}
	// The kernel's TCP counters, a metric each (sockscope_tcp_<metric>_total):
	// a sum over a "name" label of one metric would add unlike things, and
	// Prometheus's own conventions say so.
	for _, c := range kstat.TCPCounters {
		d.counters = append(d.counters, prometheus.NewDesc("sockscope_tcp_"+c.Metric+"_total",
			"The kernel's "+c.Name+" counter: "+c.Help+".", id, nil))
	}
	return d
}

// Exporter is a prometheus.Collector.
type Exporter struct {
	targets  []Target
	discover func() ([]Target, error)
	d        *descs
	ports    map[uint16]bool
	portList []uint16 // Options.Ports, in order: the Counter's slots
	version  string
	counter  Counter
	failed   func(error)

	// lost counts the kernel's lost state changes, once KernelLost set it.
	lost     atomic.Pointer[func() (uint64, error)]
	mu       sync.Mutex
	inflight *call
	tracked  []*tracked  // per target when tracking is on
	all      *trackedAll // the tracker of every namespace, when on
}

type call struct {
	done    chan struct{}
	targets []Target
	res     []result
	found   error // why discovery failed, if it did
}

type seriesKey struct {
	state  sock.State
	family sock.Family
	port   uint16 // 0: not a named port
}

type result struct {
	counts   map[seriesKey]int
	ages     hist // TIME_WAIT ages, in seconds
	counters map[string]int64
	cntErr   error // the counters could not be read
	took     time.Duration
	walked   bool // counted in the Counter's walk, not dumped
	err      error
	maxTW    int // tcp_max_tw_buckets; -1: not read
}

var _ prometheus.Collector = (*Exporter)(nil)

// New returns an Exporter of the targets.
func New(targets []Target, opt Options) *Exporter {
	id := []string{"netns"}
	if opt.Identity {
		id = IdentityLabels
	}
	e := &Exporter{targets: targets, discover: opt.Discover, d: newDescs(id), ports: map[uint16]bool{},
		portList: opt.Ports, version: opt.Version, counter: opt.Counter, failed: opt.CounterFailed}
	for _, p := range opt.Ports {
		e.ports[p] = true
	}
	return e
}

// Describe sends every metric's description.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	d := e.d
	for _, d := range []*prometheus.Desc{d.sockets, d.age, d.lifetime, d.transitions,
		d.duration, d.success, d.walked, d.countersOK, d.trackOK, d.maxTW, d.build} {
		ch <- d
	}
	if e.discover != nil {
		ch <- d.discovery
	}
	ch <- d.lost
	for _, d := range d.counters {
		ch <- d
	}
}

// Collect runs (or joins) one scrape and sends its metrics.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	c := e.scrape()
	d := e.d
	ch <- prometheus.MustNewConstMetric(d.build, prometheus.GaugeValue, 1, e.version)
	if e.discover != nil {
		ch <- prometheus.MustNewConstMetric(d.discovery, prometheus.GaugeValue, boolValue(c.found == nil))
	}
	if l := e.lost.Load(); l != nil {
		if n, err := (*l)(); err != nil {
			ch <- prometheus.NewInvalidMetric(d.lost, err)
		} else {
			ch <- prometheus.MustNewConstMetric(d.lost, prometheus.CounterValue, float64(n))
		}
	}
	for i := range c.targets {
		t, r := &c.targets[i], &c.res[i]
		id := t.labels()
		ch <- prometheus.MustNewConstMetric(d.duration, prometheus.GaugeValue, r.took.Seconds(), id...)
		ch <- prometheus.MustNewConstMetric(d.success, prometheus.GaugeValue, boolValue(r.err == nil), id...)
		ch <- prometheus.MustNewConstMetric(d.walked, prometheus.GaugeValue, boolValue(r.walked), id...)
		if r.err == nil {
			e.collectSockets(ch, id, r)
		}
		if t.Counters != nil {
			ch <- prometheus.MustNewConstMetric(d.countersOK, prometheus.GaugeValue, boolValue(r.cntErr == nil), id...)
		}
		for i, c := range kstat.TCPCounters {
			if v, found := r.counters[c.Name]; found {
				ch <- prometheus.MustNewConstMetric(d.counters[i], prometheus.CounterValue, float64(v), id...)
			}
		}
		if r.maxTW >= 0 {
			ch <- prometheus.MustNewConstMetric(d.maxTW, prometheus.GaugeValue, float64(r.maxTW), id...)
		}
	}
	e.mu.Lock()
	tracked, all := e.tracked, e.all
	e.mu.Unlock()
	for _, tr := range tracked {
		tr.collect(ch, d)
	}
	if all != nil {
		all.collect(ch, d, c.targets)
	}
}

func boolValue(ok bool) float64 {
	if ok {
		return 1
	}
	return 0
}

func (e *Exporter) collectSockets(ch chan<- prometheus.Metric, id []string, r *result) {
	// Every state of every family is always present, zeros included, so
	// that a state coming back to zero shows as 0 rather than vanishing.
	labels := append(slices.Clip(id), "", "", "")
	n := len(id)
	for _, fam := range []sock.Family{sock.IPv4, sock.IPv6} {
		for _, st := range sock.States {
			k := seriesKey{st, fam, 0}
			labels[n], labels[n+1], labels[n+2] = st.String(), render.FamilyName(fam), ""
			ch <- prometheus.MustNewConstMetric(e.d.sockets, prometheus.GaugeValue, float64(r.counts[k]), labels...)
			for p := range e.ports {
				k.port = p
				labels[n+2] = strconv.Itoa(int(p))
				ch <- prometheus.MustNewConstMetric(e.d.sockets, prometheus.GaugeValue, float64(r.counts[k]), labels...)
			}
		}
	}
	ch <- r.ages.metric(e.d.age, id...)
}

// hist is a histogram over ageBuckets, counted as values come: a scrape
// keeps counts, not the ages of every TIME_WAIT entry.
type hist struct {
	n   uint64
	sum float64
	le  [len(ageBuckets)]uint64 // le[i]: values <= ageBuckets[i]
}

func (h *hist) observe(v float64) {
	h.n++
	h.sum += v
	for i, b := range ageBuckets {
		if v <= b {
			h.le[i]++
		}
	}
}

func (h *hist) metric(d *prometheus.Desc, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(ageBuckets))
	for i, b := range ageBuckets {
		buckets[b] = h.le[i] // every bucket is exposed, empty ones too
	}
	return prometheus.MustNewConstHistogram(d, h.n, h.sum, buckets, labels...)
}

// scrape dumps every target, or waits for the dump in flight and shares
// it: concurrent scrapes cost one dump.
func (e *Exporter) scrape() *call {
	e.mu.Lock()
	if c := e.inflight; c != nil {
		e.mu.Unlock()
		<-c.done
		return c
	}
	c := &call{done: make(chan struct{}), targets: e.targets}
	e.inflight = c
	e.mu.Unlock()

	if e.discover != nil {
		c.targets, c.found = e.discover()
	}
	c.res = make([]result, len(c.targets))
	counted := e.count(c.targets, c.res)
	for i, t := range c.targets {
		if counted[i] {
			e.stat(t, &c.res[i])
			continue
		}
		c.res[i] = e.dump(t)
	}
	e.mu.Lock()
	e.inflight = nil
	e.mu.Unlock()
	close(c.done)
	return c
}

func (e *Exporter) dump(t Target) result {
	start := time.Now()
	r := result{counts: make(map[seriesKey]int, 64), maxTW: -1}
	r.err = t.Source.Stream(func(b *sock.Snapshot) error {
		for i := range b.Sockets {
			s := &b.Sockets[i]
			r.counts[seriesKey{s.State, s.Family, 0}]++
			if p := s.Local.Port(); e.ports[p] {
				r.counts[seriesKey{s.State, s.Family, p}]++
				r.counts[seriesKey{s.State, s.Family, 0}]--
			}
			if age, _, ok := s.TimeWaitAge(); ok {
				r.ages.observe(age.Seconds())
			}
		}
		return nil
	})
	r.took = time.Since(start)
	e.stat(t, &r)
	return r
}

// stat reads what a namespace's files say beside its sockets.
func (e *Exporter) stat(t Target, r *result) {
	if t.MaxTimeWait != nil {
		if n, err := t.MaxTimeWait(); err == nil {
			r.maxTW = n
		}
	}
	if t.Counters != nil {
		// Counters that cannot be read are left out and said by
		// sockscope_counters_success; the sockets are still worth having.
		r.counters, r.cntErr = t.Counters()
	}
}

// count fills the results of the targets the Counter covers, with one walk,
// and says which.
func (e *Exporter) count(targets []Target, res []result) []bool {
	counted := make([]bool, len(targets))
	if e.counter == nil || len(targets) < 2 {
		return counted
	}
	inodes := make([]uint32, 0, len(targets))
	for _, t := range targets {
		if t.Inode != 0 {
			inodes = append(inodes, t.Inode)
		}
	}
	w, err := e.counter.Count(inodes)
	if err != nil {
		if e.failed != nil {
			e.failed(err)
		}
		return counted
	}
	for i, t := range targets {
		c := w.Counts[t.Inode]
		if c == nil || !w.Covers(t.Inode, t.SharedTable) {
			continue // a table of its own: dumped
		}
		r := result{counts: make(map[seriesKey]int, 64), maxTW: -1, took: w.Took, walked: true}
		c.Each(e.portList, func(port uint16, fam sock.Family, st sock.State, n uint32) {
			r.counts[seriesKey{st, fam, port}] += int(n)
		})
		r.ages.n, r.ages.sum = c.TimeWait.N, c.TimeWait.Sum.Seconds()
		copy(r.ages.le[:], c.TimeWait.LE)
		res[i], counted[i] = r, true
	}
	return counted
}

// tally is what a tracker counted for one namespace: its transitions and
// the lifetimes of its TIME_WAIT entries.
type tally struct {
	// kernel: the kernel reports the changes (KernelTransitions), and
	// the poll counts only its changes into TIME_WAIT, which the kernel's
	// tracepoint does not show.
	kernel      bool
	transitions map[[2]sock.State]uint64
	buckets     map[float64]uint64
	count       uint64
	sum         float64
}

func newTally() *tally {
	t := &tally{transitions: map[[2]sock.State]uint64{}, buckets: make(map[float64]uint64, len(lifetimeBuckets))}
	for _, b := range lifetimeBuckets {
		t.buckets[b] = 0 // every bucket is exposed, empty ones too
	}
	return t
}

func (t *tally) add(ev *track.Event) {
	switch {
	case ev.Kind == track.EventChange && (!t.kernel || ev.To == sock.TimeWait):
		t.transitions[[2]sock.State{ev.From, ev.To}]++
	case ev.Kind == track.EventGone && ev.TimeWait != nil:
		v := ev.TimeWait.Length.Seconds()
		t.count++
		t.sum += v
		for _, b := range lifetimeBuckets {
			if v <= b {
				t.buckets[b]++
			}
		}
	}
}

func (t *tally) collect(ch chan<- prometheus.Metric, d *descs, id []string, ok bool) {
	for k, n := range t.transitions {
		ch <- prometheus.MustNewConstMetric(d.transitions, prometheus.CounterValue, float64(n), append(slices.Clip(id), k[0].String(), k[1].String())...)
	}
	// The histogram takes its own copy: the map goes on counting.
	ch <- prometheus.MustNewConstHistogram(d.lifetime, t.count, t.sum, maps.Clone(t.buckets), id...)
	ch <- prometheus.MustNewConstMetric(d.trackOK, prometheus.GaugeValue, boolValue(ok), id...)
}

// tracked is the background tracker of one target.
type tracked struct {
	id []string // the namespace's label values
	mu sync.Mutex
	ok bool // the tracker's last poll succeeded and it still runs
	t  *tally
}

func newTracked(id []string) *tracked { return &tracked{id: id, t: newTally()} }

// Track starts a monitor per target that follows transitions and TIME_WAIT
// lifetimes until ctx ends. sources are second sources of the targets (a
// monitor owns its source), in the same order. The returned wait blocks
// until every monitor has stopped: call it after ctx ends and before the
// sources close.
func (e *Exporter) Track(ctx context.Context, sources []monitor.Source, destroys []<-chan sock.Destroy, interval time.Duration) (wait func()) {
	var wg sync.WaitGroup
	for i, src := range sources {
		tr := newTracked(e.targets[i].labels())
		e.mu.Lock()
		e.tracked = append(e.tracked, tr)
		e.mu.Unlock()
		var d <-chan sock.Destroy
		if i < len(destroys) {
			d = destroys[i]
		}
		runTracker(ctx, &wg, src, d, interval, tr.frame, tr.failed)
	}
	return wg.Wait
}

// runTracker runs a monitor of src in wg until ctx ends; failed is called
// when a fault ends it.
func runTracker(ctx context.Context, wg *sync.WaitGroup, src monitor.Source, destroys <-chan sock.Destroy, interval time.Duration, frame func(*monitor.Frame), failed func()) {
	m := monitor.New(src, monitor.Options{Interval: interval}, frame)
	wg.Go(func() {
		if err := m.Run(ctx, nil, destroys); err != nil {
			// Its metrics stop growing, and sockscope_track_success
			// says so.
			failed()
		}
	})
}

func (t *tracked) frame(f *monitor.Frame) {
	defer f.Release() // only its events count
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ok = f.Err == nil
	for i := range f.Events {
		t.t.add(&f.Events[i])
	}
}

func (t *tracked) failed() {
	t.mu.Lock()
	t.ok = false
	t.mu.Unlock()
}

func (t *tracked) collect(ch chan<- prometheus.Metric, d *descs) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.t.collect(ch, d, t.id, t.ok)
}

// trackedAll is the one tracker of every namespace on the host
// (--all-netns): a monitor over a source that reads them all, each socket
// stamped with its namespace, counting each namespace apart.
type trackedAll struct {
	live   func(inode uint32) bool
	mu     sync.Mutex
	ok     bool
	kernel bool              // the kernel reports the changes
	by     map[uint32]*tally // by namespace inode
}

// tally returns the namespace's tally, made if new; a.mu is held.
func (a *trackedAll) tally(ino uint32) *tally {
	t := a.by[ino]
	if t == nil {
		t = newTally()
		t.kernel = a.kernel
		a.by[ino] = t
	}
	return t
}

// TrackAll starts one monitor of src, a source of every namespace on the
// host whose sockets carry their namespace (a Fleet), that follows each
// namespace's transitions and TIME_WAIT lifetimes until ctx ends. They are
// exported with the series of the scrape's namespace of the same inode; a
// namespace that live no longer reports is forgotten. One monitor, not one
// per namespace: one tracker of cookies, one poll, whatever comes and goes.
// wait is as Track's.
func (e *Exporter) TrackAll(ctx context.Context, src monitor.Source, destroys <-chan sock.Destroy, interval time.Duration, live func(inode uint32) bool) (wait func()) {
	a := &trackedAll{live: live, by: map[uint32]*tally{}}
	e.mu.Lock()
	e.all = a
	e.mu.Unlock()
	var wg sync.WaitGroup
	runTracker(ctx, &wg, src, destroys, interval, a.frame, a.failed)
	return wg.Wait
}

func (a *trackedAll) frame(f *monitor.Frame) {
	defer f.Release()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ok = f.Err == nil
	for i := range f.Events {
		ev := &f.Events[i]
		if ev.Entry.Socket == nil {
			continue // every event of a monitor has its socket
		}
		a.tally(ev.Entry.Netns).add(ev)
	}
	for ino := range a.by {
		if !a.live(ino) {
			delete(a.by, ino) // its namespace went away, and its series
		}
	}
}

func (a *trackedAll) failed() {
	a.mu.Lock()
	a.ok = false
	a.mu.Unlock()
}

// collect sends the tracker's metrics of each of the scrape's targets: a
// namespace without a transition yet has an empty histogram.
func (a *trackedAll) collect(ch chan<- prometheus.Metric, d *descs, targets []Target) {
	a.mu.Lock()
	defer a.mu.Unlock()
	empty := newTally()
	for i := range targets {
		t := a.by[uint32(targets[i].Netns.Inode)]
		if t == nil {
			t = empty
		}
		t.collect(ch, d, targets[i].labels(), a.ok)
	}
}

// KernelLost gives the exporter the count of the kernel's state changes
// lost (kevents.Watcher.Lost), for sockscope_kernel_events_lost_total:
// what sockscope_tcp_transitions_total misses.
func (e *Exporter) KernelLost(lost func() (uint64, error)) {
	e.lost.Store(&lost)
}

// KernelTransitions switches the trackers to the kernel's changes (as
// root, sockscope's BPF program on sock:inet_sock_set_state): every step
// of every socket counted, those between two polls included; the polls
// then count only the changes into TIME_WAIT. inodes are the namespaces of
// the targets Track was given, in order (nil after TrackAll). The returned
// count takes each change the kernel reports; a change to CLOSE is the
// end the polls see (freed, or the TIME_WAIT entry), and is not counted.
func (e *Exporter) KernelTransitions(inodes []uint32) (count func(netns uint32, from, to sock.State)) {
	e.mu.Lock()
	all, trackers := e.all, e.tracked
	e.mu.Unlock()
	if all != nil {
		all.mu.Lock()
		all.kernel = true
		for _, t := range all.by {
			t.kernel = true
		}
		all.mu.Unlock()
		return func(ino uint32, from, to sock.State) {
			if to == sock.Close {
				return
			}
			all.mu.Lock()
			defer all.mu.Unlock()
			if all.live(ino) {
				all.tally(ino).transitions[[2]sock.State{from, to}]++
			}
		}
	}
	byIno := make(map[uint32]*tracked, len(trackers))
	for i, tr := range trackers {
		if i < len(inodes) {
			tr.mu.Lock()
			tr.t.kernel = true
			tr.mu.Unlock()
			byIno[inodes[i]] = tr
		}
	}
	return func(ino uint32, from, to sock.State) {
		tr := byIno[ino]
		if tr == nil || to == sock.Close {
			return
		}
		tr.mu.Lock()
		tr.t.transitions[[2]sock.State{from, to}]++
		tr.mu.Unlock()
	}
}
