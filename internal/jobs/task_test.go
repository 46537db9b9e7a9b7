package jobs

import (
	"os/exec"
	"strings"
	"testing"
)

// TestShellArgsEndOptions: a command line starting with - or + reaches the shell as its
// script, not as the shell's own options.
func TestShellArgsEndOptions(t *testing.T) {
	for _, script := range []string{"-e", "+x", "-c true"} {
		args := ShellArgs("/bin/sh", script)
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		code := -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		word, _, _ := strings.Cut(script, " ")
		if code != 127 || !strings.Contains(string(out), word+": not found") {
			t.Errorf("%q: exit %d, output %q; want 127 and %q not found, as for any unknown command", script, code, out, word)
		}
	}
	if got := ShellArgs("/bin/sh", "echo -e"); strings.Join(got, " ") != "/bin/sh -c echo -e" {
		t.Errorf("ShellArgs of an ordinary line: %q, want no --", got)
	}
}
