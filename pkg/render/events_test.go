package render

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/procs"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

func TestEventLines(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 1, 234e6, time.Local)
	entry := track.Entry{Socket: &sock.Socket{Family: sock.IPv4, Cookie: 0x2a,
		Local: sock.MustParseEndpoint("127.0.0.1:9000"), Peer: sock.MustParseEndpoint("127.0.0.1:53412")},
		Process: &procs.Process{PID: 7, Command: "srv"}}
	for _, tc := range []struct {
		e    track.Event
		want string
	}{
		{track.Event{Kind: track.EventChange, At: at, Entry: entry, From: sock.Established, To: sock.TimeWait,
			InState: 1200 * time.Millisecond, InStateExact: true},
			"12:00:01.234 127.0.0.1:9000 127.0.0.1:53412 ESTABLISHED -> TIME_WAIT after 1.2s 7/srv"},
		{track.Event{Kind: track.EventChange, At: at, Entry: entry, From: sock.Established, To: sock.CloseWait,
			InState: 5 * time.Second, InStateAtLeast: true},
			"12:00:01.234 127.0.0.1:9000 127.0.0.1:53412 ESTABLISHED -> CLOSE_WAIT after >=5.0s 7/srv"},
		{track.Event{Kind: track.EventChange, At: at, Exact: true, Entry: entry, From: sock.SynSent, To: sock.Established,
			InState: 5 * time.Second, InStateUnknown: true},
			"12:00:01.234 127.0.0.1:9000 127.0.0.1:53412 SYN_SENT -> ESTABLISHED after ? 7/srv"},
		{track.Event{Kind: track.EventNew, At: at, Entry: entry, To: sock.SynSent},
			"12:00:01.234 127.0.0.1:9000 127.0.0.1:53412 new SYN_SENT 7/srv"},
		{track.Event{Kind: track.EventGone, At: at, Entry: entry, From: sock.LastAck, InState: 300 * time.Millisecond,
			Lifetime: 2 * time.Second}, "12:00:01.234 127.0.0.1:9000 127.0.0.1:53412 LAST_ACK gone after ~300ms, seen for 2.0s 7/srv"},
		{track.Event{Kind: track.EventGone, At: at, Exact: true, Entry: entry, From: sock.LastAck, InStateUnknown: true,
			Lifetime: 3 * time.Second, LifetimeAtLeast: true}, "12:00:01.234 127.0.0.1:9000 127.0.0.1:53412 LAST_ACK gone after ?, seen for >=3.0s 7/srv"},
		{track.Event{Kind: track.EventGone, At: at, Entry: entry, From: sock.TimeWait,
			TimeWait: &track.TimeWaitEnd{Length: 61040 * time.Millisecond, Uncertainty: 50 * time.Millisecond}},
			"12:00:01.234 127.0.0.1:9000 127.0.0.1:53412 TIME_WAIT gone after 61.0s 7/srv"},
		{track.Event{Kind: track.EventGone, At: at, Entry: entry, From: sock.TimeWait,
			TimeWait: &track.TimeWaitEnd{Length: 12 * time.Second, Uncertainty: time.Second, Early: true, Reused: true}},
			"12:00:01.234 127.0.0.1:9000 127.0.0.1:53412 TIME_WAIT gone after ~12.0s, ended early: port reused 7/srv"},
		{track.Event{Kind: track.EventGone, At: at, Exact: true, Entry: entry, From: sock.Close, Unseen: true},
			"12:00:01.234 127.0.0.1:9000 127.0.0.1:53412 CLOSE gone between polls, never seen by one 7/srv"},
	} {
		if got := string(AppendEvent(nil, &tc.e, true)); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
		var m map[string]any
		if err := json.Unmarshal(AppendEventJSON(nil, &tc.e), &m); err != nil {
			t.Fatalf("%s: %v", AppendEventJSON(nil, &tc.e), err)
		}
		if m["event"] != tc.e.Kind.String() || m["cookie"] != "0x2a" || m["pid"] != 7.0 || m["local"] != "127.0.0.1:9000" {
			t.Errorf("JSON %v", m)
		}
		if ms, ok := m["in_state_ms"]; tc.e.Kind != track.EventNew && (!ok || (ms == nil) != tc.e.InStateUnknown) {
			t.Errorf("JSON in_state_ms %v (present %v); want null exactly when unknown", ms, ok)
		}
		if unseen, ok := m["unseen"]; (tc.e.Kind == track.EventGone) != ok || (ok && unseen != tc.e.Unseen) {
			t.Errorf("JSON unseen %v (present %v) for %v", unseen, ok, tc.e.Kind)
		}
	}
}
