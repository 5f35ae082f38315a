// Package session opens, in one place, everything a sockscope command
// reads: a kernel source for each network namespace, the kernel's destroy
// announcements, the namespace's TCP settings and counters, and the
// process table. A command parses its flags, opens a Session, and runs its
// front end on what the Session holds.
//
// # Notes
//
// Some things a person should know are said once per run, the same way by
// every command: that sock_diag is missing and /proc/net/tcp is read
// instead (and what that costs), that there are no destroy announcements
// (times then come from polling alone), and, at the end, how many
// processes could not be inspected (not root: other users' sockets show
// no owner). A Session collects them as it
// opens (Notes) and as it ends (ClosingNotes); the command decides where
// they go (stderr, the dashboard's status line, the exporter's log). A
// note said for one namespace is not said again for the next.
//
// A Session is NOT safe for concurrent use; its sources follow their own
// contract (one goroutine each).
package session

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/fleet"
	"github.com/sockscope/sockscope/pkg/kevents"
	"github.com/sockscope/sockscope/pkg/kstat"
	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/nsfind"
	"github.com/sockscope/sockscope/pkg/procs"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/source"
	"github.com/sockscope/sockscope/pkg/track"
)

// Config says what a command reads.
type Config struct {
	// Namespaces to read, in order; none means the caller's own.
	Namespaces []netns.NS
	// Program is the compiled filter every source starts with.
	Program *filter.Program
	// Procfs reads /proc/net/tcp instead of sock_diag.
	Procfs bool
	// Totals fills each snapshot's Total (the live modes show it).
	Totals bool
	// Processes looks up the owners of sockets.
	Processes bool
	// Destroys joins the kernel's destroy announcements (the live modes).
	Destroys bool
	// ProcRoot is where the process table is read: "/proc" when empty.
	ProcRoot string
	// Merge reads Namespaces (or with All every namespace on the host)
	// through one Fleet: one snapshot of them all, each socket stamped
	// with its namespace. Without it each namespace has a Target of its
	// own (the exporter's per-namespace series).
	Merge bool
	// All reads every namespace on the host, found again as containers
	// come and go (implies Merge).
	All bool
	// Parallel dumps several namespaces of a Fleet at once, and walks the
	// kernel's table of one namespace beside the reader of its stream: a
	// one-shot listing's wall time, for a second copy of its table (of a
	// few batches in one namespace).
	Parallel bool
	// PodLogs is the kubelet's log directory, which names pods
	// (/var/log/pods when empty).
	PodLogs string
}

// Reader is what a command reads snapshots from: one namespace's source,
// or a Fleet of many.
type Reader interface {
	Snapshot() (*sock.Snapshot, error)
	// Stream hands the sockets on a kernel batch at a time, for a
	// one-shot listing whose memory must not grow with the table; fn
	// must not keep a batch.
	Stream(fn func(*sock.Snapshot) error) error
	SetProgram(*filter.Program)
	SetInfo(bool)
	Recycle(*sock.Snapshot)
	Alive(*sock.Socket) (bool, error)
}

// Target is one namespace's source and its announcements.
type Target struct {
	NS     netns.NS
	Source *source.Kernel
	// Destroys is nil where announcements are not available.
	Destroys <-chan sock.Destroy
	ends     *ends // Destroys, for KernelEnds
}

// Session holds what Open opened until Close.
type Session struct {
	Targets []Target
	// Fleet reads every namespace when Config.Merge or All; nil else.
	Fleet  *fleet.Fleet
	procs  *procs.Table
	notes  []string
	said   map[string]bool
	stamps *kevents.Stamps // the agent's, once Births opened them
	// late are notes from the monitor's goroutine (Births), for
	// LaterNotes.
	mu     sync.Mutex
	late   []string
	cancel context.CancelFunc
}

