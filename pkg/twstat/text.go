package twstat

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteText writes the summary and the kernel context for people.
func WriteText(w io.Writer, s Summary, k Context, took time.Duration) error {
	var b strings.Builder
	fmt.Fprintf(&b, "TIME_WAIT lifetimes, measured over %s: %d %s from entering to leaving\n",
		took.Round(100*time.Millisecond), s.Count, plural(s.Count, "entry", "entries"))
	if s.Count > 0 {
		fmt.Fprintf(&b, "  min %s  median %s  p99 %s  max %s\n", secs(s.Min), secs(s.Median), secs(s.P99), secs(s.Max))
		fmt.Fprintf(&b, "  ended early (over 1 s before 60 s): %d\n", s.Early)
		b.WriteString("\n")
		peak := 0
		for _, h := range s.Histogram {
			peak = max(peak, h.Count)
		}
		for _, h := range s.Histogram {
			bar := 0
			if peak > 0 {
				bar = (h.Count*40 + peak - 1) / peak
			}
			fmt.Fprintf(&b, "  %5s .. %-5s %s %d\n", secs0(h.From), secs0(h.To), strings.Repeat("█", bar), h.Count)
		}
		b.WriteString("\nPer local port:\n")
		for i, p := range s.Ports {
			if i == 10 {
				fmt.Fprintf(&b, "  ... and %d more ports\n", len(s.Ports)-10)
				break
			}
			fmt.Fprintf(&b, "  %-5d  %d %s  %s .. %s", p.Port, p.Count, plural(p.Count, "entry", "entries"), secs(p.Min), secs(p.Max))
			if p.Early > 0 {
				fmt.Fprintf(&b, "  (%d ended early)", p.Early)
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\n")
	writeContext(&b, k)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeContext explains what governs TIME_WAIT on this kernel.
func writeContext(b *strings.Builder, k Context) {
	b.WriteString("Kernel:\n")
	fmt.Fprintf(b, "  TIME_WAIT lasts %d s, fixed in the kernel (TCP_TIMEWAIT_LEN).\n", FixedLength)
	if k.FinTimeout >= 0 {
		fmt.Fprintf(b, "  net.ipv4.tcp_fin_timeout = %d does not change that: it bounds FIN_WAIT2 only.\n", k.FinTimeout)
	}
	if k.Reuse >= 0 {
		fmt.Fprintf(b, "  net.ipv4.tcp_tw_reuse = %d: %s\n", k.Reuse, reuseText(k.Reuse))
	}
	if k.MaxBuckets >= 0 {
		pct := 0.0
		if k.MaxBuckets > 0 {
			pct = 100 * float64(k.Now) / float64(k.MaxBuckets)
		}
		fmt.Fprintf(b, "  net.ipv4.tcp_max_tw_buckets = %d; TIME_WAIT entries now: %d (%.1f%% of it)\n", k.MaxBuckets, k.Now, pct)
	}
	fmt.Fprintf(b, "  during the measurement: TCPTimeWaitOverflow +%d, TWRecycled +%d, TWKilled +%d\n", k.Overflow, k.Recycled, k.Killed)
	if k.Overflow > 0 {
		fmt.Fprintf(b, "  %d %s closed without any TIME_WAIT entry: the table was full (tcp_max_tw_buckets).\n",
			k.Overflow, plural(int(k.Overflow), "connection", "connections"))
	}
	if k.Recycled > 0 {
		fmt.Fprintf(b, "  %d TIME_WAIT %s ended early because a new connection reused the port (tcp_tw_reuse).\n",
			k.Recycled, plural(int(k.Recycled), "entry", "entries"))
	}
	if k.Killed > 0 {
		fmt.Fprintf(b, "  %d TIME_WAIT %s killed early (an RST from the peer, or ss -K).\n",
			k.Killed, plural(int(k.Killed), "entry was", "entries were"))
	}
}

func reuseText(v int) string {
	switch v {
	case 0:
		return "new connections never reuse a port held by TIME_WAIT"
	case 1:
		return "new outgoing connections may reuse a port held by TIME_WAIT (with timestamps)"
	case 2:
		return "new outgoing connections may reuse a port held by TIME_WAIT, on loopback only"
	}
	return "unknown value"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func secs(d time.Duration) string  { return fmt.Sprintf("%.1fs", d.Seconds()) }
func secs0(d time.Duration) string { return fmt.Sprintf("%.0fs", d.Seconds()) }
