package main

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
	src, workers, limit, limits, err := openInput(opts)
	if err != nil {
		return err
	}
	defer src.Close()
	var capacity *jobs.Capacity // nil: no task asks for resources or labels
	if opts.fit.asks() && opts.Broker == "" && opts.resume == nil {
		c := opts.localCapacity()
		if err := opts.fit.check(&c, true); err != nil {
			return err
		}
		capacity = &c
	}
	if opts.DryRun {
		return printCommands(opts.IO.Out, src)
	}

	run := report.Run{ID: newRunID(), StartedAt: time.Now(), Command: commandLine(os.Args), Input: inputName(opts.File)}
	run.Hostname, _ = os.Hostname()
	if rs := opts.resume; rs != nil {
		run = report.Run{ID: rs.entry.ID, StartedAt: rs.plan.StartedAt, Hostname: rs.plan.Hostname, Command: rs.plan.Command, Input: rs.plan.Input}
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
		capacity = rem.capacity
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
		Capacity: capacity, GPUEnv: opts.Broker == "",
		Workers: workers, Limiter: limiter, Limits: limits, BackoffCode: opts.BackoffCode, MaxLoad: opts.MaxLoad, MinFree: opts.MinFree, Runner: taskRunner, Halt: opts.Halt, RunnerTimesOut: opts.Broker != "", TimeoutPercent: opts.TimeoutPercent,
		Output: opts.Output, KeepOrder: opts.KeepOrder, Stdout: opts.IO.Out, Stderr: opts.IO.ErrOut,
	}
	popts.Tag = opts.tagFunc()
	if rs := opts.resume; rs != nil && !rs.takeOver { // a replay runs nothing: no pacing, no backoff
		popts.Limiter, popts.Jitter = nil, func() float64 { return 0 }
	}
	rec, err := record.Open(record.Options{
		Input: inputName(opts.File), Journal: opts.Journal, Resume: opts.Resume,
		Report: opts.Report, ReportFmt: opts.ReportFmt, Metrics: opts.Metrics, Trace: opts.Trace,
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
		popts.Holding = &pipeline.Holding{}
		bar = progress.Start(opts.IO.ErrOut, taskCount(src), popts.Holding.String)
		popts.Stdout, popts.Stderr = bar.Wrap(opts.IO.Out), bar.Wrap(opts.IO.ErrOut)
		errOut = popts.Stderr
	}
	log := newLogger(opts.Verbose, opts.LogFormat, errOut)
	popts.Log = log
	held := heldBack{code: opts.BackoffCode}
	popts.Backoff = func(e pipeline.BackoffEvent) {
		held.add(e)
		if log != nil {
			log.Info("concurrency changed", "task_backed_off", e.TaskID, "concurrency", e.Concurrency, "workers", e.Workers, "rate", e.Rate)
		}
	}
	popts.Waiting = func(why string) {
		held.wait(why, time.Now())
		if log != nil {
			log.Info("waiting", "why", why)
		}
	}
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
		held.result(&r)
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
		if !opts.Quiet || sum.Failed() > 0 { // quiet: a summary only when something failed
			if err := report.WriteTextColor(opts.IO.ErrOut, &sum, opts.IO.ColorEnabled()); err != nil {
				return err
			}
		}
	}
	held.wait("", time.Now())
	if line := held.String(); line != "" && (!opts.Quiet || sum.Counts[jobs.Succeeded] < sum.Total) {
		fmt.Fprintln(opts.IO.ErrOut, line)
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

// listGraph prints tasks whose needs are by position (nil: none), as listTasks
// does: with needs, in an order that respects them, with each task's needs and the
// longest chain at the end.
func listGraph(w io.Writer, tasks []jobs.Task, needs [][]int, limits []jobs.Limit) error {
	order := make([]int, len(tasks))
	for i := range order {
		order[i] = i
	}
	var chain []int
	if needs != nil {
		order, chain = jobs.Order(tasks, needs)
	}
	var need func(k int) string
	if needs != nil {
		need = func(k int) string {
			if len(needs[order[k]]) == 0 {
				return ""
			}
			// As written: a matrix task's id stands for all its combinations.
			return strings.Join(uniq(tasks[order[k]].Needs), ",")
		}
	}
	err := listRows(w, len(order), func(k int) jobs.Task { return tasks[order[k]] }, need, limits)
	if err != nil || needs == nil {
		return err
	}
	_, err = fmt.Fprintf(w, "longest chain: %s (%d tasks)\n", jobs.ChainString(tasks, chain), len(chain))
	return err
}

// listRows prints n tasks, the k-th being task(k), as a table of aligned columns,
// then the pools of limits. need, when not nil, gives the ids the k-th task needs
// ("" for none), in a column of its own. It holds no more than one task at a time:
// a first pass over the tasks measures the columns, a second writes the rows, so
// that a file of a million tasks is listed in the memory of one.
func listRows(w io.Writer, n int, task func(k int) jobs.Task, need func(k int) string, limits []jobs.Limit) error {
	var prio, est, lim, res, on bool
	for k := range n {
		t := task(k)
		prio = prio || t.Priority != 0
		est = est || t.Estimate != 0
		lim = lim || len(t.Limits) > 0
		res = res || !t.Resources.IsZero()
		on = on || len(t.On) > 0
	}
	var cols []string
	row := func(id, needCol, prioCol, estCol, limCol, resCol, onCol, timeout, retries, dir, command string) []string {
		cols = append(cols[:0], id)
		if need != nil {
			cols = append(cols, needCol)
		}
		if prio {
			cols = append(cols, prioCol)
		}
		if est {
			cols = append(cols, estCol)
		}
		if lim {
			cols = append(cols, limCol)
		}
		if res {
			cols = append(cols, resCol)
		}
		if on {
			cols = append(cols, onCol)
		}
		// A tab in a command starts a cell, as in a tab-separated table.
		return strings.Split(strings.Join(append(cols, timeout, retries, dir, command), "\t"), "\t")
	}
	header := func() []string {
		return row("ID", "NEEDS", "PRIORITY", "ESTIMATE", "LIMITS", "RESOURCES", "ON", "TIMEOUT", "RETRIES", "DIR", "COMMAND")
	}
	taskRow := func(k int) []string {
		t := task(k)
		needs, estimate, pools, timeout, dir := "-", "-", "-", "-", "."
		if need != nil {
			needs = cmp.Or(need(k), "-")
		}
		if len(t.Limits) > 0 {
			pools = strings.Join(t.Limits, ",")
		}
		if t.Estimate > 0 {
			estimate = t.Estimate.String()
		}
		if t.Timeout > 0 {
			timeout = t.Timeout.String()
		}
		if t.Dir != "" {
			dir = t.Dir
		}
		labels := "-"
		if len(t.On) > 0 {
			labels = jobs.FormatLabels(t.On)
		}
		return row(t.ID, needs, strconv.Itoa(t.Priority), estimate, pools, t.Resources.String(), labels, timeout, strconv.Itoa(t.Retries), dir, strings.ReplaceAll(t.Command(), "\n", `\n`))
	}
	// Every cell but a row's last is padded to its column's widest, plus two spaces.
	var widths []int
	measure := func(cells []string) {
		for c, cell := range cells[:len(cells)-1] {
			if c == len(widths) {
				widths = append(widths, 0)
			}
			widths[c] = max(widths[c], utf8.RuneCountInString(cell))
		}
	}
	measure(header())
	for k := range n {
		measure(taskRow(k))
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	write := func(cells []string) {
		for c, cell := range cells[:len(cells)-1] {
			bw.WriteString(cell)
			bw.WriteString(strings.Repeat(" ", widths[c]+2-utf8.RuneCountInString(cell)))
		}
		bw.WriteString(cells[len(cells)-1])
		bw.WriteByte('\n')
	}
	write(header())
	for k := range n {
		write(taskRow(k))
	}
	for _, l := range limits {
		fmt.Fprintf(bw, "limit %s: %s\n", l.Name, describeLimit(&l))
	}
	return bw.Flush()
}

// uniq returns the distinct strings of list, in order.
func uniq(list []string) []string {
	var out []string
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// tagFunc returns how output lines are tagged in the tag mode: by the task's input
// (--tag; the id of a task without one), by the --tagstring, or (nil) by the id.
func (o *ExecOptions) tagFunc() func(t *jobs.Task, slot int) string {
	switch {
	case o.TagString != nil:
		ts := o.TagString
		return func(t *jobs.Task, slot int) string {
			values := []string{t.Input()} // a command line of a stream: the line
			if t.Template != nil {
				values = t.TemplateValues()
			}
			return ts.Expand(values, t.Index, slot)
		}
	case o.TagInput:
		return func(t *jobs.Task, slot int) string {
			if in := t.Input(); in != "" {
				return in
			}
			return t.ID
		}
	}
	return nil
}

// describeLimit writes a pool as validate shows it: "concurrency 3, rate 10/s, burst
// 2, a pool per key {//}, every task".
func describeLimit(l *jobs.Limit) string {
	var parts []string
	if l.Concurrency > 0 {
		parts = append(parts, "concurrency "+strconv.Itoa(l.Concurrency))
	}
	if l.Rated() {
		parts = append(parts, "rate "+input.FormatRate(l.Rate), "burst "+strconv.Itoa(max(l.Burst, 1)))
	}
	if l.Key != nil {
		parts = append(parts, "a pool per key "+l.KeySource)
	}
	if l.Every {
		parts = append(parts, "every task")
	}
	return strings.Join(parts, ", ")
}

// heldBack sums up the back-offs of a run (pipeline.BackoffEvent) for the line
// after the summary. It is written on the pool's goroutine and read once the run has
// ended.
type heldBack struct {
	code     int // the back-off exit code
	backoffs int
	lowest   pipeline.BackoffEvent
	last     pipeline.BackoffEvent
	why      string        // why the run waits now (--load, --memfree); "" when it does not
	since    time.Time     // when it began to wait
	waited   time.Duration // the time it waited, before since
	reasons  []string      // why it waited, each reason once
	limited  int           // tasks that waited for a pool or the rate
	limitFor []string      // which: "limit api", "rate", each once
	limitW   time.Duration // how long those tasks waited to start, in all
}

// result takes a task's result: whether it waited for a pool of "limits" or for the
// rate (r.WaitedFor).
func (h *heldBack) result(r *jobs.Result) {
	found := false
	for _, why := range r.WaitedFor {
		if why == "rate" || strings.HasPrefix(why, "limit ") {
			found = true
			if !slices.Contains(h.limitFor, why) {
				h.limitFor = append(h.limitFor, why)
			}
		}
	}
	if found {
		h.limited++
		h.limitW += time.Duration(r.Wait)
	}
}

// wait records that the run waits for why from now on ("": it no longer waits).
func (h *heldBack) wait(why string, now time.Time) {
	if h.why != "" {
		h.waited += now.Sub(h.since)
	}
	h.why, h.since = why, now
	kind, _, _ := strings.Cut(why, ":")
	if why != "" && !slices.ContainsFunc(h.reasons, func(r string) bool { return strings.HasPrefix(r, kind+":") }) {
		h.reasons = append(h.reasons, why) // the first figure of each kind
	}
}

func (h *heldBack) add(e pipeline.BackoffEvent) {
	if e.TaskID != "" {
		h.backoffs++
	}
	if (h.backoffs == 1 && e.TaskID != "") || e.Concurrency < h.lowest.Concurrency {
		h.lowest = e
	}
	h.last = e
}

// String says when and why the run held back: "held back: 3 back-offs (exit code 75);
// concurrency 2 of 8 at the lowest (at 12:00:03), 8 of 8 at the end", or "" when it
// never did.
func (h *heldBack) String() string {
	var lines []string
	if len(h.reasons) > 0 {
		lines = append(lines, fmt.Sprintf("held back: waiting for %v in all (%s)", h.waited.Round(time.Millisecond), strings.Join(h.reasons, "; ")))
	}
	if h.backoffs > 0 {
		lines = append(lines, h.backoffLine())
	}
	if h.limited > 0 {
		lines = append(lines, fmt.Sprintf("held back: %d %s waited for %s (%v in all)", h.limited, pluralS(h.limited, "task"),
			strings.Join(h.limitFor, ", "), h.limitW.Round(time.Millisecond)))
	}
	return strings.Join(lines, "\n")
}

func (h *heldBack) backoffLine() string {
	return fmt.Sprintf("held back: %d %s (exit code %d); concurrency %d of %d at the lowest (at %s), %d of %d at the end",
		h.backoffs, pluralS(h.backoffs, "back-off"), h.code, h.lowest.Concurrency, h.lowest.Workers, h.lowest.Time.Format(time.TimeOnly),
		h.last.Concurrency, h.last.Workers)
}

func pluralS(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
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

// commandLine is args as a shell would take them back, for reports, with any
// password in a URL (nats://user:password@host) left out.
func commandLine(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		a = urlPassword.ReplaceAllString(a, "$1:***@")
		if a != "" && strings.IndexFunc(a, func(r rune) bool { return !isShellSafe(r) }) < 0 {
			quoted[i] = a
		} else {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(quoted, " ")
}

var urlPassword = regexp.MustCompile(`(://[^/@:\s]*):[^/@\s]*@`)

func isShellSafe(r rune) bool {
	return r < utf8.RuneSelf && (r == '-' || r == '_' || r == '.' || r == '/' || r == ',' || r == ':' || r == '=' || r == '@' || r == '%' || r == '+' ||
		(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'))
}

func inputName(file string) string {
	if file == "" || file == "-" {
		return "stdin"
	}
	return file
}

// listTasks prints the tasks src yields, as `gorun validate` and --dry-run show them:
// id, priority and estimate when a task gives one, timeout, retries, directory and
// command; with needs, in an order that respects them, with what each needs, and the
// longest chain of needs at the end. An invalid task (a bad line of a stream) is its
// *jobs.InputError.
func listTasks(w io.Writer, src jobs.Source, limits []jobs.Limit) error {
	if fs, ok := src.(*input.FileSource); ok {
		return listRows(w, fs.Len(), fs.Task, nil, limits)
	}
	if ss, ok := src.(*input.SliceSource); ok {
		tasks, needs := ss.Tasks()
		return listGraph(w, tasks, needs, limits)
	}
	var tasks []jobs.Task
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
		tasks = append(tasks, t)
	}
	return listGraph(w, tasks, nil, limits)
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
//
// limits are the run's pools: the task file's, then the command line's.
func openInput(opts *ExecOptions) (src jobs.Source, workers int, limit rate.Limit, limits []jobs.Limit, err error) {
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
		// A file of plain JSON may run as it is read (not when --limit-by reads labels,
		// which every task must give before anything runs).
		if !stdin && !opts.wholeFile && opts.Broker == "" && len(opts.Settings.Labels) == 0 {

			js, ok, err := input.OpenJSONStream(name, opts.Settings)
			if err != nil {
				return nil, 0, 0, nil, err
			}
			if ok {
				return js, deref(opts.Workers, deref(js.Workers(), 0)), deref(opts.Rate, deref(js.Rate(), rate.Inf)), append(js.Limits(), opts.Limits...), nil
			}
		}
		f, err := readTaskFile(opts.File, opts.IO.In)
		if err != nil {
			return nil, 0, 0, nil, err
		}
		workers = deref(f.Workers, workers)
		limit = deref(f.Rate, limit)
		limits = f.Limits
		if f.Plain() && len(opts.Settings.Labels) == 0 {
			// Run in file order as they come: the tasks wait in the file's compact form.
			src = input.NewFileSource(f, opts.Settings)
			break
		}
		tasks := f.Tasks(opts.Settings)
		if err := needLabels(name, tasks, opts.Settings.Labels); err != nil {
			return nil, 0, 0, nil, err
		}
		opts.fit = &fitCheck{file: f, tasks: tasks}
		if f.Needs != nil {
			src = input.NewGraphSource(tasks, f.Needs)
		} else { // priorities and estimates order the tasks: the run knows them all
			src = input.NewSliceSource(tasks)
		}
	default:
		if len(opts.Settings.Labels) > 0 && opts.Format != "jsonl" {
			return nil, 0, 0, nil, &usageError{err: fmt.Errorf("--limit-by reads the label %q: a task file or JSON Lines gives tasks labels, lines of input do not", opts.Settings.Labels[0])}
		}
		if opts.Sources != nil { // ::: and :::: instead of a FILE or stdin
			ps, err := input.NewProductSource(opts.Sources, opts.Link, opts.IO.In, input.LineOptions{Settings: opts.Settings, Null: opts.Null, Template: opts.Template})
			if err != nil {
				return nil, 0, 0, nil, err
			}
			return ps, deref(opts.Workers, workers), deref(opts.Rate, limit), opts.Limits, nil
		}
		r := opts.IO.In
		if !stdin {
			fh, err := input.Open(name)
			if err != nil {
				return nil, 0, 0, nil, err
			}
			r = fh
		}
		switch {
		case opts.Format == "jsonl" && !stdin: // a file: checked whole before anything runs
			tasks, err := input.ReadJSONL(name, r, opts.Settings)
			if err != nil {
				return nil, 0, 0, nil, err
			}
			src = input.NewSliceSource(tasks)
		case opts.Format == "jsonl": // a stream: a bad line is an invalid task, and the rest runs
			src = input.NewJSONLSource(name, r, opts.Settings)
		default:
			src = input.NewLineSource(name, r, input.LineOptions{Settings: opts.Settings, Null: opts.Null, Template: opts.Template})
		}
	}
	return src, deref(opts.Workers, workers), deref(opts.Rate, limit), append(limits, opts.Limits...), nil
}

// needLabels refuses the first of tasks, read from the task file name, that lacks
// one of labels (those --limit-by reads).
func needLabels(name string, tasks []jobs.Task, labels []string) error {
	for i := range tasks {
		if label := input.MissingLabel(&tasks[i], labels); label != "" {
			return &jobs.InputError{File: name, Key: fmt.Sprintf("task %q: labels", tasks[i].ID),
				Msg: fmt.Sprintf("no label %q, which --limit-by reads", label)}
		}
	}
	return nil
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
	defer leanGC()()
	if name != "" && name != "-" {
		return input.ReadFile(name)
	}
	data, err := io.ReadAll(in)
	if err != nil {
		return nil, &jobs.InputError{File: "stdin", Msg: err.Error()}
	}
	return input.Parse("stdin", data)
}

// leanGC has the garbage collector run when the heap has grown by half, not doubled,
// until the returned func is called, unless GOGC is set: while a task file is read
// whole, the file's tasks are nearly all the heap, and a million of them would
// otherwise take twice their size in memory at the peak. It costs a few percent of
// the reading time.
func leanGC() (restore func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(50)
	return func() { debug.SetGCPercent(old) }
}
