//go:build linux

package process

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/testutil"
)

func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == GuardArg { // this binary as a guard: gorun's main in short
		signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
		last := ""
		for sc := bufio.NewScanner(os.Stdin); sc.Scan(); {
			last = sc.Text()
		}
		if last != GuardBye {
			KillRun(os.Args[2], "")
		}
		os.Exit(0)
	}
	if os.Getenv(argvHelperVar) != "" { // this binary as a program a task line names
		argvHelper()
	}
	os.Exit(m.Run())
}

// runShell runs script as a task with the test's mark in its environment.
func runShell(t *testing.T, r *Runner, timeout time.Duration, script string) (jobs.Attempt, jobs.Status, *Capture, *Capture, string) {
	t.Helper()
	mark := testutil.NewMark(t)
	task := jobs.Task{Index: 7, ID: "probe", Run: script, Shell: jobs.DefaultShell, Env: []string{testutil.MarkVar + "=" + mark}}
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, jobs.ErrTimeout)
		defer cancel()
	}
	stdout, stderr := NewCapture(true), NewCapture(true)
	t.Cleanup(func() { stdout.Close(); stderr.Close() })
	a := r.Run(ctx, &task, 3, 2, stdout, stderr)
	return a, jobs.StatusOf(ctx, a), stdout, stderr, mark
}

func TestRunOutputExitAndEnv(t *testing.T) {
	r := &Runner{Grace: time.Second, BaseEnv: []string{"PATH=" + os.Getenv("PATH"), "KEEP=base"}}
	a, st, out, errOut, _ := runShell(t, r, 0,
		`echo "$GORUN_TASK_ID $GORUN_TASK_INDEX $GORUN_ATTEMPT $GORUN_SLOT $KEEP"; read x; echo "stdin:$x."; echo to-stderr >&2; exit 3`)
	if st != jobs.Failed || a.ExitCode != 3 || a.Signal != 0 {
		t.Errorf("got status %s exit %d signal %v, want failed, exit 3, no signal", st, a.ExitCode, a.Signal)
	}
	if got, want := out.Tail(), "probe 7 2 3 base\nstdin:.\n"; got != want {
		t.Errorf("stdout: got %q, want %q", got, want)
	}
	if got, want := errOut.Tail(), "to-stderr\n"; got != want {
		t.Errorf("stderr: got %q, want %q", got, want)
	}
}

func TestRunOwnProcessGroup(t *testing.T) {
	r := &Runner{Grace: time.Second}
	_, st, out, _, _ := runShell(t, r, 0, `cut -d' ' -f5 /proc/$$/stat; echo $$`)
	f := strings.Fields(out.Tail())
	if st != jobs.Succeeded || len(f) != 2 || f[0] != f[1] {
		t.Errorf("got status %s, pgid and pid %q, want the task to lead its own group", st, f)
	}
	if f[0] == strconv.Itoa(syscall.Getpgrp()) {
		t.Errorf("task shares gorun's process group %s", f[0])
	}
}

func TestTimeoutKillsGrandchildHoldingOutput(t *testing.T) {
	r := &Runner{Grace: 3 * time.Second}
	start := time.Now()
	a, st, _, _, mark := runShell(t, r, 300*time.Millisecond, `echo before; sleep 30 & wait`)
	took := time.Since(start)
	if st != jobs.TimedOut {
		t.Errorf("got status %s, want timed_out", st)
	}
	if took > 2500*time.Millisecond {
		t.Errorf("took %v, want about the 300ms timeout (SIGTERM reaches the whole group)", took)
	}
	if a.Signal != syscall.SIGTERM {
		t.Errorf("got signal %v, want SIGTERM", a.Signal)
	}
	testutil.NoSurvivors(t, mark)
}

func TestTrapTermGetsKilledAfterGrace(t *testing.T) {
	r := &Runner{Grace: 500 * time.Millisecond}
	start := time.Now()
	a, st, out, _, mark := runShell(t, r, 200*time.Millisecond, `trap '' TERM; echo ready; sleep 30; echo never`)
	took := time.Since(start)
	if st != jobs.TimedOut || a.Signal != syscall.SIGKILL {
		t.Errorf("got status %s signal %v, want timed_out by SIGKILL", st, a.Signal)
	}
	if took < 650*time.Millisecond || took > 5*time.Second {
		t.Errorf("took %v, want timeout 200ms + grace 500ms", took)
	}
	if got := out.Tail(); got != "ready\n" {
		t.Errorf("stdout: got %q, want the output printed before the kill", got)
	}
	testutil.NoSurvivors(t, mark)
}

