package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/sockscope/sockscope/pkg/netns"
	"github.com/sockscope/sockscope/pkg/render"
	"github.com/sockscope/sockscope/pkg/session"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// app is what every command shares: its context and where output goes.
type app struct {
	ctx            context.Context
	stdout, stderr io.Writer
}

// note says each of notes once on stderr, the same way for every command.
func (a *app) note(notes ...string) {
	for _, n := range notes {
		fmt.Fprintf(a.stderr, "sockscope: note: %s\n", n)
	}
}

// options is the one flag model: every command registers the groups of
// flags it takes (selectFlags, outputFlags, liveFlags) into one of these,
// and prepare turns them into what the session and the front end need.
// Short flags mean what they mean in ss and netstat, so habits carry over.
type options struct {
	spec      filter.Spec
	netnsArgs []string
	allNetns  bool
	podLogs   string
	processes bool
	procfs    bool
	pollOnly  bool // watch: no kernel state-change events
	noHeader  bool
	json      bool
	color     string
	interval  time.Duration
	runFor    time.Duration
	columns   string

	// Set by prepare.
	cols       []*render.Column // -o, with process added by -p; nil: the default
	expr       filter.Expr
	prog       *filter.Program
	namespaces []netns.NS
	notes      []string // flags given twice, and the like
}

// selectFlags adds the flags that select sockets, and with owners -p,
// which shows them (the exporter shows no owners).
func (o *options) selectFlags(cmd *cobra.Command, owners bool) {
	fs := cmd.Flags()
	fs.StringArrayVarP(&o.netnsArgs, "netns", "N", nil, "read the namespace `NAME` (under /run/netns) or PATH (/proc/PID/ns/net); repeatable")
	fs.BoolVar(&o.allNetns, "all-netns", false, "read every network namespace on the host (containers, pods, ip netns), found again as they come and go")
	fs.StringVar(&o.podLogs, "pod-logs", "/var/log/pods", "the kubelet's pod log `DIR`, which names pods (with --all-netns)")
	if owners {
		fs.BoolVarP(&o.processes, "processes", "p", false, "show the owning process (pid/command)")
	}
	fs.BoolVarP(&o.spec.IPv4, "ipv4", "4", false, "IPv4 sockets only")
	fs.BoolVarP(&o.spec.IPv6, "ipv6", "6", false, "IPv6 sockets only")
	fs.BoolVarP(&o.spec.Listening, "listening", "l", false, "listening sockets only")
	fs.StringArrayVar(&o.spec.Ports, "port", nil, "local or peer port `N[,N...]`")
	fs.StringArrayVar(&o.spec.States, "state", nil, "states `LIST`, e.g. listen,time-wait")
	fs.BoolVar(&o.procfs, "procfs", false, "read /proc/net/tcp instead of sock_diag (the fallback where sock_diag is missing)")
	// Accepted so that 'ss -tan' and 'netstat -anp' habits work: sockscope
	// always shows all TCP sockets with numeric addresses.
	var ignored bool
	fs.BoolVarP(&ignored, "numeric", "n", false, "numeric addresses (always on)")
	fs.BoolVarP(&ignored, "all", "a", false, "all states (the default)")
	fs.BoolVarP(&ignored, "tcp", "t", false, "TCP sockets (always on)")
	mustComplete(cmd, "netns", completeNetns)
	mustComplete(cmd, "state", completeStateList)
	cmd.ValidArgsFunction = completeFilter
}

// outputFlags adds the flags of the one-shot outputs.
func (o *options) outputFlags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.BoolVarP(&o.noHeader, "no-header", "H", false, "no column titles and no summary line")
	fs.BoolVar(&o.json, "json", false, "one JSON object per socket per line")
	fs.StringVar(&o.color, "color", "auto", "colour states: auto, always or never")
	mustComplete(cmd, "color", fixedWords("auto", "always", "never"))
	o.columnsFlag(cmd)
}

// columnsFlag adds -o/--columns, which picks and orders the columns of a
// table, as ps -o and lsblk -o do.
func (o *options) columnsFlag(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.columns, "columns", "o", "", "show the columns `LIST` in this order ("+
		strings.Join(render.ColumnNames(), ",")+")")
	mustComplete(cmd, "columns", completeColumnList)
}

