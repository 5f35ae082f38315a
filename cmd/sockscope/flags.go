package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/source"
	"github.com/spf13/pflag"
)

// errHelp ends a command after it printed its help.
var errHelp = errors.New("help shown")

// common holds the flags every command shares. Short flags mean what they
// mean in ss and netstat, so habits carry over.
type common struct {
	spec      filter.Spec
	netns     string
	ns        netns.NS // netns, resolved by parse
	processes bool
	noHeader  bool
	json      bool
	color     string
	expr      filter.Expr
	procfs    bool
}

// register adds the flags that select sockets, shared by every mode.
func (c *common) register(fs *pflag.FlagSet) {
	fs.StringVarP(&c.netns, "netns", "N", "", "read the namespace `NAME` (under /run/netns) or PATH (/proc/PID/ns/net)")
	fs.BoolVarP(&c.processes, "processes", "p", false, "show the owning process (pid/command)")
	fs.BoolVarP(&c.spec.IPv4, "ipv4", "4", false, "IPv4 sockets only")
	fs.BoolVarP(&c.spec.IPv6, "ipv6", "6", false, "IPv6 sockets only")
	fs.BoolVarP(&c.spec.Listening, "listening", "l", false, "listening sockets only")
	fs.StringArrayVar(&c.spec.Ports, "port", nil, "local or peer port `N[,N...]`")
	fs.StringArrayVar(&c.spec.States, "state", nil, "states `LIST`, e.g. listen,time-wait")
	fs.BoolVar(&c.procfs, "procfs", false, "read /proc/net/tcp instead of sock_diag (the fallback where sock_diag is missing)")
	// Accepted so that 'ss -tan' and 'netstat -anp' habits work: sockscope
	// always shows all TCP sockets with numeric addresses.
	var ignored bool
	fs.BoolVarP(&ignored, "numeric", "n", false, "numeric addresses (always on)")
	fs.BoolVarP(&ignored, "all", "a", false, "all states (the default)")
	fs.BoolVarP(&ignored, "tcp", "t", false, "TCP sockets (always on)")
}

// sourceOptions are the source's options for these flags.
func (c *common) sourceOptions() source.Options {
	return source.Options{Netns: c.ns, Procfs: c.procfs}
}

// registerOutput adds the flags of the one-shot outputs.
func (c *common) registerOutput(fs *pflag.FlagSet) {
	fs.BoolVarP(&c.noHeader, "no-header", "H", false, "no column titles and no summary line")
	fs.BoolVar(&c.json, "json", false, "one JSON object per socket per line")
	fs.StringVar(&c.color, "color", "auto", "colour states: auto, always or never")
}

// parse parses args into c and returns the compiled filter. The flag
// package's own messages already name the bad token.
func (c *common) parse(fs *pflag.FlagSet, args []string, help string, stdout io.Writer) (*filter.Program, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stdout, "%s\nFlags:\n%s\n%s", help, fs.FlagUsages(), filterHelp)
			return nil, errHelp
		}
		return nil, usagef("%s: %v", fs.Name(), err)
	}
	switch c.color {
	case "", "auto", "always", "never":
	default:
		return nil, usagef("%s: invalid --color value %q (want auto, always or never)", fs.Name(), c.color)
	}
	c.spec.Args = fs.Args()
	e, err := c.spec.Build()
	if err != nil {
		var flagErr *filter.FlagError
		if errors.As(err, &flagErr) {
			return nil, usagef("%v", err)
		}
		return nil, usagef("bad filter %q: %v", strings.Join(c.spec.Args, " "), err)
	}
	c.expr = e
	if c.ns, err = netns.Resolve(c.netns); err != nil {
		return nil, err
	}
	return filter.Compile(e, filter.Options{}), nil
}

// editable returns the filter as text the dashboard's editor starts with,
// and the part it cannot edit (-4, -6: the language has no family test).
func (c *common) editable() (string, filter.Spec) {
	fixed := filter.Spec{IPv4: c.spec.IPv4, IPv6: c.spec.IPv6}
	rest := c.spec
	rest.IPv4, rest.IPv6 = false, false
	if len(rest.Ports) == 0 && len(rest.States) == 0 && !rest.Listening {
		return strings.Join(rest.Args, " "), fixed
	}
	e, err := rest.Build()
	if err != nil || e == nil {
		return "", fixed
	}
	return e.String(), fixed
}

// durationValue reads a duration as Go writes it (500ms, 2s) or a plain
// number of seconds, as watch -n and vmstat take it.
// An interval runs from 10ms (faster only measures the polling) to an
// hour; a run (--for, --wait) up to 30 days.
type durationValue struct {
	d        *time.Duration
	min, max time.Duration
}

func intervalValue(d *time.Duration) durationValue {
	return durationValue{d, 10 * time.Millisecond, time.Hour}
}

func spanValue(d *time.Duration) durationValue {
	return durationValue{d, time.Millisecond, 30 * 24 * time.Hour}
}

func (v durationValue) String() string { return v.d.String() }
func (v durationValue) Type() string   { return "duration" }

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return fmt.Errorf("not a duration (try 500ms or 2s)")
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < v.min || d > v.max {
		return fmt.Errorf("want a duration from %v to %v", v.min, v.max)
	}
	*v.d = d
	return nil
}

// useColor decides whether f gets ANSI colours.
func (c *common) useColor(f *os.File) bool {
	switch c.color {
	case "always":
		return true
	case "never":
		return false
	}
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	return isTerminal(f)
}

const filterHelp = `Filter (ss's language; terms side by side are joined with "and"):
  :PORT                        local or peer port, e.g. :9000
  state STATE|GROUP            listen, established, time-wait, close-wait, syn-sent,
  exclude STATE|GROUP          syn-recv, fin-wait-1, fin-wait-2, last-ack, closing,
                               closed, or TIME_WAIT etc.; groups: all, connected,
                               synchronized, bucket, big
  sport|dport OP [:]PORT       OP: = == != < <= > >= (or eq ne lt le gt ge)
  src|dst [=|!=] HOST          ADDR, ADDR/PREFIX, ADDR:PORT, [V6ADDR]:PORT, *:PORT
  and && &   or || |   not !   ( )
Examples:
  sockscope list :9000 state time-wait
  sockscope list 'sport = :9000 or dport = :9000' exclude listen
  sockscope list -p state established dst 10.0.0.0/8
`
