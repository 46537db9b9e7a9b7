//go:build unix

package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/proc"
)

// Runner starts task processes and stops them well. A task is its whole process tree:
// each attempt runs in a process group of its own and, where Contain could set one
// up, in a cgroup of its own. When the attempt's main process exits, by any route,
// whatever it left behind is stopped (SIGTERM and SIGCONT, the grace, SIGKILL) and
// counted, and Run returns only once it is gone, so a retry never meets its previous
// attempt's processes. A descendant that holds the output pipes never holds Run up.
//
// Set the fields, and call Contain, before the first Run and leave them; Run and
// KillAll are safe for concurrent use. Run must not be called for a slot that is
// running another attempt. Close releases what Contain set up after the last Run.
type Runner struct {
	Grace   time.Duration // from SIGTERM to SIGKILL; 0 sends SIGKILL at once
	BaseEnv []string      // the environment every task starts from (gorun's own)
	// Strongest caps the containment Contain tries: "" or ContainCgroup tries every
	// one, ContainSubreaper skips cgroups, ContainGroup uses process groups alone.
	Strongest Containment
	// Host is named in every Attempt as the machine that ran it.
	Host string

	containment // how task trees are held together; see Contain

	mu      sync.Mutex
	running map[int]*proc.Cgroup // main process (= process group) of each running attempt → its cgroup, or nil
	hurried bool                 // KillAll was called: no more grace for anyone
	devNull *os.File
	paths   pathCache // where simple commands' programs were found
}

// Run runs one attempt of t in worker slot (1-based) and blocks until the attempt's
// main process has exited and every process it started is gone. When ctx is done
// first, the whole tree gets SIGTERM, and SIGKILL after Grace. stdout and stderr
// receive the task's output.
func (r *Runner) Run(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *Capture) jobs.Attempt {
	a := jobs.Attempt{Start: time.Now(), ExitCode: -1, Host: r.Host}
	env, err := r.env(t, slot, attempt)
	if err != nil {
		a.Err = fmt.Errorf("task %s: %w", t.ID, err)
		return a
	}
	direct := r.direct(t, env)
	// gorun's own pipes, not os/exec's: Wait then returns when the main process exits,
	// and the copying ends when the tree is stopped, whoever holds the pipes.
	out, err := startCopy(stdout)
	if err != nil {
		a.Err = fmt.Errorf("start task %s: %w", t.ID, err)
		return a
	}
	errOut, err := startCopy(stderr)
	if err != nil {
		out.abandon()
		a.Err = fmt.Errorf("start task %s: %w", t.ID, err)
		return a
	}
	box, boxErr := r.cgroup()
	grace := r.Grace
	if t.Grace > 0 {
		grace = t.Grace
	}
	var cancelledAt atomic.Int64 // unix nanoseconds
	command := func(path string, args, env []string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, path, args[1:]...)
		cmd.Args[0] = args[0]
		cmd.Dir = t.Dir
		cmd.Env = env
		cmd.Stdin = r.stdin()
		cmd.Stdout, cmd.Stderr = out.w, errOut.w
		cmd.SysProcAttr = sysProcAttr(box)
		cmd.Cancel = func() error {
			cancelledAt.Store(time.Now().UnixNano())
			sig := syscall.SIGTERM
			if r.isHurried() || grace <= 0 {
				sig = syscall.SIGKILL
			}
			return r.signalTree(box, cmd.Process.Pid, sig)
		}
		// WaitDelay bounds the wait for the main process after cancellation; then
		// os/exec kills it, and stopTree the rest.
		cmd.WaitDelay = max(grace, 100*time.Millisecond)
		return cmd
	}

	var cmd *exec.Cmd
	if direct.path != "" {
		cmd = command(direct.path, direct.argv, direct.env)
		err = r.start(cmd, box)
		// The program could not be started (not executable, not a binary, gone since
		// the look-up): the shell reports that as it would have, or runs the file as a
		// script; nothing of the task ran yet.
		if err != nil && ctx.Err() == nil {
			cmd = nil
		}
	}
	if cmd == nil {
		args := t.Args(slot)
		cmd = command(args[0], args, env)
		err = r.start(cmd, box)
	}
	out.closeWriter()
	errOut.closeWriter()
	if err != nil {
		out.abandon()
		errOut.abandon()
		r.putCgroup(box)
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			// The run stopped, or the task's time ran out, as it was about to start:
			// nothing ran, and the attempt ends as one that gorun stopped.
			a.Stopped = true
			return a
		}
		if boxErr != nil {
			err = fmt.Errorf("%w (%v)", err, boxErr)
		}
		if t.Line > 0 {
			a.Err = fmt.Errorf("start task %s (input line %d): %w", t.ID, t.Line, err)
		} else {
			a.Err = fmt.Errorf("start task %s: %w", t.ID, err)
		}
		return a
	}
	pgid := cmd.Process.Pid
	waitErr := cmd.Wait()
	a.Duration = time.Since(a.Start)
	a.Stopped = cancelledAt.Load() != 0
	deadline := time.Now().Add(grace)
	if ns := cancelledAt.Load(); ns != 0 {
		deadline = time.Unix(0, ns).Add(grace)
	}
	a.Leftovers = r.stopTree(box, pgid, slot, deadline, a.Stopped)
	r.untrack(pgid)
	// The tree is gone, so the pipes are closed, unless a process escaped every
	// containment (see Contain): give it a moment, then stop reading.
	waitCopies(time.Now().Add(100*time.Millisecond), out, errOut)
	r.putCgroup(box)
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

