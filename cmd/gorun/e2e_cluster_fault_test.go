//go:build linux

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/testutil"
)

// Fault tests of runs on a broker: what a user must be able to count on when the
// broker stalls or dies, when a task prints a lot, and when clients disagree about
// timing. They drive only the built binary: `gorun broker`, `gorun worker` and
// `gorun exec --broker`.

// guardedTask is a task body that records every execution of the task in
// DIR/exec-ID (one line holding $GORUN_ATTEMPT) and holds an exclusive lock on
// DIR/lock-ID while it runs; an execution that finds the lock taken (another
// execution of the same task is running) records a clash in DIR/clash-ID.
func guardedTask(dir, body string) string {
	return fmt.Sprintf(`exec 9>>%[1]s/lock-$GORUN_TASK_ID; flock -n 9 || echo "attempt $GORUN_ATTEMPT" >> %[1]s/clash-$GORUN_TASK_ID; echo "$GORUN_ATTEMPT" >> %[1]s/exec-$GORUN_TASK_ID; %[2]s`, dir, body)
}

func needFlock(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) is not installed: cannot tell two executions of a task at the same moment")
	}
}

// taskFile writes a task file of n tasks t1…tn, each running run(id).
func taskFile(t *testing.T, n int, run func(id string) string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("version: 1\ntasks:\n")
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("t%d", i)
		fmt.Fprintf(&b, "  - id: %s\n    run: %q\n", id, run(id))
	}
	return writeFile(t, "tasks.yaml", b.String())
}

// executions returns the $GORUN_ATTEMPT of each recorded execution of task id, in
// the order they started.
func executions(t *testing.T, dir, id string) []int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "exec-"+id))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, f := range strings.Fields(string(data)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("task %s recorded GORUN_ATTEMPT %q, want a number", id, f)
		}
		out = append(out, n)
	}
	return out
}

// countExecuted counts the tasks that recorded at least one execution in dir.
func countExecuted(dir string) int {
	m, _ := filepath.Glob(filepath.Join(dir, "exec-*"))
	return len(m)
}

// reportResults reads a JSON report and returns its results by task id.
func reportResults(t *testing.T, path string) map[string]map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	_, results := normaliseReport(t, data, filepath.Dir(path))
	byID := map[string]map[string]any{}
	for _, r := range results {
		byID[fmt.Sprint(r["id"])] = r
	}
	return byID
}

// checkExecutions checks, for each of the n tasks of a run that wrote report, that it
// succeeded, never ran twice at the same moment, that every execution is counted in
// its attempts, and that each execution saw its own attempt number (1, 2, …). It
// returns how many executions were re-executions.
func checkExecutions(t *testing.T, what, dir, report string, n int) int {
	t.Helper()
	res := reportResults(t, report)
	if len(res) != n {
		t.Errorf("%s: got %d results in the report, want %d", what, len(res), n)
	}
	again := 0
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("t%d", i)
		execs := executions(t, dir, id)
		if len(execs) == 0 {
			t.Errorf("%s: task %s: never executed", what, id)
			continue
		}
		again += len(execs) - 1
		if clash, err := os.ReadFile(filepath.Join(dir, "clash-"+id)); err == nil {
			t.Errorf("%s: task %s ran twice at the same moment: an execution found the lock taken (%s); executions saw GORUN_ATTEMPT %v",
				what, id, strings.TrimSpace(strings.ReplaceAll(string(clash), "\n", ", ")), execs)
		}
		r, ok := res[id]
		if !ok {
			t.Errorf("%s: task %s: no result in the report", what, id)
			continue
		}
		if r["status"] != "succeeded" {
			t.Errorf("%s: task %s: got status %v (error %v), want succeeded", what, id, r["status"], r["error"])
		}
		if got := fmt.Sprint(r["attempts"]); got != strconv.Itoa(len(execs)) {
			t.Errorf("%s: task %s: got attempts %s in the report, want %d (it executed %d times, GORUN_ATTEMPT %v)", what, id, got, len(execs), len(execs), execs)
		}
		for k, a := range execs {
			if a != k+1 {
				t.Errorf("%s: task %s: execution %d saw GORUN_ATTEMPT=%d, want %d (all: %v)", what, id, k+1, a, k+1, execs)
			}
		}
	}
	return again
}

