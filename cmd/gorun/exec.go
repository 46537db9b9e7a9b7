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

	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/gorun/gorun/internal/cluster"
	"github.com/gorun/gorun/internal/iostreams"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/journal"
	"github.com/gorun/gorun/internal/lock"
	"github.com/gorun/gorun/internal/pipeline"
	"github.com/gorun/gorun/internal/progress"
	"github.com/gorun/gorun/internal/record"
	"github.com/gorun/gorun/internal/report"
)

// PipelineFunc runs tasks and emits their results; pipeline.Run in production.
type PipelineFunc func(ctx context.Context, src jobs.Source, opts pipeline.Options, emit func(jobs.Result)) error

// ExecOptions is everything `gorun exec` needs: injected dependencies first, then the
// values of its flags, resolved from flags, environment and config file.
type ExecOptions struct {
	IO         *iostreams.IOStreams
	Pipeline   PipelineFunc
	StartGuard func(runID, cgroupDir string) (*jobs.Guard, error) // nil: no guard
	Hurry      <-chan struct{}                                    // closed at a second interrupt

	File        string         // task file; "" or "-": standard input
	Format      string         // yaml, json, jsonl or lines (auto is resolved by fill)
	Template    *jobs.Template // the command template after --, or nil
	Null        bool           // input items end with NUL
	Workers     *int           // nil: the task file's, else the number of CPUs
	Rate        *rate.Limit    // nil: the task file's, else unlimited
	Burst       int            // starts allowed at once
	Settings    jobs.Settings  // per-task settings given outside the task file
	Grace       time.Duration
	Containment jobs.Containment // the strongest containment to try
	Output      pipeline.Output
	KeepOrder   bool
	Halt        pipeline.Halt
	Journal     string        // append results here
	Resume      bool          // skip tasks that succeeded in the journal
	Lock        string        // refuse to run while another run holds this lock
	Report      string        // write a report here
	ReportFmt   report.Format // its format
	Metrics     string        // write Prometheus metrics here
	Quiet       bool
	DryRun      bool
	Broker      string        // run on the workers of this NATS broker
	AckWait     time.Duration // with Broker: the run's lease (--ack-wait)
	Progress    string        // auto, always or never
	Verbose     bool
	LogFormat   string // text or json
}

const execExample = `  # run a task file, 5 at a time, at most 2 starts a second
  gorun exec tasks.yaml --workers 5 --rate 2/s

  # one shell command per line from a pipe; each gets 30 seconds
  generate-commands | gorun exec -j 8 --timeout 30s

  # xargs style: each file name becomes an argument (no shell involved)
  find . -name '*.png' -print0 | gorun exec -0 -j 8 -- convert {} {.}.jpg

  # one result object per task, for jq
  cat urls.txt | gorun exec -o jsonl --rate 5/s -- 'curl -fsS "{}" | wc -c' | jq .status

  # from cron: every setting can come from the environment or gorun.yaml
  GORUN_WORKERS=4 gorun exec /etc/nightly/tasks.yaml`

