// Package kstat reads what the kernel says about TCP in one network
// namespace outside the socket table: the TIME_WAIT sysctls, the counters of
// /proc/net/snmp and /proc/net/netstat, and the socket counts of
// /proc/net/sockstat.
//
// Each of those files answers for the namespace it was opened in (proc/net
// files by their path, /proc/sys/net by the opener's namespace), so a
// Reader opens them once, from a thread inside the namespace, and rereads
// them from any thread. A Reader is NOT safe for concurrent use.
package kstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/sockscope/sockscope/pkg/netns"
)

// Files a Reader keeps open, by name.
var paths = map[string]string{
	"sockstat":           "/proc/thread-self/net/sockstat",
	"sockstat6":          "/proc/thread-self/net/sockstat6",
	"snmp":               "/proc/thread-self/net/snmp",
	"netstat":            "/proc/thread-self/net/netstat",
	"tcp_fin_timeout":    "/proc/sys/net/ipv4/tcp_fin_timeout",
	"tcp_tw_reuse":       "/proc/sys/net/ipv4/tcp_tw_reuse",
	"tcp_max_tw_buckets": "/proc/sys/net/ipv4/tcp_max_tw_buckets",
	"tcp_ehash_entries":  "/proc/sys/net/ipv4/tcp_ehash_entries",
}

// Reader rereads a namespace's TCP files.
type Reader struct {
	files map[string]*os.File
	buf   []byte
}

// Open opens the files of the namespace ns (the zero NS is the caller's).
func Open(ns netns.NS) (*Reader, error) {
	r := &Reader{files: map[string]*os.File{}, buf: make([]byte, 16<<10)}
	open := func() error {
		for name, p := range paths {
			f, err := os.Open(p)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) && strings.HasPrefix(name, "tcp_") {
					continue // an older kernel without this knob
				}
				r.Close()
				return fmt.Errorf("opening %s: %w", p, err)
			}
			r.files[name] = f
		}
		return nil
	}
	if err := ns.Run(open); err != nil {
		return nil, err
	}
	return r, nil
}

