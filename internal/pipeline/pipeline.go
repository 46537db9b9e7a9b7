// Package pipeline runs a stream of tasks through the pool and fans the results back in
// on one goroutine: task output, then each result, in the order tasks end.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/pool"
	"github.com/gorun/gorun/internal/process"
)

// Options configure a run.
type Options struct {
	Workers   int           // tasks running at once, at least 1
	Limiter   *rate.Limiter // paces task starts; nil: unlimited
	Runner    Runner        // runs each attempt; a *process.Runner in production
	Output    Output
	KeepOrder bool      // print outputs and results in input order
	Stdout    io.Writer // where task stdout (or JSON results) go
	Stderr    io.Writer // where task stderr goes
	Halt      Halt      // when to stop early; the zero value never does
	// Tag, when not nil, gives the tag of a task's output lines in the Tag mode, from
	// the task and the worker slot of its attempt (--tag, --tagstring); nil: the id.
	Tag func(t *jobs.Task, slot int) string

	// Key, when not nil, gives each task its identity for the journal (Result.Key).
	// It is called from one goroutine, in input order.
	Key func(t *jobs.Task) string
	// Done, when not nil, reports whether a task (by its key) already succeeded; such a
	// task does not run and ends skipped with the reason Done gives.
	Done func(key string) (reason string, done bool)
	// Jitter returns a number in [0, 1) that scales each retry's backoff; nil: random.
	Jitter func() float64
	// Log, when not nil, receives an event as each task starts, is retried and ends.
	Log *slog.Logger
	// Abort, when not nil, is called on the fan-in goroutine after each result is
	// handed to emit. Once it returns an error, nothing more starts, as with a halt
	// soon: running tasks run to their end, and the tasks not started end skipped with
	// that error as the reason. A recorder that can no longer keep results (a journal
	// on a full disk) stops the run so.
	Abort func() error
	// BackoffCode, when above 0, is the exit code of a task that asks the run to back
	// off (75, EX_TEMPFAIL): the task is queued again, up to MaxBackoffs times, without
	// using a retry, and the run's concurrency and rate are halved, to recover
	// additively as tasks succeed (see backoff).
	BackoffCode int
	// Backoff, when not nil, is told each change of the run's concurrency that a
	// back-off makes, and each back-off; on the pool's goroutine: it must not block.
	Backoff func(BackoffEvent)
	// MaxLoad and MinFree hold back every start while Machine's load is above
	// MaxLoad, or its available memory below MinFree (bytes); 0: no bound. Machine
	// nil: ProcMachine. Waiting, when not nil, is told when the run starts and stops
	// holding back, and why ("" once it stops); on the pool's goroutine.
	MaxLoad float64
	MinFree uint64
	Machine Machine
	Waiting func(why string)
	// Holding, when not nil, is kept up to date with what holds the run back now, for
	// a progress bar.
	Holding *Holding
	// Limits are the run's pools (named limits, and limits on every task): a task
	// starts only when each pool it is in has a free slot and a token.
	Limits []jobs.Limit
	// InputOrder starts the ready tasks in input order, whatever their priority or
	// the work that follows them: the order a run had before priorities, kept to
	// measure what they gain.
	InputOrder bool
	// RunnerTimesOut: the Runner applies each task's timeout itself (Task.Timeout),
	// from the moment an attempt really starts, and says so in Attempt.TimedOut; the
	// pool then gives attempts no deadline. A remote executor does, since its attempts
	// may wait in a queue before a worker takes them.
	RunnerTimesOut bool
	// TimeoutPercent > 0 gives every task without a timeout of its own a timeout of
	// this percentage of the median duration of the tasks that ran to their end before
	// its attempt started (GNU parallel's --timeout 200%); none until one has.
	TimeoutPercent float64
	// Capacity, when not nil, is what the attempts running at once may hold: an
	// attempt starts only when its task's Resources fit in what the running ones
	// leave (see resourceGate for the order and the reservation that keeps a large
	// task from starving). The caller has checked that every task fits an empty run
	// (input.File.CheckCapacity); one that never could would wait for ever.
	Capacity *jobs.Capacity
	// GPUEnv hands each attempt of a task that asks for GPUs as many free ones of
	// Capacity.GPUs, named in CUDA_VISIBLE_DEVICES, and takes them
	// back when the attempt ends. false with a remote executor: the devices are the
	// workers'.
	GPUEnv bool

	median *medianTimeout // set by Run from TimeoutPercent
}

