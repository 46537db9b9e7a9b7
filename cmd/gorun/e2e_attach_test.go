//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// attachTasks writes a task file of 40 tasks into dir: each prints a line on stdout
// and one on stderr; every seventh fails; t3 fails its first attempt and succeeds on
// its retry; t15 needs t7 (which fails: t15 is skipped), t16 needs t1; t10 and t11
// are slow: each touches dir/started-ID, then waits for dir/gate. Each execution
// adds a line to dir/ran-ID.
func attachTasks(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("version: 1\ntasks:\n")
	for i := 1; i <= 40; i++ {
		cmd := fmt.Sprintf("echo x >>%s/ran-$GORUN_TASK_ID; echo out-%d; echo err-%d >&2", dir, i, i)
		extra := ""
		switch {
		case i == 3:
			cmd += `; [ "$GORUN_ATTEMPT" -ge 2 ]`
			extra = "    retries: 2\n    retry_delay: 100ms\n"
		case i == 10 || i == 11:
			cmd = fmt.Sprintf("touch %s/started-$GORUN_TASK_ID; while [ ! -e %s/gate ]; do sleep 0.05; done; %s", dir, dir, cmd)
		case i%7 == 0:
			cmd += "; exit 3"
		case i == 15:
			extra = "    needs: [t7]\n"
		case i == 16:
			extra = "    needs: [t1]\n"
		}
		fmt.Fprintf(&b, "  - id: t%d\n    run: '%s'\n%s", i, cmd, extra)
	}
	return writeAt(t, filepath.Join(dir, "tasks.yaml"), b.String())
}

// attachOutcome is a run as a user sees it, its times and hosts set aside.
type attachOutcome struct {
	code    int
	stdout  string // its lines sorted: tasks end in any order
	summary string // from the summary's first line on
	report  map[string]any
	results []map[string]any
}

var summaryStart = regexp.MustCompile(`(?m)^gorun: \d+ tasks? in `)

func attachOutcomeOf(t *testing.T, code int, stdout, stderr, reportFile, dir string) attachOutcome {
	t.Helper()
	data, err := os.ReadFile(reportFile)
	if err != nil {
		t.Fatalf("report: %v; stderr:\n%s", err, stderr)
	}
	o := attachOutcome{code: code, stdout: sortedLines(stdout)}
	o.report, o.results = normaliseReport(t, data, dir)
	if loc := summaryStart.FindStringIndex(stderr); loc != nil {
		o.summary = normaliseStderr(stderr[loc[0]:], dir)
	}
	return o
}

func compareAttach(t *testing.T, what string, want, got attachOutcome) {
	t.Helper()
	if got.code != want.code {
		t.Errorf("%s: exit %d, want %d as without interruption", what, got.code, want.code)
	}
	if got.stdout != want.stdout {
		t.Errorf("%s: stdout (lines sorted):\n%s\nwant:\n%s", what, got.stdout, want.stdout)
	}
	if got.summary == "" || got.summary != want.summary {
		t.Errorf("%s: summary:\n%s\nwant:\n%s", what, got.summary, want.summary)
	}
	if !reflect.DeepEqual(got.report, want.report) {
		t.Errorf("%s: report:\n%v\nwant:\n%v", what, got.report, want.report)
	}
	if len(got.results) != len(want.results) {
		t.Fatalf("%s: %d results in the report, want %d", what, len(got.results), len(want.results))
	}
	for i := range want.results {
		if !reflect.DeepEqual(got.results[i], want.results[i]) {
			t.Errorf("%s: result %d:\n%v\nwant:\n%v", what, i, got.results[i], want.results[i])
		}
	}
}

