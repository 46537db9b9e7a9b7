//go:build linux

package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/testutil"
)

// gorunBin is the gorun binary the end-to-end tests run, built once by TestMain.
var gorunBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gorun-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gorunBin = filepath.Join(dir, "gorun")
	build := exec.Command("go", "build", "-o", gorunBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as make build does
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build gorun:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is a buffer that the test reads while gorun writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// gorunRun is one gorun process under test.
type gorunRun struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	mark           string
	done           chan struct{}
	exit           int
}

// startGorun starts gorun with args; stdin may be nil. Every process it starts carries
// the run's mark in its environment.
func startGorun(t *testing.T, stdin io.Reader, args ...string) *gorunRun {
	t.Helper()
	return startGorunIn(t, "", stdin, args...)
}

// startGorunIn is startGorun in the working directory dir ("": the test's).
func startGorunIn(t *testing.T, dir string, stdin io.Reader, args ...string) *gorunRun {
	t.Helper()
	r := &gorunRun{stdout: &syncBuffer{}, stderr: &syncBuffer{}, mark: testutil.NewMark(t), done: make(chan struct{})}
	r.cmd = exec.Command(gorunBin, args...)
	r.cmd.Dir = dir
	r.cmd.Env = append(os.Environ(), testutil.MarkVar+"="+r.mark, "XDG_CONFIG_HOME="+t.TempDir())
	r.cmd.Stdin = stdin
	r.cmd.Stdout, r.cmd.Stderr = r.stdout, r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = r.cmd.Wait()
		r.exit = r.cmd.ProcessState.ExitCode()
		if ws, ok := r.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.exit = 128 + int(ws.Signal())
		}
		close(r.done)
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		<-r.done
	})
	return r
}

// wait returns gorun's exit code, failing the test if it runs past limit.
func (r *gorunRun) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-r.done:
		return r.exit
	case <-time.After(limit):
		t.Fatalf("gorun still running after %v; stderr:\n%s", limit, r.stderr.String())
		return -1
	}
}

// waitFor polls until cond holds, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out after %v waiting for %s", limit, what)
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// countStarted counts the marker files tasks create in dir as they start.
func countStarted(dir string) int {
	m, _ := filepath.Glob(filepath.Join(dir, "started-*"))
	return len(m)
}

func TestE2EExitCodes(t *testing.T) {
	dir := t.TempDir()
	ok := writeFile(t, "ok.yaml", "version: 1\ntasks:\n  - run: echo one\n  - cmd: [echo, two]\n")
	failing := writeFile(t, "fail.yaml", "version: 1\ntasks:\n  - run: 'true'\n  - id: broken\n    run: echo sad >&2; exit 4\n")
	bad := writeFile(t, "bad.yaml", fmt.Sprintf("version: 1\ntasks:\n  - run: touch %s/ran\n  - id: x\n    run: 'true'\n    timout: 3s\n", dir))

	r := startGorun(t, nil, "exec", ok)
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Errorf("all succeed: got exit %d, want 0; stderr:\n%s", code, r.stderr)
	}
	if got := r.stdout.String(); !strings.Contains(got, "one\n") || !strings.Contains(got, "two\n") {
		t.Errorf("stdout %q, want both tasks' output", got)
	}

	r = startGorun(t, nil, "exec", failing)
	if code := r.wait(t, 30*time.Second); code != 1 {
		t.Errorf("one fails: got exit %d, want 1", code)
	}
	if got := r.stderr.String(); !strings.Contains(got, "broken  failed  exit 4") || !strings.Contains(got, "sad") {
		t.Errorf("summary %q, want the failed task with its exit code and last stderr line", got)
	}

	r = startGorun(t, nil, "exec", bad)
	if code := r.wait(t, 30*time.Second); code != 2 {
		t.Errorf("bad file: got exit %d, want 2", code)
	}
	want := bad + `:6:5: unknown key "timout"`
	if got := strings.TrimSpace(r.stderr.String()); got != "gorun: "+want {
		t.Errorf("bad file: stderr %q, want the one line %q", got, "gorun: "+want)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("a task ran although the file was bad")
	}

	r = startGorun(t, nil, "exec", "--workers", "zero", ok)
	if code := r.wait(t, 30*time.Second); code != 2 {
		t.Errorf("bad flag: got exit %d, want 2", code)
	}
}

