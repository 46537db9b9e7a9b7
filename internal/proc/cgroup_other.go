//go:build !linux

package proc

import (
	"errors"
	"syscall"
	"time"
)

// errNoCgroups is why containment falls back on systems other than Linux.
var errNoCgroups = errors.New("cgroups and child subreapers need Linux")

// Cgroups is a run's cgroup subtree; there is none outside Linux.
type Cgroups struct{}

// Cgroup is one attempt's cgroup; there is none outside Linux.
type Cgroup struct{}

// OpenCgroups fails outside Linux.
func OpenCgroups(name string) (*Cgroups, error) { return nil, errNoCgroups }

// Dir returns "".
func (c *Cgroups) Dir() string { return "" }

// Get fails outside Linux.
func (c *Cgroups) Get() (*Cgroup, error) { return nil, errNoCgroups }

// Put does nothing.
func (c *Cgroups) Put(g *Cgroup) {}

// Close does nothing.
func (c *Cgroups) Close() error { return nil }

// FD returns -1.
func (g *Cgroup) FD() int { return -1 }

// PIDs returns nothing.
func (g *Cgroup) PIDs() []int { return nil }

// Signal does nothing.
func (g *Cgroup) Signal(sig syscall.Signal) {}

// Kill does nothing.
func (g *Cgroup) Kill() error { return nil }

// Empty returns true.
func (g *Cgroup) Empty() bool { return true }

// KillTree does nothing.
func KillTree(dir string, wait time.Duration) error { return nil }

// SetSubreaper fails outside Linux.
func SetSubreaper() error { return errNoCgroups }