// poolTimeout is the deadline the pool gives an attempt of t: none when the Runner
// times out attempts itself.
func (o *Options) poolTimeout(t *jobs.Task) time.Duration {
	if o.RunnerTimesOut {
		return 0
	}
	return t.Timeout
}

// MaxRetryDelay caps the backoff between attempts.
const MaxRetryDelay = time.Minute

// Runner runs one attempt of a task; *process.Runner runs it as a process, a cluster
// executor on a worker of a broker. attempt is the 1-based number of the attempt's
// first execution; a Runner that executed it more than once says so in
// Attempt.Executions. When ctx ends, Run stops the attempt and returns once it has
// ended, with Attempt.Stopped set if it had to stop it.
type Runner interface {
	Run(ctx context.Context, t *jobs.Task, slot, attempt int, stdout, stderr *process.Capture) jobs.Attempt
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
	if opts.TimeoutPercent > 0 {
		opts.median = &medianTimeout{percent: opts.TimeoutPercent}
	}
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	startCtx, stopStarting := context.WithCancelCause(runCtx)
	defer stopStarting(nil)
	closeSrc := context.AfterFunc(startCtx, func() { _ = src.Close() })
	defer closeSrc()

	in := make(chan pool.Job[jobs.Task])
	out := make(chan pool.Done[jobs.Task, outcome], opts.Workers)
	known := make(chan jobs.Result, opts.Workers) // tasks that do not run: already done
	fed := make(chan error, 1)
	var sched *schedule // a source known whole: its tasks start by priority
	if ts, ok := src.(interface{ Tasks() ([]jobs.Task, [][]int) }); ok {
		tasks, needs := ts.Tasks()
		var resumed []jobs.Result
		sched, resumed = newSchedule(tasks, needs, &opts)
		close(in)
		go func() { fed <- feedKnown(resumed, known) }()
	} else {
		go func() { fed <- feed(src, &opts, in, known, stopStarting) }()
	}
	if opts.Log != nil {
		inner := emit
		emit = func(r jobs.Result) {
			args := []any{"id", r.ID, "index", r.Index, "status", r.Status, "attempts", r.Attempts, "duration", time.Duration(r.Duration)}
			if r.ExitCode != nil {
				args = append(args, "exit_code", *r.ExitCode)
			}
			if r.Signal != "" {
				args = append(args, "signal", r.Signal)
			}
			if r.Error != "" {
				args = append(args, "error", r.Error)
			}
			args = appendWhere(args, r.Worker, r.Host)
			opts.Log.Info("task finished", args...)
			inner(r)
		}
	}
	pr := newPrinter(&opts, emit)
	notes := &retryNotes{}
	notify := opts.Backoff
	if h := opts.Holding; h != nil {
		h.start(max(opts.Workers, 1), opts.Limiter)
		notify = func(e BackoffEvent) {
			h.window(e.Concurrency, e.Workers)
			if opts.Backoff != nil {
				opts.Backoff(e)
			}
		}
	}
	var bo *backoff
	if opts.BackoffCode > 0 {
		bo = newBackoff(opts.BackoffCode, opts.Workers, opts.Limiter, notify)
	}
	halt := haltState{Halt: opts.Halt, total: sourceLen(src)}
	go func() {
		popts := pool.Options[jobs.Task, outcome]{
			Workers: opts.Workers, Limiter: opts.Limiter, TimeoutCause: jobs.ErrTimeout, Less: byPriority,
			Retry:      retryPolicy(opts.Jitter, opts.Log, notes, bo),
			Executions: func(o outcome) int { return o.attempt.Executions },
			// The halt policy decides as each task ends, before another one starts.
			Finished: func(d pool.Done[jobs.Task, outcome]) {
				if d.Started { // before the next attempt starts, so that it sees this one
					opts.median.add(d.Result.status, d.Result.attempt.Duration)
				}
				if cause, now := halt.add(d.Started, d.Result.status); cause != nil {
					stopStarting(cause)
					if now {
						stopRun(cause)
					}
				}
			},
		}
		var gs gates
		if len(opts.Limits) > 0 {
			gs = append(gs, newLimitGate(opts.Limits))
		}
		if bo != nil {
			gs = append(gs, bo)
		}
		if opts.MaxLoad > 0 || opts.MinFree > 0 {
			m := opts.Machine
			if m == nil {
				m = ProcMachine{}
			}
			mg := &machineGate{maxLoad: opts.MaxLoad, minFree: opts.MinFree, m: m, notify: opts.Waiting}
			gs = append(gs, mg)
			if opts.MinFree > 0 {
				popts.Preempt = mg.preempt
			}
		}
		if sched != nil {
			popts.Less, popts.Ready = sched.before, sched.start()
			popts.Follow = func(d pool.Done[jobs.Task, outcome]) ([]pool.Job[jobs.Task], []pool.Done[jobs.Task, outcome]) {
				return sched.follow(startCtx, d)
			}
		}
		var gpus *jobs.GPUPool
		if opts.Capacity != nil {
			rg := newResourceGate(*opts.Capacity, popts.Less, opts.Workers, opts.Log)
			if sched != nil {
				for pos := range sched.g.Len() {
					rg.know(sched.g.Task(pos).Resources)
				}
			}
			gs = append(gs, rg)
			if opts.GPUEnv && len(opts.Capacity.GPUs) > 0 {
				gpus = jobs.NewGPUPool(opts.Capacity.GPUs)
			}
		}
		if len(gs) > 0 {
			popts.Gate = gs
			if opts.Holding != nil {
				popts.Held = opts.Holding.held
			}
		}
		pool.Run(startCtx, runCtx, popts, in, runTask(opts.Runner, pr, opts.Log, opts.median.bound(opts.RunnerTimesOut), opts.Tag, gpus), out)
		close(out)
	}()

	broken, aborted := false, false
	for out != nil || known != nil {
		select {
		case d, ok := <-out:
			if !ok {
				out = nil
				continue
			}
			r := result(startCtx, d)
			r.RetryLog = notes.take(r.Index)
			if d.Started {
				pr.add(r, &d.Result)
			} else {
				pr.add(r, nil)
			}
		case k, ok := <-known:
			if !ok {
				known = nil
				continue
			}
			pr.add(k, nil)
		}
		if !aborted && opts.Abort != nil {
			if err := opts.Abort(); err != nil {
				aborted = true
				stopStarting(err)
			}
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

// sourceLen returns how many tasks src holds, when it knows; else 0.
func sourceLen(src jobs.Source) int {
	if l, ok := src.(interface{ Len() int }); ok {
		return l.Len()
	}
	return 0
}

// retryPolicy retries a task that failed or timed out while the task says so
// (jobs.Task.Retry: its retries left, retry_on, no_retry_on), after an exponential
// backoff with full jitter: a random delay up to RetryDelay·2^(n-1), capped at
// MaxRetryDelay. A cancelled task is never retried. Each decision on a task that may
// be retried goes to notes, for its result.
func retryPolicy(jitter func() float64, log *slog.Logger, notes *retryNotes, bo *backoff) func(t jobs.Task, o outcome, attempt int) (time.Duration, bool) {
	if jitter == nil {
		jitter = rand.Float64
	}
	requeued := map[int]int{} // by task index: attempts stopped to free memory
	return func(t jobs.Task, o outcome, attempt int) (time.Duration, bool) {
		if o.preempted { // queued again at once, without using a retry
			requeued[t.Index]++
			o.close()
			if log != nil {
				log.Info("task stopped to free memory", appendWhere([]any{"id", t.ID, "index", t.Index, "attempt", attempt}, o.attempt.Worker, o.attempt.Host)...)
			}
			return 0, true
		}
		if bo != nil {
			if bo.ended(&t, &o) { // queued again at once, without using a retry
				o.close()
				if log != nil {
					log.Info("task backed off", appendWhere([]any{"id", t.ID, "index", t.Index, "attempt", attempt, "exit_code", o.attempt.ExitCode,
						"concurrency", bo.allowed(), "workers", bo.workers}, o.attempt.Worker, o.attempt.Host)...)
				}
				return 0, true
			}
		}
		tries := attempt - requeued[t.Index] // the attempts that use up retries: not those stopped for memory, nor those that backed off
		if bo != nil {
			tries -= bo.backoffs(&t)
		}
		if o.status != jobs.Failed && o.status != jobs.TimedOut {
			return 0, false
		}
		end := jobs.End{Status: o.status, ExitCode: o.attempt.ExitCode}
		if o.attempt.Signal != 0 {
			end.Signal = process.SignalName(o.attempt.Signal)
		}
		// attempt counts the scheduler's attempts: an execution a crash repeated does
		// not use up a retry.
		again, reason := t.Retry(end, tries)
		if t.Retries > 0 {
			n := jobs.RetryNote{Attempt: attempt, Status: o.status, Signal: end.Signal, Retried: again, Reason: reason}
			if end.ExitCode >= 0 {
				code := end.ExitCode
				n.ExitCode = &code
			}
			notes.add(t.Index, n)
		}
		if !again {
			return 0, false
		}
		o.close() // a retried attempt's output is not printed; its tails stay in o
		delay := time.Duration(jitter() * float64(Backoff(t.RetryDelay, tries)))
		if log != nil {
			log.Info("task retried", appendWhere([]any{"id", t.ID, "index", t.Index, "attempt", attempt, "status", o.status,
				"exit_code", o.attempt.ExitCode, "reason", reason, "delay", delay}, o.attempt.Worker, o.attempt.Host)...)
		}
		return delay, true
	}
}

// retryNotes holds the retry decisions on each task (by index) until its result is
// built: the pool's goroutine adds them, the fan-in takes them. It is safe for
// concurrent use.
type retryNotes struct {
	mu    sync.Mutex
	notes map[int][]jobs.RetryNote
}

func (r *retryNotes) add(index int, n jobs.RetryNote) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.notes == nil {
		r.notes = map[int][]jobs.RetryNote{}
	}
	r.notes[index] = append(r.notes[index], n)
}

// take returns the notes on the task at index, and forgets them.
func (r *retryNotes) take(index int) []jobs.RetryNote {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.notes[index]
	delete(r.notes, index)
	return n
}

// appendWhere adds to log args the worker and the host an attempt ran on, those
// known.
func appendWhere(args []any, worker, host string) []any {
	if worker != "" {
		args = append(args, "worker", worker)
	}
	if host != "" {
		args = append(args, "host", host)
	}
	return args
}

// Backoff is the longest delay before attempt n+1: base·2^(n-1), at most MaxRetryDelay.
func Backoff(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < MaxRetryDelay; i++ {
		d *= 2
	}
	return min(d, MaxRetryDelay)
}

func isBrokenPipe(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrClosedPipe)
}

// feed sends every task of src to in, or, when opts.Done says it already succeeded,
// its skipped result to known, or, when its input was bad, its invalid result to
// known; then it closes both. An input error stops further
// starts and is returned.
func feed(src jobs.Source, opts *Options, in chan<- pool.Job[jobs.Task], known chan<- jobs.Result, stopStarting context.CancelCauseFunc) error {
	defer close(in)
	defer close(known)
	for {
		t, err := src.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			stopStarting(fmt.Errorf("input error: %w", err))
			return err
		}
		if t.Invalid != nil { // a bad line of a stream: never runs, never journaled
			known <- jobs.InvalidResult(&t)
			continue
		}
		if opts.Key != nil {
			t.Key = opts.Key(&t)
			if opts.Done != nil {
				if reason, done := opts.Done(t.Key); done {
					r := jobs.SkippedResult(&t, reason)
					known <- r
					continue
				}
			}
		}
		in <- pool.Job[jobs.Task]{Index: t.Index, Value: t, Timeout: opts.poolTimeout(&t)}
	}
}

