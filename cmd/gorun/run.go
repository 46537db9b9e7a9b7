package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gorun/gorun/internal/cluster"
	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/journal"
	"github.com/gorun/gorun/internal/lock"
	"github.com/gorun/gorun/internal/pipeline"
	"github.com/gorun/gorun/internal/process"
	"github.com/gorun/gorun/internal/progress"
	"github.com/gorun/gorun/internal/record"
	"github.com/gorun/gorun/internal/report"
	"golang.org/x/time/rate"
)

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// runExec runs the tasks and prints the summary. Its error says how the run ended:
// nil, errTasksFailed, the interruption, or an input or start-up error.
func runExec(ctx context.Context, opts *ExecOptions) (err error) {
	if opts.Lock != "" { // first: a run that finds the lock held touches nothing
		l, err := lock.TryAcquire(opts.Lock)
		if errors.Is(err, lock.ErrHeld) {
			return &lockHeldError{err: err}
		}
		if err != nil {
			return err
		}
		defer l.Release()
	}
	src, workers, limit, err := openInput(opts)
	if err != nil {
		return err
	}
	defer src.Close()
	if opts.DryRun {
		return listTasks(opts.IO.Out, src)
	}

	run := report.Run{ID: newRunID(), StartedAt: time.Now()}
	run.Hostname, _ = os.Hostname()
	if rs := opts.resume; rs != nil {
		run = report.Run{ID: rs.entry.ID, StartedAt: rs.plan.StartedAt, Hostname: rs.plan.Hostname}
	}
	runner := &process.Runner{Grace: opts.Grace, BaseEnv: append(os.Environ(), process.RunIDVar+"="+run.ID, process.GuardVar+"="+run.ID), Strongest: opts.Containment, Host: run.Hostname}
	containment, containWhy, release, err := guardRunner(runner, run.ID, opts.StartGuard, opts.Hurry)
	if err != nil {
		return err
	}
	defer release()
	run.Containment = string(containment)
	if rs := opts.resume; rs != nil {
		run.Containment = rs.plan.Containment // the run's, as its submitter reported it
	}

	var limiter *rate.Limiter
	if limit != rate.Inf {
		limiter = rate.NewLimiter(limit, opts.Burst)
	}
	var taskRunner pipeline.Runner = runner
	var ctl *cluster.Control
	var runLog *cluster.RunLog                        // the run's history on the broker
	if rs := opts.resume; rs != nil && !rs.takeOver { // gorun attach of a run that is over: replay it
		runLog = rs.conn.RunLog(run.ID)
		taskRunner = cluster.NewRecorder(nil, runLog, rs.history.Attempts)
	} else if opts.Broker != "" { // the same scheduler; the attempts run on the broker's workers
		rem, rerr := openRemote(ctx, opts, run.ID, taskCount(src))
		if rerr != nil {
			return rerr
		}
		defer rem.Close()
		defer onHurry(opts.Hurry, rem.exec.KillAll)()
		runLog = rem.conn.RunLog(run.ID)
		taskRunner = cluster.NewRecorder(rem.exec, runLog, doneAttempts(opts))
		if workers == 0 {
			workers = rem.slots // attempts in flight: the live workers' slots
		}
		ctl = rem.exec.Control()
		if !opts.Quiet && opts.resume != nil {
			fmt.Fprintf(opts.IO.ErrOut, "gorun: run %s taken over on %s\n", run.ID, opts.Broker)
		} else if !opts.Quiet {
			fmt.Fprintf(opts.IO.ErrOut, "gorun: run %s started on %s\n", run.ID, opts.Broker)
		}
		// A cancel from elsewhere (gorun cancel, or a worker's as an orphan) ends the
		// run as an interrupt does.
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		defer onHurry(ctl.Cancelled(), func() { cancel(&cancelledError{run: run.ID, reason: ctl.Reason()}) })()
		defer func() { ctl.SetExitCode(exitCodeOf(err)) }() // runExec's error; before rem.Close writes the last record
	}
	if workers == 0 {
		workers = runtime.NumCPU()
	}
	if runLog != nil && opts.resume == nil {
		if err := recordPlan(ctx, runLog, opts, &run, workers, limit); err != nil {
			return err
		}
	}
	popts := pipeline.Options{
		Workers: workers, Limiter: limiter, Runner: taskRunner, Halt: opts.Halt, RunnerTimesOut: opts.Broker != "",
		Output: opts.Output, KeepOrder: opts.KeepOrder, Stdout: opts.IO.Out, Stderr: opts.IO.ErrOut,
	}
	if rs := opts.resume; rs != nil && !rs.takeOver { // a replay runs nothing: no pacing, no backoff
		popts.Limiter, popts.Jitter = nil, func() float64 { return 0 }
	}
	rec, err := record.Open(record.Options{
		Input: inputName(opts.File), Journal: opts.Journal, Resume: opts.Resume,
		Report: opts.Report, ReportFmt: opts.ReportFmt, Metrics: opts.Metrics,
	}, run, &popts)
	var refused *journal.RefusedError
	if errors.As(err, &refused) {
		return &usageError{err: err} // one line, exit 2: nothing ran
	}
	if err != nil {
		return err
	}
	defer rec.Close()

	// With a progress bar, everything bound for the terminal goes through it, so that
	// the bar is erased before task output or a log line is written.
	var bar *progress.Bar
	errOut := opts.IO.ErrOut
	if opts.showProgress() {
		bar = progress.Start(opts.IO.ErrOut, taskCount(src))
		popts.Stdout, popts.Stderr = bar.Wrap(opts.IO.Out), bar.Wrap(opts.IO.ErrOut)
		errOut = popts.Stderr
	}
	log := newLogger(opts.Verbose, opts.LogFormat, errOut)
	popts.Log = log
	if log != nil {
		log.Info("run started", "run_id", run.ID, "input", inputName(opts.File), "workers", workers, "rate", input.FormatRate(limit), "containment", containment)
		if containWhy != nil {
			log.Info("containment limited", "containment", containment, "reason", containWhy.Error())
		}
	}

	sum := report.Summary{KeepTails: opts.Quiet}
	inputErr := opts.Pipeline(ctx, src, popts, func(r jobs.Result) {
		replayed := false
		if opts.resume != nil {
			r, replayed = opts.resume.recorded(r)
		}
		if runLog != nil && !replayed && (ctl == nil || !ctl.TakenOver()) {
			recordResult(runLog, run.ID, &r)
		}
		sum.Add(r)
		rec.Add(r)
		if ctl != nil {
			ctl.Add(r)
		}
		if bar != nil {
			bar.Add(r)
		}
	})
	sum.Wall = time.Since(run.StartedAt)
	if runLog != nil {
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = runLog.Flush(fctx) // a result not recorded: an attach runs its task again
		cancel()
	}
	if bar != nil {
		bar.Stop() // the summary starts on a clean line
	}
	if log != nil {
		if ctx.Err() != nil {
			log.Info("run interrupted", "run_id", run.ID, "cause", context.Cause(ctx).Error())
		}
		log.Info("run finished", "run_id", run.ID, "tasks", sum.Total, "succeeded", sum.Counts[jobs.Succeeded],
			"failed", sum.Counts[jobs.Failed], "timed_out", sum.Counts[jobs.TimedOut], "cancelled", sum.Counts[jobs.Cancelled],
			"skipped", sum.Counts[jobs.Skipped], "wall", sum.Wall)
	}
	if inputErr == nil || sum.Started() > 0 { // a bad input that stopped everything says only that
		if !opts.Quiet || sum.Counts[jobs.Succeeded] < sum.Total {
			if err := report.WriteTextColor(opts.IO.ErrOut, &sum, opts.IO.ColorEnabled()); err != nil {
				return err
			}
		}
	}
	if err := rec.Finish(run, &sum); err != nil {
		if inputErr == nil && ctx.Err() == nil {
			return err // exit 1, whether tasks failed or not: the run left less than it should
		}
		fmt.Fprintf(opts.IO.ErrOut, "gorun: %v\n", err) // the exit code says how the run ended
	}
	switch {
	case errors.Is(inputErr, pipeline.ErrBrokenPipe):
		return errBrokenPipe
	case inputErr != nil:
		return inputErr
	case ctx.Err() != nil:
		return context.Cause(ctx)
	case sum.Failed() > 0:
		return errTasksFailed
	}
	return nil
}

