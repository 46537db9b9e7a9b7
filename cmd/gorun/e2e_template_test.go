//go:build linux

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2ETemplateArithmetic: a value in $((…)) runs as a number; a value that is not
// an integer makes its task invalid, named with the value, and the others still run;
// with bash, an array subscript in a value never runs its command.
func TestE2ETemplateArithmetic(t *testing.T) {
	dir := t.TempDir()
	for _, shell := range []string{"/bin/sh", "bash"} {
		r := startGorunIn(t, dir, strings.NewReader("1\nabc\na[$(touch MARK)]\n007\n"),
			"exec", "-k", "--shell", shell, "--", "echo $(( {} * 2 ))")
		if code := r.wait(t, 60*time.Second); code != 1 {
			t.Errorf("%s: got exit %d, want 1; stderr:\n%s", shell, code, r.stderr.String())
		}
		if got, want := r.stdout.String(), "2\n14\n"; got != want {
			t.Errorf("%s: got %q, want %q", shell, got, want)
		}
		for _, want := range []string{
			`task-2: {} stands in arithmetic, and its value "abc" is not a decimal integer`,
			`task-3: {} stands in arithmetic, and its value "a[$(touch MARK)]" is not a decimal integer`,
			"2 invalid",
		} {
			if !strings.Contains(r.stderr.String(), want) {
				t.Errorf("%s: stderr does not say %q:\n%s", shell, want, r.stderr.String())
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "MARK")); err == nil {
			t.Fatalf("%s: a value ran as code", shell)
		}
	}
}

// TestE2ETemplateQuotedHeredoc: a value goes into the body of a heredoc with a quoted
// delimiter as it is; a value that would end the body makes its task invalid.
func TestE2ETemplateQuotedHeredoc(t *testing.T) {
	dir := t.TempDir()
	r := startGorunIn(t, dir, nil, "exec", "-k", "--",
		"cat <<'EOF'\n{}\nEOF\necho after", ":::", "$(touch MARK) `x`", "EOF\ntouch MARK")
	code, stderr := r.wait(t, 60*time.Second), r.stderr.String()
	if code != 1 {
		t.Errorf("got exit %d, want 1; stderr:\n%s", code, stderr)
	}
	if got, want := r.stdout.String(), "$(touch MARK) `x`\nafter\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if want := `task-2: {} stands in a heredoc quoted as <<'EOF', and its value would end it with a line "EOF"`; !strings.Contains(stderr, want) {
		t.Errorf("stderr does not say %q:\n%s", want, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "MARK")); err == nil {
		t.Fatal("a value ran as code")
	}
}

// TestE2ETemplateNotShell: a one-word template that is not valid shell is a usage
// error naming its line and column, and nothing runs.
func TestE2ETemplateNotShell(t *testing.T) {
	dir := t.TempDir()
	code, stderr := runGorunIn(t, dir, "", "exec", "--", "touch MARK; echo \"{}", ":::", "a")
	if code != 2 {
		t.Errorf("got exit %d, want 2; stderr:\n%s", code, stderr)
	}
	if want := "the template is not valid POSIX sh: 1:18: reached EOF without closing quote"; !strings.Contains(stderr, want) {
		t.Errorf("stderr does not say %q:\n%s", want, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "MARK")); err == nil {
		t.Fatal("a template that is not valid shell ran")
	}
	code, stderr = runGorunIn(t, dir, "", "exec", "--", "touch MARK; cat <<< {}", ":::", "a")
	if want := "the template is not valid POSIX sh: 1:17: not in POSIX sh: herestrings (give --shell bash for bash)"; code != 2 || !strings.Contains(stderr, want) {
		t.Errorf("got exit %d and stderr\n%s\nwant exit 2 and %q", code, stderr, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "MARK")); err == nil {
		t.Fatal("a template that is not valid shell ran")
	}
	if code, stderr = runGorunIn(t, dir, "", "exec", "--shell", "bash", "--", "cat <<< {}", ":::", "a"); code != 0 {
		t.Errorf("bash: got exit %d, want 0; stderr:\n%s", code, stderr)
	}
}

// runGorunIn runs gorun in dir with args and stdin to its end and returns its exit
// code and stderr.
func runGorunIn(t *testing.T, dir, stdin string, args ...string) (int, string) {
	t.Helper()
	r := startGorunIn(t, dir, strings.NewReader(stdin), args...)
	code := r.wait(t, 60*time.Second)
	return code, r.stderr.String()
}
