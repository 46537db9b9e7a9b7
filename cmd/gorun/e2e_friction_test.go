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
	"syscall"
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

// TestE2ESummaryOnInterrupt: Ctrl-C under 200 tasks gives a summary of a few lines:
// the skipped and cancelled tasks counted by reason, not listed.
func TestE2ESummaryOnInterrupt(t *testing.T) {
	dir := t.TempDir()
	var tasks strings.Builder
	tasks.WriteString("tasks:\n")
	for i := range 200 {
		fmt.Fprintf(&tasks, "  - id: t%d\n    run: touch %s/started-$GORUN_TASK_ID; sleep 30 & wait\n", i, dir)
	}
	file := writeFile(t, "t.yaml", tasks.String())
	r := startGorun(t, nil, "exec", file, "-j", "4", "--grace", "2s")
	waitFor(t, 20*time.Second, "four tasks to start", func() bool { return countStarted(dir) == 4 })
	_ = r.cmd.Process.Signal(syscall.SIGINT)
	if code := r.wait(t, 30*time.Second); code != 130 {
		t.Fatalf("got exit %d, want 130", code)
	}
	got := r.stderr.String()
	for _, want := range []string{"4 cancelled, 196 skipped", "\ncancelled: 4 stopped while running (SIGTERM)\n", "\nskipped: 196 interrupted by SIGINT\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "\n"); n > 4 || strings.Contains(got, "more") {
		t.Errorf("summary of %d lines, want at most 4 (counts, durations, cancelled, skipped):\n%s", n, got)
	}
	testutil.NoSurvivors(t, r.mark)
}

// TestE2ESummaryUnderHead: `seq 100000 | gorun exec -- echo X {} | head -1` gives a
// short summary whose throughput counts the tasks that started.
func TestE2ESummaryUnderHead(t *testing.T) {
	var in strings.Builder
	for i := range 100000 {
		fmt.Fprintln(&in, i)
	}
	cmd := exec.Command("sh", "-c", `"$0" exec -- echo X {} | head -1`, gorunBin)
	cmd.Stdin = strings.NewReader(in.String())
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir())
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v; stderr:\n%s", err, stderr.String())
	}
	got := stderr.String()
	var first int
	if _, err := fmt.Sscanf(stdout.String(), "X %d\n", &first); err != nil || strings.Count(stdout.String(), "\n") != 1 ||
		!strings.Contains(got, "skipped: ") || strings.Count(got, "\n") > 4 {
		t.Fatalf("got stdout %q, summary:\n%s\nwant one line X N and a summary of at most 4 lines", stdout.String(), got)
	}
	var total, succeeded, cancelled, skipped int
	var wall string
	var perSecond float64
	if _, err := fmt.Sscanf(got, "gorun: %d tasks in %s (%f tasks/s): %d succeeded, 0 failed, 0 timed out, %d cancelled, %d skipped",
		&total, &wall, &perSecond, &succeeded, &cancelled, &skipped); err != nil {
		t.Fatalf("summary %q: %v", got, err)
	}
	wallD, err := time.ParseDuration(wall)
	if err != nil {
		t.Fatal(err)
	}
	if started := float64(succeeded + cancelled); perSecond > 1.05*started/wallD.Seconds()+1 {
		t.Errorf("got %.1f tasks/s, want at most the %v started tasks over %v", perSecond, started, wallD)
	}
}

// TestE2EQuietResume: the README's cron line prints nothing when nothing failed, on
// the first run and on the resumed ones.
func TestE2EQuietResume(t *testing.T) {
	dir := t.TempDir()
	journal := filepath.Join(dir, "j")
	for run := range 2 {
		r := startGorun(t, strings.NewReader("true\necho hi\n"), "exec", "--journal", journal, "--resume", "-q")
		if code := r.wait(t, 30*time.Second); code != 0 || r.stderr.String() != "" || r.stdout.String() != "" {
			t.Errorf("run %d: got exit %d, stdout %q, stderr %q; want 0 and nothing", run+1, code, r.stdout.String(), r.stderr.String())
		}
	}
}

