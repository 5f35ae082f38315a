package diagnose

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sockscope/sockscope/pkg/bindprobe"
	"github.com/sockscope/sockscope/pkg/render"
	"golang.org/x/sys/unix"
)

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	verdict := "bindable: bind() succeeds now"
	if !r.Bindable {
		verdict = "not bindable: bind() fails now"
	}
	fmt.Fprintf(&b, "%s %s\n", r.Addr, verdict)
	for way := bindprobe.Plain; way <= bindprobe.ReusePort; way++ {
		fmt.Fprintf(&b, "  %-18s %s\n", way.String()+":", Errno(r.Result[way]))
	}
	if len(r.Holders) > 0 {
		fmt.Fprintf(&b, "Sockets on port %d:\n", r.Addr.Port())
		for _, h := range r.Holders {
			fmt.Fprintf(&b, "  %-11s %-22s %-22s", h.State, h.Local, h.Peer)
			if h.Kind == "timewait" {
				fmt.Fprintf(&b, " %s left", secs(h.Left()))
			}
			if h.HasProcess() {
				fmt.Fprintf(&b, " pid %d (%s)", h.Process.PID, render.AppendPrintable(nil, h.Process.Command))
			} else if h.Kind == "listen" {
				b.WriteString(" owner not found in /proc")
			}
			b.WriteString("\n")
		}
	}
	for _, a := range r.Advice {
		b.WriteString(a + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

type wayJSON struct {
	OK    bool   `json:"ok"`
	Errno int    `json:"errno,omitempty"`
	Error string `json:"error,omitempty"`
}

type holderJSON struct {
	State   string `json:"state"`
	Local   string `json:"local"`
	Peer    string `json:"peer"`
	LeftMs  *int64 `json:"left_ms,omitempty"`
	PID     int    `json:"pid,omitempty"`
	Command string `json:"command,omitempty"`
}

// MarshalJSON renders the report for scripts.
func (r *Report) MarshalJSON() ([]byte, error) {
	way := func(err error) wayJSON {
		if err == nil {
			return wayJSON{OK: true}
		}
		w := wayJSON{Error: err.Error()}
		var e unix.Errno
		if errors.As(err, &e) {
			w.Errno, w.Error = int(e), unix.ErrnoName(e)
		}
		return w
	}
	out := struct {
		Addr      string       `json:"addr"`
		Bindable  bool         `json:"bindable"`
		Plain     wayJSON      `json:"bind"`
		ReuseAddr wayJSON      `json:"reuseaddr"`
		ReusePort wayJSON      `json:"reuseport"`
		Holders   []holderJSON `json:"holders"`
		FreeInMs  *int64       `json:"free_in_ms"`
		Advice    []string     `json:"advice"`
	}{
		Addr: r.Addr.String(), Bindable: r.Bindable, Plain: way(r.Result[bindprobe.Plain]),
		ReuseAddr: way(r.Result[bindprobe.ReuseAddr]), ReusePort: way(r.Result[bindprobe.ReusePort]),
		Holders: []holderJSON{}, Advice: append([]string{}, r.Advice...),
	}
	// 0: it binds now; null: it will not free itself (a listener or
	// connections hold it, or bind fails for another reason).
	if r.Bindable || r.FreeIn > 0 {
		ms := r.FreeIn.Milliseconds()
		out.FreeInMs = &ms
	}
	for _, h := range r.Holders {
		j := holderJSON{State: h.State.String(), Local: h.Local.String(), Peer: h.Peer.String()}
		if h.HasProcess() {
			j.PID, j.Command = h.Process.PID, h.Process.Command
		}
		if h.Kind == "timewait" {
			ms := h.Left().Milliseconds()
			j.LeftMs = &ms
		}
		out.Holders = append(out.Holders, j)
	}
	return json.Marshal(out)
}