// start starts cmd and records it as running, so that KillAll and the reaper know it.
// The reaper is held off meanwhile: it must never reap a task's main process.
func (r *Runner) start(cmd *exec.Cmd, box *proc.Cgroup) error {
	r.reaping.RLock()
	defer r.reaping.RUnlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	r.mu.Lock()
	if r.running == nil {
		r.running = make(map[int]*proc.Cgroup)
	}
	r.running[pid] = box
	hurried := r.hurried
	r.mu.Unlock()
	if hurried {
		_ = r.signalTree(box, pid, syscall.SIGKILL)
	}
	return nil
}

func (r *Runner) untrack(pid int) {
	r.mu.Lock()
	delete(r.running, pid)
	r.mu.Unlock()
}

func (r *Runner) isRunning(pid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.running[pid]
	return ok
}

// signalTree sends sig to the attempt whose main process is pid: to every process of
// its cgroup, or else to its process group. SIGKILL to a cgroup goes through
// cgroup.kill. A SIGTERM comes with a SIGCONT, so that a stopped task sees it.
func (r *Runner) signalTree(box *proc.Cgroup, pid int, sig syscall.Signal) error {
	err := signalGroup(pid, sig)
	if box != nil {
		if sig == syscall.SIGKILL {
			_ = box.Kill()
		} else {
			box.Signal(sig)
		}
	}
	if sig == syscall.SIGTERM {
		_ = syscall.Kill(-pid, syscall.SIGCONT)
		if box != nil {
			box.Signal(syscall.SIGCONT)
		}
	}
	return err
}

// stopTree stops what is left of an attempt whose main process (pid, also its process
// group) has exited: SIGTERM and SIGCONT now, SIGKILL at deadline or at once when
// hurried; it returns when all of it is gone (or, for processes that no containment
// reaches, when they were sent SIGKILL). It returns how many processes were left
// over: those alive when the main process exited; for an attempt that was stopped
// (its whole tree got SIGTERM with it), those still alive when the grace ran out, so
// that a process merely dying at that moment does not count.
func (r *Runner) stopTree(box *proc.Cgroup, pid, slot int, deadline time.Time, stopped bool) int {
	left := r.leftovers(box, pid, slot)
	if len(left) == 0 {
		return 0
	}
	counted := len(left)
	if stopped {
		counted = 0
	}
	killed := r.isHurried() || !time.Now().Before(deadline)
	if killed {
		r.signalLeft(box, pid, left, syscall.SIGKILL)
		deadline = time.Now().Add(killWait)
		counted = len(left)
	} else {
		r.signalLeft(box, pid, left, syscall.SIGTERM)
	}
	for wait := time.Millisecond; ; wait = min(2*wait, 20*time.Millisecond) {
		rest := r.leftovers(box, pid, slot)
		switch {
		case len(rest) == 0:
		case !killed && (r.isHurried() || !time.Now().Before(deadline)):
			r.signalLeft(box, pid, rest, syscall.SIGKILL)
			killed, deadline = true, time.Now().Add(killWait)
			if stopped {
				counted = len(rest)
			}
			continue
		case killed && !time.Now().Before(deadline):
			// Unkillable for now (uninterruptible sleep): SIGKILL is pending and will
			// end them; the slot is not held forever.
		default:
			time.Sleep(min(wait, max(time.Until(deadline), time.Millisecond)))
			continue
		}
		break
	}
	r.reapOrphans()
	return counted
}

