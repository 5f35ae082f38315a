package render

import (
	"io"
	"unicode/utf8"

	"github.com/sockscope/sockscope/pkg/nsfind"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

// JSON writes one JSON object per entry per line (NDJSON), with every
// column's keys whatever columns a table would show:
//
//	state, family, local, local_port, peer, peer_port, age_ms, age_exact,
//	age_source, left_ms (TIME_WAIT), expires_ms, timer, retrans, recv_q,
//	send_q, uid, inode, ifindex (when bound to one), cookie, and pid and
//	command when the owner is known.
//
// age_exact is false for a socket older than the monitor ("at least").
// netns is the socket's namespace: {"inode":N}, and with names (many
// namespaces read) its name, container, pod and pod_namespace where known.
func JSON(w io.Writer, v *track.View, names nsfind.Names) error {
	j := NewJSONWriter(w, names)
	j.Write(v.Entries)
	return j.Close()
}

// A JSONWriter writes JSON lines (see JSON) a batch of entries at a time,
// in memory that does not grow with their number.
type JSONWriter struct {
	w    io.Writer
	cols []*Column
	b    []byte
	err  error
}

// NewJSONWriter returns a JSONWriter that writes to w; names as for JSON.
func NewJSONWriter(w io.Writer, names nsfind.Names) *JSONWriter {
	j := &JSONWriter{w: w, cols: Columns}
	if names != nil {
		j.cols = WithNames(Columns, names, false)
	}
	return j
}

// Write adds the entries' lines. After a write error it writes nothing
// more and returns that error.
func (j *JSONWriter) Write(entries []track.Entry) error {
	for i := range entries {
		if j.err != nil {
			break
		}
		j.b = appendJSON(j.b, &entries[i], j.cols)
		j.b = append(j.b, '\n')
		if len(j.b) >= flushAt {
			j.flush()
		}
	}
	return j.err
}

// Err is the first error writing to w.
func (j *JSONWriter) Err() error { return j.err }

// Close writes what is left.
func (j *JSONWriter) Close() error {
	if len(j.b) > 0 {
		j.flush()
	}
	return j.err
}

func (j *JSONWriter) flush() {
	if j.err == nil {
		_, j.err = j.w.Write(j.b)
	}
	j.b = j.b[:0]
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

// AppendJSON appends one entry as a JSON object with every column's keys
// (Columns). Every string it writes is generated here (states, addresses,
// hex) except the command, which any process can set to any bytes and so
// is escaped.
func AppendJSON(b []byte, e *track.Entry) []byte { return appendJSON(b, e, Columns) }

func appendJSON(b []byte, e *track.Entry, cols []*Column) []byte {
	// Each column writes its keys as ,"key":value; the first column (state)
	// always writes, and its comma becomes the opening brace.
	n := len(b)
	for _, c := range cols {
		b = c.JSON(b, e)
	}
	b[n] = '{'
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
