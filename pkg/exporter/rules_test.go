package exporter

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed (Debian's prometheus package has it)")
		}
		t.Skip("promtool is not installed")
	}
	return p
}

// The rules the binary prints are valid, and alert when they should and
// only then (promtool's unit test, with series of a leaking pod, a steady
// one, and a namespace near its TIME_WAIT limit).
func TestAlertRules(t *testing.T) {
	p := promtool(t)
	file := filepath.Join(t.TempDir(), "alerts.yml")
	if err := os.WriteFile(file, Rules, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(p, "check", "rules", "--lint=all", "--lint-fatal", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	// The unit test reads the file beside this package's code, which is
	// what Rules embeds.
	if out, err := exec.Command(p, "test", "rules", filepath.Join("testdata", "alerts_test.yml")).CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}
