//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/jobs"
)

// matrixReport reads the results of a JSON report, in the report's order.
func matrixReport(t *testing.T, path string) []jobs.Result {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("report not written: %v", err)
	}
	var rep struct {
		Results []jobs.Result `json:"results"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report %s: %v", data, err)
	}
	return rep.Results
}

// TestE2EMatrix runs a task file whose tasks have matrices: one task per combination,
// in row-major order of the axes as written, ids ID[axis=value,…], {axis} replaced in
// run, cmd and env; a task that needs a matrix task starts once every combination has
// succeeded; a value that is shell code is only ever a value.
func TestE2EMatrix(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	tasks := writeFile(t, "m.yaml", fmt.Sprintf(`version: 1
tasks:
  - id: build
    matrix:
      os: [linux, darwin]
      arch: [amd64, 1.50, "$(touch %[1]s/mark-run)", "'; touch %[1]s/mark-quote; '"]
    run: echo "{os}/{arch}" >> %[2]s; echo {os}-{arch} '{arch}' "$TARGET"
    env: {TARGET: "t-{os}"}
  - id: argv
    matrix: {v: ["$(touch %[1]s/mark-cmd)", "a b"]}
    cmd: [echo, "[{v}]"]
  - id: after
    needs: [build]
    run: sort %[2]s
`, dir, out))
	report := filepath.Join(dir, "r.json")
	r := startGorun(t, nil, "exec", tasks, "-j", "3", "-o", "none", "--report", report)
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, r.stderr)
	}
	results := matrixReport(t, report)
	var ids []string
	for _, res := range results {
		ids = append(ids, res.ID)
		if res.Status != jobs.Succeeded {
			t.Errorf("%s: %s (%s)", res.ID, res.Status, res.Error)
		}
	}
	arch := []string{"amd64", "1.50", "$(touch " + dir + "/mark-run)", "'; touch " + dir + "/mark-quote; '"}
	var want []string
	for _, system := range []string{"linux", "darwin"} {
		for _, a := range arch {
			want = append(want, "build[os="+system+",arch="+a+"]")
		}
	}
	want = append(want, "argv[v=$(touch "+dir+"/mark-cmd)]", "argv[v=a b]", "after")
	if !slices.Equal(ids, want) {
		t.Fatalf("ids in the report:\n got %q\nwant %q", ids, want)
	}
	for i, a := range arch {
		res := results[4+i] // darwin
		if got, want := res.StdoutTail, fmt.Sprintf("darwin-%s %s t-darwin\n", a, a); got != want {
			t.Errorf("%s printed %q, want %q", res.ID, got, want)
		}
	}
	if got := results[9].StdoutTail; got != "[a b]\n" {
		t.Errorf("argv[v=a b] printed %q, want [a b]", got)
	}
	var lines []string
	for _, id := range want[:8] {
		lines = append(lines, strings.TrimSuffix(strings.TrimPrefix(id, "build[os="), "]"))
	}
	for i := range lines {
		lines[i] = strings.Replace(lines[i], ",arch=", "/", 1)
	}
	slices.Sort(lines)
	if got := results[10].StdoutTail; got != strings.Join(lines, "\n")+"\n" {
		t.Errorf("after saw\n%s\nwant every combination of build done first:\n%s", got, strings.Join(lines, "\n"))
	}
	if !slices.Equal(results[10].Needs, []string{"build"}) {
		t.Errorf("after's needs in the report: %q, want [build]", results[10].Needs)
	}

	// --dry-run prints commands that sh runs as gorun would: values stay values.
	r = startGorun(t, nil, "exec", "--dry-run", tasks)
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("dry run: exit %d; stderr:\n%s", code, r.stderr)
	}
	dry := r.stdout.String()
	if !strings.Contains(dry, "  # build[os=darwin,arch=1.50]\n") || strings.Count(dry, "\n") != 11 {
		t.Errorf("dry run:\n%s\nwant 11 lines, each naming its combination", dry)
	}
	sh := exec.Command("/bin/sh")
	sh.Stdin = strings.NewReader(dry)
	shOut, err := sh.Output()
	if err != nil {
		t.Fatalf("sh ran the dry run: %v", err)
	}
	if want := fmt.Sprintf("darwin-%[1]s %[1]s t-darwin\n", arch[2]); !strings.Contains(string(shOut), want) {
		t.Errorf("sh printed\n%s\nwant the line %q", shOut, want)
	}
	for _, m := range []string{"mark-run", "mark-quote", "mark-cmd"} {
		if _, err := os.Stat(filepath.Join(dir, m)); err == nil {
			t.Errorf("%s exists: a matrix value ran as code", m)
		}
	}
}

// TestE2EMatrixResume: the ids of combinations are stable, so --resume runs again only
// the combination that failed.
func TestE2EMatrixResume(t *testing.T) {
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	tasks := writeFile(t, "m.json", fmt.Sprintf(`{"version": 1, "tasks": [
  {"id": "sweep", "matrix": {"n": [1, 2, 3], "mode": ["fast", "slow"]},
   "run": "echo {n}-{mode} >> %s; test {n}-{mode} != 2-slow || test -e %s/fixed"}]}`, ran, dir))
	journal := filepath.Join(dir, "journal")
	r := startGorun(t, nil, "exec", tasks, "-o", "none", "--journal", journal)
	if code := r.wait(t, 60*time.Second); code != 1 || !strings.Contains(r.stderr.String(), "5 succeeded, 1 failed") {
		t.Fatalf("first run: exit %d, want 1 with one failure; stderr:\n%s", code, r.stderr)
	}
	if err := os.WriteFile(filepath.Join(dir, "fixed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "r.json")
	r = startGorun(t, nil, "exec", tasks, "-o", "none", "--journal", journal, "--resume", "--report", report)
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("resume: exit %d; stderr:\n%s", code, r.stderr)
	}
	data, _ := os.ReadFile(ran)
	if got, want := strings.Count(string(data), "\n"), 7; got != want {
		t.Errorf("commands run over both runs:\n%s\nwant the six once and 2-slow again", data)
	}
	if strings.Count(string(data), "2-slow\n") != 2 {
		t.Errorf("2-slow ran %d times, want twice:\n%s", strings.Count(string(data), "2-slow\n"), data)
	}
	for _, res := range matrixReport(t, report) { // the rest succeeded before: skipped
		want := jobs.Skipped
		if res.ID == "sweep[n=2,mode=slow]" {
			want = jobs.Succeeded
		}
		if res.Status != want {
			t.Errorf("%s: %s after the resume (%s)", res.ID, res.Status, res.Error)
		}
	}
}

// TestE2EMatrixBadAxis: a mistake in a matrix is one line with the file, line and
// column, exit 2, and nothing runs; in YAML and in JSON.
func TestE2EMatrixBadAxis(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, src, want string }{
		{"m.yaml", fmt.Sprintf("version: 1\ntasks:\n  - run: touch %s/ran\n  - id: a\n    matrix: {x: [1, 2]}\n    run: echo {xx}\n", dir),
			`m.yaml:6:10: task "a": run: unknown axis {xx}: the matrix has {x}`},
		{"m.json", fmt.Sprintf("{\"tasks\": [{\"run\": \"touch %s/ran\"},\n  {\"id\": \"a\",\n   \"matrix\": {\"x\": [1, [2]]}, \"run\": \"echo {x}\"}]}\n", dir),
			`m.json:3:24: task "a": matrix.x[1]: want a string, number or boolean, got a list`},
	} {
		r := startGorun(t, nil, "exec", writeFile(t, tc.name, tc.src))
		code := r.wait(t, 30*time.Second)
		got := strings.TrimSpace(r.stderr.String())
		if code != 2 || !strings.Contains(got, "/"+tc.want) || strings.Contains(got, "\n") {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and one line ending %q", tc.name, code, got, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("a task ran although the file is bad")
	}
}