// A submitter killed with SIGKILL mid-run leaves its run for gorun attach, which
// takes it over and ends it as the submitter would have: the same outputs, summary,
// report and exit code as the same run without interruption. exec --detach prints
// the run's id and exits 0 at once; attach collects the run once it ends.
func TestE2EAttach(t *testing.T) {
	c := startCluster(t, 2, "-j", "3")
	dir := t.TempDir()
	tasks := attachTasks(t, dir)
	gate := filepath.Join(dir, "gate")
	args := []string{"exec", tasks, "--broker", c.URL, "--workers", "2", "--ack-wait", "20s", "--grace", "1s"}

	// The reference: the same run, never interrupted.
	writeAt(t, gate, "")
	refReport := filepath.Join(t.TempDir(), "ref.json")
	ref := startGorun(t, nil, append(args, "--report", refReport)...)
	code := ref.wait(t, 120*time.Second)
	want := attachOutcomeOf(t, code, ref.stdout.String(), ref.stderr.String(), refReport, dir)
	if want.code != 1 || !strings.Contains(want.summary, "1 skipped") {
		t.Fatalf("reference run: exit %d, summary:\n%s\nwant exit 1 with t15 skipped", want.code, want.summary)
	}

	t.Run("takeover", func(t *testing.T) {
		clearRuns(t, dir)
		r := startGorun(t, nil, args...)
		run := waitRunID(t, r)
		// With 2 tasks at a time, the two slow ones hold the run: t12 to t40 wait.
		waitFor(t, 60*time.Second, "t10 and t11 to start", func() bool { return slowStarted(dir) })
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		r.wait(t, 10*time.Second)
		if strings.Contains(r.stdout.String(), "out-12\n") {
			t.Fatalf("t12 ran before the kill; stdout:\n%s", r.stdout)
		}

		host, _ := os.Hostname()
		out, errOut, code := gorunDo(t, "runs", "--broker", c.URL)
		if code != 0 || !regexp.MustCompile(`(?m)^`+run+`\s+`+regexp.QuoteMeta(host)+`\s+running\b`).MatchString(out) {
			t.Errorf("gorun runs: exit %d, stdout:\n%s\nstderr:\n%s\nwant %s of %s running", code, out, errOut, run, host)
		}

		writeAt(t, gate, "")
		attReport := filepath.Join(t.TempDir(), "attach.json")
		att := startGorun(t, nil, "attach", run, "--broker", c.URL, "--report", attReport)
		code = att.wait(t, 120*time.Second)
		if !strings.Contains(att.stderr.String(), "gorun: run "+run+" taken over on ") {
			t.Errorf("attach stderr:\n%s\nwant that it took the run over", att.stderr)
		}
		compareAttach(t, "attach after a SIGKILL", want, attachOutcomeOf(t, code, att.stdout.String(), att.stderr.String(), attReport, dir))
		if s := statusJSON(t, c.URL, run); s.State != "done" || s.ExitCode == nil || *s.ExitCode != want.code || s.Counts["failed"] != 5 {
			t.Errorf("status after the attach: %+v", s)
		}
		// What finished before the kill did not run again; what ran then ran again.
		for i := 1; i <= 40; i++ {
			want := 1
			switch i {
			case 3:
				want = 2 // its retry
			case 10, 11:
				want = 2 // superseded by the attach
			case 15:
				want = 0 // skipped
			}
			if n := ranCount(dir, i); n != want {
				t.Errorf("t%d ran %d times, want %d", i, n, want)
			}
		}
		// Once over, the run replays as often as asked: the same again.
		again := filepath.Join(t.TempDir(), "again.json")
		stdout, stderr, code := gorunDo(t, "attach", run, "--broker", c.URL, "--report", again)
		compareAttach(t, "attach of the ended run", want, attachOutcomeOf(t, code, stdout, stderr, again, dir))
	})

	// A submitter that comes back after a takeover (stopped, not killed) finds its
	// run another's: it ends as cancelled, and leaves the run to the attach.
	t.Run("returning submitter", func(t *testing.T) {
		clearRuns(t, dir)
		r := startGorun(t, nil, args...)
		run := waitRunID(t, r)
		waitFor(t, 60*time.Second, "t10 and t11 to start", func() bool { return slowStarted(dir) })
		_ = r.cmd.Process.Signal(syscall.SIGSTOP)
		attReport := filepath.Join(t.TempDir(), "attach.json")
		att := startGorun(t, nil, "attach", run, "--broker", c.URL, "--report", attReport)
		waitFor(t, 60*time.Second, "the takeover", func() bool { return strings.Contains(att.stderr.String(), " taken over on ") })
		_ = r.cmd.Process.Signal(syscall.SIGCONT)
		if code := r.wait(t, 30*time.Second); code != 3 || !strings.Contains(r.stderr.String(), "taken over by gorun attach") {
			t.Errorf("the returning submitter: exit %d, stderr:\n%s\nwant 3, taken over", code, r.stderr)
		}
		writeAt(t, gate, "")
		code := att.wait(t, 120*time.Second)
		compareAttach(t, "attach with a returning submitter", want, attachOutcomeOf(t, code, att.stdout.String(), att.stderr.String(), attReport, dir))
		again := filepath.Join(t.TempDir(), "again.json")
		stdout, stderr, code := gorunDo(t, "attach", run, "--broker", c.URL, "--report", again)
		compareAttach(t, "replay after a returning submitter", want, attachOutcomeOf(t, code, stdout, stderr, again, dir))
	})

	t.Run("detach", func(t *testing.T) {
		clearRuns(t, dir)
		start := time.Now()
		stdout, stderr, code := gorunDo(t, append(args, "--detach")...)
		if code != 0 || !regexp.MustCompile(`^[0-9a-f]{16}\n$`).MatchString(stdout) {
			t.Fatalf("exec --detach: exit %d, stdout %q, stderr %q; want 0 and the run id", code, stdout, stderr)
		}
		if took := time.Since(start); took > 30*time.Second {
			t.Errorf("exec --detach took %v: it should not wait for the run", took)
		}
		run := strings.TrimSpace(stdout)
		submitter := statusJSON(t, c.URL, run)
		if submitter.State != "running" || submitter.PID == 0 {
			t.Fatalf("status of the detached run: %+v", submitter)
		}
		// attach follows the live submitter: it waits, and takes nothing over.
		attReport := filepath.Join(t.TempDir(), "detached.json")
		att := startGorun(t, nil, "attach", run, "--broker", c.URL, "--report", attReport)
		waitFor(t, 60*time.Second, "attach to wait for the live submitter", func() bool {
			return strings.Contains(att.stderr.String(), "gorun: run "+run+" is running, its submitter ")
		})
		writeAt(t, gate, "")
		code = att.wait(t, 120*time.Second)
		compareAttach(t, "attach of a detached run", want, attachOutcomeOf(t, code, att.stdout.String(), att.stderr.String(), attReport, dir))
		if !strings.Contains(att.stderr.String(), "gorun: run "+run+" is running, its submitter ") || strings.Contains(att.stderr.String(), "taken over") {
			t.Errorf("attach stderr:\n%s\nwant that it waited for the live detached submitter, and took nothing over", att.stderr)
		}
		if s := statusJSON(t, c.URL, run); s.State != "done" || s.PID != submitter.PID || s.ExitCode == nil || *s.ExitCode != want.code {
			t.Errorf("status: %+v, want done by the detached submitter (pid %d)", s, submitter.PID)
		}
		for i := 1; i <= 40; i++ {
			if n := ranCount(dir, i); n > 2 || n == 0 && i != 15 {
				t.Errorf("t%d ran %d times", i, n)
			}
		}
	})
}

