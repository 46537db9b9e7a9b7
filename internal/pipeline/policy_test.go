package pipeline

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
)

// scripted runs tasks whose command says what to do: "ok", "fail", "fail-until-N"
// (fails before attempt N), "sleep" (until cancelled). It records each attempt's start.
type scripted struct {
	mu     sync.Mutex
	starts map[int][]time.Time
}

func (s *scripted) Run(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt {
	s.mu.Lock()
	if s.starts == nil {
		s.starts = map[int][]time.Time{}
	}
	s.starts[t.Index] = append(s.starts[t.Index], time.Now())
	s.mu.Unlock()
	a := jobs.Attempt{Start: time.Now(), ExitCode: 0}
	fmt.Fprintf(stdout, "attempt %d\n", attempt)
	var until int
	switch {
	case t.Run == "fail":
		a.ExitCode = 1
	case strings.HasPrefix(t.Run, "fail-until-"):
		fmt.Sscanf(t.Run, "fail-until-%d", &until)
		if attempt < until {
			a.ExitCode = 1
		}
	case t.Run == "slow-fail":
		time.Sleep(50 * time.Millisecond)
		a.ExitCode = 1
	case t.Run == "sleep":
		select {
		case <-ctx.Done():
			a.ExitCode, a.Stopped = -1, true
		case <-time.After(10 * time.Second):
		}
	case strings.HasPrefix(t.Run, "wait-"):
		var ms int
		fmt.Sscanf(t.Run, "wait-%d", &ms)
		select {
		case <-ctx.Done():
			a.ExitCode, a.Stopped = -1, true
		case <-time.After(time.Duration(ms) * time.Millisecond):
		}
	}
	a.Duration = time.Since(a.Start)
	return a
}

func runScripted(t *testing.T, opts Options, cmds ...string) (map[int]jobs.Result, *scripted, error) {
	t.Helper()
	sc := &scripted{}
	opts.Runner = sc
	if opts.Workers == 0 {
		opts.Workers = 2
	}
	opts.Output, opts.Stdout, opts.Stderr = None, io.Discard, io.Discard
	results := map[int]jobs.Result{}
	err := Run(context.Background(), input.NewSliceSource(shellTasks(cmds...)), opts, func(r jobs.Result) {
		if _, dup := results[r.Index]; dup {
			t.Errorf("task %d reported twice", r.Index)
		}
		results[r.Index] = r
	})
	if len(results) != len(cmds) {
		t.Errorf("got %d results, want %d", len(results), len(cmds))
	}
	return results, sc, err
}

func withRetries(n int, delay time.Duration, cmds ...string) []jobs.Task {
	tasks := shellTasks(cmds...)
	for i := range tasks {
		tasks[i].Retries, tasks[i].RetryDelay = n, delay
	}
	return tasks
}

func TestRetriesSucceedOnTheThirdAttempt(t *testing.T) {
	sc := &scripted{}
	opts := Options{Workers: 1, Runner: sc, Output: None, Stdout: io.Discard, Stderr: io.Discard, Jitter: func() float64 { return 1 }}
	var got []jobs.Result
	src := input.NewSliceSource(withRetries(5, 100*time.Millisecond, "fail-until-3", "fail"))
	if err := Run(context.Background(), src, opts, func(r jobs.Result) { got = append(got, r) }); err != nil {
		t.Fatal(err)
	}
	byIndex := map[int]jobs.Result{}
	for _, r := range got {
		byIndex[r.Index] = r
	}
	if r := byIndex[1]; r.Status != jobs.Succeeded || r.Attempts != 3 || r.StdoutTail != "attempt 3\n" {
		t.Errorf("task 1: got %s after %d attempts (stdout %q), want succeeded after 3", r.Status, r.Attempts, r.StdoutTail)
	}
	if e := byIndex[1].Earlier; len(e) != 2 || e[0].Status != jobs.Failed || e[0].ExitCode == nil || *e[0].ExitCode != 1 ||
		e[0].Slot != 1 || e[1].StartedAt.Sub(e[0].StartedAt) < 100*time.Millisecond ||
		byIndex[1].StartedAt.Sub(e[1].StartedAt) < 200*time.Millisecond {
		t.Errorf("task 1: earlier attempts %+v, want its two failed attempts, first first, in slot 1, with their backoffs between them", e)
	}
	if r := byIndex[2]; r.Status != jobs.Failed || r.Attempts != 6 {
		t.Errorf("task 2: got %s after %d attempts, want failed after 6 (1 + 5 retries)", r.Status, r.Attempts)
	}
	// With the jitter at its top, the delays are exactly 100ms, 200ms, 400ms, ...
	starts := sc.starts[2]
	for i := 1; i < len(starts); i++ {
		gap := starts[i].Sub(starts[i-1])
		want := Backoff(100*time.Millisecond, i)
		if gap < want || gap > want+400*time.Millisecond {
			t.Errorf("delay before attempt %d: %v, want %v (doubling)", i+1, gap, want)
		}
	}
}

func TestBackoffIsCapped(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 6: 32 * time.Second, 7: time.Minute, 30: time.Minute} {
		if got := Backoff(time.Second, n); got != want {
			t.Errorf("Backoff(1s, %d): got %v, want %v", n, got, want)
		}
	}
}

