package twstat

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/track"
)

func end(port uint16, d time.Duration, early, reused bool) track.Event {
	e := track.Event{Kind: track.EventGone, From: sock.TimeWait,
		TimeWait: &track.TimeWaitEnd{Length: d, Early: early, Reused: reused}}
	e.Entry.Socket = &sock.Socket{Local: sock.EndpointOf(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port))}
	return e
}

func TestSummary(t *testing.T) {
	s := New()
	var evs []track.Event
	for i := range 98 {
		evs = append(evs, end(9000, 60*time.Second+time.Duration(i)*10*time.Millisecond, false, false))
	}
	evs = append(evs, end(9001, 5*time.Second, true, true), end(9001, 61900*time.Millisecond, false, false),
		track.Event{Kind: track.EventGone, From: sock.Established}, // not a TIME_WAIT end
		track.Event{Kind: track.EventChange, To: sock.TimeWait})
	s.Add(evs)
	sum := s.Summary()
	if sum.Count != 100 || sum.Min != 5*time.Second || sum.Max != 61900*time.Millisecond {
		t.Errorf("count %d min %v max %v", sum.Count, sum.Min, sum.Max)
	}
	if sum.Median < 60400*time.Millisecond || sum.Median > 60600*time.Millisecond {
		t.Errorf("median %v, want about 60.5s", sum.Median)
	}
	if sum.P99 < 60900*time.Millisecond || sum.P99 > 61900*time.Millisecond {
		t.Errorf("p99 %v", sum.P99)
	}
	if sum.Early != 1 || sum.Reused != 1 || sum.Killed != 0 {
		t.Errorf("early %d reused %d killed %d", sum.Early, sum.Reused, sum.Killed)
	}
	if len(sum.Ports) != 2 || sum.Ports[0].Port != 9000 || sum.Ports[0].Count != 98 || sum.Ports[1].Early != 1 {
		t.Errorf("ports %+v", sum.Ports)
	}
	total := 0
	for _, h := range sum.Histogram {
		total += h.Count
	}
	if total != 100 || len(sum.Histogram) > 20 {
		t.Errorf("histogram holds %d in %d bars", total, len(sum.Histogram))
	}

	var b bytes.Buffer
	if err := WriteText(&b, sum, Context{FinTimeout: 30, Reuse: 2, MaxBuckets: 1000, Now: 250, Overflow: 3, Recycled: 1}, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"100 entries from entering to leaving", "median 60.5s", "ended early (over 1 s before 60 s): 1",
		"TIME_WAIT lasts 60 s, fixed in the kernel", "tcp_fin_timeout = 30 does not change that",
		"tcp_max_tw_buckets = 1000; TIME_WAIT entries now: 250 (25.0% of it)",
		"3 connections closed without any TIME_WAIT entry", "9000   98 entries",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func TestEmpty(t *testing.T) {
	sum := New().Summary()
	var b bytes.Buffer
	WriteText(&b, sum, Context{FinTimeout: -1, Reuse: -1, MaxBuckets: -1}, time.Second)
	if sum.Count != 0 || !strings.Contains(b.String(), "0 entries") || strings.Contains(b.String(), "median") {
		t.Errorf("empty summary:\n%s", b.String())
	}
}
