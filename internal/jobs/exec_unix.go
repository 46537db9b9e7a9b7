//go:build unix

package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Runner starts task processes and stops them well: each task in its own process
// group, SIGTERM to the group on cancellation, SIGKILL to the group after the grace
// period, and never a hang on a descendant that holds the output pipes.
//
// Set the fields before the first Run and leave them; Run and KillAll are safe for
// concurrent use.
type Runner struct {
	Grace   time.Duration // from SIGTERM to SIGKILL; 0 sends SIGKILL at once
	BaseEnv []string      // the environment every task starts from (gorun's own)

	mu      sync.Mutex
	groups  map[int]struct{} // process groups of running tasks
	hurried bool             // KillAll was called: no more grace for anyone
	devNull *os.File
}

// Attempt is how one process run of a task ended.
type Attempt struct {
	Start    time.Time
	Duration time.Duration
	ExitCode int            // -1 when the process did not exit by itself
	Signal   syscall.Signal // the signal that ended it, or 0
	Err      error          // it could not start; or Wait failed
	Stopped  bool           // gorun signalled it because ctx ended
}

// Run runs one attempt of t in worker slot (1-based) and blocks until the process has
// exited and its group is gone or killed. When ctx is done first, the group gets
// SIGTERM, and SIGKILL after Grace. stdout and stderr receive the task's output.
func (r *Runner) Run(ctx context.Context, t *Task, slot, attempt int, stdout, stderr *Capture) Attempt {
	args := t.Args(slot)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = t.Dir
	cmd.Env = r.env(t, slot, attempt)
	cmd.Stdin = r.stdin()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = sysProcAttr()
	grace := r.Grace
	var cancelledAt atomic.Int64 // unix nanoseconds
	cmd.Cancel = func() error {
		cancelledAt.Store(time.Now().UnixNano())
		if r.isHurried() || grace <= 0 {
			return signalGroup(cmd.Process.Pid, syscall.SIGKILL)
		}
		err := signalGroup(cmd.Process.Pid, syscall.SIGTERM)
		_ = signalGroup(cmd.Process.Pid, syscall.SIGCONT) // a stopped task must see the TERM
		return err
	}
	// WaitDelay bounds the wait both after cancellation (then the leader is killed) and
	// after the leader exited while a descendant still holds the output pipes.
	cmd.WaitDelay = max(grace, 100*time.Millisecond)

	a := Attempt{Start: time.Now(), ExitCode: -1}
	if err := cmd.Start(); err != nil {
		if t.Line > 0 {
			a.Err = fmt.Errorf("start task %s (input line %d): %w", t.ID, t.Line, err)
		} else {
			a.Err = fmt.Errorf("start task %s: %w", t.ID, err)
		}
		return a
	}
	pgid := cmd.Process.Pid
	r.track(pgid)
	waitErr := cmd.Wait()
	a.Stopped = cancelledAt.Load() != 0
	if ctx.Err() != nil {
		at := time.Now()
		if ns := cancelledAt.Load(); ns != 0 {
			at = time.Unix(0, ns)
		}
		r.stopGroup(pgid, at.Add(grace))
	}
	r.untrack(pgid)
	a.Duration = time.Since(a.Start)
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		switch {
		case ws.Exited():
			a.ExitCode = ws.ExitStatus()
		case ws.Signaled():
			a.Signal = ws.Signal()
		}
	}
	if waitErr != nil && cmd.ProcessState == nil {
		a.Err = fmt.Errorf("wait for task %s: %w", t.ID, waitErr)
	}
	return a
}

// stopGroup gives the rest of a cancelled task's group until deadline to exit, then
// kills it. Members that ignored SIGTERM die here, even after the leader is gone.
func (r *Runner) stopGroup(pgid int, deadline time.Time) {
	for {
		if !groupAlive(pgid) {
			return
		}
		if r.isHurried() || !time.Now().Before(deadline) {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			return
		}
		time.Sleep(min(10*time.Millisecond, time.Until(deadline)))
	}
}

// KillAll sends SIGKILL to the group of every running task at once, and makes every
// later cancellation kill without grace. It is the answer to a second interrupt.
func (r *Runner) KillAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hurried = true
	for pgid := range r.groups {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

func (r *Runner) isHurried() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hurried
}

func (r *Runner) track(pgid int) {
	r.mu.Lock()
	if r.groups == nil {
		r.groups = make(map[int]struct{})
	}
	r.groups[pgid] = struct{}{}
	hurried := r.hurried
	r.mu.Unlock()
	if hurried {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

func (r *Runner) untrack(pgid int) {
	r.mu.Lock()
	delete(r.groups, pgid)
	r.mu.Unlock()
}

// stdin returns /dev/null, opened once and shared: as an *os.File it is handed to each
// process as is, with no copying goroutine.
func (r *Runner) stdin() *os.File {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.devNull == nil {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return nil // os/exec then opens /dev/null itself
		}
		r.devNull = f
	}
	return r.devNull
}

func (r *Runner) env(t *Task, slot, attempt int) []string {
	env := make([]string, 0, len(r.BaseEnv)+len(t.Env)+4)
	env = append(env, r.BaseEnv...)
	env = append(env, t.Env...)
	return append(env,
		"GORUN_TASK_ID="+t.ID,
		"GORUN_TASK_INDEX="+itoa(t.Index),
		"GORUN_ATTEMPT="+itoa(attempt),
		"GORUN_SLOT="+itoa(slot),
	)
}

// signalGroup sends sig to the process group pgid; a group that is already gone is
// os.ErrProcessDone, as os/exec's Cancel contract wants.
func signalGroup(pgid int, sig syscall.Signal) error {
	err := syscall.Kill(-pgid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// SignalName returns the conventional name of sig, such as "SIGKILL".
func SignalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return "signal " + itoa(int(sig))
}
