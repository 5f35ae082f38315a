package main

import (
	"flag"
	"fmt"
	"os/exec"
	"time"
)

// The -million run: one namespace of about a million sockets.
var (
	million        = flag.Bool("million", false, "measure a million sockets instead (minutes; not in CI): list, the exporter and the dashboard")
	millionSockets = flag.Int("million-sockets", 1_000_000, "-million: the population's size (ESTABLISHED, and 4% TIME_WAIT)")
)

const millionNS = "sockbench-million"

// millionRun builds the population and compares, side by side: list -H
// and an exporter scrape with ss -tanH, in wall time; then runs the
// dashboard at its defaults for its first frame, keys, CPU and memory.
func millionRun(sc, load string) ([]row, string, error) {
	tw := *millionSockets / 25
	logf("building a population of %d sockets (minutes)...", *millionSockets)
	stop, err := startLoad(load, millionNS, *millionSockets-tw, tw, 2000)
	if err != nil {
		return nil, "", err
	}
	defer stop()
	population, err := exec.Command("ip", "netns", "exec", millionNS, "ss", "-s").Output()
	if err != nil {
		return nil, "", fmt.Errorf("ss -s in the population: %w", err)
	}
	inNS := func(args ...string) []string { return append([]string{"ip", "netns", "exec", millionNS}, args...) }
	var rows []row

	logf("measuring list -H")
	a, b, err := alternate(inNS(sc, "list", "-H"), inNS("ss", "-tanH"), *runs)
	if err != nil {
		return nil, "", err
	}
	rows = append(rows,
		row{what: "`sockscope list -H` vs `ss -tanH`", a: a.wall, b: b.wall, unit: "s", target: 0.7},
		row{what: "peak resident memory: `sockscope list -H` vs `ss -tanH`", a: a.rss, b: b.rss, unit: "MB", target: 2})

	logf("measuring the exporter")
	scrape, pid, stopExp, err := startExporter(sc, millionNS)
	if err != nil {
		return nil, "", err
	}
	var ta, tb []float64
	for range *runs {
		t, err := scrape()
		if err != nil {
			stopExp()
			return nil, "", err
		}
		m, err := timeRun(inNS("ss", "-tanH"))
		if err != nil {
			stopExp()
			return nil, "", err
		}
		ta, tb = append(ta, t), append(tb, m.wall)
	}
	rss, err := rssMB(pid)
	stopExp()
	if err != nil {
		return nil, "", err
	}
	rows = append(rows,
		row{what: "exporter scrape vs `ss -tanH`", a: median(ta), b: median(tb), unit: "s", target: 0.7},
		row{what: fmt.Sprintf("exporter resident memory after %d scrapes", *runs), a: rss, alone: true, unit: "MB", target: 64})

	if *dashFor > 0 {
		logf("running the dashboard for %v, then pressing keys", *dashFor)
		st, err := runDashboard(inNS(sc), *dashFor, 20, 30*time.Second)
		if err != nil {
			return nil, "", err
		}
		rows = append(rows,
			row{what: "dashboard, first frame after start (tmux, incl. ip netns exec)", a: st.first, alone: true, unit: "s", target: 2},
			row{what: fmt.Sprintf("dashboard, slowest answer to a key pressed while a dump ran (%d of %d presses; tmux round trip included)", st.duringDump, st.pressed),
				a: st.keys * 1000, alone: true, unit: "ms", target: 100},
			row{what: fmt.Sprintf("dashboard, slowest answer to any of the %d presses (reference)", st.pressed),
				a: st.anyKey * 1000, alone: true, unit: "ms"},
			row{what: fmt.Sprintf("dashboard CPU at its defaults, over %v from %v after its first frame (%% of one core)", *dashFor, settle), a: st.cpu, alone: true, unit: "%", target: 50},
			row{what: fmt.Sprintf("dashboard CPU from its first frame, over %v, its first seconds' work included (reference)", *dashFor+settle), a: st.cpuFirst, alone: true, unit: "%"},
			row{what: "dashboard resident memory", a: st.rss, alone: true, unit: "MB", target: 600})
	}
	return rows, fmt.Sprintf("Population (`ss -s` in the namespace):\n\n```\n%s```", population), nil
}
