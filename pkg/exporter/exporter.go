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
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sockscope/sockscope/pkg/kstat"
	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/render"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

// Snapshotter is what a scrape reads: the kernel source in the command, a
// scripted one in tests.
type Snapshotter interface {
	Snapshot() (*sock.Snapshot, error)
}

// Target is one network namespace to export.
type Target struct {
	Netns    netns.NS // its Label is the netns label: "" for the exporter's own
	Source   Snapshotter
	Counters func() (map[string]int64, error) // the kernel's TCP counters; nil: none
}

// Options configures an Exporter.
type Options struct {
	Ports   []uint16 // ports that get their own local_port series
	Version string   // for sockscope_build_info
}

// Buckets of the TIME_WAIT histograms, in seconds: ages spread over the 60 s;
// lifetimes cluster just past 60 s (the kernel's timer wheel), early ends
// below.
var (
	ageBuckets      = []float64{1, 5, 10, 20, 30, 40, 50, 55, 59, 60}
	lifetimeBuckets = []float64{1, 10, 30, 59, 60, 60.5, 61, 61.5, 62, 63, 65, 70}
)

var (
	descSockets = prometheus.NewDesc("sockscope_tcp_sockets",
		"TCP sockets by state and family; local_port is set for the ports named with --port and empty for the rest, so a sum over it is the total.",
		[]string{"netns", "state", "family", "local_port"}, nil)
	descAge = prometheus.NewDesc("sockscope_tcp_timewait_age_seconds",
		"Ages of the live TIME_WAIT entries (exact: 60 s minus the kernel's timer).", []string{"netns"}, nil)
	descLifetime = prometheus.NewDesc("sockscope_tcp_timewait_lifetime_seconds",
		"Lifetimes of the TIME_WAIT entries seen from entering to leaving.", []string{"netns"}, nil)
	descTransitions = prometheus.NewDesc("sockscope_tcp_transitions_total",
		"State changes seen, by old and new state.", []string{"netns", "from", "to"}, nil)
	descDuration = prometheus.NewDesc("sockscope_scrape_duration_seconds",
		"Time the last dump of the namespace took.", []string{"netns"}, nil)
	descSuccess = prometheus.NewDesc("sockscope_scrape_success",
		"1 when the last dump of the namespace succeeded.", []string{"netns"}, nil)
	descTrackOK = prometheus.NewDesc("sockscope_track_success",
		"1 when the background tracker's last poll of the namespace succeeded (--track).", []string{"netns"}, nil)
	descCountersOK = prometheus.NewDesc("sockscope_counters_success",
		"1 when the namespace's TCP counters were read on the last scrape.", []string{"netns"}, nil)
	descBuild = prometheus.NewDesc("sockscope_build_info",
		"sockscope's version.", []string{"version"}, nil)
)

// descCounters are the kernel's TCP counters, a metric each
// (sockscope_tcp_<metric>_total): a sum over a "name" label of one metric
// would add unlike things, and Prometheus's own conventions say so.
var descCounters = func() []*prometheus.Desc {
	ds := make([]*prometheus.Desc, len(kstat.TCPCounters))
	for i, c := range kstat.TCPCounters {
		ds[i] = prometheus.NewDesc("sockscope_tcp_"+c.Metric+"_total",
			"The kernel's "+c.Name+" counter: "+c.Help+".", []string{"netns"}, nil)
	}
	return ds
}()

// Exporter is a prometheus.Collector.
type Exporter struct {
	targets []Target
	ports   map[uint16]bool
	version string

	mu       sync.Mutex
	inflight *call
	tracked  []*tracked // per target when tracking is on
}

type call struct {
	done chan struct{}
	res  []result
}

type seriesKey struct {
	state  sock.State
	family sock.Family
	port   uint16 // 0: not a named port
}

type result struct {
	counts   map[seriesKey]int
	ages     []float64
	counters map[string]int64
	cntErr   error // the counters could not be read
	took     time.Duration
	err      error
}

var _ prometheus.Collector = (*Exporter)(nil)

// New returns an Exporter of the targets.
func New(targets []Target, opt Options) *Exporter {
	e := &Exporter{targets: targets, ports: map[uint16]bool{}, version: opt.Version}
	for _, p := range opt.Ports {
		e.ports[p] = true
	}
	return e
}

// Describe sends every metric's description.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSockets, descAge, descLifetime, descTransitions,
		descDuration, descSuccess, descCountersOK, descTrackOK, descBuild} {
		ch <- d
	}
	for _, d := range descCounters {
		ch <- d
	}
}

// Collect runs (or joins) one scrape and sends its metrics.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	res := e.scrape()
	ch <- prometheus.MustNewConstMetric(descBuild, prometheus.GaugeValue, 1, e.version)
	for i, t := range e.targets {
		r := &res[i]
		ch <- prometheus.MustNewConstMetric(descDuration, prometheus.GaugeValue, r.took.Seconds(), t.Netns.Label())
		ok := 1.0
		if r.err != nil {
			ok = 0
		}
		ch <- prometheus.MustNewConstMetric(descSuccess, prometheus.GaugeValue, ok, t.Netns.Label())
		if r.err == nil {
			e.collectSockets(ch, t.Netns.Label(), r)
		}
		if t.Counters != nil {
			ok := 1.0
			if r.cntErr != nil {
				ok = 0
			}
			ch <- prometheus.MustNewConstMetric(descCountersOK, prometheus.GaugeValue, ok, t.Netns.Label())
		}
		for i, c := range kstat.TCPCounters {
			if v, found := r.counters[c.Name]; found {
				ch <- prometheus.MustNewConstMetric(descCounters[i], prometheus.CounterValue, float64(v), t.Netns.Label())
			}
		}
	}
	e.mu.Lock()
	tracked := e.tracked
	e.mu.Unlock()
	for _, tr := range tracked {
		tr.collect(ch)
	}
}

