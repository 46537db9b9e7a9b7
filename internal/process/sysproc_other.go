//go:build unix && !linux

package process

import (
	"syscall"

	"github.com/gorun/gorun/internal/proc"
)

// sysProcAttr puts the task in a process group of its own, so that signals reach all
// of it and a terminal's Ctrl-C reaches only gorun. There are no cgroups here: box is
// always nil.
func sysProcAttr(box *proc.Cgroup) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
