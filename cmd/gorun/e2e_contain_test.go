//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/proc"
	"github.com/gorun/gorun/internal/testutil"
)

// containments returns the --containment values to test on this machine: auto (a
// cgroup where the machine allows one) and subreaper, the fallback.
func containments(t *testing.T) []string {
	t.Helper()
	if !cgroupsWork(t) {
		t.Log("no cgroup can be made here: auto falls back to subreaper")
	}
	return []string{"auto", "subreaper"}
}

// cgroupsWork reports whether gorun can contain tasks in cgroups on this machine.
func cgroupsWork(t *testing.T) bool {
	t.Helper()
	cg, err := proc.OpenCgroups("gorun-test-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	if err != nil {
		return false
	}
	_ = cg.Close()
	return true
}

// jsonResults parses gorun's -o jsonl output.
func jsonResults(t *testing.T, out string) map[string]jobs.Result {
	t.Helper()
	res := map[string]jobs.Result{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r jobs.Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("bad JSON result %q: %v", line, err)
		}
		res[r.ID] = r
	}
	return res
}

// A task is its whole process tree: what it leaves in the background is stopped when
// it ends, however it ends, without costing it the grace period.
func TestE2EContainLeftovers(t *testing.T) {
	tasks := writeFile(t, "t.yaml", `version: 1
tasks:
  - id: background
    run: "echo start; sleep 300 & echo done"
  - id: nohup
    run: "nohup sleep 300 >/dev/null 2>&1 &"
  - id: holds-stdout
    run: "sleep 300 & exit 0"
  - id: setsid-exit
    run: "setsid sleep 300 & echo ok"
  - id: setsid-timeout
    run: "setsid sleep 300 & wait"
    timeout: 500ms
`)
	for _, mode := range containments(t) {
		t.Run(mode, func(t *testing.T) {
			start := time.Now()
			r := startGorun(t, nil, "exec", tasks, "-j", "5", "--grace", "5s", "-o", "jsonl", "--containment", mode)
			if code := r.wait(t, 30*time.Second); code != 1 {
				t.Errorf("got exit %d, want 1 (one timeout); stderr:\n%s", code, r.stderr.String())
			}
			if took := time.Since(start); took > 4*time.Second {
				t.Errorf("run took %v, want well under the 5s grace", took)
			}
			res := jsonResults(t, r.stdout.String())
			for _, id := range []string{"background", "nohup", "holds-stdout", "setsid-exit"} {
				got := res[id]
				if got.Status != jobs.Succeeded {
					t.Errorf("%s: got status %s, want succeeded", id, got.Status)
				}
				if d := time.Duration(got.Duration); d > time.Second {
					t.Errorf("%s: got duration %v, want under 1s (its main process exits at once)", id, d)
				}
				if got.Leftovers != 1 {
					t.Errorf("%s: got leftover_processes %d, want 1", id, got.Leftovers)
				}
			}
			if got := res["setsid-timeout"].Status; got != jobs.TimedOut {
				t.Errorf("setsid-timeout: got status %s, want timed_out", got)
			}
			if got := res["background"].StdoutTail; got != "start\ndone\n" {
				t.Errorf("background: got stdout %q, want start and done", got)
			}
			testutil.NoSurvivors(t, r.mark)
		})
	}
}

// A retry starts only once the previous attempt's processes are gone.
func TestE2EContainRetryLeftovers(t *testing.T) {
	for _, mode := range containments(t) {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			// Each attempt records a clash if the previous attempt's sleep still lives (a
			// zombie waiting for its parent to reap it is dead).
			script := fmt.Sprintf(`st=; [ -e %[1]s/pid ] && st=$(cut -d' ' -f3 "/proc/$(cat %[1]s/pid)/stat" 2>/dev/null); if [ -n "$st" ] && [ "$st" != Z ]; then echo "$GORUN_ATTEMPT" >> %[1]s/clash; fi; sleep 300 >/dev/null 2>&1 & echo $! > %[1]s/pid; exit 1`, dir)
			tasks := writeFile(t, "t.yaml", fmt.Sprintf("version: 1\ntasks:\n  - id: flaky\n    run: %q\n    retries: 3\n    retry_delay: 1ms\n", script))
			r := startGorun(t, nil, "exec", tasks, "-o", "jsonl", "--containment", mode)
			if code := r.wait(t, 30*time.Second); code != 1 {
				t.Errorf("got exit %d, want 1", code)
			}
			if got := jsonResults(t, r.stdout.String())["flaky"].Attempts; got != 4 {
				t.Errorf("got %d attempts, want 4", got)
			}
			if clash, err := os.ReadFile(filepath.Join(dir, "clash")); err == nil {
				t.Errorf("attempts %q started while the previous attempt's process lived, want none", clash)
			}
			testutil.NoSurvivors(t, r.mark)
		})
	}
}

