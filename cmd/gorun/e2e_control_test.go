//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/testutil"
)

// gorunDo runs `gorun args...` to its end and returns its stdout, stderr and exit
// code.
func gorunDo(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(gorunBin, args...)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// runStatusJSON is what `gorun status --json` prints, in part.
type runStatusJSON struct {
	ID       string         `json:"id"`
	State    string         `json:"state"`
	Host     string         `json:"host"`
	PID      int            `json:"pid"`
	Reason   string         `json:"reason"`
	ExitCode *int           `json:"exit_code"`
	Counts   map[string]int `json:"counts"`
	Running  []struct {
		ID     string `json:"id"`
		Worker string `json:"worker"`
	} `json:"running"`
}

func statusJSON(t *testing.T, url, run string) runStatusJSON {
	t.Helper()
	out, errOut, code := gorunDo(t, "status", run, "--broker", url, "--json")
	if code != 0 {
		t.Fatalf("gorun status: exit %d; stderr:\n%s", code, errOut)
	}
	var s runStatusJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("gorun status --json: %v:\n%s", err, out)
	}
	return s
}

var runIDLine = regexp.MustCompile(`(?m)^gorun: run ([0-9a-f]{16}) started on (\S+)$`)

// waitRunID waits for the line exec --broker prints when its run starts, and returns
// the run's id.
func waitRunID(t *testing.T, r *gorunRun) string {
	t.Helper()
	waitFor(t, 30*time.Second, "the run id on stderr", func() bool { return runIDLine.MatchString(r.stderr.String()) })
	return runIDLine.FindStringSubmatch(r.stderr.String())[1]
}

// markedTasks writes a task file of n tasks that each touch dir/started-ID and sleep;
// the shell of each carries marker in its command line. With deaf, the tasks ignore
// SIGTERM: only the SIGKILL after the grace stops them.
func markedTasks(t *testing.T, n int, dir, marker string, deaf bool) string {
	t.Helper()
	trap := ""
	if deaf {
		trap = `trap "" TERM; `
	}
	var b strings.Builder
	b.WriteString("version: 1\ntasks:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "  - id: t%d\n    cmd: [sh, -c, '%stouch %s/started-$GORUN_TASK_ID; sleep 300; :', %s]\n", i, trap, dir, marker)
	}
	return writeFile(t, "tasks.yaml", b.String())
}

// cmdlineSurvivors counts the processes whose command line holds marker.
func cmdlineSurvivors(t *testing.T, marker string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(marker)) {
			if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && strings.Contains(string(stat), ") Z ") {
				continue // a zombie: already dead
			}
			n++
		}
	}
	return n
}

// waitNoSurvivors waits until no task process is left on the workers: none with
// marker in its command line, none with the workers' mark in its environment.
func waitNoSurvivors(t *testing.T, c *testCluster, marker string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && (cmdlineSurvivors(t, marker)+countTaskProcs(t, c.Mark) > 0) {
		time.Sleep(50 * time.Millisecond)
	}
	if n, m := cmdlineSurvivors(t, marker), countTaskProcs(t, c.Mark); n+m > 0 {
		t.Errorf("after %v: %d processes with the marker in their command line, %d task processes on the workers; workers:\n%s", limit, n, m, c.workerLogs())
	}
}

