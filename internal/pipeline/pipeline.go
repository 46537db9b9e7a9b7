// Package pipeline runs a stream of tasks through the pool and fans the results back in
// on one goroutine: task output, then each result, in the order tasks end.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"golang.org/x/time/rate"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/pool"
)

// Options configure a run.
type Options struct {
	Workers   int           // tasks running at once, at least 1
	Limiter   *rate.Limiter // paces task starts; nil: unlimited
	Runner    Runner        // runs each attempt; a *jobs.Runner in production
	Output    Output
	KeepOrder bool      // print outputs and results in input order
	Stdout    io.Writer // where task stdout (or JSON results) go
	Stderr    io.Writer // where task stderr goes
}

// Runner runs one attempt of a task; *jobs.Runner runs it as a process.
type Runner interface {
	Run(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *jobs.Capture) jobs.Attempt
}

// ErrBrokenPipe ends a run whose standard output was closed by its reader, as
// `gorun exec ... | head -1` does: nobody reads what more tasks would print.
var ErrBrokenPipe = errors.New("output closed by its reader (broken pipe)")

// ErrInterrupted is the skip reason of tasks that did not start because the run's
// context ended, when that context gives no cause of its own.
var ErrInterrupted = errors.New("run interrupted")

// Run runs every task src yields and calls emit with each task's result, on the calling
// goroutine, one at a time, in the order the tasks end. Task output is written just
// before its result is emitted.
//
// When ctx is done, no further task starts, running tasks are stopped (SIGTERM, then
// SIGKILL after the runner's grace), src is closed, and what it still yields is emitted
// as skipped. Run returns once every task src yielded has been emitted. Its error is an
// input error of src (the tasks that were read before it still run to the end), or
// ErrBrokenPipe when the output was closed (the run was then stopped as if
// interrupted).
func Run(ctx context.Context, src jobs.Source, opts Options, emit func(jobs.Result)) error {
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	startCtx, stopStarting := context.WithCancelCause(runCtx)
	defer stopStarting(nil)
	closeSrc := context.AfterFunc(startCtx, func() { _ = src.Close() })
	defer closeSrc()

	in := make(chan pool.Job[jobs.Task])
	out := make(chan pool.Done[jobs.Task, outcome], opts.Workers)
	fed := make(chan error, 1)
	go func() { fed <- feed(src, in, stopStarting) }()
	pr := newPrinter(&opts, emit)
	go func() {
		popts := pool.Options{Workers: opts.Workers, Limiter: opts.Limiter, TimeoutCause: jobs.ErrTimeout}
		pool.Run(startCtx, runCtx, popts, in, runTask(opts.Runner, pr), out)
		close(out)
	}()

	broken := false
	for d := range out {
		r := result(startCtx, d)
		if d.Started {
			pr.add(r, &d.Result)
		} else {
			pr.add(r, nil)
		}
		if !broken && isBrokenPipe(pr.stdout.Err()) {
			broken = true
			stopRun(ErrBrokenPipe)
		}
	}
	pr.finish()
	inputErr := <-fed
	if broken || isBrokenPipe(pr.stdout.Err()) {
		return ErrBrokenPipe
	}
	return inputErr
}

func isBrokenPipe(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrClosedPipe)
}

// feed sends every task of src to in and closes in. An input error stops further
// starts and is returned.
func feed(src jobs.Source, in chan<- pool.Job[jobs.Task], stopStarting context.CancelCauseFunc) error {
	defer close(in)
	for {
		t, err := src.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			stopStarting(fmt.Errorf("input error: %w", err))
			return err
		}
		in <- pool.Job[jobs.Task]{Index: t.Index, Value: t, Timeout: t.Timeout}
	}
}

// outcome is what a worker hands the fan-in goroutine for one task.
type outcome struct {
	attempt        jobs.Attempt
	status         jobs.Status
	stdout, stderr *jobs.Capture
}

func (o *outcome) close() {
	if o.stdout != nil {
		_ = o.stdout.Close()
		_ = o.stderr.Close()
	}
}

func runTask(runner Runner, pr *printer) pool.Func[jobs.Task, outcome] {
	return func(ctx context.Context, slot int, t jobs.Task) outcome {
		var o outcome
		var done func()
		o.stdout, o.stderr, done = pr.captures(&t)
		o.attempt = runner.Run(ctx, &t, slot, 1, o.stdout, o.stderr)
		done()
		o.status = jobs.StatusOf(ctx, o.attempt)
		return o
	}
}

// result builds the Result of a finished or never-started job.
func result(startCtx context.Context, d pool.Done[jobs.Task, outcome]) jobs.Result {
	t := &d.Job.Value
	if !d.Started {
		cause := context.Cause(startCtx)
		if cause == nil || errors.Is(cause, context.Canceled) {
			cause = ErrInterrupted
		}
		return jobs.SkippedResult(t, cause.Error())
	}
	r := jobs.Result{ID: t.ID, Index: t.Index, Command: t.Command(), Slot: d.Slot, Attempts: 1}
	if d.Panic != nil {
		r.Status = jobs.Failed
		r.Error = fmt.Sprintf("task %s: %v", t.ID, d.Panic)
		return r
	}
	o := &d.Result
	a := &o.attempt
	r.Status = o.status
	r.StartedAt = a.Start
	r.Duration = jobs.Seconds(a.Duration)
	if a.ExitCode >= 0 {
		code := a.ExitCode
		r.ExitCode = &code
	}
	if a.Signal != 0 {
		r.Signal = jobs.SignalName(a.Signal)
	}
	r.StdoutTail, r.StdoutBytes = o.stdout.Tail(), o.stdout.Len()
	r.StderrTail, r.StderrBytes = o.stderr.Tail(), o.stderr.Len()
	var errs []string
	for _, err := range []error{a.Err, o.stdout.Err(), o.stderr.Err()} {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	r.Error = strings.Join(errs, "; ")
	return r
}
