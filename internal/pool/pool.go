// Package pool runs jobs with bounded concurrency, a start-rate limit, a timeout per
// job and panic recovery. It knows nothing of what a job is.
package pool

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"golang.org/x/time/rate"
)

// Options configure a run of the pool.
type Options struct {
	// Workers is the number of jobs that run at once; it must be at least 1.
	Workers int
	// Limiter, when not nil, paces job starts: each start waits for a token.
	Limiter *rate.Limiter
	// TimeoutCause is the context cause of a job that runs past its timeout.
	TimeoutCause error
}

// Job is one unit of input: its 1-based input index, the value fn receives, and its
// timeout (0: none).
type Job[T any] struct {
	Index   int
	Value   T
	Timeout time.Duration
}

// Done is how a job ended. A job that was never started has Started false and a zero
// Result. A job whose fn panicked has Panic set, with the stack.
type Done[T, R any] struct {
	Job     Job[T]
	Slot    int // 1-based worker slot that ran it; 0 when not started
	Started bool
	Result  R
	Panic   error
}

// Func runs one job. ctx is done when the job's timeout passes (its cause is then
// Options.TimeoutCause) or when the run is cancelled. slot is the 1-based worker slot.
type Func[T, R any] func(ctx context.Context, slot int, v T) R

// Run starts fn for each job received from in, with at most opts.Workers running at
// once and starts paced by opts.Limiter, and sends every job's Done to out, in the
// order the jobs end.
//
// Two contexts govern it. When startCtx is done, no further job starts: jobs still in
// hand or received later are sent to out with Started false. runCtx is the parent of
// every running job's context; cancelling it stops running jobs too. Cancel startCtx
// whenever runCtx is cancelled (derive it from runCtx).
//
// Run keeps receiving from in until the caller closes it, and returns once every job
// received has been sent to out. It never closes out.
func Run[T, R any](startCtx, runCtx context.Context, opts Options, in <-chan Job[T], fn Func[T, R], out chan<- Done[T, R]) {
	n := max(opts.Workers, 1)
	finished := make(chan struct{}, n)
	for slot := 1; slot <= n; slot++ {
		go func() {
			defer func() { finished <- struct{}{} }()
			worker(startCtx, runCtx, opts, slot, in, fn, out)
		}()
	}
	for range n {
		<-finished
	}
}

func worker[T, R any](startCtx, runCtx context.Context, opts Options, slot int, in <-chan Job[T], fn Func[T, R], out chan<- Done[T, R]) {
	for job := range in {
		if !mayStart(startCtx, runCtx, opts.Limiter) {
			out <- Done[T, R]{Job: job}
			continue
		}
		out <- call(runCtx, opts, slot, job, fn)
	}
}

// mayStart waits for a rate token and reports whether the job may start now.
// runCtx is checked too: a parent context is done a moment before its children.
func mayStart(startCtx, runCtx context.Context, lim *rate.Limiter) bool {
	if startCtx.Err() != nil || runCtx.Err() != nil {
		return false
	}
	if lim != nil && lim.Wait(startCtx) != nil {
		return false
	}
	// The token may have come as startCtx ended; ending wins.
	return startCtx.Err() == nil && runCtx.Err() == nil
}

func call[T, R any](runCtx context.Context, opts Options, slot int, job Job[T], fn Func[T, R]) (d Done[T, R]) {
	d = Done[T, R]{Job: job, Slot: slot, Started: true}
	ctx := runCtx
	if job.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(runCtx, job.Timeout, opts.TimeoutCause)
		defer cancel()
	}
	defer func() {
		if v := recover(); v != nil {
			d.Panic = fmt.Errorf("panic: %v\n%s", v, debug.Stack())
		}
	}()
	d.Result = fn(ctx, slot, job.Value)
	return d
}