// NewCmdExec returns `gorun exec`. runF, when not nil, receives the options instead of
// running them (for tests).
func NewCmdExec(ios *iostreams.IOStreams, hurry <-chan struct{}, runF func(*ExecOptions) error) *cobra.Command {
	opts := &ExecOptions{IO: ios, Pipeline: pipeline.Run, Hurry: hurry, StartGuard: startGuard}
	cmd := &cobra.Command{
		Use:   "exec [FILE | -] [flags] [-- TEMPLATE...]",
		Short: "Run the tasks of a task file or of standard input",
		Long: `Run tasks in parallel and print a summary of how each ended.

FILE is a task file (.yaml, .yml or .json; see the README for its schema), a JSON
Lines file of task objects (.jsonl), or a file of shell commands, one per line. A task
file is checked whole before anything runs. With - or no FILE, gorun reads one shell
command per line from standard input, and starts the first before the input ends;
with --format jsonl, one task object per line, a bad line ending "invalid" while the
others run.

After --, a command TEMPLATE turns each input line into an argument instead, as xargs
and GNU parallel do: {} is the line, {.} without its extension, {/} its basename, {//}
its dirname, {/.} the basename without extension, {#} the task's number, {%} the worker
slot; with none of them, the line is appended as the last argument. Several words run
directly, without a shell; one word is a shell command line. Either way an input line
is only ever an argument: it can never become shell code, whatever it holds.

Every flag can also be set as an environment variable GORUN_<FLAG> (GORUN_RETRY_DELAY
for --retry-delay) or as a key of the config file. A flag beats the environment, the
environment beats the config file, and all three beat the task file's defaults; a
task's own setting beats them all.

Exit codes: 0 all tasks succeeded, 1 a task failed, timed out or was invalid, 2 bad
usage or input (nothing ran), 130 interrupted by SIGINT, 143 by SIGTERM, 129 by SIGHUP.`,
		Example: execExample,
		Args: func(cmd *cobra.Command, args []string) error {
			files := args
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				files = args[:dash]
				if dash == len(args) {
					return usagef(cmd.CommandPath(), "empty command template after --")
				}
			}
			if len(files) > 1 {
				return usagef(cmd.CommandPath(), "exec takes one input FILE, got %d: %q (a command template goes after --)", len(files), files)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			files, template := args, []string(nil)
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				files, template = args[:dash], args[dash:]
			}
			if len(files) == 1 {
				opts.File = files[0]
			}
			if err := opts.fill(cmd, template); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runExec(cmd.Context(), opts)
		},
	}
	addTaskFlags(cmd)
	f := cmd.Flags()
	f.IntP("workers", "j", 0, "tasks running at once (default: number of CPUs)")
	f.StringP("rate", "r", "", "task starts per unit: 2/s, 100/m, 0.5/s, 10 (per second); 0 or inf: unlimited (default unlimited)")
	f.Int("burst", 1, "starts allowed at once before the rate applies")
	f.Duration("grace", 5*time.Second, "after SIGTERM, wait this long, then SIGKILL what is left of the task")
	f.String("containment", "auto", "how a task's processes are held together: auto (cgroup where possible), subreaper or process-group")
	f.StringP("output", "o", string(pipeline.Grouped), "task output: grouped, line, tag, jsonl or none")
	f.BoolP("keep-order", "k", false, "print outputs and results in input order")
	f.BoolP("null", "0", false, "input items end with NUL, not newline (for find -print0)")
	f.String("halt", "never", "stop early: never, soon or now[,fail=N|fail=P%|success=N|success=P%]")
	f.Bool("fail-fast", false, "stop starting tasks at the first failure (--halt soon,fail=1)")
	f.String("journal", "", "append each task's result to this file (JSON Lines)")
	f.Bool("resume", false, "skip tasks that already succeeded in the --journal")
	f.String("lock", "", "refuse to start (exit 75) while another run holds this lock file")
	f.String("report", "", "also write a report: .json, .xml (JUnit) or .md by extension")
	f.String("report-format", "", "format of --report: json, junit, markdown or text (default: by extension)")
	f.String("metrics", "", "write Prometheus metrics here (for node_exporter's textfile collector)")
	f.BoolP("quiet", "q", false, "print nothing if every task succeeds; else the summary with failed tasks' output")
	f.Bool("dry-run", false, "print the tasks that would run, and run nothing")
	f.String("broker", "", "run the tasks on the workers of this NATS JetStream broker (nats://HOST:4222)")
	f.Duration("ack-wait", cluster.DefaultLease, "with --broker: the run's lease: how long a worker may go without renewing it before the attempt is delivered again")
	f.String("progress", "auto", "progress bar on stderr: auto (when stderr is a terminal), always or never")
	f.BoolP("verbose", "v", false, "log each run and task event on stderr")
	f.String("log-format", "text", "format of -v logs: text or json")
	return cmd
}

// addTaskFlags adds the flags that shape tasks, which exec and validate share.
func addTaskFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.DurationP("timeout", "t", 0, "per-task timeout; 0: none")
	f.Int("retries", 0, "retries after a failure or timeout")
	f.Duration("retry-delay", time.Second, "first backoff between retries; doubles each attempt, with jitter, up to 1m")
	f.String("format", "auto", "input format: auto, yaml, json, jsonl or lines")
}