// outcome is what a worker hands the fan-in goroutine for one attempt of a task. The
// tails are taken when the attempt ends, so they outlive the captures.
type outcome struct {
	tag            string // the tag of its output lines in the Tag mode
	attempt        jobs.Attempt
	status         jobs.Status
	stdout, stderr *process.Capture
	outTail        string
	outLen         int64
	errTail        string
	errLen         int64
	errs           []string
	skip           string // a task that never started: why (a need that did not succeed)
	preempted      bool   // stopped to free memory (pool.ErrPreempted), to run again
}

func (o *outcome) close() {
	if o.stdout != nil {
		_ = o.stdout.Close()
		_ = o.stderr.Close()
	}
}

func runTask(runner Runner, pr *printer, log *slog.Logger, bound boundFunc, tag func(*jobs.Task, int) string, gpus *jobs.GPUPool) pool.Func[jobs.Task, outcome] {
	return func(ctx context.Context, slot, attempt int, t jobs.Task) outcome {
		ctx, cancel := bound(ctx, &t)
		defer cancel()
		if gpus != nil && t.Resources.GPU > 0 {
			ids := gpus.Take(t.Resources.GPU)
			defer gpus.Put(ids) // before the end reaches the gate
			t.Env = jobs.WithGPUs(t.Env, ids)
		}
		if log != nil {
			log.Info("task started", "id", t.ID, "index", t.Index, "slot", slot, "attempt", attempt, "command", t.Command())
		}
		o := outcome{tag: t.ID}
		if tag != nil {
			o.tag = tag(&t, slot)
		}
		var done func()
		o.stdout, o.stderr, done = pr.captures(o.tag)
		o.attempt = runner.Run(ctx, &t, slot, attempt, o.stdout, o.stderr)
		done()
		o.status = jobs.StatusOf(ctx, o.attempt)
		o.preempted = o.attempt.Stopped && errors.Is(context.Cause(ctx), pool.ErrPreempted)
		o.outTail, o.outLen = o.stdout.Tail(), o.stdout.Len()
		o.errTail, o.errLen = o.stderr.Tail(), o.stderr.Len()
		for _, err := range []error{o.attempt.Err, o.stdout.Err(), o.stderr.Err()} {
			if err != nil {
				o.errs = append(o.errs, err.Error())
			}
		}
		return o
	}
}