func TestGrandchildIgnoringTermDiesAfterLeaderExits(t *testing.T) {
	r := &Runner{Grace: 400 * time.Millisecond}
	start := time.Now()
	_, st, _, _, mark := runShell(t, r, 200*time.Millisecond, `(trap '' TERM; exec sleep 30) >/dev/null 2>&1 & sleep 30`)
	took := time.Since(start)
	if st != jobs.TimedOut {
		t.Errorf("got status %s, want timed_out", st)
	}
	if took < 550*time.Millisecond {
		t.Errorf("took %v, want the grandchild given its grace before SIGKILL", took)
	}
	testutil.NoSurvivors(t, mark)
}

func TestOutputWithoutNewlineKeptOnKill(t *testing.T) {
	r := &Runner{Grace: 100 * time.Millisecond}
	_, st, out, _, _ := runShell(t, r, 200*time.Millisecond, `printf 'partial line'; sleep 30`)
	if st != jobs.TimedOut || out.Tail() != "partial line" {
		t.Errorf("got status %s stdout %q, want timed_out and %q", st, out.Tail(), "partial line")
	}
}

func TestStartFailure(t *testing.T) {
	r := &Runner{}
	task := jobs.Task{ID: "nodir", Run: "true", Shell: jobs.DefaultShell, Dir: "/nonexistent/dir"}
	a := r.Run(context.Background(), &task, 1, 1, NewCapture(false), NewCapture(false))
	if a.Err == nil || !strings.Contains(a.Err.Error(), "nodir") || jobs.StatusOf(context.Background(), a) != jobs.Failed {
		t.Errorf("got %v, want a failed start naming the task", a.Err)
	}
}

// TestStartAfterTheStop: an attempt whose context ended as it was about to start (the
// run stopped, or the task's time ran out) runs nothing, and ends as stopped by gorun,
// not as a task that failed to start: cancelled, or timed out.
func TestStartAfterTheStop(t *testing.T) {
	r := &Runner{}
	dir := t.TempDir()
	for _, cause := range []error{context.Canceled, jobs.ErrTimeout} {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(cause)
		task := jobs.Task{ID: "late", Run: "touch ran", Shell: jobs.DefaultShell, Dir: dir}
		a := r.Run(ctx, &task, 1, 1, NewCapture(false), NewCapture(false))
		want := jobs.Cancelled
		if cause == jobs.ErrTimeout {
			want = jobs.TimedOut
		}
		if st := jobs.StatusOf(ctx, a); a.Err != nil || !a.Stopped || st != want {
			t.Errorf("cause %v: got %+v (%s), want stopped, %s, without an error", cause, a, st, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("the task ran")
	}
}

func TestKillAllSkipsGrace(t *testing.T) {
	r := &Runner{Grace: 30 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	mark := testutil.NewMark(t)
	task := jobs.Task{ID: "stubborn", Run: `trap '' TERM; sleep 30`, Shell: jobs.DefaultShell, Env: []string{testutil.MarkVar + "=" + mark}}
	done := make(chan jobs.Attempt)
	go func() { done <- r.Run(ctx, &task, 1, 1, NewCapture(false), NewCapture(false)) }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	r.KillAll()
	select {
	case a := <-done:
		if a.Signal != syscall.SIGKILL {
			t.Errorf("got signal %v, want SIGKILL", a.Signal)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("KillAll took %v to end the task, want at once", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("task still running 10s after KillAll")
	}
	testutil.NoSurvivors(t, mark)
}

// startMarked starts `sh -c script` carrying the run id, in a process group of its own.
func startMarked(t *testing.T, runID, mark, script string) chan struct{} {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), GuardVar+"="+runID, testutil.MarkVar+"="+mark)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-done })
	return done
}

// startTestGuard starts a guard (this test binary, see TestMain) under a new id.
func startTestGuard(t *testing.T) (*Guard, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	id := testutil.NewMark(t)
	g, err := StartGuard(exe, id, "")
	if err != nil {
		t.Fatal(err)
	}
	return g, id
}

func TestGuardKillsTheRunWhenGorunDies(t *testing.T) {
	g, runID := startTestGuard(t)
	mark := testutil.NewMark(t)
	done := startMarked(t, runID, mark, "sleep 30 & setsid sleep 30 & sleep 30")
	time.Sleep(200 * time.Millisecond)
	g.w.Close() // what gorun's death does: end-of-file without goodbye
	if err := g.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("guard did not kill the run's processes")
	}
	testutil.NoSurvivors(t, mark)
}