// fill resolves the flag values from flags, environment and config file, and checks
// that they go together.
func (o *ExecOptions) fill(cmd *cobra.Command, template []string) error {
	c, err := loadConfig(cmd)
	if err != nil {
		return err
	}
	if o.Workers, err = c.count("workers", 1); err != nil {
		return err
	}
	if c.isSet("rate") {
		r, err := jobs.ParseRate(c.str("rate", ""))
		if err != nil {
			return c.errorf("rate", "%v", err)
		}
		o.Rate = &r
	}
	burst, err := c.count("burst", 1)
	if err != nil {
		return err
	}
	o.Burst = deref(burst, 1)
	if o.Settings.Timeout, err = c.duration("timeout"); err != nil {
		return err
	}
	if o.Settings.Retries, err = c.count("retries", 0); err != nil {
		return err
	}
	if o.Settings.RetryDelay, err = c.duration("retry-delay"); err != nil {
		return err
	}
	grace, err := c.duration("grace")
	if err != nil {
		return err
	}
	o.Grace = deref(grace, 5*time.Second)
	if o.Containment, err = jobs.ParseContainment(c.str("containment", "auto")); err != nil {
		return c.errorf("containment", "%v", err)
	}
	if o.Output, err = pipeline.ParseOutput(c.str("output", string(pipeline.Grouped))); err != nil {
		return c.errorf("output", "%v", err)
	}
	if o.KeepOrder, err = c.boolean("keep-order"); err != nil {
		return err
	}
	if o.Halt, err = pipeline.ParseHalt(c.str("halt", "never")); err != nil {
		return c.errorf("halt", "%v", err)
	}
	failFast, err := c.boolean("fail-fast")
	if err != nil {
		return err
	}
	if failFast {
		if c.isSet("halt") {
			return usagef(cmd.CommandPath(), "--fail-fast is --halt soon,fail=1: give one or the other")
		}
		o.Halt = pipeline.Halt{When: "soon", Count: 1}
	}
	o.Journal, o.Lock, o.Report, o.Metrics = c.str("journal", ""), c.str("lock", ""), c.str("report", ""), c.str("metrics", "")
	for _, b := range []struct {
		key string
		dst *bool
	}{{"resume", &o.Resume}, {"quiet", &o.Quiet}, {"dry-run", &o.DryRun}, {"verbose", &o.Verbose}} {
		if *b.dst, err = c.boolean(b.key); err != nil {
			return err
		}
	}
	o.Broker = c.str("broker", "")
	ackWait, err := c.duration("ack-wait")
	if err != nil {
		return err
	}
	o.AckWait = deref(ackWait, cluster.DefaultLease)
	if o.AckWait < cluster.MinLease {
		return c.errorf("ack-wait", "must be at least %v", cluster.MinLease)
	}
	if o.Broker != "" && c.isSet("containment") {
		return usagef(cmd.CommandPath(), "--containment cannot be set with --broker: each worker holds its tasks as its own containment allows")
	}
	switch o.Progress = c.str("progress", "auto"); o.Progress {
	case "auto", "always", "never":
	default:
		return c.errorf("progress", "invalid value %q: want auto, always or never", o.Progress)
	}
	switch o.LogFormat = c.str("log-format", "text"); o.LogFormat {
	case "text", "json":
	default:
		return c.errorf("log-format", "invalid value %q: want text or json", o.LogFormat)
	}
	if o.Resume && o.Journal == "" {
		return usagef(cmd.CommandPath(), "--resume needs a --journal to resume from")
	}
	if o.Report != "" {
		o.ReportFmt = report.FormatOf(o.Report)
		if rf := c.str("report-format", ""); rf != "" {
			if o.ReportFmt, err = report.ParseFormat(rf); err != nil {
				return c.errorf("report-format", "%v", err)
			}
		}
		if o.ReportFmt == "" {
			return usagef(cmd.CommandPath(), "--report %s: cannot tell the format from the extension; name it with --report-format", o.Report)
		}
	}
	if o.Quiet {
		o.Output = pipeline.None // chronic's way: output only when something failed, in the summary
	}
	if o.Null, err = c.boolean("null"); err != nil {
		return err
	}
	switch o.Format = c.str("format", "auto"); o.Format {
	case "auto":
		o.Format = detectFormat(o.File)
	case "yaml", "json", "jsonl", "lines":
	default:
		return c.errorf("format", "invalid format %q: want auto, yaml, json, jsonl or lines", o.Format)
	}
	path := cmd.CommandPath()
	if template != nil {
		if o.Format != "lines" {
			return usagef(path, "a command template takes lines of input, not a %s task file", o.Format)
		}
		if o.Template, err = jobs.NewTemplate(template, jobs.DefaultShell); err != nil {
			return usagef(path, "%v", err)
		}
	}
	if o.Null && o.Format != "lines" {
		return usagef(path, "--null reads NUL-separated items, not a %s task file", o.Format)
	}
	if err := record.CheckDistinct(o.File, record.Path{Flag: "--journal", Name: o.Journal},
		record.Path{Flag: "--report", Name: o.Report}, record.Path{Flag: "--metrics", Name: o.Metrics}); err != nil {
		return usagef(path, "%v", err)
	}
	if (o.File == "" || o.File == "-") && o.IO.IsStdinTTY() {
		return usagef(path, "no task file given and standard input is a terminal: name a FILE, or pipe commands in")
	}
	return nil
}