func TestE2ETimeoutKillsGrandchildren(t *testing.T) {
	tasks := writeFile(t, "t.yaml", "version: 1\ntasks:\n  - id: sleepy\n    run: sleep 30 & sleep 30 & wait\n    timeout: 300ms\n")
	start := time.Now()
	r := startGorun(t, nil, "exec", tasks, "--grace", "5s")
	if code := r.wait(t, 30*time.Second); code != 1 {
		t.Errorf("got exit %d, want 1", code)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("took %v, want about the 300ms timeout", took)
	}
	if got := r.stderr.String(); !strings.Contains(got, "sleepy  timed_out  SIGTERM") {
		t.Errorf("summary %q, want sleepy timed out by SIGTERM", got)
	}
	testutil.NoSurvivors(t, r.mark)
}

func TestE2EGraceThenSIGKILL(t *testing.T) {
	tasks := writeFile(t, "t.yaml", "version: 1\ntasks:\n  - id: stubborn\n    run: trap '' TERM; sleep 30 & wait\n")
	start := time.Now()
	r := startGorun(t, nil, "exec", tasks, "-t", "200ms", "--grace", "700ms")
	if code := r.wait(t, 30*time.Second); code != 1 {
		t.Errorf("got exit %d, want 1", code)
	}
	if took := time.Since(start); took < 850*time.Millisecond || took > 8*time.Second {
		t.Errorf("took %v, want timeout 200ms + grace 700ms", took)
	}
	if got := r.stderr.String(); !strings.Contains(got, "stubborn  timed_out  SIGKILL") {
		t.Errorf("summary %q, want stubborn timed out by SIGKILL", got)
	}
	testutil.NoSurvivors(t, r.mark)
}

func TestE2EInterrupt(t *testing.T) {
	for _, tt := range []struct {
		sig  syscall.Signal
		exit int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tt.sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			task := fmt.Sprintf("    run: touch %s/started-$GORUN_TASK_ID; sleep 30 & wait\n", dir)
			var b strings.Builder
			b.WriteString("version: 1\ntasks:\n")
			for i := 1; i <= 5; i++ {
				fmt.Fprintf(&b, "  - id: t%d\n%s", i, task)
			}
			tasks := writeFile(t, "t.yaml", b.String())
			r := startGorun(t, nil, "exec", tasks, "-j", "2", "--grace", "2s")
			waitFor(t, 20*time.Second, "two tasks to start", func() bool { return countStarted(dir) == 2 })
			_ = r.cmd.Process.Signal(tt.sig)
			if code := r.wait(t, 20*time.Second); code != tt.exit {
				t.Errorf("got exit %d, want %d", code, tt.exit)
			}
			got := r.stderr.String()
			if !strings.Contains(got, "0 succeeded, 0 failed, 0 timed out, 2 cancelled, 3 skipped") {
				t.Errorf("summary %q, want 2 cancelled and 3 skipped", got)
			}
			if countStarted(dir) != 2 {
				t.Errorf("%d tasks started, want no new start after the signal", countStarted(dir))
			}
			testutil.NoSurvivors(t, r.mark)
		})
	}
}

func TestE2ESecondInterruptKillsAtOnce(t *testing.T) {
	dir := t.TempDir()
	tasks := writeFile(t, "t.yaml", fmt.Sprintf("version: 1\ntasks:\n  - run: trap '' TERM; touch %s/started-1; sleep 60\n", dir))
	r := startGorun(t, nil, "exec", tasks, "--grace", "60s")
	waitFor(t, 20*time.Second, "the task to start", func() bool { return countStarted(dir) == 1 })
	_ = r.cmd.Process.Signal(syscall.SIGINT)
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	_ = r.cmd.Process.Signal(syscall.SIGINT)
	if code := r.wait(t, 20*time.Second); code != 130 {
		t.Errorf("got exit %d, want 130", code)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("second interrupt took %v to end the run, want at once (grace is 60s)", took)
	}
	if got := r.stderr.String(); !strings.Contains(got, "1 cancelled") || !strings.Contains(got, "SIGKILL") {
		t.Errorf("summary %q, want the task cancelled by SIGKILL", got)
	}
	testutil.NoSurvivors(t, r.mark)
}

