package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sockscope/sockscope/pkg/bindprobe"
	"github.com/sockscope/sockscope/pkg/diagnose"
	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/session"
	"github.com/sockscope/sockscope/pkg/track"
	"github.com/spf13/cobra"
)

// parseBindAddr reads [ADDR]:PORT, PORT, or [V6ADDR]:PORT.
func parseBindAddr(s string) (netip.AddrPort, error) {
	bad := func(why string) (netip.AddrPort, error) {
		return netip.AddrPort{}, usagef("bind: bad address %q: %s (want [ADDR]:PORT, e.g. :9000 or 127.0.0.1:9000)", s, why)
	}
	// port reads a port: a number, or a TCP service's name, as a
	// filter's port.
	port := func(p string) (uint16, bool) {
		if n, err := strconv.ParseUint(p, 10, 16); err == nil {
			return uint16(n), n != 0
		}
		n, ok := filter.ServicePort(p)
		return n, ok && n != 0
	}
	const badPort = "not a port from 1 to 65535 or a TCP service name in /etc/services"
	if strings.HasPrefix(s, "[") {
		// [V6ADDR]:PORT, exactly.
		i := strings.LastIndex(s, "]:")
		if i < 0 {
			return bad("not [IPv6]:PORT")
		}
		addr, err := netip.ParseAddr(s[1:i])
		if err != nil || !addr.Is6() || addr.Is4In6() || addr.Zone() != "" {
			return bad("not [IPv6]:PORT")
		}
		p, ok := port(s[i+2:])
		if !ok {
			return bad(badPort)
		}
		return netip.AddrPortFrom(addr, p), nil
	}
	if strings.ContainsAny(s, "[]") {
		return bad("unbalanced brackets")
	}
	host, ps := "", s
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, ps = s[:i], s[i+1:]
	}
	p, ok := port(ps)
	if !ok {
		return bad(badPort)
	}
	addr := netip.IPv4Unspecified()
	if host != "" && host != "*" {
		var err error
		if addr, err = netip.ParseAddr(host); err != nil || !addr.Is4() {
			return bad("not an IPv4 address (write IPv6 as [ADDR]:PORT)")
		}
	}
	return netip.AddrPortFrom(addr, p), nil
}

// waitValue is --wait[=TIMEOUT]: 0 waits without a limit.
type waitValue struct {
	set *bool
	d   *time.Duration
}

// String is "" until --wait is given: the help then shows no default (a
// "0s" default read as "waits without a limit", which it does not).
func (v waitValue) String() string {
	if v.set == nil || !*v.set {
		return ""
	}
	return v.d.String()
}
func (v waitValue) Type() string { return "duration" }
func (v waitValue) Set(s string) error {
	*v.set = true
	if s == "" || s == "0" {
		*v.d = 0
		return nil
	}
	return spanValue(v.d).Set(s)
}

func newBindCmd(a *app) *cobra.Command {
	var (
		netnsArgs []string
		asJSON    bool
		wait      bool
		timeout   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "bind [ADDR]:PORT [flags]",
		Short: "say whether bind() to [ADDR]:PORT would succeed, and why not",
		Long: `Say whether a TCP bind() to ADDR:PORT would succeed right now, plainly, with
SO_REUSEADDR and with SO_REUSEPORT, by really trying (socket, setsockopt,
bind, close: no listen, no traffic), and explain a failure from the socket
table: a listener, connections, or TIME_WAIT entries and when they end.
ADDR defaults to 0.0.0.0. Exit status: 0 bindable, 1 not, 2 bad input.
Nothing in the kernel is changed.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("bind: want one [ADDR]:PORT, got %d arguments (%s)", len(args), strings.Join(args, " "))
			}
			addr, err := parseBindAddr(args[0])
			if err != nil {
				return err
			}
			nss, err := resolveAll(cmd.Name(), netnsArgs, false)
			if err != nil {
				return err
			}
			a.note(repeatedFlags(cmd)...)
			return runBind(a, nss[0], addr, asJSON, wait, timeout)
		},
	}
	fs := cmd.Flags()
	fs.StringArrayVarP(&netnsArgs, "netns", "N", nil, "probe the namespace `NAME` (under /run/netns) or PATH")
	fs.BoolVar(&asJSON, "json", false, "print the report as one JSON object")
	fs.Var(waitValue{&wait, &timeout}, "wait", "wait until a plain bind succeeds, at most `TIMEOUT` (--wait=2m; --wait alone or --wait=0: no limit)")
	fs.Lookup("wait").NoOptDefVal = "0"
	mustComplete(cmd, "netns", completeNetns)
	return cmd
}

func runBind(a *app, ns netns.NS, addr netip.AddrPort, asJSON, wait bool, timeout time.Duration) error {
	ctx, stdout, stderr := a.ctx, a.stdout, a.stderr
	// The sockets on the port, whatever their address: the report decides
	// which of them stand in the way.
	prog := filter.Compile(filter.PortCmp{Op: filter.OpEq, Port: addr.Port()}, filter.Options{})
	s, err := session.Open(ctx, session.Config{Namespaces: []netns.NS{ns}, Program: prog, Processes: true})
	if err != nil {
		return err
	}
	defer s.Close()
	a.note(s.Notes()...)
	src := s.Source()
	tracker := track.New(s.Lookup())
	check := func() (*diagnose.Report, error) {
		res, err := bindprobe.Probe(ns, addr)
		if err != nil {
			return nil, err
		}
		snap, err := src.Snapshot()
		if err != nil {
			return nil, err
		}
		return diagnose.Explain(addr, res, tracker.Update(snap).Entries), nil
	}
	r, err := check()
	if err != nil {
		return err
	}
	if wait && !r.Bindable {
		r, err = waitBindable(ctx, r, check, timeout, stderr)
		if err != nil {
			return err
		}
	}
	if asJSON {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		if err != nil && !isBrokenPipe(err) {
			return fmt.Errorf("writing the report: %w", err)
		}
	} else if err := r.WriteText(stdout); err != nil && !isBrokenPipe(err) {
		return fmt.Errorf("writing the report: %w", err)
	}
	a.note(s.ClosingNotes()...)
	if !r.Bindable {
		return exitStatus(1)
	}
	return nil
}

// waitBindable checks every 200 ms until a plain bind succeeds, ctx ends
// or timeout (0: none) passes, with a countdown on a terminal.
func waitBindable(ctx context.Context, r *diagnose.Report, check func() (*diagnose.Report, error),
	timeout time.Duration, stderr io.Writer) (*diagnose.Report, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	tty := stderr == io.Writer(os.Stderr) && isTerminal(os.Stderr)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !r.Bindable {
		if tty {
			msg := fmt.Sprintf("waiting for %s: held by %d sockets", r.Addr, len(r.Holders))
			if r.FreeIn > 0 {
				msg += fmt.Sprintf(", free in about %.0fs", r.FreeIn.Seconds())
			}
			fmt.Fprintf(stderr, "\r%-70s", msg)
		}
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(stderr)
			}
			return r, nil
		case <-tick.C:
		}
		var err error
		if r, err = check(); err != nil {
			return nil, err
		}
	}
	if tty {
		fmt.Fprintf(stderr, "\r%-70s\r", "")
	}
	return r, nil
}