// result builds the Result of a finished or never-started job.
func result(startCtx context.Context, d pool.Done[jobs.Task, outcome]) jobs.Result {
	t := &d.Job.Value
	if !d.Started && d.Result.skip != "" {
		return jobs.SkippedResult(t, d.Result.skip)
	}
	if !d.Started {
		cause := context.Cause(startCtx)
		if cause == nil || errors.Is(cause, context.Canceled) {
			cause = ErrInterrupted
		}
		return jobs.SkippedResult(t, cause.Error())
	}
	r := jobs.Result{ID: t.ID, Index: t.Index, Key: t.Key, Command: t.Command(), Input: t.Input(), Slot: d.Slot, Attempts: d.Attempts, Needs: t.Needs}
	for i := range d.Earlier {
		r.Earlier = append(r.Earlier, earlierTry(&d.Earlier[i]))
	}
	if len(d.WaitedFor) > 0 { // else it waited no time worth telling
		r.Wait, r.WaitedFor = jobs.Seconds(d.Wait), d.WaitedFor
	}
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
		r.Signal = process.SignalName(a.Signal)
	}
	r.Leftovers = a.Leftovers
	r.Duplicates = a.Duplicates
	r.Worker, r.Host = a.Worker, a.Host
	r.Waited = waited(d.Taken, a.Start)
	if a.HeldFor != "" && !slices.Contains(r.WaitedFor, a.HeldFor) { // on its worker: the time is in Waited
		r.WaitedFor = append(slices.Clip(r.WaitedFor), a.HeldFor)
	}
	r.StdoutTail, r.StdoutBytes = o.outTail, o.outLen
	r.StderrTail, r.StderrBytes = o.errTail, o.errLen
	r.Error = strings.Join(o.errs, "; ")
	return r
}

