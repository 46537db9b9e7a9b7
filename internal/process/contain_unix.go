//go:build unix

package process

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"syscall"

	"github.com/gorun/gorun/internal/proc"
)

// Containment names how a Runner holds each task's process tree together, so that
// everything a task started can be stopped with it.
type Containment string

// The containments, strongest first.
const (
	// ContainCgroup: each attempt in a cgroup v2 of its own, ended with cgroup.kill;
	// nothing a task starts escapes it, not with setsid, not with env -i.
	ContainCgroup Containment = "cgroup"
	// ContainSubreaper: each attempt in a process group of its own, and gorun a child
	// subreaper: orphans come back to gorun, which stops them with their task (it
	// tells whose they are by their environment) and reaps them.
	ContainSubreaper Containment = "subreaper"
	// ContainGroup: process groups only; a process that leaves its group and its
	// parent is out of reach until the guard's sweep.
	ContainGroup Containment = "process-group"
)

// ParseContainment reads the strongest containment a user allows: "auto" (or "cgroup")
// tries them all, strongest first.
func ParseContainment(s string) (Containment, error) {
	switch Containment(s) {
	case "auto", ContainCgroup:
		return ContainCgroup, nil
	case ContainSubreaper, ContainGroup:
		return Containment(s), nil
	}
	return "", fmt.Errorf("invalid value %q: want auto, subreaper or process-group", s)
}

// containment is the Runner's part that Contain sets up.
type containment struct {
	mode       Containment
	cgroups    *proc.Cgroups // with ContainCgroup
	guardEntry string        // GuardVar=id: marks the run's processes in their environment

	// reaping is held for writing while the reaper reaps and for reading while a task
	// starts, so that the reaper never takes a task's main process for an orphan before
	// Run has recorded it.
	reaping   sync.RWMutex
	reaper    bool // gorun is a subreaper or PID 1: orphans are its to reap
	stopReap  chan struct{}
	reapEnded chan struct{}
}

// Contain sets up containment before the first Run, for the run whose processes carry
// GuardVar=id: a cgroup subtree named after id where gorun can make one, else gorun
// becomes a child subreaper, else process groups alone. why says what kept a stronger
// containment from being used (nil for cgroups). As PID 1 (in a container), gorun
// reaps every orphan that reaches it, whatever the containment.
//
// Runner.Strongest, when set, caps what is tried (and why then says so).
func (r *Runner) Contain(id string) (mode Containment, why error) {
	r.guardEntry = GuardVar + "=" + id
	var cg *proc.Cgroups
	err := fmt.Errorf("--containment %s", r.Strongest)
	if r.Strongest == "" || r.Strongest == ContainCgroup {
		cg, err = proc.OpenCgroups("gorun-" + id)
	}
	switch {
	case err == nil:
		r.cgroups, r.mode = cg, ContainCgroup
	case r.Strongest != ContainGroup && proc.SetSubreaper() == nil:
		r.mode, why = ContainSubreaper, err
		r.reaper = true
	default:
		if r.Strongest != ContainGroup {
			err = fmt.Errorf("%w; and %w", err, proc.SetSubreaper())
		}
		r.mode, why = ContainGroup, err
	}
	if os.Getpid() == 1 {
		r.reaper = true
	}
	if r.reaper {
		r.startReaper()
	}
	return r.mode, why
}

// Containment returns how tasks are contained: ContainGroup until Contain was called.
func (r *Runner) Containment() Containment {
	if r.mode == "" {
		return ContainGroup
	}
	return r.mode
}

// CgroupDir returns the directory of the run's cgroup subtree, or "" without one.
func (r *Runner) CgroupDir() string {
	if r.cgroups == nil {
		return ""
	}
	return r.cgroups.Dir()
}

// Close undoes Contain after the last Run: it stops reaping (after a last pass) and
// removes the cgroup subtree.
func (r *Runner) Close() error {
	if r.stopReap != nil {
		close(r.stopReap)
		<-r.reapEnded
		r.stopReap = nil
		r.reapOrphans()
	}
	var err error
	if r.cgroups != nil {
		err = r.cgroups.Close()
		r.cgroups = nil
	}
	r.paths.close()
	r.mu.Lock()
	if r.devNull != nil {
		_ = r.devNull.Close()
		r.devNull = nil
	}
	r.mu.Unlock()
	return err
}

// cgroup returns an empty cgroup for one attempt, or nil without cgroups. If none can
// be made, the attempt runs without one, and the error says why.
func (r *Runner) cgroup() (*proc.Cgroup, error) {
	if r.cgroups == nil {
		return nil, nil
	}
	g, err := r.cgroups.Get()
	if err != nil {
		return nil, err
	}
	return g, nil
}

func (r *Runner) putCgroup(g *proc.Cgroup) {
	if g != nil && g.Empty() {
		r.cgroups.Put(g)
	}
	// A cgroup that could not be emptied is not used again; Close removes it.
}

// leftovers returns the living processes of an attempt whose main process pid has
// exited: those in its cgroup; without one, those in its process group, and orphans
// adopted by gorun that carry the run's mark and the attempt's slot.
func (r *Runner) leftovers(box *proc.Cgroup, pid, slot int) []int {
	if box != nil {
		if box.Empty() { // the usual answer, for one system call
			return nil
		}
		return box.PIDs()
	}
	var left []int
	if !errors.Is(syscall.Kill(-pid, 0), syscall.ESRCH) {
		left = proc.GroupMembers(pid)
	}
	if r.mode == ContainSubreaper {
		slotEntry := slotVar + strconv.Itoa(slot)
		for _, c := range proc.Adopted() {
			if !r.isRunning(c) && !slices.Contains(left, c) && proc.Alive(c) && proc.EnvHas(c, r.guardEntry, slotEntry) {
				left = append(left, c)
			}
		}
	}
	return left
}

// startReaper reaps orphans as SIGCHLD announces them, until Close.
func (r *Runner) startReaper() {
	r.stopReap, r.reapEnded = make(chan struct{}), make(chan struct{})
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGCHLD)
	go func() {
		defer close(r.reapEnded)
		defer signal.Stop(ch)
		for {
			select {
			case <-ch:
				r.reapOrphans()
			case <-r.stopReap:
				return
			}
		}
	}()
}

// reapOrphans reaps every exited child of gorun that no Run waits for: the orphans a
// subreaper or PID 1 adopts. A task's main process is never touched (see reaping).
func (r *Runner) reapOrphans() {
	if !r.reaper {
		return
	}
	r.reaping.Lock()
	defer r.reaping.Unlock()
	for _, pid := range proc.Adopted() {
		if r.isRunning(pid) {
			continue
		}
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	}
}
