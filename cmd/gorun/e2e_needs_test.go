//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/journal"
)

func TestE2ENeedsValidateAndCycle(t *testing.T) {
	r := startGorun(t, nil, "validate", "../../testdata/pipeline.yaml")
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, r.stderr)
	}
	out := r.stdout.String()
	if !strings.Contains(out, "longest chain: fetch-catalog → shard-1 → merge → publish → notify (5 tasks)") {
		t.Errorf("validate output lacks the longest chain:\n%s", out)
	}
	if strings.Index(out, "\nmerge ") < strings.Index(out, "\nshard-3 ") {
		t.Errorf("merge is listed before a task it needs:\n%s", out)
	}
	dir := t.TempDir()
	cyc := writeFile(t, "cycle.yaml", fmt.Sprintf("version: 1\ntasks:\n  - id: a\n    run: touch %s/ran\n    needs: [b]\n  - id: b\n    run: 'true'\n    needs: [a]\n", dir))
	r = startGorun(t, nil, "exec", cyc)
	if code := r.wait(t, 30*time.Second); code != 2 || !strings.Contains(r.stderr.String(), "cycle: a → b → a") {
		t.Errorf("cycle: exit %d, stderr %q", code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("a task ran although the file has a cycle")
	}
}

// TestE2ENeedsResumeAfterKill kills a run in the middle of a DAG and resumes it: every
// task ends up succeeded once in the journal, and none that had finished runs again.
func TestE2ENeedsResumeAfterKill(t *testing.T) {
	dir := t.TempDir()
	side := filepath.Join(dir, "side")
	var b strings.Builder
	b.WriteString("version: 1\ntasks:\n")
	for i := 1; i <= 10; i++ {
		fmt.Fprintf(&b, "  - id: s1-%d\n    run: sleep 0.1; echo s1-%d >> %s\n", i, i, side)
		fmt.Fprintf(&b, "  - id: s2-%d\n    run: sleep 0.1; echo s2-%d >> %s\n    needs: [s1-%d]\n", i, i, side, i)
	}
	b.WriteString("  - id: final\n    run: echo final >> " + side + "\n    needs: [")
	for i := 1; i <= 10; i++ {
		if i > 1 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "s2-%d", i)
	}
	b.WriteString("]\n")
	tasks := writeFile(t, "dag.yaml", b.String())
	jpath := filepath.Join(dir, "journal")

	r := startGorun(t, nil, "exec", tasks, "-j", "3", "--journal", jpath)
	waitFor(t, 20*time.Second, "the first stage to be under way", func() bool {
		data, _ := os.ReadFile(side)
		return strings.Count(string(data), "\n") >= 5
	})
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	r.wait(t, 10*time.Second)
	time.Sleep(200 * time.Millisecond) // the guard stops what ran
	before := map[string]bool{}
	_ = journal.Read(jpath, func(rec journal.Record) error {
		if rec.Status == jobs.Succeeded {
			before[rec.ID] = true
		}
		return nil
	})
	sideBefore, _ := os.ReadFile(side)

	r = startGorun(t, nil, "exec", tasks, "-j", "3", "--journal", jpath, "--resume")
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("resume: exit %d; stderr:\n%s", code, r.stderr)
	}
	count := map[string]int{}
	_ = journal.Read(jpath, func(rec journal.Record) error {
		if rec.Status == jobs.Succeeded {
			count[rec.ID]++
		}
		return nil
	})
	if len(count) != 21 {
		t.Errorf("%d tasks succeeded in the journal, want 21", len(count))
	}
	for id, n := range count {
		if n != 1 {
			t.Errorf("%s succeeded %d times in the journal, want once", id, n)
		}
	}
	sideAfter, _ := os.ReadFile(side)
	for id := range before {
		if strings.Count(string(sideAfter), id+"\n") != strings.Count(string(sideBefore), id+"\n") {
			t.Errorf("%s had finished before the kill and ran again", id)
		}
	}
	t.Logf("%d of 21 tasks had finished before the kill", len(before))
}
