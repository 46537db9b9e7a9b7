//go:build unix

package process

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/gorun/gorun/internal/proc"
)

// GuardArg is the argument that makes the gorun binary run as a Guard: its main reads
// standard input to the end and, unless the last line is GuardBye, calls KillRun.
const GuardArg = "__gorun_guard"

// RunIDVar is the environment variable that carries a run's id to its tasks.
const RunIDVar = "GORUN_RUN_ID"

// GuardVar is the environment variable that carries a guard's id to the tasks of the
// gorun process it guards (and, by inheritance, to everything they start). The Guard
// finds a dead gorun's processes by it.
const GuardVar = "GORUN_GUARD"

// Guard is a small helper process that outlives gorun for one purpose: if gorun dies,
// even by SIGKILL, it kills whatever the tasks left running. When the guard's standard
// input reaches end-of-file without gorun having said goodbye, it kills the run's
// cgroup subtree, if the run has one (see Runner.Contain), which nothing a task starts
// escapes; and it reads /proc for the processes that carry GORUN_GUARD=<id> in their
// environment (every task does, and so does everything it starts unless it clears its
// environment) and kills them and their process groups. gorun tells it nothing per
// task: a guard costs nothing on the hot path.
//
// A nil *Guard does nothing.
type Guard struct {
	w   *os.File // the write end; close-on-exec, so no task holds it open
	cmd *exec.Cmd
}

// StartGuard starts the guard as `exe GuardArg id [cgroupDir]`, normally gorun's own
// binary; the tasks to guard carry GuardVar=id, and run in cgroupDir's subtree when it
// is not empty.
// The guard ignores SIGINT, SIGTERM and SIGHUP and runs in a process group of its own,
// so that neither a terminal's Ctrl-C nor a signal to gorun's group ends it early.
func StartGuard(exe, id, cgroupDir string) (*Guard, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start guard: %w", err)
	}
	defer r.Close()
	args := []string{GuardArg, id}
	if cgroupDir != "" {
		args = append(args, cgroupDir)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start guard: %w", err)
	}
	return &Guard{w: w, cmd: cmd}, nil
}

// GuardBye is the line gorun writes to its guard when it ends normally: a guard whose
// standard input ends with it kills nothing.
const GuardBye = "bye"

// Close tells the guard that gorun ends normally, and waits for it to exit.
func (g *Guard) Close() error {
	if g == nil || g.w == nil {
		return nil
	}
	_, _ = io.WriteString(g.w, GuardBye+"\n")
	g.w.Close()
	g.w = nil
	return g.cmd.Wait()
}

// KillRun is what a guard does when gorun dies without saying goodbye: it kills the
// cgroup subtree cgroupDir (if not empty), and every process that carries GuardVar=id,
// and its process group. It goes over /proc a few times, since tasks may be forking as
// it kills. An empty id kills nothing.
func KillRun(id, cgroupDir string) {
	if id == "" {
		return
	}
	if cgroupDir != "" {
		_ = proc.KillTree(cgroupDir, 5*time.Second)
	}
	// Tasks may be forking as we kill: go over /proc until nothing carries the id.
	for range 5 {
		pids := proc.WithEnv(GuardVar + "=" + id)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 && pgid != syscall.Getpgrp() {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
