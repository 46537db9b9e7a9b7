// Package testutil helps tests: it finds the processes a test started (through
// internal/proc, gorun's one reader of /proc), samples their memory, and keeps golden
// files.
package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/proc"
)

// MarkVar is the environment variable a test sets on the processes it starts, so that
// Survivors can find them and their descendants (environments are inherited).
const MarkVar = "GORUN_TEST_MARK"

// NewMark returns a value for MarkVar unique to this test run.
func NewMark(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return t.Name() + "-" + hex.EncodeToString(b)
}

// Survivors returns the pids of living (not zombie) processes whose environment holds
// MarkVar=mark. It reads /proc, so it works on Linux only; elsewhere it skips the test.
func Survivors(t testing.TB, mark string) []int {
	t.Helper()
	return living(t, func(pid int) bool { return proc.EnvHas(pid, MarkVar+"="+mark) })
}

// living returns the pids of the living processes other than this one for which match
// is true. It skips the test where there is no /proc.
func living(t testing.TB, match func(pid int) bool) []int {
	t.Helper()
	all := proc.PIDs()
	if len(all) == 0 {
		t.Skip("no /proc: cannot look for surviving processes")
	}
	var pids []int
	for _, pid := range all {
		if pid != os.Getpid() && match(pid) && proc.Alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// NoSurvivors fails the test if a marked process is still alive after a short while
// (the kernel needs a moment to deliver a SIGKILL), and kills any it finds.
func NoSurvivors(t testing.TB, mark string) {
	t.Helper()
	noneLeft(t, func() []int { return Survivors(t, mark) })
}

// NoArgSurvivors is NoSurvivors for the processes ArgSurvivors finds.
func NoArgSurvivors(t testing.TB, arg string) {
	t.Helper()
	noneLeft(t, func() []int { return ArgSurvivors(t, arg) })
}

func noneLeft(t testing.TB, find func() []int) {
	t.Helper()
	var left []int
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if left = find(); len(left) == 0 {
			return
		}
	}
	for _, pid := range left {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
		}
	}
	t.Errorf("processes survived: %v, want none", describe(left))
}

func describe(pids []int) []string {
	var out []string
	for _, pid := range pids {
		out = append(out, strconv.Itoa(pid)+" "+strings.Join(proc.Cmdline(pid), " "))
	}
	return out
}

// RunWatchingRSS starts cmd and waits for it, and returns its peak resident set size
// (VmHWM, see WatchRSS) sampled while it ran, and the error of its start or its end.
func RunWatchingRSS(cmd *exec.Cmd) (peak int64, err error) {
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	stop := WatchRSS(cmd.Process.Pid)
	err = cmd.Wait()
	return stop(), err
}

// WatchRSS samples the peak resident set size (VmHWM) of process pid every 20 ms
// until stop is called, and stop returns the last peak seen, in bytes. Unlike the
// rusage of wait4, VmHWM counts only the process's own memory since it exec'd: a
// child forked with vfork inherits its parent's peak in ru_maxrss.
func WatchRSS(pid int) (stop func() int64) {
	var peak int64
	done := make(chan struct{})
	finished := make(chan struct{})
	read := func() {
		if hwm, ok := proc.PeakRSS(pid); ok {
			peak = max(peak, hwm)
		}
	}
	go func() {
		defer close(finished)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			read()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		<-finished
		return peak
	}
}

// ArgSurvivors returns the pids of living processes that have arg as one of their
// arguments: for processes that cleared their environment (env -i), which Survivors
// cannot see. Give each such process an argument unique to the test.
func ArgSurvivors(t testing.TB, arg string) []int {
	t.Helper()
	return living(t, func(pid int) bool { return slices.Contains(proc.Cmdline(pid), arg) })
}
