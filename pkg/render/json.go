package render

import (
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

// JSON writes one JSON object per entry per line (NDJSON). Keys:
//
//	state, family, local, peer, local_port, peer_port, age_ms, age_exact,
//	age_source, expires_ms, timer, retrans, recv_q, send_q, uid, inode,
//	cookie, and pid and command when the owner is known.
//
// age_exact is false for a socket older than the monitor ("at least").
func JSON(w io.Writer, v *track.View) error {
	b := make([]byte, 0, 320*len(v.Entries))
	for i := range v.Entries {
		b = AppendJSON(b, &v.Entries[i])
		b = append(b, '\n')
	}
	_, err := w.Write(b)
	return err
}

// FamilyName is the JSON name of an address family.
func FamilyName(f sock.Family) string {
	switch f {
	case sock.IPv4:
		return "ipv4"
	case sock.IPv6:
		return "ipv6"
	}
	return f.String()
}

// AppendJSON appends one entry as a JSON object. Every string it writes is
// generated here (states, addresses, hex) except the command, which any
// process can set to any bytes and so is escaped.
func AppendJSON(b []byte, e *track.Entry) []byte {
	b = append(b, `{"state":"`...)
	b = append(b, e.State.String()...)
	b = append(b, `","family":"`...)
	b = append(b, FamilyName(e.Family)...)
	b = append(b, `","local":"`...)
	b = e.Local.AppendTo(b)
	b = append(b, `","peer":"`...)
	b = e.Peer.AppendTo(b)
	b = append(b, `","local_port":`...)
	b = strconv.AppendUint(b, uint64(e.Local.Port()), 10)
	b = append(b, `,"peer_port":`...)
	b = strconv.AppendUint(b, uint64(e.Peer.Port()), 10)
	b = append(b, `,"age_ms":`...)
	b = strconv.AppendInt(b, e.Age.Milliseconds(), 10)
	b = append(b, `,"age_exact":`...)
	b = strconv.AppendBool(b, e.AgeSource != track.AgeAtLeast)
	b = append(b, `,"age_source":"`...)
	b = append(b, e.AgeSource.String()...)
	b = append(b, `"`...)
	if e.AgeSource == track.AgeTimer {
		b = append(b, `,"left_ms":`...)
		b = strconv.AppendInt(b, int64(e.Left/time.Millisecond), 10)
	}
	b = append(b, `,"expires_ms":`...)
	b = strconv.AppendUint(b, uint64(e.Expires), 10)
	b = append(b, `,"timer":"`...)
	b = append(b, e.Timer.String()...)
	b = append(b, `","retrans":`...)
	b = strconv.AppendUint(b, uint64(e.Retrans), 10)
	b = append(b, `,"recv_q":`...)
	b = strconv.AppendUint(b, uint64(e.RecvQ), 10)
	b = append(b, `,"send_q":`...)
	b = strconv.AppendUint(b, uint64(e.SendQ), 10)
	b = append(b, `,"uid":`...)
	b = strconv.AppendUint(b, uint64(e.UID), 10)
	b = append(b, `,"inode":`...)
	b = strconv.AppendUint(b, uint64(e.Inode), 10)
	if e.IfIndex != 0 {
		b = append(b, `,"ifindex":`...)
		b = strconv.AppendUint(b, uint64(e.IfIndex), 10)
	}
	b = append(b, `,"cookie":"0x`...)
	b = strconv.AppendUint(b, e.Cookie, 16)
	b = append(b, '"')
	if e.HasProcess() {
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, int64(e.Process.PID), 10)
		b = append(b, `,"command":`...)
		b = appendJSONString(b, e.Process.Command)
	}
	return append(b, '}')
}

// appendJSONString quotes s as a JSON string: control characters escaped,
// invalid UTF-8 replaced.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[r>>4], hex[r&15])
		default:
			b = utf8.AppendRune(b, r) // RuneError for invalid bytes
		}
	}
	return append(b, '"')
}
