package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The -fleet run: a host of many namespaces (a sockload population in
// each), where sockscope reads them all.
var (
	fleetNS      = flag.Int("namespaces", 100, "-fleet: namespaces, each with its own population")
	fleetSockets = flag.Int("per-namespace", 1000, "-fleet: sockets in each namespace (about)")
	childEhash   = flag.Int("child-ehash", 0, "-fleet: set net.ipv4.tcp_child_ehash_entries to N while the namespaces are made, so that each gets socket tables of its own (restored after; 0: the host's setting)")
)

// fleetRun builds the namespaces and compares, side by side:
//   - the exporter's --all-netns scrape with reading /proc/PID/net/tcp and
//     tcp6 of one process per namespace and counting states (what cAdvisor
//     does per container), in CPU time;
//   - list --all-netns -H with `ip -all netns exec ss -tanH`, in wall time;
//   - the dashboard over every namespace, in CPU.
func fleetRun(sc, load string) ([]row, string, error) {
	n, per := *fleetNS, *fleetSockets
	if *childEhash > 0 {
		const knob = "/proc/sys/net/ipv4/tcp_child_ehash_entries"
		old, err := os.ReadFile(knob)
		if err != nil {
			return nil, "", fmt.Errorf("-child-ehash: %w", err)
		}
		if err := os.WriteFile(knob, []byte(strconv.Itoa(*childEhash)), 0o644); err != nil {
			return nil, "", fmt.Errorf("-child-ehash: %w", err)
		}
		defer os.WriteFile(knob, old, 0o644)
	}
	logf("building %d namespaces of about %d sockets each (about a minute for TIME_WAIT to fill)...", n, per)
	var (
		mu    sync.Mutex
		loads []*exec.Cmd
		ins   []io.WriteCloser
	)
	defer func() {
		for _, in := range ins {
			in.Close() // sockload stops and deletes its namespace
		}
		for _, l := range loads {
			l.Wait()
		}
	}()
	names := make([]string, n)
	errs := make(chan error, n)
	// Two at a time: each builds its connections on the two cores.
	sem := make(chan struct{}, 2)
	for i := range n {
		names[i] = fmt.Sprintf("sockbench-fleet-%d", i)
		est, tw, cw := per*7/10, per/4, per/20
		l := exec.Command(load, "-netns", names[i], "-established", fmt.Sprint(est), "-timewait", fmt.Sprint(tw),
			"-closewait", fmt.Sprint(cw), "-port9000", "5", "-fill", fill.String())
		l.Stderr = os.Stderr
		in, err := l.StdinPipe()
		if err != nil {
			return nil, "", err
		}
		out, err := l.StdoutPipe()
		if err != nil {
			return nil, "", err
		}
		sem <- struct{}{}
		if err := l.Start(); err != nil {
			return nil, "", err
		}
		mu.Lock()
		loads, ins = append(loads, l), append(ins, in)
		mu.Unlock()
		go func() {
			// Its connections are made once its first worker says ready;
			// TIME_WAIT fills in the background meanwhile.
			r := bufio.NewReader(out)
			line, err := r.ReadString('\n')
			if err == nil && !strings.HasPrefix(line, "ready") {
				err = fmt.Errorf("sockload %s: %q", names[i], line)
			}
			errs <- err
			io.Copy(io.Discard, r)
		}()
		// The next one starts once this one's namespace stands.
		for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join("/run/netns", names[i])); err == nil {
				break
			}
		}
		<-sem
	}
	for range n {
		if err := <-errs; err != nil {
			return nil, "", err
		}
	}
	pids, err := onePIDEach(names)
	if err != nil {
		return nil, "", err
	}
	total, err := exec.Command(sc, "list", "--all-netns", "-H").Output()
	if err != nil {
		return nil, "", fmt.Errorf("counting the population: %w", err)
	}
	tables := "the host's socket tables, which the namespaces share"
	if *childEhash > 0 {
		tables = fmt.Sprintf("socket tables of their own (net.ipv4.tcp_child_ehash_entries=%d)", *childEhash)
	}
	population := fmt.Sprintf("%d namespaces with %s, %d TCP sockets in all (`sockscope list --all-netns -H | wc -l`)",
		n, tables, bytes.Count(total, []byte("\n")))

	var rows []row
	logf("measuring the exporter's --all-netns scrape against per-process /proc reads")
	r, err := fleetExporterRow(sc, pids)
	if err != nil {
		return nil, "", err
	}
	rows = append(rows, r)

	logf("measuring list --all-netns against ip -all netns exec ss")
	a, b, err := alternate([]string{sc, "list", "--all-netns", "-H"}, []string{"ip", "-all", "netns", "exec", "ss", "-tanH"}, *runs)
	if err != nil {
		return nil, "", err
	}
	rows = append(rows, row{what: "`sockscope list --all-netns -H` vs `ip -all netns exec ss -tanH`", a: a.wall, b: b.wall, unit: "s", target: 0.5})

	if *dashFor > 0 {
		logf("running the dashboard over every namespace for %v", *dashFor)
		d, err := dashboardRows([]string{sc, "--all-netns"}, "dashboard --all-netns", *dashFor, 10)
		if err != nil {
			return nil, "", err
		}
		rows = append(rows, d[0], d[1])
	}
	return rows, population, nil
}

