package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sockscope/sockscope/pkg/nstest"
	"golang.org/x/sys/unix"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// promQuery returns the values of an instant query's series.
func promQuery(promURL, q string) ([]string, error) {
	samples, err := promVector(promURL, q)
	if err != nil {
		return nil, err
	}
	var vals []string
	for _, s := range samples {
		vals = append(vals, fmt.Sprint(s.Value[1]))
	}
	return vals, nil
}

// needPrometheus returns the prometheus binary's path, or skips (fails
// under CI).
func needPrometheus(t *testing.T) string {
	t.Helper()
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus is not installed (.ci/run installs Debian's package)")
		}
		t.Skip("prometheus is not installed")
	}
	return promBin
}

// startExporter runs sockscope with args (an exporter on port 0) until the
// test ends, and returns the HOST:PORT it serves on.
func startExporter(t *testing.T, args ...string) string {
	t.Helper()
	exp := exec.Command(binary, args...)
	stderr, err := exp.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exp.Process.Kill(); exp.Wait() })
	sc := bufio.NewScanner(stderr)
	for sc.Scan() && !strings.Contains(sc.Text(), "serving http://") {
		t.Logf("exporter: %s", sc.Text()) // notes before it serves
	}
	if !strings.Contains(sc.Text(), "serving http://") {
		t.Fatalf("exporter said %q", sc.Text())
	}
	target := strings.TrimSuffix(strings.TrimPrefix(strings.Fields(sc.Text())[3], "http://"), "/metrics")
	go func() {
		for sc.Scan() {
			t.Logf("exporter: %s", sc.Text())
		}
	}()
	return target
}

// startPrometheus runs a Prometheus that scrapes target every interval
// until the test ends, and returns its URL. A scrape may take the whole
// interval: Prometheus's own default would cut it at 1 s, which a scrape
// of every namespace on a busy host can pass (seen: a minute of failed
// scrapes while another package's tests churned sockets).
func startPrometheus(t *testing.T, promBin, target string, interval time.Duration) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global:
  scrape_interval: %[2]s
  scrape_timeout: %[2]s
  evaluation_interval: %[2]s
scrape_configs:
  - job_name: sockscope
    static_configs:
      - targets: ["%[1]s"]