// killWait bounds the wait for processes to die after SIGKILL.
const killWait = 5 * time.Second

// signalLeft sends sig to an attempt's leftovers: its cgroup, its process group and
// each process found outside both (an orphan adopted by gorun as subreaper).
func (r *Runner) signalLeft(box *proc.Cgroup, pid int, left []int, sig syscall.Signal) {
	_ = r.signalTree(box, pid, sig)
	for _, p := range left {
		_ = syscall.Kill(p, sig)
		_ = syscall.Kill(-p, sig) // an escapee that leads a group of its own
		if sig == syscall.SIGTERM {
			_ = syscall.Kill(p, syscall.SIGCONT)
		}
	}
}

// KillAll sends SIGKILL to every running task's tree at once, and makes every later
// cancellation kill without grace. It is the answer to a second interrupt.
func (r *Runner) KillAll() {
	r.mu.Lock()
	r.hurried = true
	running := make(map[int]*proc.Cgroup, len(r.running))
	for pid, box := range r.running {
		running[pid] = box
	}
	r.mu.Unlock()
	for pid, box := range running {
		_ = r.signalTree(box, pid, syscall.SIGKILL)
	}
}

func (r *Runner) isHurried() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hurried
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

func (r *Runner) env(t *jobs.Task, slot, attempt int) ([]string, error) {
	from, err := jobs.ResolveEnvFrom(t.EnvFrom, r.BaseEnv)
	if err != nil {
		return nil, err
	}
	env := make([]string, 0, len(r.BaseEnv)+len(t.Env)+len(from)+5) // +1: PWD for a direct start
	env = append(env, r.BaseEnv...)
	env = append(env, t.Env...)
	env = append(env, from...)
	return append(env,
		"GORUN_TASK_ID="+t.ID,
		"GORUN_TASK_INDEX="+strconv.Itoa(t.Index),
		"GORUN_ATTEMPT="+strconv.Itoa(attempt),
		slotVar+strconv.Itoa(slot),
	), nil
}

// slotVar names a task's worker slot in its environment; with the guard's id it also
// tells gorun which attempt an orphan belongs to.
const slotVar = "GORUN_SLOT="

// copier copies one output stream of a task from a pipe into its Capture, in a
// goroutine of its own that ends when the pipe reaches end-of-file or is abandoned.
type copier struct {
	w    *os.File // the task's end; closed in gorun once the task has it
	r    *os.File
	done chan struct{}
}

// copyBufs holds the buffers copiers read with, so that a run allocates one per
// concurrently running stream, not one per task.
var copyBufs = newFreeList(256, 32<<10, 32<<10)

func startCopy(dst *Capture) (*copier, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("make output pipe: %w", err)
	}
	c := &copier{w: w, r: r, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		buf := copyBufs.get()
		defer copyBufs.put(buf)
		// Only Read: *os.File's WriteTo would allocate a buffer of its own.
		_, _ = io.CopyBuffer(dst, struct{ io.Reader }{r}, buf[:cap(buf)])
	}()
	return c, nil
}

func (c *copier) closeWriter() { _ = c.w.Close() }

// waitCopies waits for each copy to reach end-of-file until deadline, then abandons
// it. The timer is made only when a copy is not done yet: after most tasks both are.
func waitCopies(deadline time.Time, copies ...*copier) {
	var timer *time.Timer
	expired := false
	for _, c := range copies {
		select {
		case <-c.done:
		default:
			if expired {
				break
			}
			if timer == nil {
				timer = time.NewTimer(time.Until(deadline))
				defer timer.Stop()
			}
			select {
			case <-c.done:
			case <-timer.C:
				expired = true
			}
		}
		c.abandon()
	}
}

// abandon closes gorun's read end, which ends the copy, and waits for it.
func (c *copier) abandon() {
	_ = c.w.Close()
	_ = c.r.Close()
	<-c.done
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
	return "signal " + strconv.Itoa(int(sig))
}
