// Package pipeline runs a stream of tasks through the pool and fans the results back in
// on one goroutine: task output, then each result, in the order tasks end.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/time/rate"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/pool"
)

// Output says what becomes of the tasks' own output.
type Output string

// The output modes.
const (
	// Grouped prints each task's stdout, then its stderr, whole, when the task ends:
	// two tasks' output never interleave.
	Grouped Output = "grouped"
	// None prints no task output; results still keep the tails.
	None Output = "none"
)

// ParseOutput checks an output mode name.
func ParseOutput(s string) (Output, error) {
	switch o := Output(s); o {
	case Grouped, None:
		return o, nil
	}
	return "", fmt.Errorf("invalid output mode %q: want grouped or none", s)
}

// Options configure a run.
type Options struct {
	Workers int           // tasks running at once, at least 1
	Limiter *rate.Limiter // paces task starts; nil: unlimited
	Runner  *jobs.Runner  // starts the processes
	Output  Output
	Stdout  io.Writer // where grouped task stdout goes
	Stderr  io.Writer // where grouped task stderr goes
}

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
// input error of src; the tasks that were read before it still run to the end.
func Run(ctx context.Context, src jobs.Source, opts Options, emit func(jobs.Result)) error {
	startCtx, stopStarting := context.WithCancelCause(ctx)
	defer stopStarting(nil)
	closeSrc := context.AfterFunc(startCtx, func() { _ = src.Close() })
	defer closeSrc()

	in := make(chan pool.Job[jobs.Task])
	out := make(chan pool.Done[jobs.Task, outcome], opts.Workers)
	fed := make(chan error, 1)
	go func() { fed <- feed(src, in, stopStarting) }()
	go func() {
		popts := pool.Options{Workers: opts.Workers, Limiter: opts.Limiter, TimeoutCause: jobs.ErrTimeout}
		pool.Run(startCtx, ctx, popts, in, runTask(opts), out)
		close(out)
	}()

	spool := opts.Output == Grouped
	for d := range out {
		r := result(startCtx, d)
		if d.Started && spool {
			_, _ = d.Result.stdout.WriteTo(opts.Stdout)
			_, _ = d.Result.stderr.WriteTo(opts.Stderr)
		}
		d.Result.close()
		emit(r)
	}
	return <-fed
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

func runTask(opts Options) pool.Func[jobs.Task, outcome] {
	spool := opts.Output == Grouped
	return func(ctx context.Context, slot int, t jobs.Task) outcome {
		o := outcome{stdout: jobs.NewCapture(spool), stderr: jobs.NewCapture(spool)}
		o.attempt = opts.Runner.Run(ctx, &t, slot, 1, o.stdout, o.stderr)
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
