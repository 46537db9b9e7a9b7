//go:build unix

package jobs

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
)

// GuardArg is the argument that makes the gorun binary run as a Guard (see GuardMain).
const GuardArg = "__gorun_guard"

// RunIDVar is the environment variable that carries a run's id to its tasks.
const RunIDVar = "GORUN_RUN_ID"

// GuardVar is the environment variable that carries a guard's id to the tasks of the
// gorun process it guards (and, by inheritance, to everything they start). The Guard
// finds a dead gorun's processes by it.
const GuardVar = "GORUN_GUARD"

// Guard is a small helper process that outlives gorun for one purpose: if gorun dies,
// even by SIGKILL, it kills whatever the tasks left running. Every task carries
// GORUN_GUARD=<id> in its environment, and so does everything it starts; when the
// guard's standard input reaches end-of-file without gorun having said goodbye, it
// reads /proc for the processes that carry the id and kills them and their process
// groups. gorun tells it nothing per task: a guard costs nothing on the hot path.
//
// A nil *Guard does nothing.
type Guard struct {
	w   *os.File // the write end; close-on-exec, so no task holds it open
	cmd *exec.Cmd
}

// StartGuard starts the guard as `exe GuardArg id`, normally gorun's own binary; the
// tasks to guard carry GuardVar=id.
// The guard ignores SIGINT, SIGTERM and SIGHUP and runs in a process group of its own,
// so that neither a terminal's Ctrl-C nor a signal to gorun's group ends it early.
func StartGuard(exe, id string) (*Guard, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start guard: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe, GuardArg, id)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start guard: %w", err)
	}
	return &Guard{w: w, cmd: cmd}, nil
}

// guardBye is what gorun writes when it ends normally: the guard then kills nothing.
const guardBye = "bye\n"

// Close tells the guard that gorun ends normally, and waits for it to exit.
func (g *Guard) Close() error {
	if g == nil || g.w == nil {
		return nil
	}
	_, _ = io.WriteString(g.w, guardBye)
	g.w.Close()
	g.w = nil
	return g.cmd.Wait()
}

// GuardMain is the guard process's main: it waits for end-of-file on r; unless gorun
// said goodbye first, it kills every process that carries GuardVar=id, and its process
// group. It returns the process exit code.
func GuardMain(r io.Reader, id string) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	last := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		last = sc.Text() + "\n"
	}
	if last == guardBye || id == "" {
		return 0
	}
	// Tasks may be forking as we kill: go over /proc until nothing carries the id.
	for range 5 {
		pids := Marked(GuardVar, id)
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
	return 0
}

// Marked returns the pids of the processes (other than this one) whose environment
// holds name=value, as /proc shows them; none where there is no /proc.
func Marked(name, value string) []int {
	dir, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer dir.Close()
	names, _ := dir.Readdirnames(-1)
	needle := []byte(name + "=" + value + "\x00")
	self := os.Getpid()
	var pids []int
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + n + "/environ")
		// Each entry ends with NUL; an entry starts the file or follows a NUL.
		if err == nil && (bytes.HasPrefix(env, needle) || bytes.Contains(env, append([]byte{0}, needle...))) {
			pids = append(pids, pid)
		}
	}
	return pids
}
