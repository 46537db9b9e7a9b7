// Package testutil helps tests find the processes they started.
package testutil

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
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
	dir, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc: cannot look for surviving processes")
	}
	needle := []byte(MarkVar + "=" + mark + "\x00")
	var pids []int
	for _, e := range dir {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !bytes.Contains(env, needle) {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if f := strings.Fields(string(stat[i+1:])); len(f) > 0 && (f[0] == "Z" || f[0] == "X") {
			continue
		}
		pids = append(pids, pid)
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
		cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		out = append(out, strconv.Itoa(pid)+" "+strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "))
	}
	return out
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
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				peak = max(peak, kb<<10)
			}
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
	dir, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc: cannot look for surviving processes")
	}
	var pids []int
	for _, e := range dir {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !slices.Contains(strings.Split(string(cmd), "\x00"), arg) {
			continue
		}
		if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			i := bytes.LastIndexByte(stat, ')')
			if f := strings.Fields(string(stat[i+1:])); len(f) > 0 && (f[0] == "Z" || f[0] == "X") {
				continue
			}
		}
		pids = append(pids, pid)
	}
	return pids
}
