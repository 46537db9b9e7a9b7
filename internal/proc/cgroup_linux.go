package proc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Cgroups is one run's cgroup v2 subtree: a directory beneath gorun's own cgroup that
// holds one child cgroup per running attempt. A process started into a child (clone3
// with CLONE_INTO_CGROUP) and everything it starts stay in it, whatever they do with
// process groups, sessions or their environment, so writing "1" to its cgroup.kill
// ends the whole tree. Idle children are kept and reused, so a run makes as many as it
// runs attempts at once, not one per task.
//
// Get and Put are safe for concurrent use. Close removes the subtree.
type Cgroups struct {
	dir string

	mu   sync.Mutex
	idle []*Cgroup
	all  []*Cgroup
	made int // cgroups made so far: names are a1, a2, …
}

// Cgroup is one child cgroup of a run. Its methods are safe for concurrent use.
type Cgroup struct {
	dir    string
	fd     int         // the directory, for CLONE_INTO_CGROUP
	events int         // its cgroup.events, kept open: Empty reads it again with pread
	killed atomic.Bool // cgroup.kill was written: never start a process here again
}

// OpenCgroups creates the subtree name beneath gorun's own cgroup v2 and checks that a
// process can be started into it. It fails where there is no cgroup v2, no cgroup.kill
// (Linux before 5.14), or no permission to create or enter cgroups there: gorun runs as
// root, or in a subtree delegated to its user (a systemd user scope).
func OpenCgroups(name string) (*Cgroups, error) {
	mount, err := cgroup2Mount()
	if err != nil {
		return nil, err
	}
	own, err := ownCgroup()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(mount, own, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	c := &Cgroups{dir: dir}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("cgroup %s has no cgroup.kill (Linux 5.14 or newer): %w", dir, err)
	}
	g, err := c.Get()
	if err == nil {
		err = probe(g)
		c.Put(g)
	}
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// probe starts a process into g that fails to exec: clone3 succeeding and execve
// failing with ENOENT proves that processes can be started into g, at the cost of a
// fork and no exec. ForkExec reaps the child.
func probe(g *Cgroup) error {
	attr := &syscall.ProcAttr{Sys: &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: g.fd}}
	_, err := syscall.ForkExec("/nonexistent/gorun-cgroup-probe", []string{"probe"}, attr)
	if errors.Is(err, syscall.ENOENT) {
		return nil
	}
	if err == nil {
		err = errors.New("the probe ran")
	}
	return fmt.Errorf("start a process in cgroup %s: %w", g.dir, err)
}

// Dir returns the subtree's directory; KillTree(Dir()) ends everything in it.
func (c *Cgroups) Dir() string { return c.dir }

// Get returns an empty child cgroup for one attempt, making one when none is idle.
func (c *Cgroups) Get() (*Cgroup, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.idle); n > 0 {
		g := c.idle[n-1]
		c.idle = c.idle[:n-1]
		return g, nil
	}
	c.made++
	dir := filepath.Join(c.dir, "a"+strconv.Itoa(c.made))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("open cgroup: %w", err)
	}
	// Kept open for Empty, asked after every attempt: a pread at offset 0 of a cgroup
	// file makes the kernel generate it anew, for a system call where opening,
	// reading and closing the file take four.
	events, err := syscall.Open(filepath.Join(dir, "cgroup.events"), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		_ = syscall.Close(fd)
		_ = os.Remove(dir)
		return nil, fmt.Errorf("open cgroup: %w", err)
	}
	g := &Cgroup{dir: dir, fd: fd, events: events}
	c.all = append(c.all, g)
	return g, nil
}

// Put hands back g, which must be empty, for another attempt.
//
// A cgroup that was killed through cgroup.kill is removed instead: on the kernels
// gorun was tested on (6.18), every process later started into it with
// CLONE_INTO_CGROUP is killed at birth, as if the kill were still under way.
func (c *Cgroups) Put(g *Cgroup) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !g.killed.Load() {
		c.idle = append(c.idle, g)
		return
	}
	g.close()
	if err := syscall.Rmdir(g.dir); err != nil {
		return // not empty after all: Close removes it
	}
	c.all = slices.DeleteFunc(c.all, func(x *Cgroup) bool { return x == g })
}

