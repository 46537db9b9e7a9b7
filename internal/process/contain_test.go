//go:build linux

package process

import (
	"strconv"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/testutil"
)

// containedRunner returns a Runner contained at most as strongly as strongest, and the
// containment it got.
func containedRunner(t *testing.T, strongest Containment) (*Runner, Containment) {
	t.Helper()
	r := &Runner{Grace: 5 * time.Second, Strongest: strongest}
	mode, why := r.Contain(strconv.FormatInt(time.Now().UnixNano(), 36))
	t.Logf("containment: %s (%v)", mode, why)
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if mode != ContainCgroup && why == nil {
		t.Errorf("Contain: got %s with no reason, want the reason it is not cgroup", mode)
	}
	if r.Containment() != mode {
		t.Errorf("Containment(): got %s, want %s", r.Containment(), mode)
	}
	return r, mode
}

// Whatever the containment, a task's background children that hold its output are
// stopped when its main process exits, without waiting the grace period, and counted.
func TestRunStopsLeftoversAtExit(t *testing.T) {
	for _, strongest := range []Containment{ContainCgroup, ContainSubreaper, ContainGroup} {
		t.Run(string(strongest), func(t *testing.T) {
			r, mode := containedRunner(t, strongest)
			if strongest == ContainCgroup && mode != ContainCgroup {
				t.Logf("no cgroups here: testing %s", mode)
			}
			start := time.Now()
			a, st, out, _, mark := runShell(t, r, 0, "sleep 30 & sleep 30 & echo hi")
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("Run took %v, want well under the 5s grace", took)
			}
			if st != jobs.Succeeded || a.Leftovers != 2 || out.Tail() != "hi\n" {
				t.Errorf("got %s, %d leftovers, stdout %q; want succeeded, 2, hi", st, a.Leftovers, out.Tail())
			}
			if a.Duration > time.Second {
				t.Errorf("got duration %v, want the main process's (under 1s)", a.Duration)
			}
			testutil.NoSurvivors(t, mark)
		})
	}
}

// A leftover that ignores SIGTERM gets SIGKILL after the grace period.
func TestRunKillsStubbornLeftovers(t *testing.T) {
	r, _ := containedRunner(t, ContainCgroup)
	r.Grace = 300 * time.Millisecond
	start := time.Now()
	a, st, _, _, mark := runShell(t, r, 0, "(trap '' TERM; sleep 30) & sleep 0.1; exit 0")
	if took := time.Since(start); took < 300*time.Millisecond || took > 5*time.Second {
		t.Errorf("Run took %v, want the 300ms grace and a little", took)
	}
	if st != jobs.Succeeded || a.Leftovers == 0 {
		t.Errorf("got %s with %d leftovers, want succeeded with the stubborn one counted", st, a.Leftovers)
	}
	testutil.NoSurvivors(t, mark)
	// The next task, in the cgroup the kill used or another, is not killed with it.
	if _, st, out, _, _ := runShell(t, r, 0, "echo next"); st != jobs.Succeeded || out.Tail() != "next\n" {
		t.Errorf("the task after a killed one: got %s, stdout %q; want succeeded, next", st, out.Tail())
	}
}

func TestParseContainment(t *testing.T) {
	for in, want := range map[string]Containment{"auto": ContainCgroup, "cgroup": ContainCgroup, "subreaper": ContainSubreaper, "process-group": ContainGroup} {
		if got, err := ParseContainment(in); got != want || err != nil {
			t.Errorf("ParseContainment(%q): got %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseContainment("docker"); err == nil {
		t.Error("ParseContainment(docker): got no error, want one")
	}
	r := &Runner{Strongest: ContainGroup}
	mode, why := r.Contain("x")
	defer r.Close()
	if mode != ContainGroup || why == nil {
		t.Errorf("Contain with --containment process-group: got %s, %v; want process-group with a reason", mode, why)
	}
}

// For a stopped attempt, whose whole tree got SIGTERM at once, only the processes
// that outlived the grace count as leftovers, not those that were merely dying.
func TestRunStoppedLeftovers(t *testing.T) {
	r, _ := containedRunner(t, ContainCgroup)
	r.Grace = 300 * time.Millisecond
	a, st, _, _, mark := runShell(t, r, 200*time.Millisecond, "sleep 30 & sleep 30 & wait")
	if st != jobs.TimedOut || a.Leftovers != 0 {
		t.Errorf("tree that dies on SIGTERM: got %s with %d leftovers, want timed_out with 0", st, a.Leftovers)
	}
	testutil.NoSurvivors(t, mark)
	a, st, _, _, mark = runShell(t, r, 200*time.Millisecond, "(trap '' TERM; sleep 30) & wait")
	if st != jobs.TimedOut || a.Leftovers == 0 {
		t.Errorf("a child that ignores SIGTERM: got %s with %d leftovers, want timed_out with it counted", st, a.Leftovers)
	}
	testutil.NoSurvivors(t, mark)
}
