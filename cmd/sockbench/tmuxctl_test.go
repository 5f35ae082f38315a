package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The control client reads the pane and types into it without changing
// the window's size, and a failed command is an error, not an answer.
func TestControlClient(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux is needed: %v", err)
	}
	sock := filepath.Join(t.TempDir(), "socket")
	tmux := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("tmux", append([]string{"-S", sock}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("tmux %v: %v: %s", args, err, out)
		}
	}
	tmux("new-session", "-d", "-x", "100", "-y", "30", "cat")
	t.Cleanup(func() { tmux("kill-server") })
	ctl, err := attachControl(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := ctl.close(); err != nil {
			t.Error(err)
		}
	}()
	if _, err := ctl.run("send-keys typed-by-sockbench Enter"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := ctl.run("capture-pane -p")
		if err != nil {
			t.Fatal(err)
		}
		// cat echoes the line back: the terminal's echo, then cat's.
		if strings.Count(string(out), "typed-by-sockbench") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pane did not show the typed line twice:\n%s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	out, err := ctl.run("display-message -p '#{window_width}x#{window_height}'")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "100x30" {
		t.Errorf("window %s with the control client attached, want 100x30", got)
	}
	if out, err := ctl.run("no-such-command"); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("an unknown command: %q, %v", out, err)
	}
}

// BenchmarkControlCapture: reading a 160x50 pane through the control
// client, against a `tmux capture-pane` process each time.
func BenchmarkControlCapture(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "socket")
	if out, err := exec.Command("tmux", "-S", sock, "new-session", "-d", "-x", "160", "-y", "50", "cat").CombinedOutput(); err != nil {
		b.Fatalf("tmux: %v: %s", err, out)
	}
	b.Cleanup(func() {
		if out, err := exec.Command("tmux", "-S", sock, "kill-server").CombinedOutput(); err != nil {
			b.Errorf("tmux kill-server: %v: %s", err, out)
		}
	})
	ctl, err := attachControl(sock)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := ctl.close(); err != nil {
			b.Error(err)
		}
	}()
	b.Run("control", func(b *testing.B) {
		for b.Loop() {
			if _, err := ctl.run("capture-pane -p"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("process", func(b *testing.B) {
		for b.Loop() {
			if out, err := exec.Command("tmux", "-S", sock, "capture-pane", "-p").CombinedOutput(); err != nil {
				b.Fatalf("%v: %s", err, out)
			}
		}
	})
}