// writeAt writes content to the file at path.
func writeAt(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// ranCount counts the executions of task tI: the lines of dir/ran-tI.
func ranCount(dir string, i int) int {
	data, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("ran-t%d", i)))
	return strings.Count(string(data), "\n")
}

// clearRuns removes the gate and what the tasks left in dir.
func clearRuns(t *testing.T, dir string) {
	t.Helper()
	for _, pat := range []string{"gate", "ran-*", "started-*"} {
		names, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, n := range names {
			if err := os.Remove(n); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// slowStarted reports whether t10 and t11 have started.
func slowStarted(dir string) bool {
	_, e1 := os.Stat(filepath.Join(dir, "started-t10"))
	_, e2 := os.Stat(filepath.Join(dir, "started-t11"))
	return e1 == nil && e2 == nil
}

// TestE2EAttachKeepsSourcesTagsAndLimits: a detached run of ::: sources with --tag, a
// percent timeout and a --limit-by pool is collected by attach with the output the
// same command prints locally: the plan carries the sources and those settings.
func TestE2EAttachKeepsSourcesTagsAndLimits(t *testing.T) {
	c := startCluster(t, 1, "-j", "2")
	// The percent timeout is far above an echo's few milliseconds, so that a loaded
	// machine does not time a task out (1000% of a 2 ms median is 20 ms).
	cmd := []string{"-k", "--tag", "--timeout", "100000%", "--limit-by", "{1}", "--limit-concurrency", "1", "--", "echo", "{1}-{2}", ":::", "a", "b", ":::", "x", "y"}
	want, stderr, code := gorunDo(t, append([]string{"exec"}, cmd...)...)
	if code != 0 || strings.Count(want, "\n") != 4 {
		t.Fatalf("local run: exit %d, stdout %q, stderr %q; want 4 lines", code, want, stderr)
	}
	stdout, stderr, code := gorunDo(t, append([]string{"exec", "--broker", c.URL, "--detach"}, cmd...)...)
	if code != 0 {
		t.Fatalf("exec --detach: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	run := strings.TrimSpace(stdout)
	got, stderr, code := gorunDo(t, "attach", run, "--broker", c.URL)
	if code != 0 || got != want {
		t.Errorf("attach: exit %d, stdout %q, stderr %q; want 0 and the local run's %q", code, got, stderr, want)
	}
}
