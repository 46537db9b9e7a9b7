package pipeline

import (
	"context"
	"io"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
	"golang.org/x/time/rate"
)

// crowd is a fake runner whose tasks take a second; "backoff-once" exits 75 on its
// first attempt, at once. It records how many ran at each start.
type crowd struct {
	mu      sync.Mutex
	running int
	starts  []crowdStart
}

type crowdStart struct {
	at      time.Time
	running int
}

func (c *crowd) Run(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt {
	c.mu.Lock()
	c.running++
	c.starts = append(c.starts, crowdStart{time.Now(), c.running})
	c.mu.Unlock()
	defer func() { c.mu.Lock(); c.running--; c.mu.Unlock() }()
	if t.Run == "backoff-once" && attempt == 1 {
		return jobs.Attempt{Start: time.Now(), ExitCode: 75}
	}
	if t.Run == "backoff-always" {
		return jobs.Attempt{Start: time.Now(), ExitCode: 75}
	}
	time.Sleep(time.Second)
	return jobs.Attempt{Start: time.Now(), ExitCode: 0}
}

func runCrowd(t *testing.T, cmds []string, opts Options) (*crowd, []BackoffEvent, map[int]jobs.Result) {
	t.Helper()
	c := &crowd{}
	var events []BackoffEvent
	opts.Runner, opts.Output, opts.Stdout, opts.Stderr = c, None, io.Discard, io.Discard
	opts.Backoff = func(e BackoffEvent) { events = append(events, e) }
	results := map[int]jobs.Result{}
	if err := Run(context.Background(), input.NewSliceSource(shellTasks(cmds...)), opts, func(r jobs.Result) { results[r.Index] = r }); err != nil {
		t.Fatal(err)
	}
	return c, events, results
}

// TestBackoffHalvesThenRecovers: a task that exits 75 halves the concurrency the
// others get (8 to 4), which then grows back, one task per window of successes, to
// 8 and no further; the task runs again without using a retry.
func TestBackoffHalvesThenRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cmds := []string{"backoff-once"}
		for range 60 {
			cmds = append(cmds, "x")
		}
		c, events, results := runCrowd(t, cmds, Options{Workers: 8, BackoffCode: 75})
		if len(events) == 0 || events[0].TaskID != "task-1" || events[0].Concurrency != 4 || events[0].Workers != 8 {
			t.Fatalf("got events %v, want first: task-1 backed off, concurrency 4 of 8", events)
		}
		if got := events[0].String(); got != "task task-1 backed off: concurrency 4 of 8 after back-off" {
			t.Errorf("got %q", got)
		}
		var recovered time.Time // the first event back at 5
		for _, e := range events[1:] {
			if e.Concurrency == 5 {
				recovered = e.Time
				break
			}
		}
		if recovered.IsZero() || events[len(events)-1].Concurrency != 8 {
			t.Fatalf("got events %v, want a recovery to 5, and 8 at the end", events)
		}
		// The starts from the back-off to the recovery, that instant included: tasks end
		// at the same fake instant as the recovery they cause, so a start then may see
		// 4 or 5 running, in either order.
		most := 0
		for _, s := range c.starts {
			if s.at.After(events[0].Time) && !s.at.After(recovered) {
				most = max(most, s.running)
			}
			if s.running > 8 {
				t.Errorf("%d tasks ran at once, more than the 8 workers", s.running)
			}
		}
		if most < 4 || most > 5 {
			t.Errorf("at most %d ran at once between the back-off and the recovery, want 4 (5 as it recovers)", most)
		}
		if r := results[1]; r.Status != jobs.Succeeded || r.Attempts != 2 || r.RetryLog != nil {
			t.Errorf("the task that backed off: got %s after %d attempts, retry log %v; want succeeded after 2, no retry used", r.Status, r.Attempts, r.RetryLog)
		}
	})
}

// TestBackoffHalvesTheRate: the rate follows the concurrency down.
func TestBackoffHalvesTheRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lim := rate.NewLimiter(8, 1)
		_, events, _ := runCrowd(t, []string{"backoff-once", "x", "x"}, Options{Workers: 4, Limiter: lim, BackoffCode: 75})
		if events[0].Rate != 4 || events[0].Concurrency != 2 {
			t.Errorf("after the back-off: got %v, want concurrency 2, rate 4/s", events[0])
		}
	})
}

// TestBackoffIsBounded: a task that always exits 75 backs off MaxBackoffs times,
// then fails; its retries are its own.
func TestBackoffIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tasks := shellTasks("backoff-always")
		tasks[0].Retries = 1
		c := &crowd{}
		opts := Options{Workers: 2, BackoffCode: 75, Runner: c, Output: None, Stdout: io.Discard, Stderr: io.Discard, Jitter: func() float64 { return 0 }}
		var got jobs.Result
		if err := Run(context.Background(), input.NewSliceSource(tasks), opts, func(r jobs.Result) { got = r }); err != nil {
			t.Fatal(err)
		}
		if got.Status != jobs.Failed || got.Attempts != MaxBackoffs+2 || len(got.RetryLog) != 2 {
			t.Errorf("got %s after %d attempts, retry log %v; want failed after %d (back-offs, then 1 + 1 retry)", got.Status, got.Attempts, got.RetryLog, MaxBackoffs+2)
		}
	})
}