// chosenColumns returns the columns -o asks for, with the process column
// added at the end when -p asks for owners and -o did not name it; nil
// without -o (each front end has its defaults). A process column named in
// -o looks the owners up as -p does: a column of "-" would say no owner
// is known.
func (o *options) chosenColumns(cmd string) ([]*render.Column, error) {
	if o.columns == "" {
		return nil, nil
	}
	cols, err := render.ParseColumns(o.columns)
	if err != nil {
		return nil, usagef("%s: invalid --columns value %q: %v", cmd, o.columns, err)
	}
	switch {
	case slices.Contains(cols, render.ProcessColumn):
		o.processes = true
	case o.processes:
		cols = append(cols, render.ProcessColumn)
	}
	return cols, nil
}

// liveFlags adds the flags of the modes that run until stopped: the
// polling interval (by default every, 0: once) and --for.
func (o *options) liveFlags(cmd *cobra.Command, every time.Duration) {
	o.interval = every
	o.intervalFlag(cmd, "time between polls, e.g. 500ms or 2s")
	cmd.Flags().Var(spanValue(&o.runFor), "for", "stop after `DURATION` (e.g. 90s); default: until Ctrl-C")
}

func (o *options) intervalFlag(cmd *cobra.Command, usage string) {
	cmd.Flags().VarP(intervalValue(&o.interval), "interval", "i", usage)
}

// prepare checks the flags and args of cmd, builds and compiles the
// filter, and resolves the namespaces: at most one unless many is set.
func (o *options) prepare(cmd *cobra.Command, args []string, many bool) error {
	name := cmd.Name()
	// An empty value given is a mistake (a variable that was not set),
	// not the default.
	for _, f := range []string{"color", "columns"} {
		if fl := cmd.Flags().Lookup(f); fl != nil && fl.Changed && fl.Value.String() == "" {
			return usagef("%s: --%s \"\": an empty value (leave --%s out for the default)", name, f, f)
		}
	}
	switch o.color {
	case "", "auto", "always", "never":
	default:
		return usagef("%s: invalid --color value %q (want auto, always or never)", name, o.color)
	}
	if o.allNetns && len(o.netnsArgs) > 0 {
		return usagef("%s: --all-netns and -N %q: give one (--all-netns reads every namespace)", name, o.netnsArgs[0])
	}
	var err error
	if o.namespaces, err = resolveAll(name, o.netnsArgs, many); err != nil {
		return err
	}
	if o.cols, err = o.chosenColumns(name); err != nil {
		return err
	}
	o.spec.Args = args
	var lookupErr error // a namespace that could not be entered for dev NAME
	o.spec.IfIndex = ifIndexIn(o.namespaces, &lookupErr)
	if o.allNetns {
		o.spec.IfIndex = func(name string) (uint32, error) {
			return 0, fmt.Errorf("dev %s with --all-netns: an interface name means another interface in each namespace; give dev an index", name)
		}
	}
	e, err := o.spec.Build()
	if err != nil && lookupErr != nil {
		return lookupErr // the machine's fault, not the filter's: exit 1
	}
	if err != nil {
		var flagErr *filter.FlagError
		if errors.As(err, &flagErr) {
			return usagef("%v", err)
		}
		return &usageError{msg: fmt.Sprintf("bad filter %q: %v", strings.Join(o.spec.Args, " "), err), err: err}
	}
	if err := o.refuse(e); err != nil {
		return usagef("%s: %v", name, err)
	}
	o.expr = e
	o.prog = filter.Compile(e, filter.Options{})
	o.notes = append(o.notes, repeatedFlags(cmd)...)
	return nil
}

// resolveAll resolves every -N argument once. The same namespace named
// twice, by one name or by two, is bad input: its sockets would count
// twice. Without many, a second namespace is refused too.
func resolveAll(cmd string, args []string, many bool) ([]netns.NS, error) {
	if !many && len(args) > 1 {
		return nil, usagef("%s: -N %q and -N %q: this command reads one namespace", cmd, args[0], args[1])
	}
	seen := map[string]bool{}
	for _, a := range args {
		if a == "" {
			// An empty variable in a script (-N "$NS") must not quietly
			// read sockscope's own namespace instead.
			return nil, usagef("%s: -N \"\": an empty namespace name (leave -N out for this one)", cmd)
		}
		if seen[a] {
			return nil, usagef("%s: namespace %q given twice: its sockets would count twice", cmd, a)
		}
		seen[a] = true
	}
	var out []netns.NS
	byInode := map[uint64]string{}
	for _, a := range args {
		ns, err := netns.Resolve(a)
		if err != nil {
			return nil, err
		}
		if other, dup := byInode[ns.Inode]; dup {
			return nil, usagef("%s: namespaces %q and %q are the same one, given twice: its sockets would count twice", cmd, other, a)
		}
		byInode[ns.Inode] = a
		out = append(out, ns)
	}
	if len(out) == 0 {
		self, err := netns.Resolve("")
		if err != nil {
			return nil, err
		}
		out = []netns.NS{self}
	}
	return out, nil
}

