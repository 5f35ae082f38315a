// Command sockbench measures sockscope against ss and netstat on a large
// socket population (cmd/sockload) in a private network namespace, side by
// side in one run: each pair of commands alternates, and every figure is
// the median of several runs and a ratio between the two.
//
//	go run ./cmd/sockbench             # prints a markdown table
//	go run ./cmd/sockbench -smoke      # a CI-sized run that keeps it working
//
// It needs root (the namespace), ss (iproute2), netstat (net-tools) and
// tmux (the dashboard's figures).
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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/sockdiag"
	"golang.org/x/sys/unix"
)

var (
	runs        = flag.Int("runs", 7, "runs of each command")
	established = flag.Int("established", 80000, "ESTABLISHED sockets in the population")
	timewait    = flag.Int("timewait", 30000, "TIME_WAIT entries in the population")
	closewait   = flag.Int("closewait", 2000, "CLOSE_WAIT sockets in the population")
	dashFor     = flag.Duration("dashboard", 60*time.Second, "how long to run the dashboard for its CPU figure (0: skip)")
	smoke       = flag.Bool("smoke", false, "a CI-sized run: a few thousand sockets, one run of everything (its figures mean nothing)")
	dumpLoop    = flag.String("dump-loop", "", "internal: dump every socket of this namespace once a second, and nothing else, until killed (the floor of any polling design)")
	fleet       = flag.Bool("fleet", false, "measure many namespaces instead (-namespaces, -per-namespace): the exporter, list and the dashboard with --all-netns")
)

// fill and benchCount are what -smoke shortens besides the flags above:
// the wait for TIME_WAIT to build up, and the runs of each go benchmark.
var (
	fill       = 75 * time.Second
	benchCount = "5"
)

const (
	ns      = "sockbench"
	smallNS = "sockbench-small" // a tenth of the population
)

func main() {
	flag.Parse()
	if *dumpLoop != "" {
		if err := runDumpLoop(*dumpLoop); err != nil {
			fmt.Fprintf(os.Stderr, "sockbench -dump-loop: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if *smoke {
		*runs, *established, *timewait, *closewait, *dashFor = 1, 2000, 300, 100, 3*time.Second
		fill, benchCount = 5*time.Second, "1"
		*fleetNS, *fleetSockets = 3, 200
	}
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "sockbench: %v\n", err)
		os.Exit(1)
	}
}

func logf(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }

func run() error {
	dir, err := os.MkdirTemp("", "sockbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := func(name string) string { return filepath.Join(dir, name) }
	for _, p := range []string{"sockscope", "sockload"} {
		if out, err := exec.Command("go", "build", "-o", bin(p), "./cmd/"+p).CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %v: %s", p, err, out)
		}
	}

	if *churn {
		if *smoke {
			*churnCycles = 500
		}
		rows, what, err := churnRun()
		if err != nil {
			return err
		}
		return printTable(rows, what)
	}
	if *million {
		rows, population, err := millionRun(bin("sockscope"), bin("sockload"))
		if err != nil {
			return err
		}
		return printTable(rows, population)
	}
	if *fleet {
		rows, population, err := fleetRun(bin("sockscope"), bin("sockload"))
		if err != nil {
			return err
		}
		return printTable(rows, population)
	}

	logf("building the populations (about a minute for TIME_WAIT to fill)...")
	// A small population beside the large one: a listing's peak memory
	// must not grow with the table.
	stopSmall, err := startLoad(bin("sockload"), smallNS, *established/10, *timewait/10, *closewait/10)
	if err != nil {
		return err
	}
	defer stopSmall()
	stop, err := startLoad(bin("sockload"), ns, *established, *timewait, *closewait)
	if err != nil {
		return err
	}
	defer stop()
	population, err := exec.Command("ip", "netns", "exec", ns, "ss", "-s").Output()
	if err != nil {
		return fmt.Errorf("ss -s in the population: %w", err)
	}

	var rows []row
	inNS := func(args ...string) []string { return append([]string{"ip", "netns", "exec", ns}, args...) }
	sc := bin("sockscope")
	pairs := []struct {
		what   string
		a, b   []string
		target float64
		// rss names a row comparing the peak memory of the two, with
		// its target.
		rss       string
		rssTarget float64
	}{
		{what: "`sockscope list -H` vs `ss -tanH` (all sockets)", a: inNS(sc, "list", "-H"), b: inNS("ss", "-tanH"), target: 0.7,
			rss: "peak resident memory: `sockscope list -H` vs `ss -tanH`", rssTarget: 2},
		{what: "`sockscope list :9000` vs `ss -tan '( sport = :9000 or dport = :9000 )'`", a: inNS(sc, "list", ":9000"),
			b: inNS("ss", "-tan", "( sport = :9000 or dport = :9000 )"), target: 0.8},
		{what: "`sockscope list state time-wait` vs `ss -tan state time-wait`", a: inNS(sc, "list", "state", "time-wait"),
			b: inNS("ss", "-tan", "state", "time-wait"), target: 0.7},
		{what: "`sockscope list --json` vs `ss -tanH`", a: inNS(sc, "list", "--json"), b: inNS("ss", "-tanH"), target: 1,
			rss: "peak resident memory: `sockscope list --json` vs `ss -tanH`", rssTarget: 2},
		{what: "`sockscope list -H -p` vs `ss -tanpH`", a: inNS(sc, "list", "-H", "-p"), b: inNS("ss", "-tanpH"), target: 0.3},
		{what: "`sockscope list -H` vs `netstat -tan` (reference)", a: inNS(sc, "list", "-H"), b: inNS("netstat", "-tan")},
		{what: "`sockscope list -H` on this population vs on one a tenth its size", a: inNS(sc, "list", "-H"),
			b:   []string{"ip", "netns", "exec", smallNS, sc, "list", "-H"},
			rss: "peak resident memory of `sockscope list -H`: this population vs one a tenth its size", rssTarget: 1.1},
	}
	for _, p := range pairs {
		logf("measuring %s", p.what)
		a, b, err := alternate(p.a, p.b, *runs)
		if err != nil {
			return err
		}
		rows = append(rows, row{what: p.what, a: a.wall, b: b.wall, target: p.target, unit: "s"})
		if p.rss != "" {
			rows = append(rows, row{what: p.rss, a: a.rss, b: b.rss, target: p.rssTarget, unit: "MB"})
		}
	}

	logf("measuring the exporter")
	r, err := exporterRow(sc, *runs)
	if err != nil {
		return err
	}
	rows = append(rows, r)

	logf("running the in-process benchmarks")
	bench, err := goBench()
	if err != nil {
		return err
	}
	rows = append(rows, bench...)

	if *dashFor > 0 {
		logf("running the dashboard for %v", *dashFor)
		d, err := dashboardRows(inNS(sc), "dashboard", *dashFor, 0)
		if err != nil {
			return err
		}
		logf("running the bare dump loop for %v", *dashFor)
		floor, err := dumpLoopCPU(ns, *dashFor)
		if err != nil {
			return err
		}
		d[0].b, d[0].alone, d[0].target = floor, false, 1.5
		d[0].what = fmt.Sprintf("dashboard CPU, 1 s interval, over %v from %v after its first frame, vs a loop that only dumps the whole table once a second, from %v after its start (%% of one core)", *dashFor, settle, settle)
		d[2].target = 80
		rows = append(rows, d...)
	}

	return printTable(rows, fmt.Sprintf("Population (`ss -s` in the namespace):\n\n```\n%s```", population))
}

// startLoad starts sockload in the namespace name and waits until its
// population stands; stop ends it (sockload deletes the namespace).
func startLoad(sockload, name string, established, timewait, closewait int) (stop func(), err error) {
	load := exec.Command(sockload, "-netns", name, "-established", fmt.Sprint(established),
		"-timewait", fmt.Sprint(timewait), "-closewait", fmt.Sprint(closewait), "-fill", fill.String())
	load.Stderr = os.Stderr
	loadIn, err := load.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("sockload's stdin: %w", err)
	}
	loadOut, err := load.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("sockload's stdout: %w", err)
	}
	if err := load.Start(); err != nil {
		return nil, err
	}
	stop = func() {
		loadIn.Close() // sockload stops and deletes the namespace
		load.Wait()
	}
	ready, err := bufio.NewReader(loadOut).ReadString('\n')
	if err != nil || !strings.HasPrefix(ready, "ready") {
		stop()
		return nil, fmt.Errorf("sockload in %s: %q %v", name, ready, err)
	}
	return stop, nil
}