// earlierTry is the Try of an attempt that was retried.
func earlierTry(d *pool.Done[jobs.Task, outcome]) jobs.Try {
	o := &d.Result
	a := &o.attempt
	tr := jobs.Try{Status: o.status, Slot: d.Slot, StartedAt: a.Start, Duration: jobs.Seconds(a.Duration),
		Waited: waited(d.Taken, a.Start), Worker: a.Worker, Host: a.Host}
	if d.Panic != nil {
		tr.Status, tr.StderrLast = jobs.Failed, clip(d.Panic.Error())
		return tr
	}
	if a.ExitCode >= 0 {
		code := a.ExitCode
		tr.ExitCode = &code
	}
	if a.Signal != 0 {
		tr.Signal = process.SignalName(a.Signal)
	}
	tr.StderrLast = clip(lastLine(o.errTail))
	if len(o.errs) > 0 {
		tr.StderrLast = clip(strings.Join(o.errs, "; "))
	}
	return tr
}

// waited is the time from a slot taking an attempt to its start; under a millisecond
// counts as none.
func waited(taken, start time.Time) jobs.Seconds {
	if taken.IsZero() || start.IsZero() || start.Sub(taken) < time.Millisecond {
		return 0
	}
	return jobs.Seconds(start.Sub(taken))
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	s = strings.TrimRight(s, "\r\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// clip cuts s to at most jobs.MaxTryLine bytes, on a rune boundary.
func clip(s string) string {
	if len(s) <= jobs.MaxTryLine {
		return s
	}
	cut := jobs.MaxTryLine
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
