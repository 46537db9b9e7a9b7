//go:build linux

package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/testutil"
)

// oneLineError checks that gorun exited 2 with stderr holding exactly the one line
// "gorun: " + a message matching want.
func oneLineError(t *testing.T, r *gorunRun, what, want string) {
	t.Helper()
	if code := r.wait(t, 30*time.Second); code != 2 {
		t.Errorf("%s: got exit %d, want 2; stderr:\n%s", what, code, r.stderr)
	}
	got := r.stderr.String()
	if !regexp.MustCompile(`^gorun: ` + want + `\n$`).MatchString(got) {
		t.Errorf("%s: stderr %q, want the one line %q", what, got, "gorun: "+want)
	}
}

func TestE2EDirectoryAsInput(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"adir", "adir.yaml", "adir.jsonl"} {
		path := filepath.Join(dir, name)
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"exec", "validate"} {
			r := startGorun(t, nil, cmd, path)
			oneLineError(t, r, cmd+" "+name, regexp.QuoteMeta(path+": is a directory: want a task file or a file of commands"))
		}
	}
}

func TestE2EEmptyDocuments(t *testing.T) {
	trailing := writeFile(t, "p.yaml", "version: 1\ntasks:\n  - run: echo hi\n---\n")
	r := startGorun(t, nil, "exec", trailing)
	if code := r.wait(t, 30*time.Second); code != 0 || r.stdout.String() != "hi\n" {
		t.Errorf("trailing ---: got exit %d, stdout %q, want 0 and hi; stderr:\n%s", code, r.stdout, r.stderr)
	}
	two := writeFile(t, "two.yaml", "version: 1\ntasks:\n  - run: echo hi\n---\nversion: 1\n")
	oneLineError(t, startGorun(t, nil, "exec", two), "two documents",
		regexp.QuoteMeta(two+":4:1: a task file holds one document; this is a second one"))
	empty := writeFile(t, "e.yaml", "")
	oneLineError(t, startGorun(t, nil, "validate", empty), "empty file", regexp.QuoteMeta(empty+":1:1: empty task file")+".*")
}

// TestE2EByteOrderMark: a byte-order mark at the start of a file or of stdin is not
// part of the first command, in every input format.
func TestE2EByteOrderMark(t *testing.T) {
	const mark = "\ufeff"
	inputs := []struct {
		name string
		file string // "" : on stdin
		in   string
		args []string
	}{
		{"lines on stdin", "", mark + "echo one\n", nil},
		{"lines file", "cmds.txt", mark + "echo one\n", nil},
		{"JSON Lines on stdin", "", mark + `{"run": "echo one"}` + "\n", []string{"--format", "jsonl"}},
		{"JSON Lines file", "t.jsonl", mark + `{"run": "echo one"}` + "\n", nil},
		{"YAML on stdin", "", mark + "tasks:\n  - run: echo one\n", []string{"--format", "yaml"}},
		{"YAML file", "t.yaml", mark + "tasks:\n  - run: echo one\n", nil},
		{"JSON file", "t.json", mark + `{"tasks": [{"run": "echo one"}]}`, nil},
	}
	for _, tt := range inputs {
		args := append([]string{"exec"}, tt.args...)
		var stdin io.Reader
		if tt.file == "" {
			stdin, args = strings.NewReader(tt.in), append(args, "-")
		} else {
			args = append(args, writeFile(t, tt.file, tt.in))
		}
		r := startGorun(t, stdin, args...)
		if code := r.wait(t, 30*time.Second); code != 0 || r.stdout.String() != "one\n" {
			t.Errorf("%s: got exit %d, stdout %q, want 0 and one; stderr:\n%s", tt.name, code, r.stdout, r.stderr)
		}
	}
}