// Close closes the files.
func (r *Reader) Close() error {
	var errs []error
	for _, f := range r.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

func (r *Reader) read(name string) ([]byte, error) {
	f := r.files[name]
	if f == nil {
		return nil, fmt.Errorf("%s: %w", paths[name], os.ErrNotExist)
	}
	n, err := f.ReadAt(r.buf, 0)
	if n == 0 && err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	return r.buf[:n], nil
}

// TimeWaitSettings are the sysctls people associate with TIME_WAIT. Only
// MaxBuckets and Reuse affect it: its length is fixed at 60 s.
type TimeWaitSettings struct {
	FinTimeout int // net.ipv4.tcp_fin_timeout, seconds: bounds FIN_WAIT2, NOT TIME_WAIT
	Reuse      int // net.ipv4.tcp_tw_reuse: 0 off, 1 on, 2 loopback only
	MaxBuckets int // net.ipv4.tcp_max_tw_buckets: past it, new TIME_WAITs are dropped
}

// TimeWait reads the TIME_WAIT sysctls; a knob the kernel lacks reads -1.
func (r *Reader) TimeWait() (TimeWaitSettings, error) {
	var s TimeWaitSettings
	for _, k := range []struct {
		name string
		dst  *int
	}{{"tcp_fin_timeout", &s.FinTimeout}, {"tcp_tw_reuse", &s.Reuse}, {"tcp_max_tw_buckets", &s.MaxBuckets}} {
		*k.dst = -1
		if r.files[k.name] == nil {
			continue
		}
		b, err := r.read(k.name)
		if err != nil {
			return s, err
		}
		v, err := strconv.Atoi(string(bytes.TrimSpace(b)))
		if err != nil {
			return s, fmt.Errorf("parsing %s: %w", paths[k.name], err)
		}
		*k.dst = v
	}
	return s, nil
}

// SharesHostTable says whether the namespace keeps its connections in the
// host's shared established table: net.ipv4.tcp_ehash_entries is negative
// there (Linux 6.1+). A namespace made while its parent's
// tcp_child_ehash_entries was set has a table of its own (a positive
// value), and so has the host's first namespace, which owns the shared
// one: both read false. A kernel without the knob has only the shared
// table: true.
func (r *Reader) SharesHostTable() (bool, error) {
	if r.files["tcp_ehash_entries"] == nil {
		return true, nil
	}
	b, err := r.read("tcp_ehash_entries")
	if err != nil {
		return false, err
	}
	return sharesHostTable(b)
}

// SharesHostTable is Reader.SharesHostTable for one look, without opening
// the Reader's other files.
func SharesHostTable(ns netns.NS) (bool, error) {
	var shared bool
	err := ns.Run(func() error {
		b, err := os.ReadFile(paths["tcp_ehash_entries"])
		if errors.Is(err, os.ErrNotExist) {
			shared = true // a kernel older than the knob has one table
			return nil
		}
		if err != nil {
			return err
		}
		shared, err = sharesHostTable(b)
		return err
	})
	return shared, err
}

func sharesHostTable(b []byte) (bool, error) {
	v, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil {
		return false, fmt.Errorf("parsing %s: %w", paths["tcp_ehash_entries"], err)
	}
	return v < 0, nil
}

// SocketCounts are the TCP lines of /proc/net/sockstat and sockstat6.
type SocketCounts struct {
	InUse4, InUse6 int // sockets hashed: listeners and connections
	TimeWait       int // TIME_WAIT entries, both families
	Orphans        int
}

// Total is every TCP socket a dump can see, request sockets aside.
func (c SocketCounts) Total() int { return c.InUse4 + c.InUse6 + c.TimeWait }

// Sockets reads the socket counts.
func (r *Reader) Sockets() (SocketCounts, error) {
	var c SocketCounts
	b, err := r.read("sockstat")
	if err != nil {
		return c, err
	}
	v4 := fieldsOf(b, "TCP:")
	b, err = r.read("sockstat6")
	if err != nil {
		return c, err
	}
	v6 := fieldsOf(b, "TCP6:")
	var ok [3]bool
	c.InUse4, ok[0] = v4["inuse"]
	c.TimeWait, ok[1] = v4["tw"]
	c.InUse6, ok[2] = v6["inuse"]
	c.Orphans = v4["orphan"]
	if !ok[0] || !ok[1] || !ok[2] {
		return c, errors.New("parsing sockstat: no TCP inuse or tw count")
	}
	return c, nil
}

// fieldsOf parses a "TCP: inuse 3 orphan 0 tw 2" line.
func fieldsOf(b []byte, prefix string) map[string]int {
	m := map[string]int{}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(l, []byte(prefix)) {
			continue
		}
		f := bytes.Fields(l[len(prefix):])
		for i := 0; i+1 < len(f); i += 2 {
			if v, err := strconv.Atoi(string(f[i+1])); err == nil {
				m[string(f[i])] = v
			}
		}
	}
	return m
}

// Counters reads the Tcp: lines of /proc/net/snmp and the TcpExt: lines of
// /proc/net/netstat, keyed by the kernel's names (ActiveOpens,
// TCPTimeWaitOverflow, ...).
func (r *Reader) Counters() (map[string]int64, error) {
	out := map[string]int64{}
	for _, f := range []struct{ file, prefix string }{{"snmp", "Tcp:"}, {"netstat", "TcpExt:"}} {
		b, err := r.read(f.file)
		if err != nil {
			return nil, err
		}
		if err := parseCounters(b, f.prefix, out); err != nil {
			return nil, fmt.Errorf("parsing %s: %w", paths[f.file], err)
		}
	}
	return out, nil
}

// parseCounters reads pairs of lines: names, then values, both starting
// with prefix.
func parseCounters(b []byte, prefix string, out map[string]int64) error {
	var names [][]byte
	found := false
	for _, l := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(l, []byte(prefix)) {
			continue
		}
		f := bytes.Fields(l[len(prefix):])
		if names == nil {
			names = f
			continue
		}
		if len(f) != len(names) {
			return fmt.Errorf("%s has %d names but %d values", prefix, len(names), len(f))
		}
		for i, v := range f {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return fmt.Errorf("%s %s: %w", prefix, names[i], err)
			}
			out[string(names[i])] = n
		}
		names, found = nil, true
	}
	if !found {
		return fmt.Errorf("no %s lines", prefix)
	}
	return nil
}
