package pipeline

import (
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/pool"
)

// MaxBackoffs bounds how many times one task may back off (exit with the back-off
// code) and be queued again; after that, its exit is a failure like any other.
const MaxBackoffs = 10

// BackoffEvent is a change of the run's concurrency after a back-off or a recovery.
type BackoffEvent struct {
	Time        time.Time
	TaskID      string  // the task that backed off; "" for a recovery
	Concurrency int     // tasks allowed to run at once now
	Workers     int     // the run's configured workers
	Rate        float64 // starts a second allowed now; 0: unlimited
}

// String says what happened: "task x exited 75: concurrency 4 of 8 after back-off".
func (e BackoffEvent) String() string {
	s := fmt.Sprintf("concurrency %d of %d", e.Concurrency, e.Workers)
	if e.Rate > 0 {
		s += fmt.Sprintf(", rate %.3g/s", e.Rate)
	}
	if e.TaskID == "" {
		return s + " (recovering)"
	}
	return fmt.Sprintf("task %s backed off: %s after back-off", e.TaskID, s)
}

// backoff is the run's AIMD window, as TCP's congestion window: a task that exits
// with the back-off code is queued again and halves the run's concurrency and rate;
// each success then adds 1/window to the concurrency (one task per window of
// successes), never above the configured workers; the rate follows the concurrency.
// It is a pool gate (pool.Gate) for the concurrency and sets the limiter's rate.
//
// The pool's dispatching goroutine owns a backoff.
type backoff struct {
	code    int
	workers int
	limiter *rate.Limiter // nil: no rate
	rate    rate.Limit    // the configured rate
	window  float64       // the concurrency allowed now, in [1, workers]
	running int
	times   map[int]int // back-offs by task index
	notify  func(BackoffEvent)
	shown   int // the concurrency last notified
}

func newBackoff(code, workers int, limiter *rate.Limiter, notify func(BackoffEvent)) *backoff {
	b := &backoff{code: code, workers: max(workers, 1), limiter: limiter, window: float64(max(workers, 1)), times: map[int]int{}, notify: notify}
	b.shown = b.workers
	if limiter != nil {
		b.rate = limiter.Limit()
	}
	return b
}

// allowed is the concurrency allowed now.
func (b *backoff) allowed() int { return max(1, int(math.Floor(b.window))) }

// Admit implements pool.Gate.
func (b *backoff) Admit(t jobs.Task, now time.Time) (bool, time.Time, string) {
	return b.running < b.allowed(), time.Time{}, "back-off"
}

// Start implements pool.Gate.
func (b *backoff) Start(t jobs.Task, now time.Time) { b.running++ }

// Done implements pool.Gate.
func (b *backoff) Done(t jobs.Task) { b.running-- }

// ended takes the end of an attempt of t, and reports whether t backed off: it is
// then queued again, without using a retry.
func (b *backoff) ended(t *jobs.Task, o *outcome) bool {
	switch {
	case o.status == jobs.Succeeded:
		if b.window < float64(b.workers) {
			b.window = min(float64(b.workers), b.window+1/b.window)
			b.changed("")
		}
		return false
	case o.status != jobs.Failed || o.attempt.ExitCode != b.code || b.times[t.Index] >= MaxBackoffs:
		return false
	}
	b.times[t.Index]++
	b.window = max(1, b.window/2)
	b.changed(t.ID)
	return true
}

// backoffs returns how many times t backed off.
func (b *backoff) backoffs(t *jobs.Task) int { return b.times[t.Index] }

// changed applies the window to the rate and tells notify when the concurrency
// changed, or when a task backed off.
func (b *backoff) changed(taskID string) {
	ev := BackoffEvent{Time: time.Now(), TaskID: taskID, Concurrency: b.allowed(), Workers: b.workers}
	if b.limiter != nil && b.rate != rate.Inf {
		r := b.rate * rate.Limit(b.window/float64(b.workers))
		b.limiter.SetLimit(r)
		ev.Rate = float64(r)
	}
	if b.notify != nil && (taskID != "" || ev.Concurrency != b.shown) {
		b.notify(ev)
	}
	b.shown = ev.Concurrency
}

// gates admits an attempt when every gate of it does (a pool.Gate).
type gates []interface {
	Admit(t jobs.Task, now time.Time) (bool, time.Time, string)
	Start(t jobs.Task, now time.Time)
	Done(t jobs.Task)
}

// Admit implements pool.Gate: when a gate holds the attempt back, the time to ask
// again is the latest any of them gives, and why is the first one's reason.
func (gs gates) Admit(t jobs.Task, now time.Time) (ok bool, wake time.Time, why string) {
	ok = true
	for _, g := range gs {
		if yes, at, w := g.Admit(t, now); !yes {
			if ok {
				why = w
			}
			ok = false
			if at.After(wake) {
				wake = at
			}
		}
	}
	return ok, wake, why
}

// Exhausted implements pool.Exhauster: one of them admits nothing at all.
func (gs gates) Exhausted() (bool, string) {
	for _, g := range gs {
		if ex, ok := g.(pool.Exhauster); ok {
			if yes, why := ex.Exhausted(); yes {
				return true, why
			}
		}
	}
	return false, ""
}

// Start implements pool.Gate.
func (gs gates) Start(t jobs.Task, now time.Time) {
	for _, g := range gs {
		g.Start(t, now)
	}
}

// Done implements pool.Gate.
func (gs gates) Done(t jobs.Task) {
	for _, g := range gs {
		g.Done(t)
	}
}