// A submitter killed with SIGKILL leaves its run on the broker: gorun runs lists it,
// gorun cancel stops its tasks on every worker, SIGKILL after the grace for tasks
// that ignore SIGTERM.
func TestE2EControlCancelOrphan(t *testing.T) {
	c := startCluster(t, 2, "-j", "2")
	dir := t.TempDir()
	marker := "gorun-ctl-" + testutil.NewMark(t)
	tasks := markedTasks(t, 8, dir, marker, true)
	r := startGorun(t, nil, "exec", tasks, "--broker", c.URL, "--ack-wait", "20s", "--grace", "1s")
	run := waitRunID(t, r)
	waitFor(t, 30*time.Second, "four tasks to start", func() bool { return countStarted(dir) >= 4 })
	// gorun status shows what the submitter wrote last: its heartbeat every 2s.
	waitFor(t, 30*time.Second, "the submitter's record of its 4 running tasks", func() bool { return len(statusJSON(t, c.URL, run).Running) == 4 })
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	r.wait(t, 10*time.Second)

	host, _ := os.Hostname()
	out, errOut, code := gorunDo(t, "runs", "--broker", c.URL)
	if code != 0 || !regexp.MustCompile(`(?m)^`+run+`\s+`+regexp.QuoteMeta(host)+`\s+running\b`).MatchString(out) {
		t.Errorf("gorun runs: exit %d, stdout:\n%s\nstderr:\n%s\nwant %s of %s running", code, out, errOut, run, host)
	}
	if s := statusJSON(t, c.URL, run); s.State != "running" || len(s.Running) != 4 || s.Host != host {
		t.Errorf("status before the cancel: %+v, want running with 4 running tasks", s)
	}
	if cmdlineSurvivors(t, marker) < 4 {
		t.Fatalf("%d marked processes before the cancel, want the 4 tasks still running", cmdlineSurvivors(t, marker))
	}

	out, errOut, code = gorunDo(t, "cancel", run, "--broker", c.URL)
	if code != 0 || out != "run "+run+" cancelled\n" {
		t.Errorf("gorun cancel: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	waitNoSurvivors(t, c, marker, 10*time.Second) // well within the lease: stopped, not lost
	if s := statusJSON(t, c.URL, run); s.State != "cancelled" || !strings.Contains(s.Reason, "gorun cancel") {
		t.Errorf("status after the cancel: %+v", s)
	}
	if n := countStarted(dir); n != 4 {
		t.Errorf("%d tasks started in all, want the 4 that ran when the submitter died", n)
	}
	// Cancelling again is a no-op; an unknown run an error.
	if out, _, code := gorunDo(t, "cancel", run, "--broker", c.URL); code != 0 || !strings.Contains(out, "already cancelled") {
		t.Errorf("second cancel: exit %d, stdout %q", code, out)
	}
	if _, errOut, code := gorunDo(t, "cancel", "0123456789abcdef", "--broker", c.URL); code != 1 || !strings.Contains(errOut, "no such run") {
		t.Errorf("cancel of an unknown run: exit %d, stderr %q; want 1 and no such run", code, errOut)
	}
}

// gorun cancel ends a live submitter as an interrupt does: running tasks cancelled,
// the rest skipped, its report written, and exit 3.
func TestE2EControlCancelLive(t *testing.T) {
	c := startCluster(t, 1, "-j", "2")
	dir := t.TempDir()
	marker := "gorun-ctl-" + testutil.NewMark(t)
	tasks := markedTasks(t, 5, dir, marker, false)
	report := filepath.Join(t.TempDir(), "run.json")
	r := startGorun(t, nil, "exec", tasks, "--broker", c.URL, "--ack-wait", "20s", "--grace", "1s", "--report", report)
	run := waitRunID(t, r)
	waitFor(t, 30*time.Second, "two tasks to start", func() bool { return countStarted(dir) >= 2 })
	if n := len(runIDLine.FindAllString(r.stderr.String(), -1)); n != 1 || !strings.HasPrefix(r.stderr.String(), "gorun: run "+run) {
		t.Errorf("stderr %q: want one run id line, first", r.stderr)
	}

	watch := startGorun(t, nil, "status", run, "--broker", c.URL, "--watch")
	waitFor(t, 30*time.Second, "gorun status --watch to show the run", func() bool { return strings.Contains(watch.stdout.String(), "2 running") })

	if out, errOut, code := gorunDo(t, "cancel", run, "--broker", c.URL); code != 0 {
		t.Fatalf("gorun cancel: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code := r.wait(t, 30*time.Second); code != 3 {
		t.Errorf("submitter exit %d, want 3; stderr:\n%s", code, r.stderr)
	}
	// --watch ends with the run, its last view the run's end.
	if code := watch.wait(t, 30*time.Second); code != 0 {
		t.Errorf("gorun status --watch: exit %d; stderr:\n%s", code, watch.stderr)
	}
	views := strings.Split(watch.stdout.String(), "\nrun ")
	if last := views[len(views)-1]; !strings.Contains(last, "state      cancelled\n") || !strings.Contains(last, "exit code  3\n") {
		t.Errorf("gorun status --watch, last view:\n%s", last)
	}
	// The 2 running tasks are cancelled and the 3 waiting ones skipped; or 3 and 2: the
	// worker, which learns of the cancel on its own, may stop the 2 before the submitter
	// learns of it, and the submitter then hands out a third attempt that is withdrawn
	// at once, counted cancelled.
	counts := regexp.MustCompile(`([23]) cancelled, ([23]) skipped`).FindStringSubmatch(r.stderr.String())
	if counts == nil || counts[1] == counts[2] || !strings.Contains(r.stderr.String(), "gorun: run "+run+" cancelled: by gorun cancel on ") {
		t.Errorf("stderr:\n%s\nwant 2 cancelled and 3 skipped (or 3 and 2), and the cancel named", r.stderr)
	}
	if counts == nil {
		return
	}
	cancelled, _ := strconv.Atoi(counts[1])
	data, err := os.ReadFile(report)
	if err != nil || !bytes.Contains(data, []byte(`"cancelled": `+counts[1])) && !bytes.Contains(data, []byte(`"cancelled":`+counts[1])) {
		t.Errorf("report: %v, want %d cancelled as the summary said\n%s", err, cancelled, data)
	}
	waitNoSurvivors(t, c, marker, 10*time.Second) // well within the lease: stopped, not lost
	s := statusJSON(t, c.URL, run)
	if s.State != "cancelled" || s.ExitCode == nil || *s.ExitCode != 3 || s.Counts["cancelled"] != cancelled || s.Counts["skipped"] != 5-cancelled {
		t.Errorf("status after the run: %+v, want the summary's counts", s)
	}
}

// A run whose submitter is gone without a heartbeat for --orphan-after is cancelled
// by the workers, its tasks stopped.
func TestE2EControlOrphanAfter(t *testing.T) {
	c := startCluster(t, 2, "-j", "1")
	dir := t.TempDir()
	marker := "gorun-ctl-" + testutil.NewMark(t)
	tasks := markedTasks(t, 4, dir, marker, true)
	r := startGorun(t, nil, "exec", tasks, "--broker", c.URL, "--ack-wait", "20s", "--grace", "1s", "--orphan-after", "3s")
	run := waitRunID(t, r)
	waitFor(t, 30*time.Second, "two tasks to start", func() bool { return countStarted(dir) >= 2 })
	time.Sleep(4 * time.Second) // the live submitter's heartbeats keep it from being an orphan
	if s := statusJSON(t, c.URL, run); s.State != "running" {
		t.Fatalf("with its submitter alive, the run is %s (%s) after 4s, past its --orphan-after", s.State, s.Reason)
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	r.wait(t, 10*time.Second)

	var s runStatusJSON
	waitFor(t, 30*time.Second, "the orphan to be cancelled", func() bool { s = statusJSON(t, c.URL, run); return s.State != "running" })
	// Its last heartbeat may have been up to a quarter of --orphan-after before the kill.
	if took := time.Since(killed); took < 2*time.Second {
		t.Errorf("cancelled %v after the kill: before --orphan-after 3s", took)
	}
	if s.State != "cancelled" || !strings.Contains(s.Reason, "orphaned") {
		t.Errorf("status: %+v, want cancelled as an orphan", s)
	}
	waitNoSurvivors(t, c, marker, 10*time.Second) // well within the lease: stopped, not lost
	if n := countStarted(dir); n != 2 {
		t.Errorf("%d tasks started, want only the 2 that ran when the submitter died", n)
	}
}
