//go:build linux

package proc

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestEnvContains(t *testing.T) {
	env := []byte("A=1\x00GORUN_GUARD=abc\x00GORUN_SLOT=12\x00")
	for _, tt := range []struct {
		entry string
		want  bool
	}{
		{"A=1", true}, {"GORUN_GUARD=abc", true}, {"GORUN_SLOT=12", true},
		{"GORUN_SLOT=1", false}, {"GUARD=abc", false}, {"GORUN_GUARD=ab", false}, {"", false},
	} {
		if got := envContains(env, tt.entry); got != tt.want {
			t.Errorf("envContains(%q): got %v, want %v", tt.entry, got, tt.want)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/sys/fs/my\040cgroup`); got != "/sys/fs/my cgroup" {
		t.Errorf("got %q, want a space", got)
	}
}

// start starts `sh -c script` in a process group of its own and returns it.
func start(t *testing.T, script string, attr *syscall.SysProcAttr) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), "GORUN_PROC_TEST="+strconv.Itoa(os.Getpid()))
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	return cmd
}

func TestStatChildrenGroupEnv(t *testing.T) {
	cmd := start(t, "sleep 30 & sleep 30 & wait", &syscall.SysProcAttr{Setpgid: true})
	pid := cmd.Process.Pid
	waitUntil(t, "the shell's two children", func() bool { return len(Children(pid)) == 2 })
	if s, ok := ReadStat(pid); !ok || s.PPID != os.Getpid() || s.PGRP != pid || s.Dead() {
		t.Errorf("ReadStat: got %+v %v, want a living child of this test leading its group", s, ok)
	}
	if !slices.Contains(Children(os.Getpid()), pid) {
		t.Errorf("Children(self) = %v, want %d among them", Children(os.Getpid()), pid)
	}
	if got := GroupMembers(pid); len(got) != 3 {
		t.Errorf("GroupMembers: got %v, want the shell and its two sleeps", got)
	}
	entry := "GORUN_PROC_TEST=" + strconv.Itoa(os.Getpid())
	if got := WithEnv(entry); len(got) != 3 {
		t.Errorf("WithEnv: got %v, want 3 processes", got)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = cmd.Wait()
	if Alive(pid) {
		t.Errorf("Alive(%d) after it was reaped: got true, want false", pid)
	}
}

// A process started into a cgroup cannot leave it: a setsid child is killed with it.
func TestCgroupHoldsTheTree(t *testing.T) {
	cg, err := OpenCgroups("gorun-proctest-" + strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Skipf("no cgroups here: %v", err)
	}
	defer func() {
		if err := cg.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if _, err := os.Stat(cg.Dir()); !os.IsNotExist(err) {
			t.Errorf("cgroup %s still there after Close (%v)", cg.Dir(), err)
		}
	}()
	g, err := cg.Get()
	if err != nil {
		t.Fatal(err)
	}
	cmd := start(t, "setsid sleep 30 & sleep 30 & wait", &syscall.SysProcAttr{Setpgid: true, UseCgroupFD: true, CgroupFD: g.FD()})
	waitUntil(t, "three processes in the cgroup", func() bool { return len(g.PIDs()) == 3 })
	if g.Empty() {
		t.Error("Empty: got true, want false while processes run")
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitUntil(t, "the cgroup to empty", g.Empty)
	cg.Put(g)
	idle, err := cg.Get()
	if err != nil {
		t.Fatal(err)
	}
	cg.Put(idle)
	if again, err := cg.Get(); err != nil || again != idle {
		t.Errorf("Get after Put: got %p (%v), want the idle cgroup %p back", again, err, idle)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// A cgroup killed through cgroup.kill is not handed out again: the kernel kills every
// process later started into it.
func TestKilledCgroupIsNotReused(t *testing.T) {
	cg, err := OpenCgroups("gorun-proctest-kill-" + strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Skipf("no cgroups here: %v", err)
	}
	defer cg.Close()
	g, err := cg.Get()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	cg.Put(g)
	next, err := cg.Get()
	if err != nil {
		t.Fatal(err)
	}
	if next == g {
		t.Fatal("Get after a killed cgroup was put back: got the killed one, want a new one")
	}
	cmd := exec.Command("sh", "-c", "echo ok")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: next.FD()}
	if out, err := cmd.Output(); err != nil || string(out) != "ok\n" {
		t.Errorf("a process in the new cgroup: got %q, %v; want ok", out, err)
	}
}

// Empty reads cgroup.events again through the descriptor it keeps, without allocating:
// each answer follows the cgroup's processes as they come and go, and the moment the
// main process of an attempt has been waited for, it is gone from the answer.
func TestCgroupEmptyFollowsProcesses(t *testing.T) {
	cg, err := OpenCgroups("gorun-proctest-empty-" + strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Skipf("no cgroups here: %v", err)
	}
	defer func() { _ = cg.Close() }()
	g, err := cg.Get()
	if err != nil {
		t.Fatal(err)
	}
	want := func(what string, populated bool) {
		t.Helper()
		got, err := g.populated()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got != populated {
			t.Errorf("%s: got populated %v, want %v", what, got, populated)
		}
	}
	want("before any process", false)
	for round := range 3 {
		cmd := exec.Command("sh", "-c", "read line; true")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: g.FD()}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		want("round "+strconv.Itoa(round)+", while it runs", true)
		_ = stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		want("round "+strconv.Itoa(round)+", once waited for", false)
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = g.Empty() }); allocs != 0 && !raceEnabled {
		t.Errorf("Empty: got %v allocations, want 0", allocs)
	}
	cg.Put(g)
}
