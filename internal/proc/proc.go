// Package proc reads and controls processes: the /proc file system, cgroup v2 groups
// that hold a task's whole process tree, and the child subreaper. It is gorun's one
// reader of /proc. Where there is no /proc (not Linux), its readers find nothing.
package proc

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stat is what /proc/PID/stat says of a process that gorun needs.
type Stat struct {
	State byte // R, S, D, Z, X, T, …
	PPID  int
	PGRP  int
}

// Dead reports whether the process has exited and only waits to be reaped.
func (s Stat) Dead() bool { return s.State == 'Z' || s.State == 'X' }

// ReadStat reads /proc/PID/stat. ok is false when the process is gone (or there is no
// /proc).
func ReadStat(pid int) (s Stat, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return s, false
	}
	// pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return s, false
	}
	s.State = f[0][0]
	s.PPID, _ = strconv.Atoi(string(f[1]))
	s.PGRP, _ = strconv.Atoi(string(f[2]))
	return s, true
}

// Alive reports whether pid exists and has not exited.
func Alive(pid int) bool {
	s, ok := ReadStat(pid)
	return ok && !s.Dead()
}

// PIDs returns the pids of every process /proc lists.
func PIDs() []int { return numbers("/proc") }

// Cmdline returns the arguments of process pid, as /proc/PID/cmdline holds them; nil
// when the process is gone.
func Cmdline(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// PeakRSS returns the peak resident set size of process pid in bytes (VmHWM in
// /proc/PID/status): its own memory since it exec'd. ok is false when the process is
// gone.
func PeakRSS(pid int) (hwm int64, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, found := strings.CutPrefix(line, "VmHWM:"); found {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, true
		}
	}
	return 0, false
}

// FDs returns the open file descriptors of this process; nil where there is no /proc.
func FDs() []int { return numbers("/proc/self/fd") }

// numbers returns the entries of dir whose names are numbers, as numbers.
func numbers(dir string) []int {
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	out := make([]int, 0, len(names))
	for _, n := range names {
		if i, err := strconv.Atoi(n); err == nil {
			out = append(out, i)
		}
	}
	return out
}

// GroupMembers returns the living (not exited) processes of process group pgid.
func GroupMembers(pgid int) []int {
	var out []int
	for _, pid := range PIDs() {
		if s, ok := ReadStat(pid); ok && s.PGRP == pgid && !s.Dead() {
			out = append(out, pid)
		}
	}
	return out
}

// Children returns the children of process pid, orphans it adopted as a subreaper
// included. It reads /proc/PID/task/*/children where the kernel has them, else scans
// every process's parent.
func Children(pid int) []int {
	base := "/proc/" + strconv.Itoa(pid) + "/task"
	files, _ := filepath.Glob(base + "/*/children")
	if len(files) == 0 {
		var out []int
		for _, p := range PIDs() {
			if s, ok := ReadStat(p); ok && s.PPID == pid {
				out = append(out, p)
			}
		}
		return out
	}
	var out []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, w := range bytes.Fields(b) {
			if c, err := strconv.Atoi(string(w)); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// Adopted returns the children of this process's main thread: where the kernel puts
// the orphans a subreaper adopts (the first living thread of the group, which in a Go
// program is always the main one), beside the children that thread started. One file
// read, where Children(os.Getpid()) reads one per thread.
func Adopted() []int {
	pid := strconv.Itoa(os.Getpid())
	b, err := os.ReadFile("/proc/" + pid + "/task/" + pid + "/children")
	if err != nil {
		return Children(os.Getpid())
	}
	out := make([]int, 0, 8)
	for _, w := range bytes.Fields(b) {
		if c, err := strconv.Atoi(string(w)); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// EnvHas reports whether the environment of pid holds every one of entries (each
// "NAME=value"), as /proc/PID/environ shows it.
func EnvHas(pid int, entries ...string) bool {
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	for _, e := range entries {
		if !envContains(env, e) {
			return false
		}
	}
	return true
}

// WithEnv returns the pids of the processes, other than this one, whose environment
// holds entry ("NAME=value").
func WithEnv(entry string) []int {
	self := os.Getpid()
	var out []int
	for _, pid := range PIDs() {
		if pid != self && EnvHas(pid, entry) {
			out = append(out, pid)
		}
	}
	return out
}

// envContains reports whether a NUL-separated environment holds entry: each entry ends
// with NUL, and starts the block or follows a NUL.
func envContains(env []byte, entry string) bool {
	for i := 0; i < len(env); {
		end := bytes.IndexByte(env[i:], 0)
		if end < 0 {
			end = len(env) - i
		}
		if string(env[i:i+end]) == entry {
			return true
		}
		i += end + 1
	}
	return false
}