// TestE2EClusterBrokerFrozen freezes the broker (SIGSTOP) for three ack waits while
// tasks of 8 s run, then resumes it: no task may run twice at the same moment, and
// every execution must be counted in its attempts.
func TestE2EClusterBrokerFrozen(t *testing.T) {
	needFlock(t)
	const ackWait = 2 * time.Second
	cl := startCluster(t, 2, "-j", "2", "--ack-wait", ackWait.String(), "--grace", "1s")
	dir := t.TempDir()
	tasks := taskFile(t, 4, func(string) string { return guardedTask(dir, "sleep 8") })
	report := filepath.Join(dir, "report.json")
	r := startGorun(t, nil, "exec", tasks, "-j", "4", "--broker", cl.URL, "--ack-wait", ackWait.String(), "--grace", "1s", "--report", report)
	waitFor(t, 60*time.Second, "the 4 tasks to start", func() bool { return countExecuted(dir) == 4 })
	if err := cl.Broker.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Skipf("cannot stop the broker: %v", err)
	}
	// The fault itself, not a synchronisation: the broker stays frozen for three ack
	// waits while the tasks run on.
	time.Sleep(3 * ackWait)
	if err := cl.Broker.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, 120*time.Second); code != 0 {
		t.Errorf("frozen broker: got exit %d, want 0; stderr:\n%s", code, r.stderr)
	}
	again := checkExecutions(t, "frozen broker", dir, report, 4)
	t.Logf("frozen broker: %d re-executions", again)
	if t.Failed() {
		t.Log(cl.workerLogs())
	}
}

// hashWriter hashes and counts what is written to it, keeping nothing.
type hashWriter struct {
	h hash.Hash
	n int64
}

func (w *hashWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

// TestE2EClusterOneGiB runs a remote task that prints 1 GiB: it must arrive
// byte-exact on the submitter's stdout, and neither the submitter nor the worker may
// pass 64 MiB of resident memory.
func TestE2EClusterOneGiB(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB through the broker: not in -short")
	}
	const size = 1 << 30
	const limit = 64 << 20
	// head -c 1073741824 /dev/zero | sha256sum
	const want = "49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14"
	cl := startCluster(t, 1, "-j", "1")
	dir := t.TempDir()
	tasks := writeFile(t, "big.yaml", fmt.Sprintf("version: 1\ntasks:\n  - id: big\n    run: echo $GORUN_ATTEMPT >> %s/exec-big; head -c %d /dev/zero\n", dir, size))
	got := &hashWriter{h: sha256.New()}
	stderr := &syncBuffer{}
	cmd := exec.Command(gorunBin, "exec", tasks, "--broker", cl.URL, "--progress", "never")
	cmd.Env = append(os.Environ(), testutil.MarkVar+"="+testutil.NewMark(t), "XDG_CONFIG_HOME="+t.TempDir())
	cmd.Stdout, cmd.Stderr = got, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	subRSS := testutil.WatchRSS(cmd.Process.Pid)
	workerRSS := testutil.WatchRSS(cl.Workers[0].Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	start := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("1 GiB task: gorun: %v, want exit 0; stderr:\n%s", err, stderr)
		}
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Errorf("1 GiB task: gorun still running after 3m (%d bytes arrived, the task ran %d times), want it done; stderr:\n%s",
			got.n, len(executions(t, dir, "big")), stderr)
	}
	elapsed := time.Since(start)
	sub, worker := subRSS(), workerRSS()
	if got.n != size {
		t.Errorf("1 GiB task: got %d bytes on gorun's stdout, want %d", got.n, size)
	}
	if g := hex.EncodeToString(got.h.Sum(nil)); g != want {
		t.Errorf("1 GiB task: got sha256 %s of gorun's stdout, want %s", g, want)
	}
	if n := len(executions(t, dir, "big")); n != 1 {
		t.Errorf("1 GiB task: ran %d times, want 1", n)
	}
	if sub > limit {
		t.Errorf("1 GiB task: the submitter's peak RSS got %d MiB, want under %d MiB", sub>>20, limit>>20)
	}
	if worker > limit {
		t.Errorf("1 GiB task: the worker's peak RSS got %d MiB, want under %d MiB", worker>>20, limit>>20)
	}
	t.Logf("1 GiB task: %d bytes in %v; peak RSS: submitter %d MiB, worker %d MiB", got.n, elapsed.Round(time.Millisecond), sub>>20, worker>>20)
}