func listGraph(w io.Writer, tasks []jobs.Task, needs [][]int) error {
	order, chain := jobs.Order(tasks, needs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNEEDS\tTIMEOUT\tRETRIES\tDIR\tCOMMAND")
	for _, i := range order {
		t := &tasks[i]
		var ids []string
		for _, n := range needs[i] {
			ids = append(ids, tasks[n].ID)
		}
		need, timeout, dir := "-", "-", "."
		if len(ids) > 0 {
			need = strings.Join(ids, ",")
		}
		if t.Timeout > 0 {
			timeout = t.Timeout.String()
		}
		if t.Dir != "" {
			dir = t.Dir
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", t.ID, need, timeout, t.Retries, dir, strings.ReplaceAll(t.Command(), "\n", `\n`))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "longest chain: %s (%d tasks)\n", jobs.ChainString(tasks, chain), len(chain))
	return err
}

// showProgress decides whether to draw a progress bar: always, never, or (auto) when
// stderr is a terminal and the run is not quiet.
func (o *ExecOptions) showProgress() bool {
	switch o.Progress {
	case "always":
		return true
	case "never":
		return false
	}
	return o.IO.IsStderrTTY() && !o.Quiet
}

// newLogger returns the -v logger writing to w in format (text or json), or nil
// without -v.
func newLogger(verbose bool, format string, w io.Writer) *slog.Logger {
	if !verbose {
		return nil
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// taskCount returns the number of tasks src holds, or -1 for a stream.
func taskCount(src jobs.Source) int {
	if l, ok := src.(interface{ Len() int }); ok {
		return l.Len()
	}
	return -1
}

func inputName(file string) string {
	if file == "" || file == "-" {
		return "stdin"
	}
	return file
}

// listTasks prints the tasks src yields, as `gorun validate` and --dry-run show them:
// with needs, in an order that respects them, with what each needs, and the longest
// chain of needs at the end. An invalid task (a bad line of a stream) is its
// *jobs.InputError.
func listTasks(w io.Writer, src jobs.Source) error {
	if ss, ok := src.(*input.SliceSource); ok {
		if tasks, needs := ss.Tasks(); needs != nil {
			return listGraph(w, tasks, needs)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIMEOUT\tRETRIES\tDIR\tCOMMAND")
	for {
		t, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if t.Invalid != nil { // nothing runs: a bad line is an input error here
			return t.Invalid
		}
		timeout, dir := "-", "."
		if t.Timeout > 0 {
			timeout = t.Timeout.String()
		}
		if t.Dir != "" {
			dir = t.Dir
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", t.ID, timeout, t.Retries, dir, strings.ReplaceAll(t.Command(), "\n", `\n`))
	}
	return tw.Flush()
}

// onHurry calls f if hurry is closed before stop is called. stop waits for the
// goroutine it starts. A nil hurry is never closed.
func onHurry(hurry <-chan struct{}, f func()) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-hurry:
			f()
		case <-done:
		}
	}()
	return func() { close(done); <-finished }
}

// openInput opens the task source and settles the run-wide settings: the command line
// beats the task file, and the task file beats the built-in defaults. A task file, YAML,
// JSON or JSON Lines, is read and checked whole here, so that a bad one runs nothing;
// standard input and files of commands are streamed.
//
// workers is 0 when neither the command line nor the file sets it.
func openInput(opts *ExecOptions) (src jobs.Source, workers int, limit rate.Limit, err error) {
	if rs := opts.resume; rs != nil {
		return openRecorded(opts, rs.plan)
	}
	workers, limit = 0, rate.Inf
	name := opts.File
	stdin := name == "" || name == "-"
	if stdin {
		name = "stdin"
	}
	switch opts.Format {
	case "yaml", "json":
		f, err := readTaskFile(opts.File, opts.IO.In)
		if err != nil {
			return nil, 0, 0, err
		}
		workers = deref(f.Workers, workers)
		limit = deref(f.Rate, limit)
		if f.Needs != nil {
			src = input.NewGraphSource(f.Tasks(opts.Settings), f.Needs)
		} else {
			src = input.NewSliceSource(f.Tasks(opts.Settings))
		}
	default:
		r := opts.IO.In
		if !stdin {
			fh, err := input.Open(name)
			if err != nil {
				return nil, 0, 0, err
			}
			r = fh
		}
		switch {
		case opts.Format == "jsonl" && !stdin: // a file: checked whole before anything runs
			tasks, err := input.ReadJSONL(name, r, opts.Settings)
			if err != nil {
				return nil, 0, 0, err
			}
			src = input.NewSliceSource(tasks)
		case opts.Format == "jsonl": // a stream: a bad line is an invalid task, and the rest runs
			src = input.NewJSONLSource(name, r, opts.Settings)
		default:
			src = input.NewLineSource(name, r, input.LineOptions{Settings: opts.Settings, Null: opts.Null, Template: opts.Template})
		}
	}
	return src, deref(opts.Workers, workers), deref(opts.Rate, limit), nil
}

// guardRunner holds runner's tasks under id (see process.Runner.Contain), starts a
// guard for them when startGuard is not nil, and kills them at once when hurry is
// closed. release undoes it all, in order; it is nil when err is not.
func guardRunner(runner *process.Runner, id string, startGuard func(id, cgroupDir string) (*process.Guard, error), hurry <-chan struct{}) (mode process.Containment, why error, release func(), err error) {
	mode, why = runner.Contain(id)
	var g *process.Guard
	if startGuard != nil {
		if g, err = startGuard(id, runner.CgroupDir()); err != nil {
			_ = runner.Close()
			return mode, why, nil, err
		}
	}
	stopHurry := onHurry(hurry, runner.KillAll)
	return mode, why, func() {
		stopHurry()
		_ = runner.Close() // stops reaping before the guard, gorun's child, exits
		_ = g.Close()
	}, nil
}

// startGuard starts the guard of a run: gorun's own binary, run as the guard.
func startGuard(runID, cgroupDir string) (*process.Guard, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start guard: %w", err)
	}
	return process.StartGuard(exe, runID, cgroupDir)
}

// newRunID returns a random id for a run: 16 hex digits.
func newRunID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// readTaskFile reads a task file from name, or from in when name is "" or "-".
func readTaskFile(name string, in io.Reader) (*input.File, error) {
	if name != "" && name != "-" {
		return input.ReadFile(name)
	}
	data, err := io.ReadAll(in)
	if err != nil {
		return nil, &jobs.InputError{File: "stdin", Msg: err.Error()}
	}
	return input.Parse("stdin", data)
}
