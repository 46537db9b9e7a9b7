//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/testutil"
)

// startBroker starts `gorun broker` on a free loopback port and returns its URL.
func startBroker(t *testing.T) string {
	t.Helper()
	return startBrokerAt(t, t.TempDir(), "127.0.0.1:0").URL
}

// startWorker starts `gorun worker` with a short ack wait; every process it starts
// carries mark.
func startWorker(t *testing.T, url, mark string, slots int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(gorunBin, "worker", "--broker", url, "-j", fmt.Sprint(slots), "--grace", "1s", "-v")
	cmd.Env = append(os.Environ(), testutil.MarkVar+"="+mark)
	log := &syncBuffer{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Ready once it has announced its slots: a run submitted then counts them.
	waitFor(t, 30*time.Second, "the worker's ready line", func() bool { return strings.Contains(log.String(), "worker ready") })
	return cmd
}

func TestE2EDistributedWorkerKilled(t *testing.T) {
	url := startBroker(t)
	mark := testutil.NewMark(t)
	dir := t.TempDir()
	w1 := startWorker(t, url, mark, 4)
	startWorker(t, url, mark, 4)
	var b strings.Builder
	b.WriteString("version: 1\ntasks:\n")
	for i := 1; i <= 200; i++ {
		fmt.Fprintf(&b, "  - id: t%d\n    run: sleep 0.05; echo t%d >> %s/ran; [ %d -ne 7 ]\n", i, i, dir, i)
	}
	tasks := writeFile(t, "t.yaml", b.String())
	r := startGorun(t, nil, "exec", tasks, "--broker", url, "--ack-wait", "2s", "-o", "jsonl")
	// Kill one worker with SIGKILL once the run is well under way.
	waitFor(t, 30*time.Second, "50 tasks to run", func() bool {
		data, _ := os.ReadFile(filepath.Join(dir, "ran"))
		return strings.Count(string(data), "\n") >= 50
	})
	_ = w1.Process.Signal(syscall.SIGKILL)
	if code := r.wait(t, 90*time.Second); code != 1 {
		t.Errorf("got exit %d, want 1 (task t7 fails); stderr:\n%s", code, r.stderr)
	}
	res := jsonlResults(t, r.stdout.String())
	lines := strings.Count(r.stdout.String(), "\n")
	if len(res) != 200 || lines != 200 {
		t.Fatalf("got %d results in %d lines, want each of the 200 tasks reported exactly once", len(res), lines)
	}
	for id, x := range res {
		want := "succeeded"
		if id == "t7" {
			want = "failed"
		}
		if string(x.Status) != want {
			t.Errorf("%s: %s, want %s", id, x.Status, want)
		}
	}
	if !strings.Contains(r.stderr.String(), "199 succeeded, 1 failed") {
		t.Errorf("summary: %s", r.stderr)
	}
}

func TestE2EDistributedInterrupt(t *testing.T) {
	url := startBroker(t)
	mark := testutil.NewMark(t)
	dir := t.TempDir()
	startWorker(t, url, mark, 2)
	startWorker(t, url, mark, 2)
	r := startGorun(t, strings.NewReader(strings.Repeat(fmt.Sprintf("touch %s/started-$GORUN_TASK_ID-$$; sleep 60\n", dir), 20)),
		"exec", "-", "--broker", url, "--ack-wait", "2s", "--grace", "1s")
	waitFor(t, 30*time.Second, "four tasks to start", func() bool { return countStarted(dir) >= 4 })
	_ = r.cmd.Process.Signal(syscall.SIGINT)
	if code := r.wait(t, 30*time.Second); code != 130 {
		t.Errorf("got exit %d, want 130; stderr:\n%s", code, r.stderr)
	}
	if got := r.stderr.String(); !strings.Contains(got, "4 cancelled, 16 skipped") {
		t.Errorf("summary %q, want 4 cancelled and 16 skipped", got)
	}
	// No task process survives on any worker: the workers carry the mark.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if n := countTaskProcs(t, mark); n == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := countTaskProcs(t, mark); n != 0 {
		t.Errorf("%d task processes survive on the workers", n)
	}
	if n := countStarted(dir); n != 4 {
		t.Errorf("%d tasks started in all, want no start after the interrupt", n)
	}
}

// countTaskProcs counts living processes with the mark other than the workers
// themselves (whose command line starts with the gorun binary).
func countTaskProcs(t *testing.T, mark string) int {
	n := 0
	for _, pid := range testutil.Survivors(t, mark) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if !strings.HasPrefix(string(cmdline), gorunBin) {
			n++
		}
	}
	return n
}