// Open opens a source in every namespace of cfg, and what else cfg asks
// for. The destroy announcements are delivered until ctx ends or Close.
// An error closes what was opened.
func Open(ctx context.Context, cfg Config) (*Session, error) {
	s := &Session{said: map[string]bool{}}
	ctx, s.cancel = context.WithCancel(ctx)
	if err := s.open(ctx, cfg); err != nil {
		if cerr := s.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	return s, nil
}

// FilterError says that the filter tests what the sources read cannot
// tell: bad input, not a failure.
type FilterError struct{ Msg string }

func (e *FilterError) Error() string { return e.Msg }

// ErrDevFromProcfs is the FilterError of a dev test where /proc/net/tcp
// is read: it has no interface, so dev would match nothing, or (negated)
// everything, without a word.
var ErrDevFromProcfs = &FilterError{Msg: "dev: /proc/net/tcp does not say which interface a socket is bound to; leave out the dev test (or --procfs)"}

func (s *Session) open(ctx context.Context, cfg Config) error {
	if err := s.openReaders(ctx, cfg); err != nil {
		return err
	}
	// /proc/net/tcp may be read without --procfs, where sock_diag is
	// missing.
	if cfg.Program != nil {
		if err := s.Refuse(cfg.Program.Expr); err != nil {
			return err
		}
	}
	if cfg.Processes {
		root := cfg.ProcRoot
		if root == "" {
			root = "/proc"
		}
		// Who could not be inspected is known only once lookups ran:
		// ClosingNotes says it.
		s.procs = procs.New(root)
	}
	return nil
}

func (s *Session) openReaders(ctx context.Context, cfg Config) error {
	if cfg.Merge || cfg.All {
		fc := fleet.Config{
			Fixed: cfg.Namespaces, All: cfg.All, Program: cfg.Program, Procfs: cfg.Procfs,
			Totals: cfg.Totals, Destroys: cfg.Destroys,
			// A rescan of 200 namespaces and 2,000 processes costs about
			// 14 ms; the descriptor walk, which finds the namespaces held
			// only by a descriptor, costs ten times that (on a host whose
			// processes hold 100k sockets, a tenth of a busy dashboard).
			Rescan: time.Second, DescriptorsEvery: 30 * time.Second,
			Identify: nsfind.IdentifyOptions{PodLogs: cfg.PodLogs},
		}
		if cfg.Parallel {
			fc.Workers = runtime.GOMAXPROCS(0)
		}
		f, err := fleet.Open(ctx, fc)
		if err != nil {
			return err
		}
		s.Fleet = f
		for _, n := range f.Notes() {
			s.note(n)
		}
		return nil
	}
	nss := cfg.Namespaces
	if len(nss) == 0 {
		nss = []netns.NS{{}}
	}
	for _, ns := range nss {
		src, err := source.Open(cfg.Program, source.Options{Netns: ns, Totals: cfg.Totals, Procfs: cfg.Procfs, Beside: cfg.Parallel})
		if err != nil {
			return err
		}
		t := Target{NS: ns, Source: src}
		s.Targets = append(s.Targets, t)
		if src.Notice != "" {
			s.note(src.Notice)
		}
		if cfg.Destroys {
			e, err := subscribe(ctx, src)
			switch {
			case err == nil:
				t := &s.Targets[len(s.Targets)-1]
				t.Destroys, t.ends = e.ch, e
			case src.Notice == "": // the /proc notice says so already
				s.note(fmt.Sprintf("no destroy events (%v); times come from polling alone", err))
			}
		}
	}
	return nil
}

// Refuse says why the sources cannot apply filter e (nil: they can): a
// FilterError.
func (s *Session) Refuse(e filter.Expr) error {
	if filter.HasDev(e) && s.ReadsProcfs() {
		return ErrDevFromProcfs
	}
	return nil
}

// ReadsProcfs says whether a source reads /proc/net/tcp (asked for, or
// where sock_diag is missing): no interface, no tcp_info, no listener's
// backlog.
func (s *Session) ReadsProcfs() bool {
	if s.Fleet != nil {
		for _, mb := range s.Fleet.Members() {
			if mb.Source.Procfs() {
				return true
			}
		}
		return false
	}
	for _, t := range s.Targets {
		if t.Source.Procfs() {
			return true
		}
	}
	return false
}

func (s *Session) note(n string) {
	if !s.said[n] {
		s.said[n] = true
		s.notes = append(s.notes, n)
	}
}

// Source is the first namespace's source: the one a single-namespace
// command reads (with a Fleet, its first namespace's: the host's with
// All).
func (s *Session) Source() *source.Kernel {
	if s.Fleet != nil {
		return s.Fleet.Members()[0].Source
	}
	return s.Targets[0].Source
}

// Reader is what the command reads: the Fleet, or the one source.
func (s *Session) Reader() Reader {
	if s.Fleet != nil {
		return s.Fleet
	}
	return s.Targets[0].Source
}

// Names names the namespaces of a Fleet; nil for one namespace.
func (s *Session) Names() nsfind.Names {
	if s.Fleet == nil {
		return nil
	}
	return s.Fleet.Name
}

// Namespaces lists the namespaces a Fleet reads now (nil for one
// namespace): what the dashboard's namespace view shows.
func (s *Session) Namespaces() func() []*nsfind.Name {
	if s.Fleet == nil {
		return nil
	}
	return s.Fleet.List
}

// Destroys is the announcements of what the command reads; nil when none.
func (s *Session) Destroys() <-chan sock.Destroy {
	if s.Fleet != nil {
		return s.Fleet.Destroys()
	}
	return s.Targets[0].Destroys
}

// Stat is the first namespace's TCP settings and counters (the host's
// with All: the TIME_WAIT limits are per namespace, and the host's is the
// one an administrator sets).
func (s *Session) Stat() (*kstat.Reader, error) { return s.Source().Stat() }

// laterNote keeps a note for LaterNotes; safe from any goroutine.
func (s *Session) laterNote(n string) {
	s.mu.Lock()
	s.late = append(s.late, n)
	s.mu.Unlock()
}

// Births are the birth dates the agent stamped in the kernel (sockscope
// agent start), nil when no agent runs. The first call reads every stamp
// at once. With alone (the live modes), a socket not among them is looked
// up alone (the tracker asks when it first sees a socket, and again at
// each change it sees), so that one born since is found too; a one-shot
// listing has what the first read found.
func (s *Session) Births(alone bool) (track.Births, error) {
	stamps, err := kevents.OpenStamps()
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
		// No agent, or none this user may read (bpffs is root's): the
		// ages are as without one, as the README says.
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.stamps = stamps
	var all map[uint64]kevents.Stamp
	failed := false // said once
	fail := func(err error) {
		if !failed {
			failed = true
			s.laterNote(fmt.Sprintf("the agent's birth dates: %v", err))
		}
	}
	return func(cookie uint64) (track.Birth, bool) {
		if all == nil {
			var err error
			if all, err = stamps.All(); err != nil {
				fail(err)
				all = map[uint64]kevents.Stamp{}
			}
		}
		st, ok := all[cookie]
		if ok && alone {
			// Asked first at a socket's first sight: the first read
			// shrinks as it is used, and a live mode does not keep it
			// (a later change asks the kernel alone).
			delete(all, cookie)
		}
		if !ok && alone {
			var err error
			if st, ok, err = stamps.Lookup(cookie); err != nil {
				fail(err)
			}
		}
		return track.Birth{Born: st.Born, Changed: st.Last, State: st.State}, ok
	}, nil
}

// Lookup finds the owners of sockets; nil unless Config.Processes.
func (s *Session) Lookup() track.Lookup {
	if s.procs == nil {
		return nil
	}
	return s.procs.Lookup
}

// Notes are the notes of opening, each once, in the order they arose.
func (s *Session) Notes() []string { return s.notes }

// LaterNotes are the notes a Fleet had since the last call (a namespace
// that could not be entered, found at a rescan), each said once.
func (s *Session) LaterNotes() []string {
	s.mu.Lock()
	late := s.late
	s.late = nil
	s.mu.Unlock()
	if s.Fleet != nil {
		late = append(late, s.Fleet.Notes()...)
	}
	var out []string
	for _, n := range late {
		if !s.said[n] {
			s.said[n] = true
			out = append(out, n)
		}
	}
	return out
}

// ClosingNotes are the notes only the run itself could tell: how many
// processes could not be inspected.
func (s *Session) ClosingNotes() []string {
	notes := s.LaterNotes()
	if s.procs == nil {
		return notes
	}
	if n := s.procs.Denied(); n > 0 {
		notes = append(notes, fmt.Sprintf("%d processes could not be inspected; their sockets show no owner (run as root to see all)", n))
	}
	if err := s.procs.Err(); err != nil {
		notes = append(notes, fmt.Sprintf("owners of sockets: %v", err))
	}
	return notes
}

// Close stops the announcements and closes every source.
func (s *Session) Close() error {
	s.cancel()
	var first error
	if s.Fleet != nil {
		first = s.Fleet.Close()
	}
	if s.stamps != nil {
		if err := s.stamps.Close(); err != nil && first == nil {
			first = fmt.Errorf("closing the agent's stamps: %w", err)
		}
	}
	for _, t := range s.Targets {
		if err := t.Source.Close(); err != nil && first == nil {
			first = fmt.Errorf("closing the source of %s: %w", t.NS, err)
		}
	}
	return first
}
