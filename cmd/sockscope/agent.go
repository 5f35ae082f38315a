package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/sockscope/sockscope/pkg/kevents"
	"github.com/spf13/cobra"
)

const agentLong = `The kernel keeps no birth time for a socket. 'sockscope agent start'
loads a small BPF program on the tracepoint sock:inet_sock_set_state and
pins it, with a map, under /sys/fs/bpf/sockscope (mounting bpffs there if
it is not): from then on the kernel stamps every TCP socket's birth and
last change in every namespace, and every later list, dashboard and watch
shows the exact age of each socket born since (age_source "kernel"); older
ones keep their honest ">=". This is the one thing sockscope leaves in the
kernel, and only when asked: 'agent stop' removes all of it. 'agent status'
says since when it runs, and how many live sockets carry its stamp. It
needs root (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN to pin).`

func newAgentCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent start|stop|status",
		Short: "stamp every socket's birth in the kernel, for exact ages (BPF, opt-in)",
		Long:  agentLong,
		Args:  cobra.ArbitraryArgs, // anything but the three lands here, to be named
		RunE: func(cmd *cobra.Command, args []string) error {
			return wantSub(cmd, args, "'start', 'stop' or 'status'")
		},
	}
	// The commands' one line of output: one that cannot be written is
	// an error, not a silent exit 0.
	var werr error
	say := func(format string, args ...any) {
		if _, err := fmt.Fprintf(a.stdout, format+"\n", args...); err != nil && werr == nil {
			werr = fmt.Errorf("writing the output: %w", err)
		}
	}
	sub := func(use, short string, run func() error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Long: agentLong, Args: noArgs,
			RunE: func(*cobra.Command, []string) error {
				if err := run(); err != nil {
					return err
				}
				return werr
			}}
	}
	cmd.AddCommand(
		sub("start", "load and pin the agent", func() error {
			st, err := kevents.StartAgent()
			if errors.Is(err, kevents.ErrAgentRunning) {
				say("the agent runs already, since %s", st.Since.Format(time.DateTime))
				return nil
			}
			if err != nil {
				return fmt.Errorf("agent: %w", err)
			}
			say("the agent runs from %s: every TCP socket born from now on is stamped in the kernel (%s); 'sockscope agent stop' removes it",
				st.Since.Format(time.DateTime), kevents.AgentDir)
			return nil
		}),
		sub("stop", "remove the agent and everything it pinned", func() error {
			st, err := kevents.Status()
			if err != nil {
				return fmt.Errorf("agent: %w", err)
			}
			if err := kevents.StopAgent(); err != nil {
				return fmt.Errorf("agent: %w", err)
			}
			if st.Running || !st.Since.IsZero() {
				say("the agent stopped; nothing of it is left in the kernel")
			} else {
				say("no agent was running")
			}
			return nil
		}),
		sub("status", "whether the agent runs, since when, and how many sockets it stamped", func() error {
			st, err := kevents.Status()
			if err != nil {
				return fmt.Errorf("agent: %w", err)
			}
			if !st.Running {
				say("the agent is not running ('sockscope agent start' starts it)")
				return nil
			}
			say("the agent runs since %s (%s); %d live sockets carry its stamp",
				st.Since.Format(time.DateTime), time.Since(st.Since).Round(time.Second), st.Stamped)
			return nil
		}),
	)
	return cmd
}
