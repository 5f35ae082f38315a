package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sockscope/sockscope/pkg/filter"
	"github.com/spf13/cobra"
)

// subcommands are the commands below the root, each with the function
// that builds it.
var subcommands = []struct {
	name  string
	build func(*app) *cobra.Command
}{
	{"list", newListCmd}, {"watch", newWatchCmd}, {"timewait", newTimeWaitCmd}, {"bind", newBindCmd},
	{"demo", newDemoCmd}, {"stats", newStatsCmd}, {"exporter", newExporterCmd}, {"netns", newNetnsCmd},
	{"agent", newAgentCmd}, {"version", newVersionCmd},
}

// newRoot builds the command tree for args. The root command is the
// dashboard, so that 'sockscope :9000' is the first thing a person types.
// When args name a command
// first, only that command is built, under a root without the dashboard's
// flags: building every command and its flags was a tenth of the start of
// a one-shot 'list' (perf record of 100 starts), and a one-shot command
// on a small table is mostly its start. Help, completion and the
// dashboard get the whole tree.
func newRoot(a *app, args []string) *cobra.Command {
	only := ""
	if len(args) > 0 {
		for _, c := range subcommands {
			if c.name == args[0] {
				only = c.name
			}
		}
	}
	var root *cobra.Command
	if only == "" {
		root = newDashboardCmd(a)
	} else {
		root = &cobra.Command{}
	}
	root.Use = "sockscope [flags] [FILTER]"
	root.Version = versionString()
	// cobra's default version line ("sockscope version X"): a version
	// template would use text/template, whose reflection turns off the
	// linker's dead-code elimination (4 MB more binary, and pages touched
	// at every start).
	root.SuggestionsMinimumDistance = 2
	root.SilenceErrors = true // exitCode prints the one line
	root.SilenceUsage = true
	root.SetErr(a.stderr)
	root.CompletionOptions.HiddenDefaultCmd = false
	for _, c := range subcommands {
		if only == "" || c.name == only {
			root.AddCommand(c.build(a))
		}
	}
	// A flag error names the flag; it is bad input, exit status 2.
	// The root's own name would repeat the prefix exitCode adds
	// ("sockscope: sockscope: ..."): its errors go without it.
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if !c.HasParent() {
			return usagef("%v", err)
		}
		// The command's whole name: "demo server", not "server".
		return usagef("%s: %v", strings.TrimPrefix(c.CommandPath(), c.Root().Name()+" "), err)
	})
	root.InitDefaultVersionFlag()
	if only == "" {
		// cobra adds 'help' and 'completion' itself when it runs; made
		// here, they refuse bad input like every other command (exit
		// status 2) instead of printing help and exiting 0.
		root.InitDefaultHelpCmd()
		root.InitDefaultCompletionCmd()
		for _, c := range root.Commands() {
			switch c.Name() {
			case "help":
				strictHelp(root, c)
			case "completion":
				strictCompletion(c)
			}
		}
	}
	eachCommand(root, func(c *cobra.Command) {
		c.InitDefaultHelpFlag()
		countFlags(c)
		c.Flags().SortFlags = false
		if c.Args != nil {
			c.Args = badArgsAreUsage(c.Args)
		}
	})
	return root
}

// badArgsAreUsage makes the errors of cobra's own argument checks (such
// as "unknown command" below 'completion bash') bad input.
func badArgsAreUsage(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		err := check(cmd, args)
		var ue *usageError
		if err == nil || errors.As(err, &ue) {
			return err
		}
		return &usageError{msg: fmt.Sprintf("%s: %v", cmd.Name(), err), err: err}
	}
}

// strictHelp makes 'help TOPIC' refuse a topic that is no command, where
// cobra says "Unknown help topic" and exits 0.
func strictHelp(root, help *cobra.Command) {
	show := help.Run
	help.Run = nil
	help.RunE = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			found, rest, err := root.Find(args)
			if err != nil || found == nil || len(rest) > 0 {
				msg := fmt.Sprintf("help: no command %q", strings.Join(args, " "))
				if s := root.SuggestionsFor(args[0]); found == root && len(s) > 0 {
					msg += fmt.Sprintf(": did you mean %s?", strings.Join(s, " or "))
				}
				return usagef("%s", msg)
			}
		}
		show(c, args)
		return nil
	}
}

// strictCompletion makes 'completion' without a shell, or with one cobra
// does not know, bad input, where cobra prints help and exits 0.
func strictCompletion(comp *cobra.Command) {
	var shells []string
	for _, c := range comp.Commands() {
		if c.IsAvailableCommand() {
			shells = append(shells, c.Name())
		}
	}
	want := strings.Join(shells, ", ")
	comp.Args = cobra.ArbitraryArgs
	comp.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usagef("completion: want a shell: %s", want)
		}
		return usagef("completion: no shell %q (want %s)", args[0], want)
	}
}

// eachCommand calls f for c and every command below it.
func eachCommand(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, sub := range c.Commands() {
		eachCommand(sub, f)
	}
}

// suggest turns a filter error on the first word, when that word is
// close to a command's name, into "did you mean"; it returns nil when the
// error is elsewhere or no command is close ('state tim-wait' is a filter
// with a bad state, not a mistyped 'stats').
func suggest(root *cobra.Command, args []string, err error) error {
	var fe *filter.Error
	if len(args) == 0 || !errors.As(err, &fe) || fe.Col != 1 || fe.Token != args[0] {
		return nil
	}
	if s := root.SuggestionsFor(args[0]); len(s) > 0 {
		return usagef("unknown command %q: did you mean %s?", args[0], strings.Join(s, " or "))
	}
	return nil
}

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print sockscope's version and the revision it was built from",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(a.stdout, "sockscope version %s\n", versionString())
			if err != nil {
				return fmt.Errorf("writing the version: %w", err)
			}
			return nil
		},
	}
}

// noArgs refuses positional arguments, naming the first.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s: unexpected argument %q", cmd.Name(), args[0])
	}
	return nil
}

// withFilterHelp appends the filter language to a command's help.
func withFilterHelp(long string) string { return long + "\n\n" + filterHelp }

// wantSub is the error of a command of subcommands given none of them, or
// an unknown one: one line naming it, with the nearest subcommand.
func wantSub(cmd *cobra.Command, args []string, want string) error {
	if len(args) == 0 {
		return usagef("%s: want %s", cmd.Name(), want)
	}
	cmd.SuggestionsMinimumDistance = 2
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		return usagef("%s: want %s, got %q: did you mean %s?", cmd.Name(), want, args[0], s[0])
	}
	return usagef("%s: want %s, got %q", cmd.Name(), want, args[0])
}
