package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/gorun/gorun/internal/jobs"
)

func TestMedianTimeout(t *testing.T) {
	m := &medianTimeout{percent: 200}
	if got := m.timeout(); got != 0 {
		t.Errorf("before any task finished: got %v, want 0 (no timeout)", got)
	}
	for _, d := range []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond} {
		m.add(jobs.Succeeded, d)
	}
	// A timed-out or cancelled task says nothing of how long tasks take.
	m.add(jobs.TimedOut, time.Hour)
	m.add(jobs.Cancelled, time.Hour)
	got, want := m.timeout(), 40*time.Millisecond
	if got < want*99/100 || got > want*101/100 {
		t.Errorf("got %v, want 200%% of the median 20ms = %v, within 1%%", got, want)
	}
	task := jobs.Task{Timeout: time.Second}
	ctx, cancel := m.bound(false)(context.Background(), &task)
	defer cancel()
	if _, ok := ctx.Deadline(); ok || task.Timeout != time.Second {
		t.Errorf("a task with a timeout of its own: got a deadline %v, timeout %v, want its own 1s only", ok, task.Timeout)
	}
	task.Timeout = 0
	ctx, cancel = m.bound(false)(context.Background(), &task)
	defer cancel()
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > want*101/100 {
		t.Errorf("a task without a timeout: got deadline in %v (%v), want about %v", time.Until(dl), ok, want)
	}
	_, cancel = m.bound(true)(context.Background(), &task)
	defer cancel()
	if task.Timeout < want*99/100 || task.Timeout > want*101/100 {
		t.Errorf("a runner that times out itself: got task timeout %v, want about %v", task.Timeout, want)
	}
	var none *medianTimeout
	task.Timeout = 0
	if ctx, _ := none.bound(false)(context.Background(), &task); task.Timeout != 0 || ctx.Done() != nil {
		t.Errorf("without a relative timeout: got timeout %v, want none", task.Timeout)
	}
}

// TestTimeoutPercent runs one task at a time: three that take 20ms, then one that
// would take 10s; at 300% of the median it times out after about 60ms.
func TestTimeoutPercent(t *testing.T) {
	results, _, err := runScripted(t, Options{Workers: 1, TimeoutPercent: 300}, "wait-20", "wait-20", "wait-20", "sleep")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if results[i].Status != jobs.Succeeded {
			t.Errorf("task %d: got %s, want succeeded (no timeout before a task finished, then 300%%)", i, results[i].Status)
		}
	}
	last := results[4]
	if last.Status != jobs.TimedOut || time.Duration(last.Duration) > 5*time.Second {
		t.Errorf("the long task: got %s after %v, want timed_out well before its 10s", last.Status, time.Duration(last.Duration))
	}
}
