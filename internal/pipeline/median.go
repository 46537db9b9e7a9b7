package pipeline

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/gorun/gorun/internal/jobs"
)

// medianTimeout gives tasks without a timeout of their own a timeout of a percentage
// of the median duration of the tasks finished so far, as GNU parallel's
// --timeout 200% does. Until a task has finished, there is none. The median is kept
// in buckets 1% apart, so it is within 1% and its memory does not grow with the number
// of tasks. The pool's dispatcher adds durations while workers read the median: it is
// safe for concurrent use.
type medianTimeout struct {
	percent float64

	mu     sync.Mutex
	n      int
	counts [medianBuckets]int
}

// medianBuckets spans 1µs to about 2.9 hours at 1% apart; longer durations share the
// last bucket.
const medianBuckets = 2400

func medianBucket(d time.Duration) int {
	if d < time.Microsecond {
		return 0
	}
	b := int(math.Log(float64(d)/float64(time.Microsecond))/math.Log(1.01)) + 1
	return min(b, medianBuckets-1)
}

// add counts the duration of a task that ran to its own end: succeeded or failed. A
// task stopped by a timeout or a cancellation says nothing of how long tasks take.
// A nil m counts nothing.
func (m *medianTimeout) add(status jobs.Status, d time.Duration) {
	if m == nil || (status != jobs.Succeeded && status != jobs.Failed) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	m.counts[medianBucket(d)]++
}

// timeout returns the timeout for a task starting now: percent of the median, or 0
// while no task has finished.
func (m *medianTimeout) timeout() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == 0 {
		return 0
	}
	seen, rank := 0, (m.n+1)/2
	for b, c := range m.counts {
		if seen += c; seen >= rank {
			median := time.Microsecond // bucket 0: under 1µs
			if b > 0 {
				median = time.Duration(float64(time.Microsecond) * math.Pow(1.01, float64(b)-0.5))
			}
			return max(time.Duration(float64(median)*m.percent/100), time.Millisecond)
		}
	}
	return 0
}

// boundFunc bounds an attempt of t that starts now: it returns the attempt's context
// and a function that releases it.
type boundFunc func(ctx context.Context, t *jobs.Task) (context.Context, context.CancelFunc)

// bound returns the boundFunc that gives an attempt of a task without a timeout of its
// own the relative timeout as it starts: a deadline on its context (cause
// jobs.ErrTimeout), or, when the runner times out attempts itself, the task's Timeout.
// A nil m bounds nothing.
func (m *medianTimeout) bound(runnerTimesOut bool) boundFunc {
	return func(ctx context.Context, t *jobs.Task) (context.Context, context.CancelFunc) {
		if m == nil || t.Timeout > 0 {
			return ctx, func() {}
		}
		d := m.timeout()
		switch {
		case d == 0:
			return ctx, func() {}
		case runnerTimesOut:
			t.Timeout = d
			return ctx, func() {}
		}
		return context.WithTimeoutCause(ctx, d, jobs.ErrTimeout)
	}
}
