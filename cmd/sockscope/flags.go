package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// errHelp ends a command after it printed its help.
var errHelp = errors.New("help shown")

// common holds the flags every command shares. Short flags mean what they
// mean in ss and netstat, so habits carry over.
type common struct {
	spec      filter.Spec
	netns     string
	processes bool
	noHeader  bool
	json      bool
	color     string
}

func (c *common) register(fs *pflag.FlagSet) {
	fs.StringVarP(&c.netns, "netns", "N", "", "read the namespace `NAME` (under /run/netns) or PATH (/proc/PID/ns/net)")
	fs.BoolVarP(&c.processes, "processes", "p", false, "show the owning process (pid/command)")
	fs.BoolVarP(&c.noHeader, "no-header", "H", false, "no column titles and no summary line")
	fs.BoolVarP(&c.spec.IPv4, "ipv4", "4", false, "IPv4 sockets only")
	fs.BoolVarP(&c.spec.IPv6, "ipv6", "6", false, "IPv6 sockets only")
	fs.BoolVarP(&c.spec.Listening, "listening", "l", false, "listening sockets only")
	fs.StringArrayVar(&c.spec.Ports, "port", nil, "local or peer port `N[,N...]`")
	fs.StringArrayVar(&c.spec.States, "state", nil, "states `LIST`, e.g. listen,time-wait")
	fs.BoolVar(&c.json, "json", false, "one JSON object per socket per line")
	fs.StringVar(&c.color, "color", "auto", "colour states: auto, always or never")
	// Accepted so that 'ss -tan' and 'netstat -anp' habits work: sockscope
	// always shows all TCP sockets with numeric addresses.
	var ignored bool
	fs.BoolVarP(&ignored, "numeric", "n", false, "numeric addresses (always on)")
	fs.BoolVarP(&ignored, "all", "a", false, "all states (the default)")
	fs.BoolVarP(&ignored, "tcp", "t", false, "TCP sockets (always on)")
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
	case "auto", "always", "never":
	default:
		return nil, usagef("%s: invalid --color value %q (want auto, always or never)", fs.Name(), c.color)
	}
	c.spec.Args = fs.Args()
	e, err := c.spec.Build()
	if err != nil {
		var fe *filter.Error
		if errors.As(err, &fe) && !strings.HasPrefix(err.Error(), "invalid --") {
			return nil, usagef("bad filter %q: %v", strings.Join(c.spec.Args, " "), err)
		}
		return nil, usagef("%v", err)
	}
	return filter.Compile(e, filter.Options{}), nil
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
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
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
