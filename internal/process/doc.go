// Package process runs one attempt of a task as a process tree on this machine: the
// Runner (a process group per attempt, and a cgroup or gorun a child subreaper to hold
// what it starts; SIGTERM, the grace, SIGKILL for the whole tree), the Capture of its
// output, and the Guard, a helper process that kills a run's processes if gorun dies.
// It reads /proc and cgroups through package proc.
package process