// TestE2ENamesFromInput: a failed task of a template is named by its input in the
// summary; --tag and --tagstring tag output lines as GNU parallel does.
func TestE2ENamesFromInput(t *testing.T) {
	r := startGorun(t, strings.NewReader("ok\nbad\tone\n"), "exec", "--", "sh", "-c", `test "$1" = ok`, "sh")
	if code := r.wait(t, 30*time.Second); code != 1 || !strings.Contains(r.stderr.String(), `  task-2 "bad\tone"  failed  exit 1`) {
		t.Errorf("got exit %d, summary:\n%s\nwant task-2 named by its input", code, r.stderr.String())
	}
	r = startGorun(t, strings.NewReader("a\nb c\n"), "exec", "--tag", "-k", "--", "echo", "hi")
	if code := r.wait(t, 30*time.Second); code != 0 || r.stdout.String() != "a\thi a\nb c\thi b c\n" {
		t.Errorf("--tag: got exit %d, stdout %q", code, r.stdout.String())
	}
	r = startGorun(t, strings.NewReader("x.txt\ny.jpg\n"), "exec", "--tagstring", "{#}:{.}", "-k", "--", "echo", "hi")
	if code := r.wait(t, 30*time.Second); code != 0 || r.stdout.String() != "1:x\thi x.txt\n2:y\thi y.jpg\n" {
		t.Errorf("--tagstring: got exit %d, stdout %q", code, r.stdout.String())
	}
}

// TestE2EDryRunPipesToSh: `gorun exec --dry-run … | sh` prints what the run prints,
// for every hostile item, in every template form, and for a task file's dir and env.
func TestE2EDryRunPipesToSh(t *testing.T) {
	items := []string{"plain", "two words", "tab\there", "new\nline", `it's "quoted"`, "$(touch PWNED)", "`touch PWNED`", "; rm -rf x |", "*", "-n", "back\\slash", "bad\xffutf8"}
	dir := t.TempDir()
	tasks := writeFile(t, "t.yaml", "tasks:\n  - id: where\n    run: pwd; echo \"$GREETING\"\n    dir: "+dir+"\n    env: {GREETING: \"hello 'you'\"}\n")
	for _, tt := range []struct {
		name  string
		args  []string
		stdin string
	}{
		{"argv template", []string{"exec", "-0", "-k", "--", "printf", "[%s]\\n", "{}", "{/.}"}, strings.Join(items, "\x00")},
		{"shell template", []string{"exec", "-0", "-k", "--", `printf '[%s]\n' "{}" {} '{}'`}, strings.Join(items, "\x00")},
		{"command lines", []string{"exec", "-k"}, "echo one\nprintf '%s\\n' \"two  words\"; exit 3\necho after\n"},
		{"task file", []string{"exec", tasks}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			with := func(flag ...string) []string { return append(append([]string{"exec"}, flag...), tt.args[1:]...) }
			run := startGorunIn(t, dir, strings.NewReader(tt.stdin), with("-j", "1")...)
			run.wait(t, 30*time.Second)
			dry := startGorunIn(t, dir, strings.NewReader(tt.stdin), with("--dry-run")...)
			if code := dry.wait(t, 30*time.Second); code != 0 {
				t.Fatalf("--dry-run: exit %d; stderr:\n%s", code, dry.stderr.String())
			}
			sh := exec.Command("sh")
			sh.Dir = dir
			sh.Stdin = strings.NewReader(dry.stdout.String())
			got, _ := sh.Output() // a task that fails fails under sh too
			if string(got) != run.stdout.String() {
				t.Errorf("--dry-run | sh printed\n%q\nthe run printed\n%q\n(--dry-run:\n%s)", got, run.stdout.String(), dry.stdout.String())
			}
			if _, err := os.Stat(filepath.Join(dir, "PWNED")); err == nil {
				t.Fatal("an item ran as shell code")
			}
		})
	}
}