// ifIndexIn finds "dev NAME" in the namespaces read, not in sockscope's
// own: an interface index means something only in its namespace. A name
// whose index differs between the namespaces is an error, since one
// filter serves them all. A namespace that cannot be entered is kept in
// *envErr: that is the machine's fault, not the filter's.
func ifIndexIn(nss []netns.NS, envErr *error) func(string) (uint32, error) {
	return func(name string) (uint32, error) {
		var idx uint32
		for i, ns := range nss {
			var got uint32
			err := ns.Run(func() error {
				if ifi, err := net.InterfaceByName(name); err == nil {
					got = uint32(ifi.Index)
				}
				return nil // not there: 0
			})
			if err != nil {
				*envErr = fmt.Errorf("looking up interface %s: %w", name, err)
				return 0, err
			}
			switch {
			case i == 0 || got == idx:
			case got == 0 || idx == 0:
				return 0, fmt.Errorf("interface %s is in only some of the namespaces given", name)
			default:
				return 0, fmt.Errorf("interface %s has index %d in %s and %d in %s: give dev an index", name, idx, nss[0], got, ns)
			}
			idx = got
		}
		return idx, nil
	}
}

// sessionConfig is what the flags ask the session to open.
func (o *options) sessionConfig() session.Config {
	return session.Config{Namespaces: o.namespaces, Program: o.prog, Procfs: o.procfs, Processes: o.processes,
		Merge: len(o.namespaces) > 1, All: o.allNetns, PodLogs: o.podLogs}
}

// editable returns the filter as text the dashboard's editor starts with,
// and the part it cannot edit (-4, -6: the language has no family test).
func (o *options) editable() (string, filter.Spec, error) {
	fixed := filter.Spec{IPv4: o.spec.IPv4, IPv6: o.spec.IPv6, IfIndex: o.spec.IfIndex}
	rest := o.spec
	rest.IPv4, rest.IPv6 = false, false
	if len(rest.Ports) == 0 && len(rest.States) == 0 && !rest.Listening {
		return strings.Join(rest.Args, " "), fixed, nil
	}
	e, err := rest.Build()
	if err != nil {
		// prepare built the whole spec already: a part cannot fail.
		return "", fixed, fmt.Errorf("writing the filter as text: %w", err)
	}
	if e == nil {
		return "", fixed, nil
	}
	return e.String(), fixed, nil
}

// refuse says why the source cannot apply filter e (nil: it can).
func (o *options) refuse(e filter.Expr) error {
	if o.procfs && filter.HasDev(e) {
		return session.ErrDevFromProcfs // said before anything is opened
	}
	return nil
}

// useColor decides whether f gets ANSI colours.
func (o *options) useColor(w io.Writer) bool {
	switch o.color {
	case "always":
		return true
	case "never":
		return false
	}
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	return isTerminal(f)
}

// counted wraps a flag's value to count how often it was given: a flag
// that takes one value and was given twice gets a note, not a silent
// choice of the last one. The wrapper also hides pflag's IsBoolFlag, so
// help shows a switch as "-p, --processes", not "--processes[=true|false]"
// (pflag parses it as a switch through its NoOptDefVal all the same).
type counted struct {
	pflag.Value
	n      int
	values []string // as given, while they differ
}

func (c *counted) Set(s string) error {
	c.n++
	if len(c.values) == 0 || c.values[len(c.values)-1] != s {
		c.values = append(c.values, s)
	}
	return c.Value.Set(s)
}

// countFlags makes every single-valued flag of cmd counted.
func countFlags(cmd *cobra.Command) {
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if strings.HasSuffix(f.Value.Type(), "Array") || strings.HasSuffix(f.Value.Type(), "Slice") {
			return // repeatable by design
		}
		f.Value = &counted{Value: f.Value}
	})
}