// SIGKILL of gorun: the guard ends every task process, those that left their session
// and those that cleared their environment (with cgroups) included.
func TestE2EContainKilledGorun(t *testing.T) {
	dir := t.TempDir()
	arg := strconv.FormatInt(300000+time.Now().UnixNano()%100000, 10) + ".5" // unique: env -i hides the mark
	tasks := writeFile(t, "t.yaml", fmt.Sprintf(`version: 1
tasks:
  - run: "setsid sleep 300 & touch %[1]s/started-1; wait"
  - run: "env -i /bin/sleep %[2]s & touch %[1]s/started-2; wait"
`, dir, arg))
	r := startGorun(t, nil, "exec", tasks, "-j", "2")
	waitFor(t, 20*time.Second, "both tasks to start", func() bool { return countStarted(dir) == 2 })
	waitFor(t, 5*time.Second, "the escapees to run", func() bool {
		return len(testutil.ArgSurvivors(t, arg)) == 1 && len(testutil.Survivors(t, r.mark)) >= 3
	})
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	r.wait(t, 10*time.Second)
	testutil.NoSurvivors(t, r.mark)
	if !cgroupsWork(t) {
		for _, pid := range testutil.ArgSurvivors(t, arg) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		t.Skip("no cgroups here: a process that clears its environment and leaves its group is out of the guard's reach")
	}
	testutil.NoArgSurvivors(t, arg)
}

// As PID 1 of a PID namespace (a container), gorun reaps the orphans that reach it.
func TestE2EContainPID1ReapsOrphans(t *testing.T) {
	if err := exec.Command("unshare", "-fp", "--mount-proc", "true").Run(); err != nil {
		t.Skipf("cannot make a PID namespace here (unshare -fp --mount-proc: %v)", err)
	}
	// 300 tasks that each leave an orphan behind, then, on one worker so that it runs
	// last, a task that counts the zombies in the namespace once the orphans are gone.
	var in strings.Builder
	for range 300 {
		in.WriteString("(sleep 0.05 &)\n")
	}
	in.WriteString(`for i in $(seq 100); do z=0; s=0; for f in /proc/[0-9]*/stat; do read -r _ c st _ < "$f" 2>/dev/null || continue; [ "$st" = Z ] && z=$((z+1)); [ "$c" = "(sleep)" ] && s=$((s+1)); done; [ $z -eq 0 ] && [ $s -eq 0 ] && break; sleep 0.05; done; echo "zombies=$z sleeping=$s"` + "\n")
	for _, mode := range []string{"auto", "subreaper", "process-group"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command("unshare", "-fp", "--mount-proc", gorunBin, "exec", "-j", "1", "--containment", mode, "-o", "line", "-")
			cmd.Stdin = strings.NewReader(in.String())
			cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir())
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("gorun as PID 1: %v; stderr: %s", err, err.(*exec.ExitError).Stderr)
			}
			if got := strings.TrimSpace(string(out)); got != "zombies=0 sleeping=0" {
				t.Errorf("got %q, want zombies=0 sleeping=0", got)
			}
		})
	}
}

// SIGHUP (the terminal closed) stops a run as SIGTERM does: summary, report, 129.
func TestE2ESIGHUP(t *testing.T) {
	dir := t.TempDir()
	tasks := writeFile(t, "t.yaml", fmt.Sprintf("version: 1\ntasks:\n  - {id: a, run: 'touch %[1]s/started-a; sleep 30'}\n  - {id: b, run: 'touch %[1]s/started-b; sleep 30'}\n  - {id: c, run: 'sleep 30'}\n", dir))
	report := filepath.Join(dir, "report.json")
	r := startGorun(t, nil, "exec", tasks, "-j", "2", "--report", report)
	waitFor(t, 20*time.Second, "two tasks to start", func() bool { return countStarted(dir) == 2 })
	_ = r.cmd.Process.Signal(syscall.SIGHUP)
	if code := r.wait(t, 20*time.Second); code != 129 {
		t.Errorf("got exit %d, want 129", code)
	}
	if got := r.stderr.String(); !strings.Contains(got, "2 cancelled, 1 skipped") {
		t.Errorf("summary %q, want 2 cancelled and 1 skipped", got)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("report not written: %v", err)
	}
	var rep struct {
		Totals struct{ Tasks int } `json:"totals"`
	}
	if err := json.Unmarshal(b, &rep); err != nil || rep.Totals.Tasks != 3 {
		t.Errorf("report %s: got %d tasks (%v), want 3", b, rep.Totals.Tasks, err)
	}
	testutil.NoSurvivors(t, r.mark)
}