// freshPage measures what a page of new memory costs here: the time to
// touch each page of 256 MB just mapped, per page, the median of 5. On
// nested virtualisation it is several times a bare machine's, and every
// page a program touches pays it.
func freshPage() (time.Duration, error) {
	const size = 256 << 20
	page := os.Getpagesize()
	var per []float64
	for range 5 {
		b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return 0, fmt.Errorf("mapping 256 MB: %w", err)
		}
		// Pages of 4 KiB, as a program's heap mostly gets them: a huge
		// page would make one fault of 512.
		if err := unix.Madvise(b, unix.MADV_NOHUGEPAGE); err != nil {
			return 0, fmt.Errorf("madvise: %w", err)
		}
		start := time.Now()
		for i := 0; i < size; i += page {
			b[i] = 1
		}
		per = append(per, float64(time.Since(start))/float64(size/page))
		if err := unix.Munmap(b); err != nil {
			return 0, fmt.Errorf("unmapping: %w", err)
		}
	}
	return time.Duration(median(per)), nil
}

// printTable prints the machine, the population and the rows.
func printTable(rows []row, population string) error {
	cpu, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return fmt.Errorf("reading the CPU model: %w", err)
	}
	model := regexp.MustCompile(`model name\s*:\s*(.*)`).FindSubmatch(cpu)
	if model == nil {
		model = [][]byte{nil, []byte("unknown CPU")}
	}
	if *smoke {
		fmt.Print("Smoke run on a few thousand sockets: it shows the benchmark works; its figures mean nothing.\n\n")
	}
	page, err := freshPage()
	if err != nil {
		return err
	}
	fmt.Printf("Machine: %s, %d cores, %s, Go %s; a fresh page of memory costs %.1f µs (sockbench touches 256 MB of new memory). Medians of %d runs, the two commands alternating.\n\n",
		strings.TrimSpace(string(model[1])), runtime.NumCPU(), kernel(), runtime.Version(), float64(page)/1e3, *runs)
	fmt.Printf("%s\n\n", population)
	fmt.Println("| what | sockscope | other | ratio | target | met |")
	fmt.Println("| --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		fmt.Println(r.markdown())
	}
	return nil
}

func kernel() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "Linux (uname: " + err.Error() + ")"
	}
	return "Linux " + unix.ByteSliceToString(u.Release[:])
}

// row is one line of the table: a and b are the two medians (b may be 0
// for a figure that stands alone, then target bounds a itself).
type row struct {
	what   string
	a, b   float64
	unit   string
	target float64
	alone  bool // target bounds a, not a/b
}

