package process

import (
	"syscall"

	"github.com/gorun/gorun/internal/proc"
)

// sysProcAttr puts the task in a process group of its own, so that signals reach all
// of it and a terminal's Ctrl-C reaches only gorun, and into box, its cgroup, when
// there is one. Pdeathsig kills the group leader if gorun dies before its Guard learned
// of the group. Pdeathsig fires when the OS thread that forked exits, not the process;
// the Go runtime keeps its threads alive unless a goroutine locked to one exits, and
// gorun never locks threads.
func sysProcAttr(box *proc.Cgroup) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if box != nil {
		a.UseCgroupFD, a.CgroupFD = true, box.FD()
	}
	return a
}