// TestE2EClusterAngleBrackets runs a remote task that prints 300 KB of '<' (a byte
// JSON escapes to six): it must succeed, its output byte-exact, run once.
func TestE2EClusterAngleBrackets(t *testing.T) {
	const size = 300_000
	cl := startCluster(t, 1, "-j", "1", "--ack-wait", "2s")
	dir := t.TempDir()
	tasks := writeFile(t, "lt.yaml", fmt.Sprintf("version: 1\ntasks:\n  - id: lt\n    run: echo $GORUN_ATTEMPT >> %s/exec-lt; head -c %d /dev/zero | tr '\\0' '<'\n", dir, size))
	report := filepath.Join(dir, "report.json")
	r := startGorun(t, nil, "exec", tasks, "--broker", cl.URL, "--ack-wait", "2s", "--report", report)
	select {
	case <-r.done:
	case <-time.After(45 * time.Second):
		n := len(executions(t, dir, "lt"))
		t.Fatalf("300 KB of '<': gorun still running after 45s, want it done in seconds (the task ran %d times); stderr:\n%s", n, r.stderr)
	}
	if r.exit != 0 {
		t.Errorf("300 KB of '<': got exit %d, want 0; stderr:\n%s", r.exit, r.stderr)
	}
	out := r.stdout.String()
	if want := strings.Repeat("<", size); out != want {
		i := 0
		for i < len(out) && i < len(want) && out[i] == want[i] {
			i++
		}
		t.Errorf("300 KB of '<': got %d bytes on stdout, first difference at byte %d; want %d bytes of '<'", len(out), i, size)
	}
	if n := len(executions(t, dir, "lt")); n != 1 {
		t.Errorf("300 KB of '<': the task ran %d times, want 1", n)
	}
	res := reportResults(t, report)["lt"]
	if res["status"] != "succeeded" || fmt.Sprint(res["stdout_bytes"]) != strconv.Itoa(size) {
		t.Errorf("300 KB of '<': got status %v with stdout_bytes %v in the report, want succeeded with %d", res["status"], res["stdout_bytes"], size)
	}
}

// TestE2EClusterAckWaitMismatch runs tasks longer than the smaller of two ack waits,
// the submitter's and the workers', set differently: no task may run twice.
func TestE2EClusterAckWaitMismatch(t *testing.T) {
	needFlock(t)
	for _, tc := range []struct{ name, submitter, worker string }{
		{"submitter-shorter", "2s", "30s"},
		{"worker-shorter", "30s", "2s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cl := startCluster(t, 2, "-j", "2", "--ack-wait", tc.worker, "--grace", "1s")
			dir := t.TempDir()
			// 5 s: more than twice the shorter ack wait, less than a third of the longer.
			tasks := taskFile(t, 4, func(string) string { return guardedTask(dir, "sleep 5") })
			report := filepath.Join(dir, "report.json")
			r := startGorun(t, nil, "exec", tasks, "-j", "4", "--broker", cl.URL, "--ack-wait", tc.submitter, "--grace", "1s", "--report", report)
			if code := r.wait(t, 120*time.Second); code != 0 {
				t.Errorf("ack wait %s on the submitter, %s on the workers: got exit %d, want 0; stderr:\n%s", tc.submitter, tc.worker, code, r.stderr)
			}
			what := fmt.Sprintf("ack wait %s on the submitter, %s on the workers", tc.submitter, tc.worker)
			if again := checkExecutions(t, what, dir, report, 4); again != 0 {
				t.Errorf("%s: got %d duplicate executions, want none", what, again)
			}
		})
	}
}

// TestE2EClusterBrokerKilledAttempts kills the broker (SIGKILL) while tasks run and
// restarts it on the same store: every task must complete, and every re-execution
// must see its true attempt number (GORUN_ATTEMPT ≥ 2), counted in the report.
func TestE2EClusterBrokerKilledAttempts(t *testing.T) {
	needFlock(t)
	cl := startCluster(t, 2, "-j", "2", "--ack-wait", "2s", "--grace", "1s")
	dir := t.TempDir()
	tasks := taskFile(t, 6, func(string) string { return guardedTask(dir, "sleep 3") })
	report := filepath.Join(dir, "report.json")
	r := startGorun(t, nil, "exec", tasks, "-j", "6", "--broker", cl.URL, "--ack-wait", "2s", "--grace", "1s", "--report", report)
	waitFor(t, 60*time.Second, "4 tasks to start", func() bool { return countExecuted(dir) >= 4 })
	cl.Broker.kill()
	cl.restartBroker(t)
	if code := r.wait(t, 120*time.Second); code != 0 {
		t.Errorf("broker killed and restarted: got exit %d, want 0; stderr:\n%s", code, r.stderr)
	}
	again := checkExecutions(t, "broker killed and restarted", dir, report, 6)
	t.Logf("broker killed and restarted: %d re-executions", again)
	if t.Failed() {
		t.Log(cl.workerLogs())
	}
}
