package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/nstest"
	"golang.org/x/sys/unix"
)

// startBinary runs sockscope in the background; stdout lines arrive on the
// returned channel.
func startBinary(t *testing.T, args ...string) (<-chan string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		pw.Close()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if s := stderr.String(); s != "" {
			t.Logf("stderr of %v: %s", args, s)
		}
	})
	return lines, cmd
}

type eventJSON struct {
	Time     time.Time `json:"time"`
	Event    string    `json:"event"`
	Exact    bool      `json:"exact"`
	Local    string    `json:"local"`
	Peer     string    `json:"peer"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	InState  int64     `json:"in_state_ms"`
	Timewait *int64    `json:"timewait_ms"`
	Unseen   bool      `json:"unseen"`
	Lifetime int64     `json:"lifetime_ms"`
	Cookie   string    `json:"cookie"`
	PID      int       `json:"pid"`
}

// A connection closed in the middle of a 5 s polling interval: its change
// into TIME_WAIT and the end of the peer's socket are still dated to within
// 50 ms, by the kernel's timer and its destroy events.
func TestIntegrationWatchTimesBetweenPolls(t *testing.T) {
	ns := nstest.New(t)
	conn := nstest.Connect(t, ns, netip.MustParseAddrPort("127.0.0.1:9000"))
	lines, _ := startBinary(t, "watch", "--poll-only", "-N", ns.Name, "-i", "5s", "--json", "--for", "12s", ":9000")
	// The first poll sees both ends ESTABLISHED; wait for it by asking the
	// kernel, then close half-way through the interval.
	time.Sleep(2 * time.Second)
	serverClosed := time.Now()
	conn.Close(&conn.Server)
	time.Sleep(300 * time.Millisecond)
	clientClosed := time.Now()
	conn.Close(&conn.Client)

	var fw2, change, gone *eventJSON
	timeout := time.After(15 * time.Second)
	for fw2 == nil || change == nil || gone == nil {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("watch ended; change %+v gone %+v", change, gone)
			}
			var e eventJSON
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			switch {
			case e.Event == "change" && e.Local == "127.0.0.1:9000" && e.To == "FIN_WAIT2":
				fw2 = &e
			case e.Event == "change" && e.Local == "127.0.0.1:9000" && e.To == "TIME_WAIT":
				change = &e
			case e.Event == "gone" && e.Peer == "127.0.0.1:9000":
				gone = &e
			}
		case <-timeout:
			t.Fatalf("no events; change %+v gone %+v", change, gone)
		}
	}
	// The server's end: freed into a FIN_WAIT2 mini-socket at its close
	// (the destroy event), into TIME_WAIT at the client's FIN (the timer).
	if d := fw2.Time.Sub(serverClosed); !fw2.Exact || fw2.From != "ESTABLISHED" || d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("%s -> FIN_WAIT2 dated %v from the server's close (exact %v), want within 50ms", fw2.From, d, fw2.Exact)
	}
	if d := change.Time.Sub(clientClosed); !change.Exact || change.From != "FIN_WAIT2" || d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("%s -> TIME_WAIT dated %v from the client's close (exact %v), want within 50ms", change.From, d, change.Exact)
	}
	if d := time.Duration(change.InState) * time.Millisecond; d < 250*time.Millisecond || d > 350*time.Millisecond {
		t.Errorf("FIN_WAIT2 lasted %v, want about 300ms", d)
	}
	if d := gone.Time.Sub(clientClosed); !gone.Exact || d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("the client's end dated %v from its close (exact %v), want within 50ms", d, gone.Exact)
	}
}

// A connection opened and closed between two polls: the end that closed
// last (LAST_ACK, then freed) is reported from the kernel's announcement,
// dated exactly; the end that closed first as the TIME_WAIT entry it
// became, never as an unseen socket.
func TestIntegrationWatchUnseenSockets(t *testing.T) {
	ns := nstest.New(t)
	lines, _ := startBinary(t, "watch", "--poll-only", "-N", ns.Name, "-i", "5s", "--json", "--for", "8s", ":9000")
	time.Sleep(2 * time.Second) // after the first poll, well before the second
	conn := nstest.Connect(t, ns, netip.MustParseAddrPort("127.0.0.1:9000"))
	conn.Close(&conn.Server)
	time.Sleep(100 * time.Millisecond)
	clientClosed := time.Now()
	conn.Close(&conn.Client)

	var unseen, tw []eventJSON
	for _, e := range allEvents(t, lines, 12*time.Second) {
		switch {
		case e.Unseen:
			unseen = append(unseen, e)
		case e.Event == "new" && e.To == "TIME_WAIT":
			tw = append(tw, e)
		}
	}
	if len(unseen) != 1 || len(tw) != 1 {
		t.Fatalf("unseen %+v, new TIME_WAIT %+v; want one of each", unseen, tw)
	}
	u := unseen[0]
	if u.Event != "gone" || u.Peer != "127.0.0.1:9000" || u.From != "CLOSE" || !u.Exact {
		t.Errorf("unseen socket %+v, want the client end, gone, exact", u)
	}
	if d := u.Time.Sub(clientClosed); d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("the client end freed %v from its close, want within 50ms", d)
	}
	if tw[0].Local != "127.0.0.1:9000" || tw[0].Peer != u.Local || tw[0].Cookie == u.Cookie {
		t.Errorf("TIME_WAIT entry %+v for the unseen client %+v", tw[0], u)
	}
}

type twSummary struct {
	Summary struct {
		Count   int     `json:"count"`
		MinS    float64 `json:"min_s"`
		MaxS    float64 `json:"max_s"`
		MedianS float64 `json:"median_s"`
		Ports   []struct {
			Port  int `json:"port"`
			Count int `json:"count"`
		} `json:"ports"`
	} `json:"summary"`
	Kernel struct {
		MaxBuckets int   `json:"tcp_max_tw_buckets"`
		Now        int   `json:"timewait_now"`
		Overflow   int64 `json:"timewait_overflow"`
		Length     int   `json:"timewait_length_s"`
	} `json:"kernel"`
}

func runTimeWaitJSON(t *testing.T, lines <-chan string, within time.Duration) twSummary {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("timewait ended without a summary")
			}
			var s twSummary
			if err := json.Unmarshal([]byte(l), &s); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			return s
		case <-timeout:
			t.Fatal("no summary")
		}
	}
}

// timerSlack is how late the kernel's timer wheel may fire a 60 s timer:
// it rounds a timeout up to the granularity of the wheel level that holds
// it, 8^n jiffies for the first level n with room (60 s * HZ < 64 * 8^n).
// At HZ=250 that is 512 jiffies, 2.048 s; at HZ=1000, 4.096 s.
func timerSlack(t *testing.T) time.Duration {
	out, err := exec.Command("sh", "-c", "zcat /proc/config.gz | grep '^CONFIG_HZ='").Output()
	hz := 0
	if err == nil {
		fmt.Sscanf(strings.TrimSpace(string(out)), "CONFIG_HZ=%d", &hz)
	}
	if hz == 0 {
		hz = 1000 // the coarsest common case
		t.Logf("CONFIG_HZ unknown, assuming %d", hz)
	}
	jiffies, gran := 60*hz, 1
	for jiffies >= 64*gran {
		gran *= 8
	}
	return time.Duration(gran) * time.Second / time.Duration(hz)
}

// The tutorial's two TIME_WAIT entries, timed from entering to leaving:
// each lasts the kernel's 60 s plus at most the timer wheel's rounding, as
// measured to within the probes' 50 ms.
func TestIntegrationTimeWaitLifetimes(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a minute")
	}
	t.Parallel()
	ns := nstest.New(t)
	lines, _ := startBinary(t, "timewait", "-N", ns.Name, "--json", "--for", "66s", ":9000")
	time.Sleep(500 * time.Millisecond)
	nstest.RunSeed(t, ns, nstest.SeedOptions{Tutorial: true})
	s := runTimeWaitJSON(t, lines, 80*time.Second)
	most := 60*time.Second + timerSlack(t) + 100*time.Millisecond
	if s.Summary.Count != 2 || s.Summary.MinS < 60 || s.Summary.MaxS > most.Seconds() {
		t.Errorf("lifetimes: %+v, want 2 within 60 s .. %v", s.Summary, most)
	}
	if len(s.Summary.Ports) != 1 || s.Summary.Ports[0].Port != 9000 || s.Summary.Ports[0].Count != 2 {
		t.Errorf("ports %+v", s.Summary.Ports)
	}
	if s.Kernel.Length != 60 || s.Kernel.MaxBuckets <= 0 {
		t.Errorf("kernel context %+v", s.Kernel)
	}
}

// Past net.ipv4.tcp_max_tw_buckets the kernel drops new TIME_WAIT entries;
// the report says so.
func TestIntegrationTimeWaitOverflow(t *testing.T) {
	ns := nstest.New(t)
	if out, err := exec.Command("ip", "netns", "exec", ns.Name, "sysctl", "-qw", "net.ipv4.tcp_max_tw_buckets=1").CombinedOutput(); err != nil {
		t.Fatalf("sysctl: %v %s", err, out)
	}
	cmd := exec.Command(binary, "timewait", "-N", ns.Name, "--for", "2s")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	for port := 9001; port <= 9004; port++ {
		nstest.RunSeed(t, ns, nstest.SeedOptions{Tutorial: true, Port: port})
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"tcp_max_tw_buckets = 1; TIME_WAIT entries now: 1", "TCPTimeWaitOverflow +7",
		"7 connections closed without any TIME_WAIT entry", "TIME_WAIT lasts 60 s, fixed in the kernel",
		"does not change that: it bounds FIN_WAIT2 only"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
}

// As root, watch reads every state change from the kernel: a connection
// that lives 5 ms between two 1 s polls is reported step by step, both
// ends, each step dated within 1 ms of this test's clock around the call
// that made it; and what its ends became (a TIME_WAIT entry, a freed
// socket) still comes from the poll and the destroy events.
func TestIntegrationWatchKernelTransitions(t *testing.T) {
	ns := nstest.New(t)
	lines, cmd := startBinary(t, "watch", "-N", ns.Name, "-i", "1s", "--json", "--for", "6s", ":9000")
	// Loading the program parses the kernel's BTF: on a busy machine it
	// can take longer than a fixed wait. Its first poll is after it.
	waitForBPF(t, cmd.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); ns.Subscriptions(t, cmd.Process.Pid) != 0; {
		if time.Now().After(deadline) {
			t.Fatal("watch still holds its destroy-event subscription 10 s after its BPF program attached")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // half-way between two polls

	ap := netip.MustParseAddrPort("127.0.0.1:9000")
	var listen, client, server int
	var openBefore, openAfter, closeBefore, closeAfter, clientClosed, clientDone time.Time
	err := ns.Do(func() error {
		var err error
		if listen, err = nstest.Listen(ap, false); err != nil {
			return err
		}
		openBefore = time.Now()
		if client, err = nstest.Dial(ap); err != nil {
			return err
		}
		openAfter = time.Now()
		if server, _, err = unix.Accept4(listen, unix.SOCK_CLOEXEC); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
		closeBefore = time.Now()
		unix.Close(server) // the server closes first: its end becomes the TIME_WAIT entry
		closeAfter = time.Now()
		// It waits for the client's FIN in FIN_WAIT2, a mini-socket the
		// tracepoint does not follow.
		time.Sleep(100 * time.Millisecond)
		clientClosed = time.Now()
		unix.Close(client)
		clientDone = time.Now()
		unix.Close(listen)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	type step struct{ event, local, from, to string }
	events := allEvents(t, lines, 10*time.Second)
	find := func(s step) *eventJSON {
		for i := range events {
			e := &events[i]
			if e.Event == s.event && e.From == s.from && e.To == s.to && (s.local == "" || e.Local == s.local) {
				return e
			}
		}
		return nil
	}
	within := func(e *eventJSON, lo, hi time.Time) bool {
		return !e.Time.Before(lo.Add(-time.Millisecond)) && !e.Time.After(hi.Add(time.Millisecond))
	}
	// The server's end is 127.0.0.1:9000 to the client's port.
	for _, c := range []struct {
		s      step
		lo, hi time.Time
	}{
		{step{"change", "", "SYN_SENT", "ESTABLISHED"}, openBefore, openAfter},
		{step{"new", "", "", "SYN_RECV"}, openBefore, openAfter},
		{step{"change", "127.0.0.1:9000", "SYN_RECV", "ESTABLISHED"}, openBefore, openAfter},
		{step{"change", "127.0.0.1:9000", "ESTABLISHED", "FIN_WAIT1"}, closeBefore, closeAfter},
		{step{"change", "", "ESTABLISHED", "CLOSE_WAIT"}, closeBefore, closeAfter},
	} {
		e := find(c.s)
		switch {
		case e == nil:
			t.Errorf("no %+v among %+v", c.s, events)
		case !e.Exact || !within(e, c.lo, c.hi):
			t.Errorf("%+v dated %s (exact %v); the call ran from %s to %s", c.s, e.Time.Format("15:04:05.000000"), e.Exact,
				c.lo.Format("15:04:05.000000"), c.hi.Format("15:04:05.000000"))
		}
	}
	// The client's end is freed (LAST_ACK, then CLOSE: the destroy event)
	// and the server's is the TIME_WAIT entry, entered at the client's
	// FIN: dated by the kernel's timer (to within 50 ms, as without the
	// kernel's events), after about 100 ms in FIN_WAIT2 (the test's sleep).
	e := find(step{"change", "127.0.0.1:9000", "FIN_WAIT2", "TIME_WAIT"})
	// Its time in FIN_WAIT2 is from the server's close to the client's,
	// as the timer dates the latter (within 50 ms).
	inFW2 := clientClosed.Sub(closeBefore)
	if e == nil || !e.Exact || e.Time.Sub(clientClosed).Abs() > 50*time.Millisecond ||
		(time.Duration(e.InState)*time.Millisecond-inFW2).Abs() > 60*time.Millisecond {
		t.Errorf("the server end's change into TIME_WAIT: %+v; the client closed at %s", e, clientClosed.Format("15:04:05.000000"))
	}
	for _, e := range events {
		if e.Event == "change" && !e.Exact {
			t.Errorf("a change dated by polling while the kernel's events run: %+v", e)
		}
	}
	// The client's end, freed at the server's ACK of its FIN (on
	// loopback, within its close), is the kernel's change to CLOSE: no
	// poll saw the socket, and no destroy announcement is read once the
	// events run.
	var end *eventJSON
	for i := range events {
		if e := &events[i]; e.Event == "gone" && e.Peer == "127.0.0.1:9000" {
			end = e
		}
	}
	// It ends from LAST_ACK, and the kernel saw its whole life.
	if end == nil || !end.Exact || end.Unseen || end.From != "LAST_ACK" || !within(end, clientClosed, clientDone) ||
		end.Lifetime < clientClosed.Sub(openAfter).Milliseconds()-1 || end.Lifetime > clientDone.Sub(openBefore).Milliseconds()+1 {
		t.Errorf("the client's end: %+v; it opened from %s to %s and closed from %s to %s", end,
			openBefore.Format("15:04:05.000000"), openAfter.Format("15:04:05.000000"),
			clientClosed.Format("15:04:05.000000"), clientDone.Format("15:04:05.000000"))
	}
}

// A connection that polls see in every phase: the server closes first and
// waits in FIN_WAIT2 (a TIME_WAIT entry keeping the full socket's cookie,
// once its owner closed it), the client closes later from CLOSE_WAIT.
// watch tells each step once, the kernel's, and the client's end from
// LAST_ACK, where the kernel closed it, not from the state a poll saw last.
func TestIntegrationWatchStepsOnceWhilePolled(t *testing.T) {
	ns := nstest.New(t)
	lines, cmd := startBinary(t, "watch", "-N", ns.Name, "-i", "300ms", "--json", ":9000")
	waitForBPF(t, cmd.Process.Pid)
	ap := netip.MustParseAddrPort("127.0.0.1:9000")
	var clientClosed, clientDone time.Time
	err := ns.Do(func() error {
		listen, err := nstest.Listen(ap, false)
		if err != nil {
			return err
		}
		defer unix.Close(listen)
		client, err := nstest.Dial(ap)
		if err != nil {
			return err
		}
		server, _, err := unix.Accept4(listen, unix.SOCK_CLOEXEC)
		if err != nil {
			return err
		}
		time.Sleep(time.Second) // polls see both ESTABLISHED
		unix.Close(server)
		time.Sleep(time.Second) // and the server's end in FIN_WAIT2
		clientClosed = time.Now()
		unix.Close(client)
		clientDone = time.Now()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Polls that see the server's end in TIME_WAIT, then the end.
	time.Sleep(time.Second)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	events := allEvents(t, lines, 10*time.Second)
	steps := map[string][]string{} // by local address: each step, in order
	var clientEnd *eventJSON
	for i := range events {
		e := &events[i]
		if e.Peer == "0.0.0.0:0" {
			continue // the listener
		}
		steps[e.Local] = append(steps[e.Local], e.Event+":"+e.From+">"+e.To)
		if e.Event == "gone" && e.Peer == "127.0.0.1:9000" {
			clientEnd = e
		}
	}
	var clientSteps []string
	for local, s := range steps {
		if local != "127.0.0.1:9000" && !strings.HasPrefix(local, "127.0.0.1:0") {
			clientSteps = s
		}
	}
	server := strings.Join(steps["127.0.0.1:9000"], " ")
	if want := "new:>SYN_RECV change:SYN_RECV>ESTABLISHED change:ESTABLISHED>FIN_WAIT1 change:FIN_WAIT1>FIN_WAIT2 change:FIN_WAIT2>TIME_WAIT"; server != want {
		t.Errorf("the server's end: %s\nwant %s", server, want)
	}
	// The client's birth names no port yet (connect picks it after).
	if got, want := strings.Join(clientSteps, " "), "change:SYN_SENT>ESTABLISHED change:ESTABLISHED>CLOSE_WAIT change:CLOSE_WAIT>LAST_ACK gone:LAST_ACK>"; got != want {
		t.Errorf("the client's end: %s\nwant %s", got, want)
	}
	// Its LAST_ACK lasts until the server's ACK, within its close on
	// loopback.
	if inClose := clientDone.Sub(clientClosed).Milliseconds() + 1; clientEnd == nil || !clientEnd.Exact || clientEnd.InState > inClose ||
		clientEnd.Unseen || clientEnd.Lifetime < 2000 {
		t.Errorf("the client's end: %+v; want exact, from LAST_ACK for at most %d ms (its close), after a life of 2 s", clientEnd, inClose)
	}
}

// With owners (-p), as root: a listener's birth, which the kernel's event
// tells without an owner, is told once, dated by the kernel, with its
// owner from the next poll; one that ends before a poll sees it is told
// all the same, without.
func TestIntegrationWatchKernelBirthsWithOwners(t *testing.T) {
	ns := nstest.New(t)
	lines, cmd := startBinary(t, "watch", "-p", "-N", ns.Name, "-i", "1s", "--json", "--for", "6s", "sport = :9000 or sport = :9001")
	waitForBPF(t, cmd.Process.Pid)
	time.Sleep(500 * time.Millisecond) // half-way between two polls

	lasting := netip.MustParseAddrPort("127.0.0.1:9000")
	brief := netip.MustParseAddrPort("127.0.0.1:9001")
	var before, after time.Time
	err := ns.Do(func() error {
		before = time.Now()
		l, err := nstest.Listen(lasting, false)
		if err != nil {
			return err
		}
		after = time.Now()
		b, err := nstest.Listen(brief, false)
		if err != nil {
			return err
		}
		unix.Close(b) // between two polls
		time.Sleep(2500 * time.Millisecond)
		return unix.Close(l)
	})
	if err != nil {
		t.Fatal(err)
	}
	var births []eventJSON
	for _, e := range allEvents(t, lines, 10*time.Second) {
		if e.Event == "new" {
			births = append(births, e)
		}
	}
	var lastingSeen, briefSeen int
	for _, e := range births {
		switch e.Local {
		case lasting.String():
			lastingSeen++
			if e.PID != os.Getpid() || !e.Exact || e.Time.Before(before.Add(-time.Millisecond)) || e.Time.After(after.Add(time.Millisecond)) {
				t.Errorf("the lasting listener's birth %+v: want pid %d, exact, between %s and %s", e, os.Getpid(),
					before.Format("15:04:05.000000"), after.Format("15:04:05.000000"))
			}
		case brief.String():
			briefSeen++
			if !e.Exact || e.PID != 0 {
				t.Errorf("the brief listener's birth %+v: want the kernel's, exact, no owner", e)
			}
		}
	}
	if lastingSeen != 1 || briefSeen != 1 {
		t.Errorf("births told: the lasting listener's %d times, the brief one's %d; want once each (all: %+v)", lastingSeen, briefSeen, births)
	}
}

// allEvents reads watch's JSON events until it ends, within timeout.
func allEvents(t *testing.T, lines <-chan string, timeout time.Duration) []eventJSON {
	t.Helper()
	var events []eventJSON
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return events
			}
			var e eventJSON
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			events = append(events, e)
		case <-deadline:
			t.Fatal("watch did not end")
		}
	}
}

// waitForBPF waits until process pid holds an attached BPF program (a
// link): the kernel's events are read from then on.
func waitForBPF(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
		for _, fd := range fds {
			// The link, not the program: a program is loaded before
			// it is attached, and a change in between is not seen.
			if l, err := os.Readlink(fd); err == nil && strings.Contains(l, "bpf_link") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d attached no BPF program in 20 s", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