// repeatedFlags names the single-valued flags given more than once with
// different values (-H -H is no news).
func repeatedFlags(cmd *cobra.Command) []string {
	var notes []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if c, ok := f.Value.(*counted); ok && len(c.values) > 1 {
			notes = append(notes, fmt.Sprintf("--%s given %d times (%s): the last counts",
				f.Name, c.n, strings.Join(c.values, ", ")))
		}
	})
	return notes
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

// String is the value as help shows a default: "0" for none, which help
// leaves out.
func (v durationValue) String() string {
	if *v.d == 0 {
		return "0"
	}
	return v.d.String()
}
func (v durationValue) Type() string { return "duration" }

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

// withFor ends ctx after d, when d is set.
func withFor(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

// versionString is the module version and VCS revision the binary was
// built from: what --version, 'sockscope version' and the exporter's
// sockscope_build_info say.
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " (" + rev + modified + ")"
	}
	return v
}

const filterHelp = `Filter (ss's language, read left to right; terms side by side are joined with "and"):
  :PORT                        local or peer port, e.g. :9000
  state STATE|GROUP            listen, established, time-wait, close-wait, syn-sent,
  exclude|excl STATE|GROUP     syn-recv, fin-wait-1, fin-wait-2, last-ack, closing,
                               closed, or TIME_WAIT etc.; groups: all, connected,
                               synchronized, bucket, big
  sport|dport OP [:]PORT       OP: = == != < <= > >= (or eq ne neq lt le leq gt ge geq);
                               PORT: a number, a service name (:ssh) or *
  src|dst [=|!=] HOST          ADDR, ADDR/PREFIX, ADDR:PORT, [V6ADDR]:PORT, *:PORT
  dev [=|!=] NAME|INDEX        the interface a socket is bound to
  family inet|inet6            IPv4 or IPv6
  and && &   or || |   not !   ( )
Examples:
  sockscope list :9000 state time-wait
  sockscope list 'sport = :9000 or dport = :9000' exclude listen
  sockscope list -p state established dst 10.0.0.0/8`

// filterWords are what completion offers for a filter.
var filterWords = []string{"state", "exclude", "sport", "dport", "src", "dst", "dev", "family", "and", "or", "not"}

// stateWords are the state names and groups of the filter language, as
// ss(8) spells them.
func stateWords() []string {
	return []string{"established", "syn-sent", "syn-recv", "fin-wait-1", "fin-wait-2", "time-wait",
		"closed", "close-wait", "last-ack", "listen", "listening", "closing",
		"all", "connected", "synchronized", "bucket", "big"}
}

type completeFunc = func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective)

// completeFilter offers state names after state/exclude, else the
// filter's keywords.
func completeFilter(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if n := len(args); n > 0 && (args[n-1] == "state" || args[n-1] == "exclude") {
		return stateWords(), cobra.ShellCompDirectiveNoFileComp
	}
	return filterWords, cobra.ShellCompDirectiveNoFileComp
}

// completeStateList completes the last name of a comma list of states.
func completeStateList(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	return completeList(stateWords(), toComplete)
}

// completeList completes the last word of a comma list from words.
func completeList(words []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	prefix := ""
	if i := strings.LastIndexByte(toComplete, ','); i >= 0 {
		prefix = toComplete[:i+1]
	}
	// A word already in the list is not offered again: given twice, it
	// is refused.
	given := strings.Split(strings.TrimSuffix(prefix, ","), ",")
	out := make([]string, 0, len(words))
	for _, w := range words {
		if !slices.Contains(given, w) {
			out = append(out, prefix+w)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

// completeColumnList completes the last name of a comma list of columns.
func completeColumnList(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	return completeList(render.ColumnNames(), toComplete)
}

// completeNetns offers the named namespaces; a path completes as a file.
func completeNetns(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if strings.ContainsRune(toComplete, '/') {
		return nil, cobra.ShellCompDirectiveDefault
	}
	entries, err := os.ReadDir(netns.Dir)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

func fixedWords(words ...string) completeFunc {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return words, cobra.ShellCompDirectiveNoFileComp
	}
}

// mustComplete registers a flag's completion; the flag is registered just
// before, so a failure is a bug in this file.
func mustComplete(cmd *cobra.Command, flag string, f completeFunc) {
	if err := cmd.RegisterFlagCompletionFunc(flag, f); err != nil {
		panic(fmt.Sprintf("completion for --%s: %v", flag, err))
	}
}
