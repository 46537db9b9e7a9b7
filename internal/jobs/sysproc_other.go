//go:build unix && !linux

package jobs

import (
	"errors"
	"syscall"
)

// sysProcAttr puts the task in a process group of its own, so that signals reach all
// of it and a terminal's Ctrl-C reaches only gorun.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// groupAlive reports whether process group pgid still has a member.
func groupAlive(pgid int) bool {
	return !errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
}
