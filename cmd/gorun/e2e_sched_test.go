//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/testutil"
)

// prioritisedFile writes a task file whose tasks append their id to DIR/order: a
// first task that every other one needs (so that all of them are ready at once when
// it ends), priorities, and a chain of needs. It returns the file and the order they
// must start in, one at a time.
func prioritisedFile(t *testing.T, dir string) (string, string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("version: 1\ntasks:\n")
	task := func(id, extra string) {
		fmt.Fprintf(&b, "  - {id: %s, run: 'echo %s >> %s/order'%s}\n", id, id, dir, extra)
	}
	task("first", ", priority: 100")
	task("low", ", priority: -5, needs: [first]")
	task("plain1", ", needs: [first]")
	task("urgent", ", priority: 10, needs: [first]")
	task("chain1", ", needs: [first]")
	task("chain2", ", needs: [chain1]")
	task("chain3", ", needs: [chain2]")
	task("plain2", ", needs: [first]")
	task("high", ", priority: 3, needs: [first]")
	// urgent and high by priority; then chain1, which has the most work after it;
	// then chain2 (2 to go) before the plain tasks (1 each); plain1, plain2 and
	// chain3 by the order they became ready; low last.
	return writeFile(t, "prio.yaml", b.String()), "first urgent high chain1 chain2 plain1 plain2 chain3 low"
}

func readOrder(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "order"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(data)), " ")
}

// TestE2EPriorityStartOrder: one slot, a prioritised file: the tasks start by
// priority, then critical path first, then input order, on this machine and on a
// broker's worker alike.
func TestE2EPriorityStartOrder(t *testing.T) {
	dir := t.TempDir()
	file, want := prioritisedFile(t, dir)
	r := startGorun(t, nil, "exec", file, "-j", "1")
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, r.stderr)
	}
	if got := readOrder(t, dir); got != want {
		t.Errorf("local: got start order %q, want %q", got, want)
	}

	url := startBroker(t)
	startWorker(t, url, testutil.NewMark(t), 1)
	if err := os.Remove(filepath.Join(dir, "order")); err != nil {
		t.Fatal(err)
	}
	r = startGorun(t, nil, "exec", file, "-j", "1", "--broker", url)
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("--broker: exit %d; stderr:\n%s", code, r.stderr)
	}
	if got := readOrder(t, dir); got != want {
		t.Errorf("--broker: got start order %q, want %q", got, want)
	}

	r = startGorun(t, nil, "validate", file)
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("validate: exit %d; stderr:\n%s", code, r.stderr)
	}
	if out := r.stdout.String(); !strings.Contains(out, "PRIORITY") || !regexp.MustCompile(`(?m)^urgent +first +10 `).MatchString(out) {
		t.Errorf("validate does not show the priorities:\n%s", out)
	}
}

// TestE2ERetryLogInReport: a task retried on its exit code 75, then stopped by its
// no_retry_on; the JSON report says of each attempt whether it was retried, and why.
func TestE2ERetryLogInReport(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, "retry.yaml", fmt.Sprintf(`version: 1
tasks:
  - id: t
    run: n=$(cat %[1]s/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > %[1]s/n; [ $n -ge 2 ] && exit 9; exit 75
    retries: 5
    retry_delay: 10ms
    no_retry_on: [9]
`, dir))
	report := filepath.Join(dir, "report.json")
	r := startGorun(t, nil, "exec", file, "--retry-on", "75,9", "--report", report)
	if code := r.wait(t, 60*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, r.stderr)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Results []struct {
			Attempts int `json:"attempts"`
			RetryLog []struct {
				Attempt  int    `json:"attempt"`
				ExitCode *int   `json:"exit_code"`
				Retried  bool   `json:"retried"`
				Reason   string `json:"reason"`
			} `json:"retry_log"`
		} `json:"results"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Attempts != 2 || len(rep.Results[0].RetryLog) != 2 {
		t.Fatalf("got %s, want one task, 2 attempts, 2 retry_log entries", data)
	}
	log := rep.Results[0].RetryLog
	if !log[0].Retried || *log[0].ExitCode != 75 || log[0].Reason != "exit code 75, in retry_on: retry 1 of 5" {
		t.Errorf("attempt 1: got %+v, want retried on exit code 75", log[0])
	}
	if log[1].Retried || *log[1].ExitCode != 9 || log[1].Reason != "exit code 9 is in no_retry_on (9)" {
		t.Errorf("attempt 2: got %+v, want not retried: 9 is in no_retry_on", log[1])
	}
}
