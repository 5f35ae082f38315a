package main

import (
	"errors"
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
