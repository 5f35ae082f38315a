package ui

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

// Source is where snapshots come from: the kernel collector in the command,
// a scripted fake in tests.
type Source interface {
	Snapshot() (*sock.Snapshot, error)
	// SetProgram changes the filter for the next snapshots.
	SetProgram(*filter.Program)
	// SetInfo asks for tcp_info in the next snapshots, or stops asking.
	SetInfo(bool)
}

// Frame is one poll's result, handed from the poller to the UI. It is never
// modified after it is sent.
type Frame struct {
	Time    time.Time
	Entries []track.Entry // the sockets that match the filter
	Gone    []track.Entry // sockets the previous frame had and this one lacks
	Infos   []sock.TCPInfo
	Total   int // sockets in the namespace, -1 when unknown
	Err     error
	// Refiltered is set on the first frame after a filter change: its Gone
	// sockets left the filter, not the kernel's table.
	Refiltered bool
	// Detail and History describe the socket whose detail pane is open.
	Detail  uint64
	History []track.Transition
}

// poller runs in its own goroutine. Its fields belong to that goroutine;
// the UI changes them only through closures sent on cmds.
type poller struct {
	src        Source
	tracker    *track.Tracker
	lookup     track.Lookup
	interval   time.Duration
	detail     uint64
	refiltered bool
	now        func() time.Time
	cmds       chan func()
	send       func(*Frame)
	ticker     *time.Ticker
}

// do runs f on the poller goroutine; it never blocks the UI for long, as
// the poller drains commands between dumps.
func (p *poller) do(f func()) {
	p.cmds <- f
}

func (p *poller) run(ctx context.Context, tick <-chan time.Time) (err error) {
	defer func() {
		// A panic here would leave the terminal in raw mode: report it
		// as an error so the dashboard can shut down cleanly.
		if r := recover(); r != nil {
			err = fmt.Errorf("collector panic: %v", r)
		}
	}()
	if tick == nil {
		p.ticker = time.NewTicker(p.interval)
		defer p.ticker.Stop()
		tick = p.ticker.C
	}
	p.poll()
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-p.cmds:
			f()
		case <-tick:
			p.poll()
		}
	}
}

func (p *poller) setInterval(d time.Duration) {
	p.interval = d
	if p.ticker != nil {
		p.ticker.Reset(d)
	}
}

func (p *poller) setProgram(prog *filter.Program) {
	p.src.SetProgram(prog)
	p.refiltered = true
	p.poll()
}

func (p *poller) setProcesses(on bool) {
	if on {
		p.tracker.SetLookup(p.lookup)
		p.poll() // owners now, not one interval later
	} else {
		p.tracker.SetLookup(nil)
	}
}

// setDetail opens (cookie != 0) or closes the detail pane's data: tcp_info
// is asked for only while someone looks at it.
func (p *poller) setDetail(cookie uint64) {
	p.detail = cookie
	p.src.SetInfo(cookie != 0)
	p.poll()
}

func (p *poller) poll() {
	snap, err := p.src.Snapshot()
	if err != nil {
		p.send(&Frame{Time: p.now(), Err: err, Total: -1})
		return
	}
	v := p.tracker.Update(snap)
	f := &Frame{Time: v.Time, Entries: v.Entries, Gone: v.Gone, Infos: snap.Infos, Total: snap.Total,
		Refiltered: p.refiltered, Detail: p.detail}
	p.refiltered = false
	if p.detail != 0 {
		f.History = p.tracker.History(p.detail)
	}
	p.send(f)
}

// mailbox hands frames from the poller to the UI without ever blocking the
// poller: a frame the UI has not taken yet is replaced by the next one, its
// gone sockets carried over so none is missed.
type mailbox struct {
	mu    sync.Mutex
	frame *Frame
	ready chan struct{}
}

func newMailbox() *mailbox { return &mailbox{ready: make(chan struct{}, 1)} }

func (m *mailbox) put(f *Frame) {
	m.mu.Lock()
	if old := m.frame; old != nil {
		merged := *f
		merged.Gone = append(append([]track.Entry(nil), old.Gone...), f.Gone...)
		merged.Refiltered = old.Refiltered || f.Refiltered
		if f.Err != nil && f.Entries == nil {
			merged.Entries, merged.Infos = old.Entries, old.Infos
		}
		f = &merged
	}
	m.frame = f
	m.mu.Unlock()
	select {
	case m.ready <- struct{}{}:
	default:
	}
}

func (m *mailbox) take() *Frame {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.frame
	m.frame = nil
	return f
}
