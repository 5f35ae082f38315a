// Package twstat measures how long TIME_WAIT entries really last: the
// lifetimes of the entries the tracker saw leave, their distribution, per
// local port, and the kernel settings and counters that explain them.
//
// Memory is bounded whatever the traffic: lifetimes go into 100 ms buckets
// (quantiles are accurate to 100 ms), and per-port figures are a few
// numbers per port. Stats is NOT safe for concurrent use.
package twstat

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

const (
	bucket   = 100 * time.Millisecond
	nBuckets = 700 // 0 .. 70 s; longer lifetimes go to the last bucket
)

// Stats accumulates TIME_WAIT ends.
type Stats struct {
	counts   [nBuckets]int
	n        int
	min, max time.Duration
	early    int
	reused   int
	ports    map[uint16]*Port
}

// Port is the figures of one local port.
type Port struct {
	Port  uint16        `json:"port"`
	Count int           `json:"count"`
	Min   time.Duration `json:"-"`
	Max   time.Duration `json:"-"`
	Early int           `json:"early"`
	MinMs int64         `json:"min_ms"`
	MaxMs int64         `json:"max_ms"`
}

// New returns empty Stats.
func New() *Stats { return &Stats{ports: map[uint16]*Port{}} }

// Add folds in the events of one frame; only TIME_WAIT ends count.
func (s *Stats) Add(events []track.Event) {
	for i := range events {
		e := &events[i]
		if e.Kind != track.EventGone || e.TimeWait == nil {
			continue
		}
		s.add(e.Entry.Local.Port(), e.TimeWait)
	}
}

func (s *Stats) add(port uint16, end *track.TimeWaitEnd) {
	d := max(end.Length, 0)
	s.counts[min(int(d/bucket), nBuckets-1)]++
	if s.n == 0 || d < s.min {
		s.min = d
	}
	s.max = max(s.max, d)
	s.n++
	p := s.ports[port]
	if p == nil {
		p = &Port{Port: port, Min: d}
		s.ports[port] = p
	}
	p.Count++
	p.Min, p.Max = min(p.Min, d), max(p.Max, d)
	if end.Early {
		s.early++
		p.Early++
		if end.Reused {
			s.reused++
		}
	}
}

// Bucket is one bar of the histogram.
type Bucket struct {
	From  time.Duration `json:"-"`
	To    time.Duration `json:"-"`
	FromS float64       `json:"from_s"`
	ToS   float64       `json:"to_s"`
	Count int           `json:"count"`
}

// Summary is the figures so far.
type Summary struct {
	Count     int           `json:"count"`
	Min       time.Duration `json:"-"`
	Median    time.Duration `json:"-"`
	P99       time.Duration `json:"-"`
	Max       time.Duration `json:"-"`
	MinS      float64       `json:"min_s"`
	MedianS   float64       `json:"median_s"`
	P99S      float64       `json:"p99_s"`
	MaxS      float64       `json:"max_s"`
	Early     int           `json:"ended_early"`
	Reused    int           `json:"reused"`
	Killed    int           `json:"killed"`
	Histogram []Bucket      `json:"histogram"`
	Ports     []Port        `json:"ports"`
}

// Summary computes the figures; quantiles are accurate to 100 ms.
func (s *Stats) Summary() Summary {
	sum := Summary{Count: s.n, Min: s.min, Max: s.max, Early: s.early, Reused: s.reused, Killed: s.early - s.reused,
		Histogram: []Bucket{}, Ports: []Port{}}
	if s.n == 0 {
		return sum
	}
	sum.Median = min(max(s.quantile(0.5), s.min), s.max)
	sum.P99 = min(max(s.quantile(0.99), s.min), s.max)
	sum.MinS, sum.MedianS, sum.P99S, sum.MaxS = sum.Min.Seconds(), sum.Median.Seconds(), sum.P99.Seconds(), sum.Max.Seconds()
	sum.Histogram = append(sum.Histogram, s.histogram()...)
	for _, p := range s.ports {
		q := *p
		q.MinMs, q.MaxMs = q.Min.Milliseconds(), q.Max.Milliseconds()
		sum.Ports = append(sum.Ports, q)
	}
	slices.SortFunc(sum.Ports, func(a, b Port) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Port, b.Port)
	})
	return sum
}

// quantile returns the middle of the bucket holding the q-th lifetime.
func (s *Stats) quantile(q float64) time.Duration {
	rank := int(math.Ceil(q * float64(s.n))) // nearest rank
	rank = max(rank, 1)
	seen := 0
	for i, c := range s.counts {
		seen += c
		if seen >= rank {
			return time.Duration(i)*bucket + bucket/2
		}
	}
	return s.max
}

// histogram groups the lifetimes into one-second bars over the span they
// cover (at most 20 bars; wider spans get wider bars).
func (s *Stats) histogram() []Bucket {
	lo := s.min.Truncate(time.Second)
	hi := s.max.Truncate(time.Second) + time.Second
	width := time.Second
	for (hi-lo)/width > 20 {
		width *= 2
	}
	var out []Bucket
	for from := lo; from < hi; from += width {
		b := Bucket{From: from, To: from + width, FromS: from.Seconds(), ToS: (from + width).Seconds()}
		for i, c := range s.counts {
			if d := time.Duration(i) * bucket; d >= from && d < from+width {
				b.Count += c
			}
		}
		out = append(out, b)
	}
	return out
}

// Context is the kernel's side of the story, read from the namespace's
// sysctls and counters. Deltas are over the measurement.
type Context struct {
	FinTimeout  int   `json:"tcp_fin_timeout"` // seconds; bounds FIN_WAIT2, not TIME_WAIT
	Reuse       int   `json:"tcp_tw_reuse"`
	MaxBuckets  int   `json:"tcp_max_tw_buckets"`
	Now         int   `json:"timewait_now"` // TIME_WAIT entries in the namespace
	Overflow    int64 `json:"timewait_overflow"`
	Recycled    int64 `json:"timewait_recycled"`
	Killed      int64 `json:"timewait_killed"`
	TimeWaitLen int   `json:"timewait_length_s"`
}

// FixedLength is TIME_WAIT's length in the kernel, in seconds.
var FixedLength = int(sock.TimeWaitLen / time.Second)
