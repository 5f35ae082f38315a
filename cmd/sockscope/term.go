package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// isBrokenPipe reports a reader that went away (| head): not an error
// worth a message.
func isBrokenPipe(err error) bool { return errors.Is(err, syscall.EPIPE) }

// flush writes out what w holds. A reader that went away (| head) is not
// an error; any other failure to write is, so that no output is lost
// without a word.
func flush(w *bufio.Writer, what string) error {
	if err := w.Flush(); err != nil && !isBrokenPipe(err) {
		return fmt.Errorf("writing %s: %w", what, err)
	}
	return nil
}
