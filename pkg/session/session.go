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

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/kstat"
	"github.com/sockscope/sockscope/pkg/netns"
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
}

// Target is one namespace's source and its announcements.
type Target struct {
	NS     netns.NS
	Source *source.Kernel
	// Destroys is nil where announcements are not available.
	Destroys <-chan sock.Destroy
}

// Session holds what Open opened until Close.
type Session struct {
	Targets []Target
	procs   *procs.Table
	notes   []string
	said    map[string]bool
	cancel  context.CancelFunc
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

func (s *Session) open(ctx context.Context, cfg Config) error {
	nss := cfg.Namespaces
	if len(nss) == 0 {
		nss = []netns.NS{{}}
	}
	for _, ns := range nss {
		src, err := source.Open(cfg.Program, source.Options{Netns: ns, Totals: cfg.Totals, Procfs: cfg.Procfs})
		if err != nil {
			return err
		}
		t := Target{NS: ns, Source: src}
		s.Targets = append(s.Targets, t)
		if src.Notice != "" {
			s.note(src.Notice)
		}
		if cfg.Destroys {
			d, err := src.Destroys(ctx)
			if err != nil && src.Notice == "" { // the /proc notice says so already
				s.note(fmt.Sprintf("no destroy events (%v); times come from polling alone", err))
			}
			s.Targets[len(s.Targets)-1].Destroys = d
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

func (s *Session) note(n string) {
	if !s.said[n] {
		s.said[n] = true
		s.notes = append(s.notes, n)
	}
}

// Source is the first namespace's source: the one a single-namespace
// command reads.
func (s *Session) Source() *source.Kernel { return s.Targets[0].Source }

// Destroys is the first namespace's announcements; nil when none.
func (s *Session) Destroys() <-chan sock.Destroy { return s.Targets[0].Destroys }

// Stat is the first namespace's TCP settings and counters.
func (s *Session) Stat() (*kstat.Reader, error) { return s.Source().Stat() }

// Lookup finds the owners of sockets; nil unless Config.Processes.
func (s *Session) Lookup() track.Lookup {
	if s.procs == nil {
		return nil
	}
	return s.procs.Lookup
}

// Notes are the notes of opening, each once, in the order they arose.
func (s *Session) Notes() []string { return s.notes }

// ClosingNotes are the notes only the run itself could tell: how many
// processes could not be inspected.
func (s *Session) ClosingNotes() []string {
	if s.procs == nil {
		return nil
	}
	var notes []string
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
	for _, t := range s.Targets {
		if err := t.Source.Close(); err != nil && first == nil {
			first = fmt.Errorf("closing the source of %s: %w", t.NS, err)
		}
	}
	return first
}
