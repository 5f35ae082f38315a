package ui

import (
	"sync"

	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/track"
)

// mailbox hands frames from the poller to the UI without ever blocking the
// poller: a frame the UI has not taken yet is replaced by the next one, its
// gone sockets carried over so none is missed.
type mailbox struct {
	mu    sync.Mutex
	frame *monitor.Frame
	ready chan struct{}
}

func newMailbox() *mailbox { return &mailbox{ready: make(chan struct{}, 1)} }

func (m *mailbox) put(f *monitor.Frame) {
	m.mu.Lock()
	if old := m.frame; old != nil {
		merged := *f
		merged.Gone = append(append([]track.Entry(nil), old.Gone...), f.Gone...)
		merged.Events = append(append([]track.Event(nil), old.Events...), f.Events...)
		merged.Refiltered = old.Refiltered || f.Refiltered
		if f.Err != nil && f.Entries == nil {
			merged.Entries, merged.Infos = old.Entries, old.Infos
		} else {
			old.Release() // never taken: nothing reads it
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

func (m *mailbox) take() *monitor.Frame {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.frame
	m.frame = nil
	return f
}