// detectFormat guesses the input format from the file's extension: stdin is lines.
func detectFormat(file string) string {
	switch {
	case file == "" || file == "-":
		return "lines"
	case jobs.IsJSONLFile(file):
		return "jsonl"
	case jobs.IsTaskFile(file):
		return "yaml"
	}
	return "lines"
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// runExec runs the tasks and prints the summary. Its error says how the run ended:
// nil, errTasksFailed, the interruption, or an input or start-up error.
func runExec(ctx context.Context, opts *ExecOptions) error {
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
	runner := &jobs.Runner{Grace: opts.Grace, BaseEnv: append(os.Environ(), jobs.RunIDVar+"="+run.ID, jobs.GuardVar+"="+run.ID), Strongest: opts.Containment}
	containment, containWhy := runner.Contain(run.ID)
	run.Containment = string(containment)
	var g *jobs.Guard
	if opts.StartGuard != nil {
		if g, err = opts.StartGuard(run.ID, runner.CgroupDir()); err != nil {
			_ = runner.Close()
			return err
		}
	}
	defer func() {
		_ = runner.Close() // stops reaping before the guard, gorun's child, exits
		_ = g.Close()
	}()
	defer onHurry(opts.Hurry, runner.KillAll)()

	var limiter *rate.Limiter
	if limit != rate.Inf {
		limiter = rate.NewLimiter(limit, opts.Burst)
	}
	var taskRunner pipeline.Runner = runner
	if opts.Broker != "" { // the same scheduler; the attempts run on the broker's workers
		rem, err := openRemote(ctx, opts, run.ID)
		if err != nil {
			return err
		}
		defer rem.Close()
		defer onHurry(opts.Hurry, rem.exec.KillAll)()
		taskRunner = rem.runner()
		if workers == 0 {
			workers = rem.slots // attempts in flight: the live workers' slots
		}
	}
	if workers == 0 {
		workers = runtime.NumCPU()
	}
	popts := pipeline.Options{
		Workers: workers, Limiter: limiter, Runner: taskRunner, Halt: opts.Halt,
		Output: opts.Output, KeepOrder: opts.KeepOrder, Stdout: opts.IO.Out, Stderr: opts.IO.ErrOut,
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
	log := opts.logger(errOut)
	popts.Log = log
	if log != nil {
		log.Info("run started", "run_id", run.ID, "input", inputName(opts.File), "workers", workers, "rate", jobs.FormatRate(limit), "containment", containment)
		if containWhy != nil {
			log.Info("containment limited", "containment", containment, "reason", containWhy.Error())
		}
	}

	sum := report.Summary{KeepTails: opts.Quiet}
	inputErr := opts.Pipeline(ctx, src, popts, func(r jobs.Result) {
		sum.Add(r)
		rec.Add(r)
		if bar != nil {
			bar.Add(r)
		}
	})
	sum.Wall = time.Since(run.StartedAt)
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

// showProgress decides whether to draw a progress bar: always, never, or (auto) when
// stderr is a terminal and the run is not quiet.
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

func (o *ExecOptions) showProgress() bool {
	switch o.Progress {
	case "always":
		return true
	case "never":
		return false
	}
	return o.IO.IsStderrTTY() && !o.Quiet
}

// logger returns the -v logger writing to w, or nil without -v.
func (o *ExecOptions) logger(w io.Writer) *slog.Logger {
	if !o.Verbose {
		return nil
	}
	if o.LogFormat == "json" {
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
	if ss, ok := src.(*jobs.SliceSource); ok {
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
			src = jobs.NewGraphSource(f.Tasks(opts.Settings), f.Needs)
		} else {
			src = jobs.NewSliceSource(f.Tasks(opts.Settings))
		}
	default:
		r := opts.IO.In
		if !stdin {
			fh, err := jobs.Open(name)
			if err != nil {
				return nil, 0, 0, err
			}
			r = fh
		}
		switch {
		case opts.Format == "jsonl" && !stdin: // a file: checked whole before anything runs
			tasks, err := jobs.ReadJSONL(name, r, opts.Settings)
			if err != nil {
				return nil, 0, 0, err
			}
			src = jobs.NewSliceSource(tasks)
		case opts.Format == "jsonl": // a stream: a bad line is an invalid task, and the rest runs
			src = jobs.NewJSONLSource(name, r, opts.Settings)
		default:
			src = jobs.NewLineSource(name, r, jobs.LineOptions{Settings: opts.Settings, Null: opts.Null, Template: opts.Template})
		}
	}
	return src, deref(opts.Workers, workers), deref(opts.Rate, limit), nil
}

func startGuard(runID, cgroupDir string) (*jobs.Guard, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start guard: %w", err)
	}
	return jobs.StartGuard(exe, runID, cgroupDir)
}

// newRunID returns a random id for a run: 16 hex digits.
func newRunID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// readTaskFile reads a task file from name, or from in when name is "" or "-".
func readTaskFile(name string, in io.Reader) (*jobs.File, error) {
	if name != "" && name != "-" {
		return jobs.ReadFile(name)
	}
	data, err := io.ReadAll(in)
	if err != nil {
		return nil, &jobs.InputError{File: "stdin", Msg: err.Error()}
	}
	return jobs.Parse("stdin", data)
}