func TestCancelledTaskIsNotRetried(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	opts := Options{Workers: 1, Runner: &scripted{}, Output: None, Stdout: io.Discard, Stderr: io.Discard}
	var got []jobs.Result
	if err := Run(ctx, input.NewSliceSource(withRetries(3, time.Millisecond, "sleep")), opts, func(r jobs.Result) { got = append(got, r) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Status != jobs.Cancelled || got[0].Attempts != 1 {
		t.Errorf("got %+v, want one cancelled attempt", got)
	}
}

func count(results map[int]jobs.Result) map[jobs.Status]int {
	c := map[jobs.Status]int{}
	for _, r := range results {
		c[r.Status]++
	}
	return c
}

func TestHaltSoonFail1(t *testing.T) {
	h, _ := ParseHalt("soon,fail=1")
	// Worker 1 fails after 50ms; worker 2's task runs on and finishes; the rest never start.
	results, _, err := runScripted(t, Options{Halt: h}, "slow-fail", "wait-200", "ok", "ok", "ok")
	if err != nil {
		t.Fatal(err)
	}
	if c := count(results); c[jobs.Failed] != 1 || c[jobs.Succeeded] != 1 || c[jobs.Skipped] != 3 {
		t.Errorf("got %v, want 1 failed, the running task succeeded, 3 skipped", c)
	}
	if r := results[5]; !strings.Contains(r.Error, "halted after 1 task failed (--halt soon,fail=1)") {
		t.Errorf("skip reason %q, want the halt named", r.Error)
	}
}

func TestHaltNowFail1(t *testing.T) {
	h, _ := ParseHalt("now,fail=1")
	results, _, err := runScripted(t, Options{Halt: h}, "sleep", "slow-fail", "ok", "ok")
	if err != nil {
		t.Fatal(err)
	}
	if c := count(results); c[jobs.Failed] != 1 || c[jobs.Cancelled] != 1 || c[jobs.Skipped] != 2 {
		t.Errorf("got %v, want 1 failed, the running task cancelled, 2 skipped", c)
	}
}

func TestHaltFailPercent(t *testing.T) {
	h, _ := ParseHalt("soon,fail=50%")
	// 10 tasks, one at a time: the 5th failure is half of them.
	cmds := []string{"slow-fail", "ok", "slow-fail", "slow-fail", "ok", "slow-fail", "slow-fail", "ok", "ok", "ok"}
	results, _, err := runScripted(t, Options{Halt: h, Workers: 1}, cmds...)
	if err != nil {
		t.Fatal(err)
	}
	if c := count(results); c[jobs.Failed] != 5 || c[jobs.Skipped] != 3 {
		t.Errorf("got %v, want a halt at the 5th failure of 10 (5 failed, 2 succeeded, 3 skipped)", c)
	}
}

func TestHaltSuccess1FirstWins(t *testing.T) {
	h, _ := ParseHalt("now,success=1")
	results, _, err := runScripted(t, Options{Halt: h, Workers: 3}, "sleep", "wait-50", "sleep", "ok")
	if err != nil {
		t.Fatal(err)
	}
	c := count(results)
	if c[jobs.Succeeded] != 1 || c[jobs.Cancelled] != 2 || c[jobs.Failed] != 0 {
		t.Errorf("got %v, want the first success to win and the others cancelled", c)
	}
}

func TestParseHalt(t *testing.T) {
	for in, want := range map[string]string{
		"never": "never", "soon": "soon,fail=1", "now": "now,fail=1", "soon,fail=3": "soon,fail=3",
		"now,fail=25%": "now,fail=25%", "now,success=1": "now,success=1", "soon,success=10%": "soon,success=10%",
	} {
		h, err := ParseHalt(in)
		if err != nil || h.String() != want {
			t.Errorf("ParseHalt(%q): got %v, %v, want %s", in, h, err, want)
		}
	}
	for _, bad := range []string{"later", "soon,fail=0", "now,fail=x", "soon,fail=150%", "soon,lost=1", "never,fail=1"} {
		if _, err := ParseHalt(bad); err == nil {
			t.Errorf("ParseHalt(%q): want an error", bad)
		}
	}
}

func TestResumeSkipsWhatSucceeded(t *testing.T) {
	done := map[string]bool{"k2": true}
	opts := Options{
		Key:  func(t *jobs.Task) string { return fmt.Sprintf("k%d", t.Index) },
		Done: func(key string) (string, bool) { return "already succeeded", done[key] },
	}
	results, sc, err := runScripted(t, opts, "ok", "ok", "ok")
	if err != nil {
		t.Fatal(err)
	}
	if r := results[2]; r.Status != jobs.Skipped || r.Error != "already succeeded" || len(sc.starts[2]) != 0 {
		t.Errorf("task 2: got %+v, want skipped without running", r)
	}
	if results[1].Key != "k1" || results[3].Status != jobs.Succeeded {
		t.Errorf("got %+v", results)
	}
}

func TestResultSaysHowLongItWaitedForTheRate(t *testing.T) {
	// 4 starts a second, one at a time: the second task waits about 250ms for its
	// token once its slot took it.
	opts := Options{Workers: 1, Limiter: rate.NewLimiter(4, 1)}
	results, _, err := runScripted(t, opts, "ok", "ok")
	if err != nil {
		t.Fatal(err)
	}
	if w := time.Duration(results[1].Waited); w > 100*time.Millisecond {
		t.Errorf("task 1 waited %v, want none", w)
	}
	if w := time.Duration(results[2].Waited); w < 150*time.Millisecond || w > 2*time.Second {
		t.Errorf("task 2 waited %v, want about 250ms", w)
	}
}