func (e *Exporter) collectSockets(ch chan<- prometheus.Metric, netns string, r *result) {
	// Every state of every family is always present, zeros included, so
	// that a state coming back to zero shows as 0 rather than vanishing.
	for _, fam := range []sock.Family{sock.IPv4, sock.IPv6} {
		for _, st := range sock.States {
			k := seriesKey{st, fam, 0}
			ch <- prometheus.MustNewConstMetric(descSockets, prometheus.GaugeValue, float64(r.counts[k]),
				netns, st.String(), render.FamilyName(fam), "")
			for p := range e.ports {
				k.port = p
				ch <- prometheus.MustNewConstMetric(descSockets, prometheus.GaugeValue, float64(r.counts[k]),
					netns, st.String(), render.FamilyName(fam), strconv.Itoa(int(p)))
			}
		}
	}
	ch <- constHistogram(descAge, ageBuckets, r.ages, netns)
}

func constHistogram(d *prometheus.Desc, bounds []float64, vals []float64, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(bounds))
	for _, b := range bounds {
		buckets[b] = 0 // every bucket is exposed, empty ones too
	}
	sum := 0.0
	for _, v := range vals {
		sum += v
		for _, b := range bounds {
			if v <= b {
				buckets[b]++
			}
		}
	}
	return prometheus.MustNewConstHistogram(d, uint64(len(vals)), sum, buckets, labels...)
}

// scrape dumps every target, or waits for the dump in flight and shares
// it: concurrent scrapes cost one dump.
func (e *Exporter) scrape() []result {
	e.mu.Lock()
	if c := e.inflight; c != nil {
		e.mu.Unlock()
		<-c.done
		return c.res
	}
	c := &call{done: make(chan struct{})}
	e.inflight = c
	e.mu.Unlock()

	c.res = make([]result, len(e.targets))
	for i, t := range e.targets {
		c.res[i] = e.dump(t)
	}
	e.mu.Lock()
	e.inflight = nil
	e.mu.Unlock()
	close(c.done)
	return c.res
}

func (e *Exporter) dump(t Target) result {
	start := time.Now()
	snap, err := t.Source.Snapshot()
	r := result{took: time.Since(start), err: err}
	if t.Counters != nil {
		// Counters that cannot be read are left out and said by
		// sockscope_counters_success; the sockets are still worth having.
		r.counters, r.cntErr = t.Counters()
	}
	if err != nil {
		return r
	}
	r.counts = make(map[seriesKey]int, 64)
	for i := range snap.Sockets {
		s := &snap.Sockets[i]
		r.counts[seriesKey{s.State, s.Family, 0}]++
		if p := s.Local.Port(); e.ports[p] {
			r.counts[seriesKey{s.State, s.Family, p}]++
			r.counts[seriesKey{s.State, s.Family, 0}]--
		}
		if age, _, ok := s.TimeWaitAge(); ok {
			r.ages = append(r.ages, age.Seconds())
		}
	}
	return r
}

// tracked is the background tracker of one target.
type tracked struct {
	netns       string
	mu          sync.Mutex
	ok          bool // the tracker's last poll succeeded and it still runs
	transitions map[[2]sock.State]uint64
	buckets     map[float64]uint64
	count       uint64
	sum         float64
}

// Track starts a monitor per target that follows transitions and TIME_WAIT
// lifetimes until ctx ends. sources are second sources of the targets (a
// monitor owns its source), in the same order. The returned wait blocks
// until every monitor has stopped: call it after ctx ends and before the
// sources close.
func (e *Exporter) Track(ctx context.Context, sources []monitor.Source, destroys []<-chan sock.Destroy, interval time.Duration) (wait func()) {
	var wg sync.WaitGroup
	for i, src := range sources {
		tr := &tracked{netns: e.targets[i].Netns.Label(), transitions: map[[2]sock.State]uint64{}, buckets: map[float64]uint64{}}
		for _, b := range lifetimeBuckets {
			tr.buckets[b] = 0
		}
		e.mu.Lock()
		e.tracked = append(e.tracked, tr)
		e.mu.Unlock()
		m := monitor.New(src, monitor.Options{Interval: interval}, tr.frame)
		var d <-chan sock.Destroy
		if i < len(destroys) {
			d = destroys[i]
		}
		wg.Go(func() {
			if err := m.Run(ctx, nil, d); err != nil {
				// A fault ended the tracker: its metrics stop growing,
				// and sockscope_track_success says so.
				tr.mu.Lock()
				tr.ok = false
				tr.mu.Unlock()
			}
		})
	}
	return wg.Wait
}

func (t *tracked) frame(f *monitor.Frame) {
	defer f.Release() // only its events count
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ok = f.Err == nil
	for i := range f.Events {
		ev := &f.Events[i]
		switch {
		case ev.Kind == track.EventChange:
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
}

func (t *tracked) collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, n := range t.transitions {
		ch <- prometheus.MustNewConstMetric(descTransitions, prometheus.CounterValue, float64(n), t.netns, k[0].String(), k[1].String())
	}
	buckets := make(map[float64]uint64, len(t.buckets))
	for b, n := range t.buckets {
		buckets[b] = n
	}
	ch <- prometheus.MustNewConstHistogram(descLifetime, t.count, t.sum, buckets, t.netns)
	ok := 0.0
	if t.ok {
		ok = 1
	}
	ch <- prometheus.MustNewConstMetric(descTrackOK, prometheus.GaugeValue, ok, t.netns)
}