func (r row) markdown() string {
	f := func(v float64) string {
		switch r.unit {
		case "s":
			return fmt.Sprintf("%.3f s", v)
		case "":
			return fmt.Sprintf("%.2f", v)
		}
		if v >= 100 {
			return fmt.Sprintf("%.0f %s", v, r.unit) // 1060 MB, not 1.06e+03
		}
		return fmt.Sprintf("%.3g %s", v, r.unit)
	}
	other, ratio, target, met := "", "", "", ""
	v := r.a
	if !r.alone {
		other = f(r.b)
		v = r.a / r.b
		ratio = fmt.Sprintf("%.2fx", v)
	}
	if r.target > 0 {
		if r.alone {
			target = "<= " + f(r.target)
		} else {
			target = fmt.Sprintf("<= %.2fx", r.target)
		}
		met = "yes"
		if v > r.target {
			met = "**no**"
		}
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s |", r.what, f(r.a), other, ratio, target, met)
}

// measured is one command's median wall time (s) and peak resident
// memory (MB, the kernel's ru_maxrss).
type measured struct{ wall, rss float64 }

// alternate runs a and b in turns, output to /dev/null, and returns their
// medians.
func alternate(a, b []string, n int) (measured, measured, error) {
	var ta, tb, ra, rb []float64
	for range n {
		for _, c := range []struct {
			args    []string
			t, rssD *[]float64
		}{{a, &ta, &ra}, {b, &tb, &rb}} {
			m, err := timeRun(c.args)
			if err != nil {
				return measured{}, measured{}, err
			}
			*c.t, *c.rssD = append(*c.t, m.wall), append(*c.rssD, m.rss)
		}
	}
	return measured{median(ta), median(ra)}, measured{median(tb), median(rb)}, nil
}

func timeRun(args []string) (measured, error) {
	cmd := exec.Command(args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return measured{}, fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	m := measured{wall: time.Since(start).Seconds()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.rss = float64(ru.Maxrss) / 1024 // kB
	}
	return m, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// exporterRow compares a scrape of /metrics with `sockscope list` reading
// the same namespace from outside (-N), both with a full dump.
func exporterRow(sc string, n int) (row, error) {
	scrape, _, stop, err := startExporter(sc, ns)
	if err != nil {
		return row{}, err
	}
	defer stop()
	var ta, tb []float64
	for range n {
		a, err := scrape()
		if err != nil {
			return row{}, err
		}
		b, err := timeRun([]string{sc, "list", "-H", "-N", ns})
		if err != nil {
			return row{}, err
		}
		ta, tb = append(ta, a), append(tb, b.wall)
	}
	return row{what: "exporter scrape vs `sockscope list -H -N` (same namespace)", a: median(ta), b: median(tb), unit: "s", target: 1.2}, nil
}

// startExporter starts the exporter on namespace name and returns a scrape
// of it (its wall time), its pid, and how to stop it.
func startExporter(sc, name string) (scrape func() (float64, error), pid int, stop func(), err error) {
	exp := exec.Command(sc, "exporter", "-N", name, "--listen", "127.0.0.1:0")
	stderr, err := exp.StderrPipe()
	if err != nil {
		return nil, 0, nil, fmt.Errorf("the exporter's stderr: %w", err)
	}
	if err := exp.Start(); err != nil {
		return nil, 0, nil, err
	}
	stop = func() { exp.Process.Kill(); exp.Wait() }
	line, err := bufio.NewReader(stderr).ReadString('\n')
	m := regexp.MustCompile(`http://\S+`).FindString(line)
	if m == "" {
		stop()
		return nil, 0, nil, fmt.Errorf("exporter said %q (%v)", line, err)
	}
	scrape = func() (float64, error) {
		start := time.Now()
		resp, err := http.Get(m)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("scrape: %s", resp.Status)
		}
		return time.Since(start).Seconds(), nil
	}
	return scrape, exp.Process.Pid, stop, nil
}

var benchLine = regexp.MustCompile(`^Benchmark(\w+)-\d+\s+\d+\s+(\d+) ns/op(.*)$`)

// goBench runs the collector's benchmarks on the population.
func goBench() ([]row, error) {
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "^Benchmark(Dump|DumpAgainstBare|NetlinkSocketDiagTCP)$",
		"-benchmem", "-count", benchCount, "./pkg/sockdiag")
	cmd.Env = append(os.Environ(), "SOCKSCOPE_BENCH_NETNS="+ns)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go test -bench: %v: %s", err, out)
	}
	ns := map[string][]float64{}
	allocs := map[string][]float64{}
	bytesOp := map[string][]float64{}
	sockets := 0.0
	var dumpNS, bareNS []float64 // alternating, from BenchmarkDumpAgainstBare
	for _, l := range strings.Split(string(out), "\n") {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return nil, fmt.Errorf("benchmark line %q: %w", l, err)
		}
		ns[m[1]] = append(ns[m[1]], v)
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			x, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: %w", l, err)
			}
			switch f[i+1] {
			case "allocs/op":
				allocs[m[1]] = append(allocs[m[1]], x)
			case "B/op":
				bytesOp[m[1]] = append(bytesOp[m[1]], x)
			case "sockets/op":
				sockets = x
			case "dump-ns/op":
				dumpNS = append(dumpNS, x)
			case "bare-ns/op":
				bareNS = append(bareNS, x)
			}
		}
	}
	if len(ns["Dump"]) == 0 || len(dumpNS) == 0 || len(bareNS) == 0 {
		return nil, fmt.Errorf("no benchmark results in:\n%s", out)
	}
	perHundred := median(allocs["Dump"]) / sockets * 100
	return []row{
		{what: fmt.Sprintf("collector dump (%.0f sockets) vs a bare loop that only receives it (alternating)", sockets),
			a: median(dumpNS) / 1e9, b: median(bareNS) / 1e9, unit: "s", target: 1.15},
		{what: "collector allocations per 100 sockets (per dump)", a: perHundred, alone: true, target: 1, unit: ""},
		{what: "collector dump vs vishvananda/netlink SocketDiagTCP (reference)",
			a: median(ns["Dump"]) / 1e9, b: median(ns["NetlinkSocketDiagTCP"]) / 1e9, unit: "s"},
		{what: "bytes allocated per dump: collector vs SocketDiagTCP (reference)",
			a: median(bytesOp["Dump"]) / 1e6, b: median(bytesOp["NetlinkSocketDiagTCP"]) / 1e6, unit: "MB"},
	}, nil
}

