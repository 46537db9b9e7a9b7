//go:build linux

package main

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// durationRE matches a duration in a summary line, with the blanks around it.
var durationRE = regexp.MustCompile(`\s+[0-9.]+(ms|µs|ns|s)(\s+|$)`)

// TestE2ESimpleCommandsAsTheShell: command lines run the same whether gorun starts the
// simple ones directly (the default) or hands every line to /bin/sh (--shell always, and
// shell: always in a task file): the same output, the same exit codes, the same
// messages for a command that is not found or not executable.
func TestE2ESimpleCommandsAsTheShell(t *testing.T) {
	lines := strings.Join([]string{
		`/bin/echo a 'b  c' "d\"e" f\ g ''`,
		`echo ünïcödé '$HOME' "*"`,
		`sh -c 'echo "$0 $1"; exit 3' zero one`,
		`ls /nonexistent-gorun-dir`,
		`nosuch-gorun-command x`,
		`/etc/passwd`,
		`true`,
		`false`,
		`echo $((1+2)) | cat`,
	}, "\n") + "\n"
	outcome := func(args ...string) (string, string, int) {
		r := startGorun(t, strings.NewReader(lines), append([]string{"exec", "-j", "1"}, args...)...)
		code := r.wait(t, 60*time.Second)
		// The summary's failures without their durations.
		var failed []string
		for _, l := range strings.Split(r.stderr.String(), "\n") {
			if strings.Contains(l, "  failed  ") {
				failed = append(failed, strings.TrimSpace(durationRE.ReplaceAllString(l, " ")))
			}
		}
		return r.stdout.String(), strings.Join(failed, "\n"), code
	}
	out1, fail1, code1 := outcome("-")
	out2, fail2, code2 := outcome("--shell", "always", "-")
	if out1 != out2 || fail1 != fail2 || code1 != code2 {
		t.Errorf("direct: exit %d\n%s\n%s\nthrough the shell: exit %d\n%s\n%s", code1, out1, fail1, code2, out2, fail2)
	}
	for _, want := range []string{"a b  c d\"e f g \n", "ünïcödé $HOME *\n", "zero one\n", "3\n"} {
		if !strings.Contains(out1, want) {
			t.Errorf("stdout %q lacks %q", out1, want)
		}
	}
	for _, want := range []string{"exit 127", "nosuch-gorun-command: not found", "exit 126", "exit 3", "exit 2"} {
		if !strings.Contains(fail1, want) {
			t.Errorf("failures %q lack %q", fail1, want)
		}
	}

	file := writeFile(t, "always.yaml", "version: 1\ndefaults:\n  shell: always\ntasks:\n  - run: /bin/echo from a file\n  - run: echo own\n    shell: /bin/sh\n")
	r := startGorun(t, nil, "exec", "-j", "1", file)
	if code := r.wait(t, 60*time.Second); code != 0 || r.stdout.String() != "from a file\nown\n" {
		t.Errorf("shell: always: got exit %d, stdout %q; stderr:\n%s", code, r.stdout, r.stderr)
	}
}