func TestGuardLeavesProcessesAloneAfterGoodbye(t *testing.T) {
	g, runID := startTestGuard(t)
	mark := testutil.NewMark(t)
	startMarked(t, runID, mark, "sleep 30")
	time.Sleep(100 * time.Millisecond)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(testutil.Survivors(t, mark)); n == 0 {
		t.Error("the guard killed a process after a normal end, want it left alone")
	}
}

// A copy whose pipe some escaped process still holds open is abandoned at the
// deadline, and so is every later one: waitCopies returns in time whichever copies
// are still going, and gives up the read ends.
func TestWaitCopiesAbandonsAtTheDeadline(t *testing.T) {
	for _, held := range [][]bool{{true, true}, {false, true}, {true, false}, {false, false}} {
		var copies []*copier
		for _, h := range held {
			c, err := startCopy(NewCapture(false))
			if err != nil {
				t.Fatal(err)
			}
			if !h {
				c.closeWriter() // end-of-file: the copy ends at once
			}
			copies = append(copies, c)
		}
		start := time.Now()
		waitCopies(start.Add(50*time.Millisecond), copies...)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("held %v: waitCopies took %v, want about 50ms", held, took)
		}
		for i, c := range copies {
			select {
			case <-c.done:
			default:
				t.Errorf("held %v: copy %d still running after waitCopies", held, i)
			}
			if err := c.r.Close(); err == nil {
				t.Errorf("held %v: copy %d's read end still open after waitCopies", held, i)
			}
			_ = c.w.Close()
		}
	}
}

// maxAllocsPerTrueTask bounds the allocations of a whole `true` task in Runner.Run,
// os/exec's included (its environment de-duplication, argv and env conversion): the
// simple command's parse, and the look-up in PATH that a run remembers (a search
// would add one allocation per PATH directory before the program's).
const maxAllocsPerTrueTask = 75

// TestAllocsPerTrueTask holds what Runner.Run allocates for a `true` task, started
// directly (with a PATH of twenty directories before the program's) and through the
// shell, under maxAllocsPerTrueTask and 12 KiB.
func TestAllocsPerTrueTask(t *testing.T) {
	var dirs []string
	for range 20 {
		dirs = append(dirs, t.TempDir())
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true program")
	}
	path := strings.Join(append(dirs, filepath.Dir(truePath)), ":")
	for _, always := range []bool{false, true} {
		name := map[bool]string{false: "direct", true: "shell"}[always]
		t.Run(name, func(t *testing.T) {
			r := &Runner{Grace: time.Second, BaseEnv: []string{"PATH=" + path, "HOME=/nonexistent", "LANG=C"}}
			defer r.Close()
			task := jobs.Task{Index: 1, ID: "true", Run: "true", Shell: jobs.DefaultShell, ShellAlways: always}
			run := func() {
				stdout, stderr := NewCapture(false), NewCapture(false)
				if a := r.Run(context.Background(), &task, 1, 1, stdout, stderr); a.ExitCode != 0 {
					t.Fatalf("true: exit %d, %v", a.ExitCode, a.Err)
				}
				_ = stdout.Close()
				_ = stderr.Close()
			}
			run() // warm up: /dev/null, the remembered look-up, buffers
			const n = 200
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for range n {
				run()
			}
			runtime.ReadMemStats(&after)
			allocs := float64(after.Mallocs-before.Mallocs) / n
			bytes := float64(after.TotalAlloc-before.TotalAlloc) / n
			t.Logf("%s: %.1f allocations, %.0f bytes per task", name, allocs, bytes)
			if allocs > maxAllocsPerTrueTask {
				t.Errorf("got %.1f allocations per task, want at most %d", allocs, maxAllocsPerTrueTask)
			}
			if bytes > 12<<10 {
				t.Errorf("got %.0f bytes allocated per task, want at most 12 KiB", bytes)
			}
		})
	}
}