// Close kills whatever is left in the subtree and removes it.
func (c *Cgroups) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range c.all {
		g.close()
	}
	c.all, c.idle = nil, nil
	return KillTree(c.dir, 5*time.Second)
}

// close closes g's descriptors, once it will not be used again.
func (g *Cgroup) close() {
	if g.fd >= 0 {
		_ = syscall.Close(g.fd)
		_ = syscall.Close(g.events)
		g.fd, g.events = -1, -1
	}
}

// FD returns the cgroup directory's descriptor, for SysProcAttr.CgroupFD.
func (g *Cgroup) FD() int { return g.fd }

// PIDs returns the living processes in g.
func (g *Cgroup) PIDs() []int {
	b, err := os.ReadFile(filepath.Join(g.dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, w := range bytes.Fields(b) {
		if pid, err := strconv.Atoi(string(w)); err == nil && Alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// Signal sends sig to every process in g.
func (g *Cgroup) Signal(sig syscall.Signal) {
	for _, pid := range g.PIDs() {
		_ = syscall.Kill(pid, sig)
	}
}

// Kill sends SIGKILL to every process in g at once, through cgroup.kill: a process
// forking meanwhile cannot escape it.
func (g *Cgroup) Kill() error {
	g.killed.Store(true)
	return writeKill(g.dir)
}

// Empty reports whether no living process is left in g or beneath it (cgroup.events
// says "populated 0"). A process that has exited, reaped or not, counts as gone. It
// costs one system call and no allocation, so it is the cheap first question after
// every attempt; PIDs, which reads cgroup.procs, is for when the answer is no.
func (g *Cgroup) Empty() bool {
	busy, err := g.populated()
	if err != nil {
		return !populated(g.dir)
	}
	return !busy
}

// populated reads g's cgroup.events again through the descriptor kept open.
func (g *Cgroup) populated() (bool, error) {
	var buf [128]byte // "populated 0\nfrozen 0\n"
	n, err := syscall.Pread(g.events, buf[:], 0)
	if err == nil && n <= 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", filepath.Join(g.dir, "cgroup.events"), err)
	}
	return bytes.Contains(buf[:n], []byte("populated 1")), nil
}

// KillTree kills every process in the cgroup dir and its children, waits up to wait
// for them to be gone, and removes the cgroups. The guard calls it on a dead gorun's
// subtree.
func KillTree(dir string, wait time.Duration) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := writeKill(dir); err != nil {
		return err
	}
	for deadline := time.Now().Add(wait); populated(dir) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	children, _ := filepath.Glob(filepath.Join(dir, "*", "cgroup.procs"))
	var firstErr error
	for _, c := range children {
		if err := syscall.Rmdir(filepath.Dir(c)); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("remove cgroup %s: %w", filepath.Dir(c), err)
		}
	}
	if err := syscall.Rmdir(dir); err != nil && firstErr == nil {
		firstErr = fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	return firstErr
}

func writeKill(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil {
		return fmt.Errorf("kill cgroup %s: %w", dir, err)
	}
	return nil
}

// populated reads cgroup.events: "populated 1" while a living process is in the
// cgroup or beneath it. An unreadable file counts as empty.
func populated(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	return err == nil && bytes.Contains(b, []byte("populated 1"))
}

// cgroup2Mount returns where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup on a
// unified system, /sys/fs/cgroup/unified on a hybrid one).
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find cgroup v2: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options… - fstype source superoptions
		left, right, ok := strings.Cut(sc.Text(), " - ")
		if !ok || !strings.HasPrefix(right, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(left); len(f) >= 5 {
			return unescapeMount(f[4]), nil
		}
	}
	return "", errors.New("find cgroup v2: not mounted")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ownCgroup returns this process's cgroup v2 path ("0::/path" in /proc/self/cgroup).
func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("find own cgroup: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			if strings.HasSuffix(p, " (deleted)") {
				return "", errors.New("find own cgroup: it was removed")
			}
			return p, nil
		}
	}
	return "", errors.New("find own cgroup: not in a cgroup v2 hierarchy")
}

// SetSubreaper makes this process a child subreaper: orphaned descendants are
// re-parented to it instead of to init, so it can stop and reap them.
func SetSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("become a child subreaper: %w", err)
	}
	return nil
}