`, target, fmt.Sprintf("%dms", interval.Milliseconds()))), 0o644); err != nil {
		t.Fatal(err)
	}
	promAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	prom := exec.Command(promBin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	var promLog strings.Builder
	prom.Stderr = &promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		prom.Process.Kill()
		prom.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", promLog.String())
		}
	})
	return "http://" + promAddr
}

// A real Prometheus scrapes the exporter, which reads a private namespace
// holding the tutorial's experiment, and answers the queries people write.
func TestIntegrationPrometheusScrapesExporter(t *testing.T) {
	promBin := needPrometheus(t)
	ns := nstest.New(t)
	seed := nstest.RunSeed(t, ns, nstest.SeedOptions{Tutorial: true})
	// A client that closes while the server keeps its end: CLOSE_WAIT.
	err := ns.Do(func() error {
		c, err := nstest.Dial(netipLoopback9000)
		if err != nil {
			return err
		}
		s, _, err := unix.Accept4(seed.Listeners[0], unix.SOCK_CLOEXEC)
		if err != nil {
			return err
		}
		t.Cleanup(func() { unix.Close(s) })
		return unix.Close(c)
	})
	if err != nil {
		t.Fatal(err)
	}
	target := startExporter(t, "exporter", "-N", ns.Name, "--port-series", "9000", "--listen", "127.0.0.1:0")
	promURL := startPrometheus(t, promBin, target, time.Second)
	want := map[string]string{
		`sockscope_tcp_sockets{state="TIME_WAIT",local_port="9000"}`:  "2",
		`sockscope_tcp_sockets{state="LISTEN",local_port="9000"}`:     "1",
		`sockscope_tcp_sockets{state="CLOSE_WAIT",local_port="9000"}`: "1",
		`sockscope_scrape_success`:                                    "1",
	}
	deadline := time.Now().Add(60 * time.Second)
	for q, v := range want {
		for {
			// Families are separate series; the experiment is IPv4.
			vals, err := promQuery(promURL, q)
			if err == nil && len(vals) > 0 && strings.Contains(strings.Join(vals, " "), v) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("query %s: %v, %v; want a series of value %s", q, vals, err, v)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	// The exact form people write: the IPv4 series of TIME_WAIT on 9000.
	vals, err := promQuery(promURL, `sockscope_tcp_sockets{state="TIME_WAIT",local_port="9000",family="ipv4"} == 2`)
	if err != nil || len(vals) != 1 {
		t.Errorf("TIME_WAIT on 9000 == 2: %v, %v", vals, err)
	}
}

var netipLoopback9000 = netip.MustParseAddrPort("127.0.0.1:9000")

// The exporter's output follows Prometheus's own conventions: promtool
// finds nothing to say about it, with the tracker's metrics and the
// kernel's counters among them.
func TestIntegrationExporterPassesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed (Debian's prometheus package has it)")
		}
		t.Skip("promtool is not installed")
	}
	ns := nstest.New(t)
	nstest.RunSeed(t, ns, nstest.SeedOptions{Tutorial: true})
	exp := exec.Command(binary, "exporter", "-N", ns.Name, "--track", "--port-series", "9000", "--listen", "127.0.0.1:0")
	stderr, err := exp.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exp.Process.Kill(); exp.Wait() })
	sc := bufio.NewScanner(stderr)
	if !sc.Scan() || !strings.Contains(sc.Text(), "serving http://") {
		t.Fatalf("exporter said %q", sc.Text())
	}
	url := strings.Fields(sc.Text())[3]
	go func() {
		for sc.Scan() {
		}
	}()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sockscope_tcp_out_rsts_total{", "sockscope_track_success{", "sockscope_tcp_sockets{"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("no %s in the scrape", want)
		}
	}
	// The help of each metric names flags the exporter has.
	help, err := exec.Command(binary, "exporter", "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	flagRE := regexp.MustCompile(`--[a-z][a-z-]*`)
	for _, l := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(l, "# HELP ") {
			continue
		}
		for _, f := range flagRE.FindAllString(l, -1) {
			if !regexp.MustCompile(`\s` + f + `\b[^-]`).Match(help) {
				t.Errorf("%s names %s, which the exporter does not have", l, f)
			}
		}
	}
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(string(body))
	if out, err := check.CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// With --all-netns, --track follows every namespace with one tracker:
// each namespace's transitions are its own series, under its name.
func TestIntegrationTrackAllNamespaces(t *testing.T) {
	nstest.HostLock(t) // it reads every namespace on the host
	a, b := nstest.New(t), nstest.New(t)
	conns := map[*nstest.NS][]*nstest.Conn{}
	for ns, n := range map[*nstest.NS]int{a: 1, b: 2} {
		for i := range n {
			conns[ns] = append(conns[ns], nstest.Connect(t, ns, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(9000+i))))
		}
	}
	target := startExporter(t, "exporter", "--all-netns", "--track", "-i", "100ms", "--listen", "127.0.0.1:0",
		"( sport >= :9000 and sport <= :9001 ) or ( dport >= :9000 and dport <= :9001 )")
	// The tracker must see each connection established before its client
	// closes, or it first sees the server's end in CLOSE_WAIT, which is
	// no transition: thirty intervals.
	time.Sleep(3 * time.Second)
	for _, cs := range conns {
		for _, c := range cs {
			c.Close(&c.Client)
		}
	}
	want := map[string]string{a.Name: "1", b.Name: "2"}
	var got map[string]string
	deadline := time.Now().Add(30 * time.Second)
	for {
		got = map[string]string{}
		for _, l := range strings.Split(scrapeText(t, target), "\n") {
			if !strings.HasPrefix(l, "sockscope_tcp_transitions_total{") || !strings.Contains(l, `from="ESTABLISHED"`) || !strings.Contains(l, `to="CLOSE_WAIT"`) {
				continue
			}
			for name := range want {
				if strings.Contains(l, `netns="`+name+`"`) {
					got[name] = l[strings.LastIndexByte(l, ' ')+1:]
				}
			}
		}
		if fmt.Sprint(got) == fmt.Sprint(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ESTABLISHED to CLOSE_WAIT by namespace: %v; want %v", got, want)
	}
}

// As root, --track counts the kernel's changes: a connection opened and
// closed between two polls 10 s apart still counts each of its steps.
func TestIntegrationTrackKernelTransitions(t *testing.T) {
	ns := nstest.New(t)
	target := startExporter(t, "exporter", "-N", ns.Name, "--track", "-i", "10s", "--listen", "127.0.0.1:0", ":9000")
	time.Sleep(time.Second) // past the first poll
	c := nstest.Connect(t, ns, netip.MustParseAddrPort("127.0.0.1:9000"))
	c.Close(&c.Client)
	c.Close(&c.Server)
	want := map[string]string{
		`from="SYN_SENT",netns="` + ns.Name + `",to="ESTABLISHED"`:   "1",
		`from="SYN_RECV",netns="` + ns.Name + `",to="ESTABLISHED"`:   "1",
		`from="ESTABLISHED",netns="` + ns.Name + `",to="FIN_WAIT1"`:  "1",
		`from="ESTABLISHED",netns="` + ns.Name + `",to="CLOSE_WAIT"`: "1",
		`from="CLOSE_WAIT",netns="` + ns.Name + `",to="LAST_ACK"`:    "1",
		`from="FIN_WAIT1",netns="` + ns.Name + `",to="FIN_WAIT2"`:    "1",
		`from="LISTEN",netns="` + ns.Name + `",to="SYN_RECV"`:        "1",
		`from="CLOSE",netns="` + ns.Name + `",to="SYN_SENT"`:         "1",
		`from="CLOSE",netns="` + ns.Name + `",to="LISTEN"`:           "1",
	}
	var got map[string]string
	deadline := time.Now().Add(5 * time.Second) // well before the second poll
	for {
		got = map[string]string{}
		for _, l := range strings.Split(scrapeText(t, target), "\n") {
			if rest, ok := strings.CutPrefix(l, "sockscope_tcp_transitions_total{"); ok {
				labels, value, _ := strings.Cut(rest, "} ")
				got[labels] = value
			}
		}
		if fmt.Sprint(got) == fmt.Sprint(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("transitions %v; want %v", got, want)
	}
}

// scrapeText is one scrape of the exporter serving on target.
func scrapeText(t *testing.T, target string) string {
	t.Helper()
	resp, err := http.Get("http://" + target + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}
