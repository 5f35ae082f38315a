package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// control is a tmux client in control mode (tmux -C): commands go to its
// standard input and their output comes back on its standard output, so
// reading the pane or sending a key starts no process. A `tmux
// capture-pane` process costs about 10 ms of CPU here: polled every 2 ms
// it took most of a core from the dashboard being measured, and the
// process that sends a key counted its own start in the key's time.
type control struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// controlReady is what the client's first command prints.
const controlReady = "sockbench-control-ready"

// attachControl attaches a control client to the server at sock. The
// pane's output is not relayed and the client takes no part in the
// window's size (the attach's flags). The attach answers too, and a
// command sent on standard input may run before the client is attached
// ("no current client"): so the first command is given after the attach,
// on the command line, and prints controlReady; once it has answered,
// every answer pairs with a command written.
func attachControl(sock string) (*control, error) {
	cmd := exec.Command("tmux", "-S", sock, "-C", "attach-session", "-f", "no-output,ignore-size",
		";", "display-message", "-p", controlReady)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("tmux control client: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("tmux control client: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("tmux control client: %w", err)
	}
	c := &control{cmd: cmd, in: in, out: bufio.NewReader(out)}
	for {
		text, err := c.answer()
		if err != nil {
			return nil, errors.Join(err, c.close())
		}
		if strings.TrimSpace(string(text)) == controlReady {
			return c, nil
		}
	}
}

// controlError is a command tmux answered with %error.
type controlError struct{ text string }

func (e *controlError) Error() string { return "tmux: " + e.text }

// run runs one tmux command and returns its output.
func (c *control) run(command string) ([]byte, error) {
	if _, err := io.WriteString(c.in, command+"\n"); err != nil {
		return nil, fmt.Errorf("tmux control client: %w", err)
	}
	out, err := c.answer()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", command, err)
	}
	return out, nil
}

// answer reads the next command's answer: the lines between %begin and
// %end (or %error), skipping the notifications outside them.
func (c *control) answer() ([]byte, error) {
	var text bytes.Buffer
	inside := false
	for {
		line, err := c.out.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("tmux control client: %w", err)
		}
		switch {
		case !inside:
			inside = bytes.HasPrefix(line, []byte("%begin "))
		case bytes.HasPrefix(line, []byte("%end ")):
			return text.Bytes(), nil
		case bytes.HasPrefix(line, []byte("%error ")):
			return nil, &controlError{strings.TrimSpace(text.String())}
		default:
			text.Write(line)
		}
	}
}

// close detaches the client and waits for it.
func (c *control) close() error {
	err := c.in.Close()
	if werr := c.cmd.Wait(); werr != nil && err == nil {
		err = fmt.Errorf("tmux control client: %w", werr)
	}
	return err
}