// onePIDEach finds, for each named namespace, a process in it.
func onePIDEach(names []string) ([]int, error) {
	want := map[uint64]string{}
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join("/run/netns", n), &st); err != nil {
			return nil, fmt.Errorf("namespace %s: %w", n, err)
		}
		want[st.Ino] = n
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	found := map[string]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) != nil {
			continue
		}
		if n, ok := want[st.Ino]; ok && found[n] == 0 {
			found[n] = pid
		}
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if found[n] == 0 {
			return nil, fmt.Errorf("no process in namespace %s", n)
		}
		pids = append(pids, found[n])
	}
	return pids, nil
}

// procStates is the per-container way: read /proc/PID/net/tcp and tcp6 of
// one process per namespace as text and count the states (the fourth
// column, in hex), as cAdvisor's tcp stats do.
func procStates(pids []int) (map[string]int, error) {
	counts := map[string]int{}
	for _, pid := range pids {
		for _, f := range []string{"tcp", "tcp6"} {
			file, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, f))
			if err != nil {
				return nil, err
			}
			sc := bufio.NewScanner(file)
			sc.Scan() // the header
			for sc.Scan() {
				fields := strings.Fields(sc.Text())
				if len(fields) < 4 {
					continue
				}
				counts[fields[3]]++
			}
			err = sc.Err()
			file.Close()
			if err != nil {
				return nil, err
			}
		}
	}
	return counts, nil
}

// threadCPU is the calling thread's CPU time, user and system.
func threadCPU() (time.Duration, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// fleetExporterRow compares the CPU time of an --all-netns scrape (the
// exporter process's, over several scrapes) with the CPU time of
// procStates over the same namespaces.
func fleetExporterRow(sc string, pids []int) (row, error) {
	exp := exec.Command(sc, "exporter", "--all-netns", "--listen", "127.0.0.1:0")
	stderr, err := exp.StderrPipe()
	if err != nil {
		return row{}, fmt.Errorf("the exporter's stderr: %w", err)
	}
	if err := exp.Start(); err != nil {
		return row{}, err
	}
	defer func() { exp.Process.Kill(); exp.Wait() }()
	var url string
	r := bufio.NewReader(stderr)
	for url == "" {
		line, err := r.ReadString('\n')
		if err != nil {
			return row{}, fmt.Errorf("the exporter said %q (%v)", line, err)
		}
		url = regexp.MustCompile(`http://\S+`).FindString(line)
	}
	go io.Copy(io.Discard, r)
	scrape := func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return err
	}
	if err := scrape(); err != nil { // the first opens every namespace's files
		return row{}, err
	}
	scrapes := *runs
	t0, err := cpuTicks(exp.Process.Pid)
	if err != nil {
		return row{}, err
	}
	for range scrapes {
		if err := scrape(); err != nil {
			return row{}, err
		}
	}
	t1, err := cpuTicks(exp.Process.Pid)
	if err != nil {
		return row{}, err
	}
	perScrape := float64(t1-t0) / 100 / float64(scrapes) // USER_HZ = 100

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0, err := threadCPU()
	if err != nil {
		return row{}, err
	}
	for range scrapes {
		if _, err := procStates(pids); err != nil {
			return row{}, err
		}
	}
	c1, err := threadCPU()
	if err != nil {
		return row{}, err
	}
	perRead := (c1 - c0).Seconds() / float64(scrapes)
	return row{what: fmt.Sprintf("exporter `--all-netns` scrape CPU vs /proc/PID/net/tcp{,6} read and counted per namespace (cAdvisor's way), %d namespaces", len(pids)),
		a: perScrape, b: perRead, unit: "s", target: 0.2}, nil
}
