package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/sockscope/sockscope/pkg/netns"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sockscope/sockscope/pkg/exporter"
	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/monitor"
	"github.com/sockscope/sockscope/pkg/sock"
	"github.com/sockscope/sockscope/pkg/source"
	"github.com/spf13/pflag"
)

const exporterHelp = `usage: sockscope exporter [--listen ADDR] [--port N ...] [-N NETNS ...] [FILTER]

Serve the socket table as Prometheus metrics on /metrics (text and
OpenMetrics). Each scrape runs one dump per namespace; concurrent scrapes
share it. --port N gives port N its own local_port series (only the ports
named: a label per port would explode a fleet's series). -N may be given
several times: each namespace gets its netns label. --track adds state
transitions and TIME_WAIT lifetimes, from a tracker that polls every -i.`

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func runExporter(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		listen    string
		netnsArgs []string
		portArgs  []string
		trackOn   bool
		interval  time.Duration = time.Second
		spec      filter.Spec
	)
	fs := pflag.NewFlagSet("exporter", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&listen, "listen", "127.0.0.1:9815", "serve on `ADDR` (another address than loopback is an explicit choice)")
	fs.StringArrayVarP(&netnsArgs, "netns", "N", nil, "export the namespace `NAME` or PATH (repeatable)")
	fs.StringArrayVar(&portArgs, "port", nil, "give local port `N[,N...]` its own series (repeatable)")
	fs.BoolVar(&trackOn, "track", false, "also export transitions and TIME_WAIT lifetimes (a background tracker)")
	fs.VarP(intervalValue(&interval), "interval", "i", "the tracker's polling interval")
	fs.BoolVarP(&spec.IPv4, "ipv4", "4", false, "IPv4 sockets only")
	fs.BoolVarP(&spec.IPv6, "ipv6", "6", false, "IPv6 sockets only")
	fs.StringArrayVar(&spec.States, "state", nil, "states `LIST`")
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			fmt.Fprintf(stdout, "%s\n\nFlags:\n%s\n%s", exporterHelp, fs.FlagUsages(), filterHelp)
			return nil
		}
		return usagef("exporter: %v", err)
	}
	var ports []uint16
	for _, v := range portArgs {
		for _, p := range strings.Split(v, ",") {
			n, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(p), ":"), 10, 16)
			if err != nil || n == 0 {
				return usagef("exporter: invalid --port value %q: not a port from 1 to 65535", p)
			}
			ports = append(ports, uint16(n))
		}
	}
	if err := checkListen(listen); err != nil {
		return usagef("exporter: invalid --listen value %q: %v", listen, err)
	}
	spec.Args = fs.Args()
	e, err := spec.Build()
	if err != nil {
		var flagErr *filter.FlagError
		if errors.As(err, &flagErr) {
			return usagef("exporter: %v", err)
		}
		return usagef("bad filter %q: %v", strings.Join(spec.Args, " "), err)
	}
	seen := map[string]bool{}
	for _, arg := range netnsArgs {
		if seen[arg] {
			return usagef("exporter: namespace %q given twice: its series would collide", arg)
		}
		seen[arg] = true
	}
	var namespaces []netns.NS
	byInode := map[uint64]string{}
	for _, arg := range netnsArgs {
		ns, err := netns.Resolve(arg)
		if err != nil {
			return err
		}
		if other, dup := byInode[ns.Inode]; dup {
			return usagef("exporter: namespaces %q and %q are the same one, given twice: their series would double", other, arg)
		}
		byInode[ns.Inode] = arg
		namespaces = append(namespaces, ns)
	}
	prog := filter.Compile(e, filter.Options{})
	if len(namespaces) == 0 {
		namespaces = []netns.NS{{}}
	}
	var targets []exporter.Target
	for _, ns := range namespaces {
		src, err := source.Open(prog, source.Options{Netns: ns})
		if err != nil {
			return err
		}
		defer src.Close()
		stat, err := src.Stat()
		if err != nil {
			return err
		}
		targets = append(targets, exporter.Target{Netns: ns, Source: src, Counters: stat.Counters})
	}
	exp := exporter.New(targets, exporter.Options{Ports: ports, Version: version})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if trackOn {
		// The tracker's monitors own sources of their own: scrapes never
		// share a source with them.
		var srcs []monitor.Source
		var destroys []<-chan sock.Destroy
		for _, ns := range namespaces {
			src, err := source.Open(prog, source.Options{Netns: ns})
			if err != nil {
				return err
			}
			defer src.Close()
			srcs = append(srcs, src)
			d, _ := src.Destroys(ctx)
			destroys = append(destroys, d)
		}
		wait := exp.Track(ctx, srcs, destroys, interval)
		// Runs before the sources' deferred closes: no monitor is left
		// polling a closed source.
		defer func() {
			cancel()
			wait()
		}()
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(exp)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true, ErrorLog: nil}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<html><head><title>sockscope exporter</title></head><body><h1>sockscope exporter</h1><p><a href="/metrics">Metrics</a></p></body></html>`)
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("exporter: listening on %s: %w", listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		srv.Shutdown(sctx)
	}()
	fmt.Fprintf(stderr, "sockscope: exporter serving http://%s/metrics\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("exporter: %w", err)
	}
	return nil
}

// checkListen accepts HOST:PORT with an IP address (or localhost, or
// nothing for every address) and a port number.
func checkListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	if host != "" && host != "localhost" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("%q is not an IP address", host)
		}
	}
	return nil
}