// dashboardRows runs the dashboard (args) on the whole population in
// tmux, 1 s interval: CPU over the run (at most cpuTarget % of a core),
// resident memory, time to the first frame.
func dashboardRows(args []string, what string, d time.Duration, cpuTarget float64) ([]row, error) {
	// The wait is a guard, not a figure: 100 namespaces sharing the host's
	// tables took over 10 s to the first frame on a machine of 13 µs pages.
	st, err := runDashboard(args, d, 0, time.Minute)
	if err != nil {
		return nil, err
	}
	return []row{
		{what: fmt.Sprintf("%s CPU, 1 s interval, over %v from %v after its first frame (%% of one core)", what, d, settle), a: st.cpu, alone: true, target: cpuTarget, unit: "%"},
		{what: fmt.Sprintf("%s CPU from its first frame, over %v, its first seconds' work included (reference)", what, d+settle), a: st.cpuFirst, alone: true, unit: "%"},
		{what: what + " resident memory", a: st.rss, alone: true, target: 150, unit: "MB"},
		{what: what + ", first frame after start (tmux, incl. ip netns exec)", a: st.first, alone: true, target: 0.5, unit: "s"},
	}, nil
}

// dashStats is what runDashboard measured.
type dashStats struct {
	cpu, rss, first float64 // % of a core (after settle), MB, s
	// cpuFirst: % of a core from the first frame, the work of the
	// first seconds included.
	cpuFirst float64
	// keys: the slowest answer to a key (s), of those pressed while a
	// dump ran; duringDump of pressed were.
	keys                float64
	duringDump, pressed int
	// anyKey: the slowest answer of all the presses, those that met
	// the table's update after a dump among them.
	anyKey float64
}

// settle is how long the dashboard runs after its first frame, and the
// dump loop after its start, before their CPU is measured: what a
// dashboard does once (the tracker's first records, the kernel events'
// program and its BTF, the first collections: 0.6 s of CPU at 110k
// sockets) is over, and the loop's first dump into fresh memory too. The
// dashboard's CPU from its first frame is reported beside, for reference.
const settle = 5 * time.Second