// TestE2EDeepNesting: a 500 KB file nested 250,000 deep is refused at once, with the
// place the limit was passed, in little memory (it took the parser past 19 GB).
func TestE2EDeepNesting(t *testing.T) {
	for _, tt := range []struct{ name, src, want string }{
		{"flow", "version: 1\ntasks: " + strings.Repeat("[", 250_000) + strings.Repeat("]", 250_000) + "\n", ":2:72: "},
		{"block", "version: 1\ntasks:\n" + strings.Repeat("- ", 250_000) + "run: x\n", ":3:129: "},
	} {
		path := writeFile(t, "deep.yaml", tt.src)
		start := time.Now()
		r := startGorun(t, nil, "validate", path)
		peak := testutil.WatchRSS(r.cmd.Process.Pid)
		oneLineError(t, r, tt.name, regexp.QuoteMeta(path+tt.want)+"nested deeper than 64 levels.*")
		// The refusal is usually over before the first RSS sample (20 ms): the time is
		// the proof then, and the peak, when sampled, must stay small.
		rss, took := peak(), time.Since(start)
		t.Logf("%s: refused in %v, peak RSS %d MiB", tt.name, took, rss>>20)
		if rss > 100<<20 || took > 5*time.Second {
			t.Errorf("%s: refused in %v with a peak RSS of %d MiB, want a fast refusal under 100 MiB", tt.name, took, rss>>20)
		}
	}
}

// jsonlMarkerTasks returns JSON Lines whose tasks each create a marker file in dir
// ("started-N"), with bad as the line at position badAt (1-based).
func jsonlMarkerTasks(dir string, n, badAt int, bad string) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if i == badAt {
			b.WriteString(bad + "\n")
			continue
		}
		fmt.Fprintf(&b, `{"id": "t%d", "run": "touch %s/started-%d"}`+"\n", i, dir, i)
	}
	return b.String()
}

// TestE2EJSONLFileCheckedWhole: a .jsonl file with a bad line in the middle runs
// nothing at all, and says where the bad line is.
func TestE2EJSONLFileCheckedWhole(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, "tasks.jsonl", jsonlMarkerTasks(dir, 6, 4, `{"run": "touch x", "timeuot": "1s"}`))
	for _, args := range [][]string{{"exec", path, "-j", "1"}, {"exec", path, "--dry-run"}, {"validate", path}} {
		r := startGorun(t, nil, args...)
		oneLineError(t, r, strings.Join(args, " "), regexp.QuoteMeta(path+`:4:20: unknown key "timeuot"`))
		if n := countStarted(dir); n != 0 {
			t.Errorf("%v: %d tasks ran, want none", args, n)
		}
	}
}

// TestE2EJSONLStreamInvalid: on a JSON Lines stream, a bad line is an invalid task
// (not started, its error naming line and column), the other tasks run, and gorun
// exits 1.
func TestE2EJSONLStreamInvalid(t *testing.T) {
	dir := t.TempDir()
	in := jsonlMarkerTasks(dir, 6, 3, `{"run": "touch x", "timeuot": "1s"}`)
	r := startGorun(t, strings.NewReader(in), "exec", "--format", "jsonl", "-o", "jsonl", "-j", "1")
	if code := r.wait(t, 30*time.Second); code != 1 {
		t.Errorf("got exit %d, want 1; stderr:\n%s", code, r.stderr)
	}
	if n := countStarted(dir); n != 5 {
		t.Errorf("%d tasks ran, want the 5 good ones", n)
	}
	res := jsonlResults(t, r.stdout.String())
	bad, ok := res["task-3"]
	if !ok || bad.Status != jobs.Invalid || bad.Error != `stdin:3:20: unknown key "timeuot"` || bad.Attempts != 0 ||
		bad.ExitCode != nil || !strings.Contains(bad.Command, "timeuot") {
		t.Errorf("got result %+v, want task-3 invalid with the line, column and problem", bad)
	}
	if got := r.stderr.String(); !strings.Contains(got, "5 succeeded") || !strings.Contains(got, "1 invalid") ||
		!strings.Contains(got, `task-3  invalid  not started  -  stdin:3:20: unknown key "timeuot"`) {
		t.Errorf("summary %q, want 5 succeeded and the invalid line listed", got)
	}
}