func TestE2EKilledGorunLeavesNoOrphans(t *testing.T) {
	dir := t.TempDir()
	task := fmt.Sprintf("  - run: touch %s/started-$GORUN_TASK_ID; sleep 60 & sleep 60; echo\n", dir)
	tasks := writeFile(t, "t.yaml", "version: 1\ntasks:\n"+strings.Repeat(task, 3))
	r := startGorun(t, nil, "exec", tasks, "-j", "3")
	waitFor(t, 20*time.Second, "three tasks to start", func() bool { return countStarted(dir) == 3 })
	time.Sleep(100 * time.Millisecond) // let the shells fork their sleeps
	if n := len(testutil.Survivors(t, r.mark)); n < 9 {
		t.Fatalf("found %d marked processes before the kill, want at least 9 (the check would prove nothing)", n)
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	r.wait(t, 10*time.Second)
	testutil.NoSurvivors(t, r.mark)
}

func TestE2ERateLimit(t *testing.T) {
	input := strings.Repeat("true\n", 20)
	start := time.Now()
	r := startGorun(t, strings.NewReader(input), "exec", "-", "--rate", "10/s", "-j", "4")
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("got exit %d, want 0; stderr:\n%s", code, r.stderr)
	}
	if took := time.Since(start); took < 1900*time.Millisecond {
		t.Errorf("20 tasks at 10/s took %v, want at least 1.9s", took)
	}
	if got := r.stderr.String(); !strings.Contains(got, "gorun: 20 tasks") {
		t.Errorf("summary %q, want 20 tasks", got)
	}
}

func TestE2EStreamsStdin(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	r := startGorun(t, pr, "exec")
	if _, err := io.WriteString(pw, "echo first-line-done\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the first task's output while stdin is open", func() bool {
		return strings.Contains(r.stdout.String(), "first-line-done")
	})
	_, _ = io.WriteString(pw, "echo second\n")
	pw.Close()
	if code := r.wait(t, 20*time.Second); code != 0 {
		t.Errorf("got exit %d, want 0", code)
	}
	if !strings.Contains(r.stdout.String(), "second") {
		t.Errorf("stdout %q, want the second task's output", r.stdout.String())
	}
}

func TestE2EWorkersBound(t *testing.T) {
	dir := t.TempDir()
	// Each task records how many tasks run alongside it.
	line := fmt.Sprintf(`mkdir -p %[1]s/run; touch %[1]s/run/$GORUN_TASK_ID; ls %[1]s/run | wc -l >> %[1]s/counts; sleep 0.1; rm %[1]s/run/$GORUN_TASK_ID`, dir)
	r := startGorun(t, strings.NewReader(strings.Repeat(line+"\n", 24)), "exec", "-j", "3")
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("got exit %d, want 0; stderr:\n%s", code, r.stderr)
	}
	data, err := os.ReadFile(filepath.Join(dir, "counts"))
	if err != nil {
		t.Fatal(err)
	}
	most := 0
	for _, f := range strings.Fields(string(data)) {
		var n int
		fmt.Sscan(f, &n)
		most = max(most, n)
	}
	if most > 3 || most < 2 {
		t.Errorf("at most %d tasks ran at once, want up to 3 and never more", most)
	}
}

// TestE2ECPUProfileOnFailure: --cpuprofile writes a complete profile whatever the
// exit code.
func TestE2ECPUProfileOnFailure(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, "bad.yaml", "version: 1\ntasks:\n  - rn: x\n")
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"exec", "--", "false"}, 1},
		{[]string{"exec", bad}, 2},
		{[]string{"validate", bad}, 2},
	} {
		prof := filepath.Join(dir, "cpu.pprof")
		args := append([]string{"--cpuprofile", prof}, tt.args...)
		var stdin io.Reader = strings.NewReader("x\n")
		r := startGorun(t, stdin, args...)
		if code := r.wait(t, 30*time.Second); code != tt.code {
			t.Errorf("%v: got exit %d, want %d", tt.args, code, tt.code)
		}
		data, err := os.ReadFile(prof)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err == nil {
			_, err = io.Copy(io.Discard, zr)
		}
		if err != nil {
			t.Errorf("%v: the profile (%d bytes) is not complete: %v", tt.args, len(data), err)
		}
		os.Remove(prof)
	}
}
