//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/testutil"
)

// The frictions a GNU parallel user met, one test each.

// readOneLineAndClose runs gorun with args in dir, reads one line of its stdout and
// closes it, as `| head -1` does, and returns gorun's exit code and stderr.
func readOneLineAndClose(t *testing.T, dir string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(gorunBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), testutil.MarkVar+"="+testutil.NewMark(t), "XDG_CONFIG_HOME="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("first line: %v; stderr:\n%s", err, stderr.String())
	}
	out.Close()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("gorun %v still runs after its stdout was closed", args)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// TestE2EClosedStdoutIsQuiet: every command whose reader goes away exits 141 and says
// nothing (validate | head -1, exec --dry-run | head -1, report | head -1).
func TestE2EClosedStdoutIsQuiet(t *testing.T) {
	dir := t.TempDir()
	var tasks strings.Builder
	tasks.WriteString("tasks:\n")
	for i := range 3000 { // well over a pipe's 64 KiB of output
		fmt.Fprintf(&tasks, "  - id: task-with-a-long-name-%04d\n    run: echo %s\n", i, strings.Repeat("x", 40))
	}
	if err := os.WriteFile(filepath.Join(dir, "big.yaml"), []byte(tasks.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var journal strings.Builder
	fmt.Fprintf(&journal, `{"type":"run","run_id":"r1","started_at":"2025-01-01T00:00:00Z"}`+"\n")
	for i := range 3000 {
		fmt.Fprintf(&journal, `{"type":"result","run_id":"r1","key":"k%d","id":"task-%d","index":%d,"command":"echo %s","status":"succeeded","exit_code":0,"attempts":1,"duration_s":0.01,"stdout_tail":"","stdout_bytes":0,"stderr_tail":"","stderr_bytes":0}`+"\n", i, i, i+1, strings.Repeat("x", 40))
	}
	if err := os.WriteFile(filepath.Join(dir, "run.journal"), []byte(journal.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"validate", "big.yaml"},
		{"exec", "--dry-run", "big.yaml"},
		{"report", "run.journal", "--format", "json"},
	} {
		t.Run(args[0], func(t *testing.T) {
			code, stderr := readOneLineAndClose(t, dir, args...)
			if code != 141 || stderr != "" {
				t.Errorf("gorun %v | head -1: got exit %d, stderr %q; want 141 and nothing on stderr", args, code, stderr)
			}
		})
	}
}

// TestE2ETaskFileNamedLikeAConfig: a task file named gorun.yaml in the current
// directory is not the config file; every command there works.
func TestE2ETaskFileNamedLikeAConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gorun.yaml"), []byte("tasks:\n  - id: hello\n    run: echo hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startGorunIn(t, dir, nil, "exec", "gorun.yaml")
	if code := r.wait(t, 30*time.Second); code != 0 || r.stdout.String() != "hi\n" {
		t.Errorf("exec gorun.yaml: got exit %d, stdout %q, stderr %q; want 0 and hi", code, r.stdout.String(), r.stderr.String())
	}
	r = startGorunIn(t, dir, strings.NewReader("a\n"), "exec", "--", "echo")
	if code := r.wait(t, 30*time.Second); code != 0 || r.stdout.String() != "a\n" {
		t.Errorf("exec -- echo beside gorun.yaml: got exit %d, stdout %q, stderr %q; want 0 and a", code, r.stdout.String(), r.stderr.String())
	}
}

// TestE2EReportFromJournal: `gorun report JOURNAL` renders the tasks the run's own
// report has, skipped ones included, in input order, with the run's id and host; a
// missing journal is exit 2 and no report.
func TestE2EReportFromJournal(t *testing.T) {
	dir := t.TempDir()
	tasks := `tasks:
  - id: slow
    run: sleep 0.3
  - id: broken
    run: exit 3
  - id: after-broken
    run: echo never
    needs: [broken]
  - id: quick
    run: 'true'
`
	if err := os.WriteFile(filepath.Join(dir, "tasks.yaml"), []byte(tasks), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startGorunIn(t, dir, nil, "exec", "tasks.yaml", "-j", "4", "--journal", "run.journal", "--report", "run.json")
	if code := r.wait(t, 30*time.Second); code != 1 {
		t.Fatalf("got exit %d, want 1; stderr:\n%s", code, r.stderr.String())
	}
	type doc struct {
		Run struct {
			ID       string `json:"id"`
			Hostname string `json:"hostname"`
		} `json:"run"`
		Results []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"results"`
	}
	var own, rendered doc
	b, err := os.ReadFile(filepath.Join(dir, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &own); err != nil {
		t.Fatal(err)
	}
	r = startGorunIn(t, dir, nil, "report", "run.journal", "--format", "json")
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("report: got exit %d, want 0; stderr:\n%s", code, r.stderr.String())
	}
	if err := json.Unmarshal([]byte(r.stdout.String()), &rendered); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if rendered.Run.ID == "" || rendered.Run.ID != own.Run.ID || rendered.Run.Hostname != host {
		t.Errorf("run: got id %q host %q, want the run's %q and %q", rendered.Run.ID, rendered.Run.Hostname, own.Run.ID, host)
	}
	var got, want []string
	for _, x := range rendered.Results {
		got = append(got, x.ID+" "+x.Status)
	}
	for _, x := range own.Results {
		want = append(want, x.ID+" "+x.Status)
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") || len(want) != 4 {
		t.Errorf("results from the journal: got %q, want the run's own, in input order: %q", got, want)
	}

	r = startGorunIn(t, dir, nil, "report", "/no/such/file")
	if code := r.wait(t, 30*time.Second); code != 2 || r.stdout.String() != "" || !strings.Contains(r.stderr.String(), "/no/such/file") {
		t.Errorf("missing journal: got exit %d, stdout %q, stderr %q; want 2, no report, and the file named", code, r.stdout.String(), r.stderr.String())
	}
}

// TestE2EParallelNumbers: --timeout takes bare seconds and a percentage of the median
// duration, as GNU parallel's does.
func TestE2EParallelNumbers(t *testing.T) {
	start := time.Now()
	r := startGorun(t, strings.NewReader("30\n"), "exec", "--timeout", "1", "--grace", "100ms", "--", "sleep")
	if code := r.wait(t, 20*time.Second); code != 1 || !strings.Contains(r.stderr.String(), "timed_out") {
		t.Errorf("--timeout 1: got exit %d, stderr %q; want 1 and a task timed out", code, r.stderr.String())
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("--timeout 1: took %v, want about a second", took)
	}

	start = time.Now()
	r = startGorun(t, strings.NewReader("0.05\n0.05\n0.05\n30\n"), "exec", "-j", "1", "--timeout", "300%", "--grace", "100ms", "-o", "jsonl", "--", "sleep")
	if code := r.wait(t, 25*time.Second); code != 1 {
		t.Fatalf("--timeout 300%%: got exit %d, want 1; stderr:\n%s", code, r.stderr.String())
	}
	var statuses []string
	for line := range strings.Lines(r.stdout.String()) {
		var res struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, res.Status)
	}
	if got := strings.Join(statuses, " "); got != "succeeded succeeded succeeded timed_out" {
		t.Errorf("--timeout 300%%: got %q, want three short tasks succeeded and the long one timed out", got)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("--timeout 300%%: took %v, want the 30s task stopped after about 3 times the median (50ms)", took)
	}
}
