//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// parallelIdioms are idioms of GNU parallel's tutorial (man parallel_tutorial), as a
// parallel user writes them: args follow `parallel -k` and `gorun exec -k` alike.
// Their output is kept in testdata/parallel/NAME.golden (go test -update rewrites it);
// where GNU parallel is installed, it runs each idiom too, and its output must be the
// same golden file, unless gorunOnly says why it differs.
var parallelIdioms = []struct {
	name      string
	args      []string
	stdin     string
	gorunArgs []string // gorun's spelling, when it differs: a template on stdin goes after --, since exec takes a FILE first
	gorunOnly string   // why GNU parallel's output differs, or ""
}{
	{name: "values", args: []string{"echo", ":::", "A", "B", "C"}},
	{name: "values-after-dash", args: []string{"echo", "{}", ":::", "A", "B"}, gorunArgs: []string{"--", "echo", "{}", ":::", "A", "B"}},
	{name: "replacement", args: []string{"echo", "item={}", ":::", "A", "B", "C"}},
	{name: "product", args: []string{"echo", "{1}", "{2}", ":::", "A", "B", ":::", "1", "2", "3"}},
	{name: "product-appended", args: []string{"echo", ":::", "A", "B", ":::", "1", "2"}},
	{name: "positional-swapped", args: []string{"echo", "{2}", "{1}", ":::", "A", "B", ":::", "1", "2"}},
	{name: "link", args: []string{"--link", "echo", "{1}", "{2}", ":::", "A", "B", "C", ":::", "1", "2", "3"}},
	{name: "link-wraps", args: []string{"--link", "echo", "{1}", "{2}", ":::", "A", "B", "C", "D", ":::", "1", "2"}},
	{name: "linked-source", args: []string{"echo", "{1}{2}{3}", ":::", "A", "B", ":::+", "a", "b", ":::", "1", "2"}},
	{name: "file-source", args: []string{"echo", "{}", "::::", "abc-file"}},
	{name: "file-and-values", args: []string{"echo", "{1}-{2}", "::::", "abc-file", ":::", "x", "y"}},
	{name: "linked-file", args: []string{"echo", "{1}={2}", "::::", "abc-file", "::::+", "num-file"}},
	{name: "stdin-as-source", args: []string{"echo", "{1}+{2}", "::::", "-", ":::", "x"}, stdin: "s1\ns2\n"},
	{name: "stdin", args: []string{"echo"}, gorunArgs: []string{"--", "echo"}, stdin: "A\nB\nC\n"},
	{name: "stdin-replacement", args: []string{"echo", "pre-{}-post"}, gorunArgs: []string{"--", "echo", "pre-{}-post"}, stdin: "A\nB\n"},
	{name: "no-extension", args: []string{"echo", "{.}", ":::", "dir/sub/file.tar.gz", "plain", "v1.2/name"}},
	{name: "basename", args: []string{"echo", "{/}", ":::", "dir/sub/file.tar.gz", "top"}},
	{name: "dirname", args: []string{"echo", "{//}", ":::", "dir/sub/file.tar.gz", "top"}},
	{name: "basename-no-extension", args: []string{"echo", "{/.}", ":::", "dir/sub/file.tar.gz"}},
	{name: "positional-modifiers", args: []string{"echo", "{1.}", "{2/}", "{2//}", "{1/.}", ":::", "a/b.c", ":::", "d/e.f"}},
	{name: "sequence", args: []string{"echo", "{#}", "{}", ":::", "a", "b", "c"}},
	{name: "shell-template", args: []string{"echo {} | tr a-z A-Z", ":::", "abc", "def"}},
	{name: "shell-arithmetic", args: []string{"echo $(( {} * 2 ))"}, gorunArgs: []string{"--", "echo $(( {} * 2 ))"}, stdin: "1\n2\n3\n"},
	{name: "shell-heredoc", args: []string{"cat <<EOF\nitem={}\nEOF", ":::", "val", "x"}},
	{name: "commands-as-values", args: []string{":::", "echo one", "echo two"}},
	{name: "null", args: []string{"-0", "echo", "[{}]"}, gorunArgs: []string{"-0", "--", "echo", "[{}]"}, stdin: "a b\x00c\nd\x00"},
	{name: "tag", args: []string{"--tag", "echo", "out", ":::", "A", "B"}},
	{name: "tagstring", args: []string{"--tagstring", "{#}:{}", "echo", "out", ":::", "A", "B"}},
	{name: "timeout-seconds", args: []string{"--timeout", "1", "sleep {}; echo done {}", ":::", "0.1", "30", "0.2"}},
	{name: "timeout-percent", args: []string{"-j", "1", "--timeout", "500%", "sleep {}; echo done {}", ":::", "0.2", "0.2", "0.2", "30"},
		gorunOnly: "GNU parallel kills by the median of the jobs done when it checks, every few seconds"},
	{name: "dry-run", args: []string{"--dry-run", "echo", "{}", ":::", "A B", "it's"},
		gorunOnly: "gorun quotes every value and names each task in a comment"},
}

func TestE2EParallelIdioms(t *testing.T) {
	if len(parallelIdioms) < 20 {
		t.Fatalf("%d idioms, want at least 20", len(parallelIdioms))
	}
	dir := t.TempDir()
	for name, content := range map[string]string{"abc-file": "a\nb\nc\n", "num-file": "1\n2\n3\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	parallel, _ := exec.LookPath("parallel")
	switch {
	case parallel == "" && os.Getenv("CI") != "":
		t.Fatal("GNU parallel is not installed: CI compares gorun with it (.ci/run installs it)")
	case parallel == "":
		t.Log("GNU parallel is not installed: comparing gorun with the golden files only")
	}
	for _, tt := range parallelIdioms {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args
			if tt.gorunArgs != nil {
				args = tt.gorunArgs
			}
			r := startGorunIn(t, dir, strings.NewReader(tt.stdin), append([]string{"exec", "-k"}, args...)...)
			code := r.wait(t, 60*time.Second)
			if strings.HasPrefix(tt.name, "timeout") {
				if code != 1 {
					t.Errorf("got exit %d, want 1 (a task timed out); stderr:\n%s", code, r.stderr.String())
				}
			} else if code != 0 {
				t.Errorf("got exit %d, want 0; stderr:\n%s", code, r.stderr.String())
			}
			goldenFile(t, filepath.Join("parallel", tt.name), []byte(r.stdout.String()))
			if parallel == "" || tt.gorunOnly != "" {
				return
			}
			cmd := exec.Command(parallel, append([]string{"--will-cite", "-k"}, tt.args...)...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
			cmd.Stdin = strings.NewReader(tt.stdin)
			out, _ := cmd.Output()
			if string(out) != r.stdout.String() {
				t.Errorf("GNU parallel printed\n%q\ngorun printed\n%q", out, r.stdout.String())
			}
		})
	}
}
