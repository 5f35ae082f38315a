package render

import (
	"strconv"
	"time"

	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

// AppendEvent appends one event as a line for people:
//
//	12:00:01.234 127.0.0.1:9000 127.0.0.1:53412 ESTABLISHED -> TIME_WAIT after 1.2s
//
// A duration measured by polls rather than the kernel reads "~1.2s"; one
// that started before the monitor reads ">=1.2s".
func AppendEvent(b []byte, e *track.Event, processes bool) []byte {
	return AppendEventIn(b, e, processes, nil)
}

// AppendEventIn is AppendEvent with the socket's namespace after the time,
// as netns (a NetnsColumn) names it: what watch prints when it reads many
// namespaces. A nil netns leaves it out.
func AppendEventIn(b []byte, e *track.Event, processes bool, netns *Column) []byte {
	b = e.At.AppendFormat(b, "15:04:05.000")
	b = append(b, ' ')
	if netns != nil {
		b = netns.Text(b, &e.Entry)
		b = append(b, ' ')
	}
	b = e.Entry.Local.AppendTo(b)
	b = append(b, ' ')
	b = e.Entry.Peer.AppendTo(b)
	b = append(b, ' ')
	switch e.Kind {
	case track.EventNew:
		b = append(b, "new "...)
		b = append(b, e.To.String()...)
	case track.EventChange:
		b = append(b, e.From.String()...)
		b = append(b, " -> "...)
		b = append(b, e.To.String()...)
		b = append(b, " after "...)
		if e.InStateUnknown {
			b = append(b, '?')
			break
		}
		b = appendMeasured(b, e.InState, e.InStateExact, e.InStateAtLeast)
	case track.EventGone:
		b = append(b, e.From.String()...)
		if e.Unseen {
			b = append(b, " gone between polls, never seen by one"...)
			break
		}
		b = append(b, " gone after "...)
		if tw := e.TimeWait; tw != nil && e.From == sock.TimeWait {
			// A TIME_WAIT entry's length, in seconds as the kernel's
			// 60 s are: exact start, end within the probes' precision.
			if tw.Uncertainty > 100*time.Millisecond {
				b = append(b, '~')
			}
			b = strconv.AppendFloat(b, tw.Length.Seconds(), 'f', 1, 64)
			b = append(b, 's')
			if tw.Early {
				b = append(b, ", ended early"...)
				if tw.Reused {
					b = append(b, ": port reused"...)
				}
			}
			break
		}
		if e.InStateUnknown {
			b = append(b, '?')
		} else {
			b = appendMeasured(b, e.InState, e.InStateExact, e.InStateAtLeast)
		}
		if e.LifetimeAtLeast {
			b = append(b, ", seen for >="...)
			b = AppendDuration(b, e.Lifetime)
		} else {
			b = append(b, ", seen for "...)
			b = AppendDuration(b, e.Lifetime)
		}
	}
	if processes && e.Entry.HasProcess() {
		b = append(b, ' ')
		b = AppendProcess(b, &e.Entry)
	}
	return b
}

func appendMeasured(b []byte, d time.Duration, exact, atLeast bool) []byte {
	switch {
	case atLeast:
		b = append(b, ">="...)
	case !exact:
		b = append(b, '~')
	}
	return AppendDuration(b, d)
}

// AppendEventJSON appends one event as a JSON object with the fields of the
// text line.
func AppendEventJSON(b []byte, e *track.Event) []byte { return AppendEventJSONIn(b, e, nil) }

// AppendEventJSONIn is AppendEventJSON with the socket's namespace as
// netns (a NetnsColumn) writes it; a nil netns leaves it out.
func AppendEventJSONIn(b []byte, e *track.Event, netns *Column) []byte {
	b = append(b, `{"time":"`...)
	b = e.At.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","event":"`...)
	b = append(b, e.Kind.String()...)
	b = append(b, `","exact":`...)
	b = strconv.AppendBool(b, e.Exact)
	b = append(b, `,"family":"`...)
	b = append(b, FamilyName(e.Entry.Family)...)
	b = append(b, `","local":"`...)
	b = e.Entry.Local.AppendTo(b)
	b = append(b, `","peer":"`...)
	b = e.Entry.Peer.AppendTo(b)
	b = append(b, '"')
	if e.Kind != track.EventNew {
		b = append(b, `,"from":"`...)
		b = append(b, e.From.String()...)
		b = append(b, `","in_state_ms":`...)
		if e.InStateUnknown {
			b = append(b, "null"...)
		} else {
			b = strconv.AppendInt(b, e.InState.Milliseconds(), 10)
		}
		b = append(b, `,"in_state_exact":`...)
		b = strconv.AppendBool(b, e.InStateExact)
		b = append(b, `,"in_state_at_least":`...)
		b = strconv.AppendBool(b, e.InStateAtLeast)
	}
	if e.Kind != track.EventGone {
		b = append(b, `,"to":"`...)
		b = append(b, e.To.String()...)
		b = append(b, '"')
	} else {
		b = append(b, `,"lifetime_ms":`...)
		b = strconv.AppendInt(b, e.Lifetime.Milliseconds(), 10)
		b = append(b, `,"lifetime_at_least":`...)
		b = strconv.AppendBool(b, e.LifetimeAtLeast)
		b = append(b, `,"unseen":`...)
		b = strconv.AppendBool(b, e.Unseen)
	}
	if tw := e.TimeWait; tw != nil {
		b = append(b, `,"timewait_ms":`...)
		b = strconv.AppendInt(b, tw.Length.Milliseconds(), 10)
		b = append(b, `,"timewait_entered":"`...)
		b = tw.Entered.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","early":`...)
		b = strconv.AppendBool(b, tw.Early)
		b = append(b, `,"reused":`...)
		b = strconv.AppendBool(b, tw.Reused)
	}
	b = append(b, `,"cookie":"0x`...)
	b = strconv.AppendUint(b, e.Entry.Cookie, 16)
	b = append(b, '"')
	if e.Entry.HasProcess() {
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, int64(e.Entry.Process.PID), 10)
		b = append(b, `,"command":`...)
		b = appendJSONString(b, e.Entry.Process.Command)
	}
	if netns != nil {
		b = netns.JSON(b, &e.Entry)
	}
	return append(b, '}')
}