func TestE2EDistributedThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	url := startBroker(t)
	// cmd tasks: one process each, so that the two cores are not the limit.
	input := strings.Repeat(`{"cmd": ["sleep", "0.05"]}`+"\n", 200)
	timeRun := func() time.Duration {
		start := time.Now()
		r := startGorun(t, strings.NewReader(input), "exec", "--format", "jsonl", "-", "--broker", url, "--ack-wait", "2s", "-o", "none")
		if code := r.wait(t, 120*time.Second); code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, r.stderr)
		}
		return time.Since(start)
	}
	mark := testutil.NewMark(t)
	one := startWorker(t, url, mark, 1)
	single := timeRun()
	_ = one.Process.Signal(syscall.SIGTERM)
	_ = one.Wait()
	for range 4 {
		startWorker(t, url, mark, 4)
	}
	many := timeRun()
	t.Logf("200 tasks of sleep 0.05: 1 worker -j 1 %v, 4 workers -j 4 %v: %.1fx", single, many, float64(single)/float64(many))
	if float64(single)/float64(many) < 4 { // 10.5x measured on 1,000 tasks (docs/benchmarks.md); CI is noisy
		t.Errorf("4 workers of 4 slots were only %.1fx faster than one of 1, want far more", float64(single)/float64(many))
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestE2EDistributedBrokerRestart(t *testing.T) {
	store := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startAt := func() *brokerProc { return startBrokerAt(t, store, listen) }
	b := startAt()
	url := "nats://" + listen
	// Submit 50 tasks with no worker yet: they wait in the broker's store.
	r := startGorun(t, strings.NewReader(strings.Repeat("echo done\n", 50)), "exec", "-", "--broker", url, "--ack-wait", "2s", "-o", "none")
	time.Sleep(time.Second)
	b.kill()
	startAt() // the same store
	startWorker(t, url, testutil.NewMark(t), 4)
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, r.stderr)
	}
	if got := r.stderr.String(); !strings.Contains(got, "gorun: 50 tasks") || !strings.Contains(got, "50 succeeded") {
		t.Errorf("summary %q, want all 50 tasks run after the broker's restart", got)
	}
}

func TestE2EDistributedWorkerDrains(t *testing.T) {
	url := startBroker(t)
	mark := testutil.NewMark(t)
	dir := t.TempDir()
	a := exec.Command(gorunBin, "worker", "--broker", url, "-j", "2", "--ack-wait", "2s", "--grace", "500ms")
	a.Env = append(os.Environ(), testutil.MarkVar+"="+mark)
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Process.Kill(); _ = a.Wait() }()
	line := fmt.Sprintf("touch %s/started-$GORUN_TASK_ID-$GORUN_ATTEMPT; sleep 3; echo ok\n", dir)
	r := startGorun(t, strings.NewReader(line+line), "exec", "-", "--broker", url, "--ack-wait", "2s", "-o", "jsonl")
	waitFor(t, 20*time.Second, "both tasks to start on worker A", func() bool { return countStarted(dir) == 2 })
	_ = a.Process.Signal(syscall.SIGINT)
	drained := make(chan error, 1)
	go func() { drained <- a.Wait() }()
	select {
	case err := <-drained:
		if err != nil {
			t.Errorf("worker A after SIGINT: %v, want a clean exit", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("worker A did not drain within 10s (grace 500ms)")
	}
	// The tasks A handed back run on B.
	startWorker(t, url, mark, 2)
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, r.stderr)
	}
	for id, res := range jsonlResults(t, r.stdout.String()) {
		if res.Status != "succeeded" || res.Attempts < 2 {
			t.Errorf("%s: %s after %d attempts, want succeeded on a second delivery", id, res.Status, res.Attempts)
		}
	}
}

// A task's timeout counts from its start on a worker, not while it waits in the queue.
func TestE2EDistributedTimeoutCountsFromStart(t *testing.T) {
	url := startBroker(t)
	startWorker(t, url, testutil.NewMark(t), 1)
	// Three tasks of 0.8 s on one slot, all in flight at once: the last waits 1.6 s in
	// the queue, more than its 1.2 s timeout, and still has the whole of it to run.
	tasks := writeFile(t, "t.yaml", "version: 1\ndefaults: {timeout: 1200ms}\ntasks:\n  - run: sleep 0.8\n  - run: sleep 0.8\n  - run: sleep 0.8\n")
	r := startGorun(t, nil, "exec", tasks, "--broker", url, "--workers", "3", "-o", "none")
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Errorf("got exit %d, want 0 (no task ran past its timeout); stderr:\n%s", code, r.stderr)
	}
	// And a task that does run past it is stopped and timed out.
	slow := writeFile(t, "s.yaml", "version: 1\ntasks:\n  - {run: sleep 30, timeout: 500ms}\n")
	r = startGorun(t, nil, "exec", slow, "--broker", url, "--grace", "1s")
	if code := r.wait(t, 30*time.Second); code != 1 || !strings.Contains(r.stderr.String(), "timed_out") {
		t.Errorf("got exit %d, stderr %q; want 1 and the task timed out", code, r.stderr)
	}
}

// Ctrl-C ends a run within the grace and a second, whatever its standard input is
// doing: here it stays open and silent after one line. Locally and on a broker.
func TestE2EInterruptWithStdinOpen(t *testing.T) {
	url := startBroker(t)
	startWorker(t, url, testutil.NewMark(t), 2)
	for name, args := range map[string][]string{"local": nil, "broker": {"--broker", url}} {
		t.Run(name, func(t *testing.T) {
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pw.Close()
			r := startGorun(t, pr, append([]string{"exec", "-", "-o", "line", "--grace", "1s"}, args...)...)
			pr.Close()
			if _, err := pw.WriteString("echo hi\n"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 30*time.Second, "the first task's output", func() bool { return strings.Contains(r.stdout.String(), "hi") })
			start := time.Now()
			_ = r.cmd.Process.Signal(syscall.SIGINT)
			if code := r.wait(t, 30*time.Second); code != 130 {
				t.Errorf("got exit %d, want 130", code)
			}
			if took := time.Since(start); took > 4*time.Second { // grace 1s + 1s, and a margin for a loaded machine
				t.Errorf("exited %v after SIGINT with stdin open, want within the grace and a second", took)
			}
		})
	}
}