// runDashboard starts the dashboard (args) in tmux at 160x50, waits for
// its first frame (at most wait), measures its CPU over d from settle
// after it (and from the frame, for reference) and its memory,
// then presses '?' (the help pane) keys times at scattered moments and
// times each until the pane shows, noting which presses met a dump (the
// dashboard spent system time meanwhile: a dump is the kernel's work).
func runDashboard(args []string, d time.Duration, keys int, wait time.Duration) (dashStats, error) {
	var st dashStats
	// The server's socket in a directory of its own: kill-server leaves the
	// socket file behind, and the directory goes with it.
	dir, err := os.MkdirTemp("", "sockbench-tmux-")
	if err != nil {
		return st, fmt.Errorf("tmux socket directory: %w", err)
	}
	sock := filepath.Join(dir, "socket")
	tmux := func(args ...string) ([]byte, error) {
		return exec.Command("tmux", append([]string{"-S", sock}, args...)...).CombinedOutput()
	}
	defer func() {
		if out, err := tmux("kill-server"); err != nil {
			fmt.Fprintf(os.Stderr, "sockbench: tmux kill-server: %v: %s\n", err, out)
		}
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(os.Stderr, "sockbench: %v\n", err)
		}
	}()
	start := time.Now()
	if out, err := tmux(append([]string{"new-session", "-d", "-x", "160", "-y", "50"}, args...)...); err != nil {
		return st, fmt.Errorf("tmux: %v: %s", err, out)
	}
	ctl, err := attachControl(sock)
	if err != nil {
		return st, err
	}
	defer func() {
		if err := ctl.close(); err != nil {
			fmt.Fprintf(os.Stderr, "sockbench: %v\n", err)
		}
	}()
	// until polls the pane until it shows (or no longer shows) want.
	until := func(want *regexp.Regexp, shown bool, limit time.Duration) error {
		t0 := time.Now()
		for {
			out, err := ctl.run("capture-pane -p")
			if err != nil {
				return err
			}
			if want.Match(out) == shown && bytes.Contains(out, []byte("filter:")) {
				return nil
			}
			if time.Since(t0) > limit {
				return fmt.Errorf("the dashboard did not show %q in %v:\n%s", want, limit, out)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	// The first frame with sockets in it, not the frame drawn before the
	// first dump has ended: the socket table's status line, or the
	// namespace view's (--all-netns).
	if err := until(regexp.MustCompile(`matched [1-9]|[1-9][0-9]* sockets in all`), true, wait); err != nil {
		return st, err
	}
	st.first = time.Since(start).Seconds()
	pid, err := pidOf(args)
	if err != nil {
		return st, err
	}
	tFirst, err := cpuTicks(pid)
	if err != nil {
		return st, err
	}
	time.Sleep(settle)
	t0, err := cpuTicks(pid)
	if err != nil {
		return st, err
	}
	time.Sleep(d)
	t1, err := cpuTicks(pid)
	if err != nil {
		return st, err
	}
	if st.rss, err = rssMB(pid); err != nil {
		return st, err
	}
	st.cpu = float64(t1-t0) / 100 / d.Seconds() * 100 // USER_HZ = 100
	st.cpuFirst = float64(t1-tFirst) / 100 / (settle + d).Seconds() * 100
	help := regexp.MustCompile(regexp.QuoteMeta("keys (Esc closes)"))
	for i := range keys {
		// Scattered over the poll cycle, the same way each run.
		time.Sleep(time.Duration(300+(i*7919)%1700) * time.Millisecond)
		sys0, err := sysTicks(pid)
		if err != nil {
			return st, err
		}
		pressed := time.Now()
		if _, err := ctl.run("send-keys ?"); err != nil {
			return st, err
		}
		if err := until(help, true, 10*time.Second); err != nil {
			return st, err
		}
		took := time.Since(pressed).Seconds()
		sys1, err := sysTicks(pid)
		if err != nil {
			return st, err
		}
		st.pressed++
		st.anyKey = max(st.anyKey, took)
		if sys1 > sys0 {
			st.duringDump++
			st.keys = max(st.keys, took)
		}
		if _, err := ctl.run("send-keys Escape"); err != nil {
			return st, err
		}
		if err := until(help, false, 10*time.Second); err != nil {
			return st, err
		}
	}
	return st, nil
}

// runDumpLoop dumps the namespace's whole table into a reused snapshot
// once a second: what any polling dashboard must at least do.
func runDumpLoop(name string) error {
	n, err := netns.Resolve(name)
	if err != nil {
		return err
	}
	c, err := sockdiag.Open(n)
	if err != nil {
		return err
	}
	defer c.Close()
	req := &sockdiag.Request{States: sock.AllStates}
	var snap sock.Snapshot
	for t := time.Tick(time.Second); ; <-t {
		snap.Sockets, snap.Dumped = snap.Sockets[:0], 0
		if err := c.Dump(req, &snap); err != nil {
			return err
		}
	}
}

// dumpLoopCPU runs runDumpLoop in namespace name for d and returns its CPU,
// in % of one core.
func dumpLoopCPU(name string, d time.Duration) (float64, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(self, "-dump-loop", name)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(settle) // past its start, as the dashboard's is
	t0, err := cpuTicks(cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	t1, err := cpuTicks(cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	return float64(t1-t0) / 100 / d.Seconds() * 100, nil
}

// pidOf finds the process whose command line is args (the dashboard,
// after ip netns exec has executed it).
func pidOf(args []string) (int, error) {
	if args[0] == "ip" {
		args = args[4:] // ip netns exec NS ...
	}
	out, err := exec.Command("pgrep", "-f", "^"+regexp.QuoteMeta(strings.Join(args, " "))+"$").Output()
	if err != nil {
		return 0, fmt.Errorf("finding the dashboard's pid: %v", err)
	}
	return strconv.Atoi(strings.Fields(string(out))[0])
}

// sysTicks is a process's system time, in ticks.
func sysTicks(pid int) (int, error) {
	_, sys, err := procTimes(pid)
	return sys, err
}

// cpuTicks is a process's user and system time, in ticks.
func cpuTicks(pid int) (int, error) {
	user, sys, err := procTimes(pid)
	return user + sys, err
}

func procTimes(pid int) (user, sys int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if user, err = strconv.Atoi(f[11]); err != nil {
		return 0, 0, fmt.Errorf("utime in /proc/%d/stat: %w", pid, err)
	}
	if sys, err = strconv.Atoi(f[12]); err != nil {
		return 0, 0, fmt.Errorf("stime in /proc/%d/stat: %w", pid, err)
	}
	return user, sys, nil
}

func rssMB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("no VmRSS for %d", pid)
	}
	kb, err := strconv.Atoi(string(m[1]))
	if err != nil {
		return 0, fmt.Errorf("VmRSS of %d: %w", pid, err)
	}
	return float64(kb) / 1024, nil
}
