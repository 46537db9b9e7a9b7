package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/gorun/gorun/internal/cluster"
	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/iostreams"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/journal"
	"github.com/gorun/gorun/internal/pipeline"
	"github.com/gorun/gorun/internal/report"
)

// runPlan is what a run on a broker is, as its submitter records it first in the
// run's history (cluster.ResultsStream): enough for gorun attach to schedule the
// same tasks the same way.
type runPlan struct {
	Input       string          `json:"input"`          // as the report names it
	Format      string          `json:"format"`         // yaml, json, jsonl or lines
	Data        []byte          `json:"data,omitempty"` // the input file's bytes; nil: standard input, not kept
	Template    []string        `json:"template,omitempty"`
	Null        bool            `json:"null,omitempty"`
	Workers     int             `json:"workers"`
	Rate        *float64        `json:"rate,omitempty"` // starts per second; nil: unlimited
	Burst       int             `json:"burst"`
	Settings    jobs.Settings   `json:"settings"`
	Grace       time.Duration   `json:"grace"`
	Output      pipeline.Output `json:"output"`
	KeepOrder   bool            `json:"keep_order,omitempty"`
	Halt        pipeline.Halt   `json:"halt"`
	Quiet       bool            `json:"quiet,omitempty"`
	StartedAt   time.Time       `json:"started_at"`
	Hostname    string          `json:"hostname,omitempty"`
	Containment string          `json:"containment,omitempty"` // as the report says it
	Command     string          `json:"command,omitempty"`     // the submitter's command line, as the report says it

	// Sources are the input sources (::: values), Link --link; a run whose input
	// comes from files of :::: is not kept (its files are not on the broker).
	Sources        []input.SourceSpec `json:"sources,omitempty"`
	Link           bool               `json:"link,omitempty"`
	TimeoutPercent float64            `json:"timeout_percent,omitempty"`
	TagInput       bool               `json:"tag_input,omitempty"`
	TagString      string             `json:"tag_string,omitempty"`
	Limits         []planLimit        `json:"limits,omitempty"` // --limit-by's
	BackoffCode    int                `json:"backoff_code,omitempty"`
}

// planLimit is a jobs.Limit of the command line, as a plan keeps it.
type planLimit struct {
	Name        string   `json:"name"`
	Concurrency int      `json:"concurrency,omitempty"`
	Rate        *float64 `json:"rate,omitempty"` // nil: no bound
	Burst       int      `json:"burst,omitempty"`
	Key         string   `json:"key,omitempty"`
	Every       bool     `json:"every,omitempty"`
}

func planLimits(ls []jobs.Limit) []planLimit {
	var out []planLimit
	for _, l := range ls {
		pl := planLimit{Name: l.Name, Concurrency: l.Concurrency, Burst: l.Burst, Key: l.KeySource, Every: l.Every}
		if l.Rated() {
			r := float64(l.Rate)
			pl.Rate = &r
		}
		out = append(out, pl)
	}
	return out
}

// limits rebuilds the command line's limits of p.
func (p *runPlan) limits() ([]jobs.Limit, error) {
	var out []jobs.Limit
	for _, pl := range p.Limits {
		l := jobs.Limit{Name: pl.Name, Concurrency: pl.Concurrency, Rate: rate.Inf, Burst: pl.Burst, KeySource: pl.Key, Every: pl.Every}
		if pl.Rate != nil {
			l.Rate = rate.Limit(*pl.Rate)
		}
		if pl.Key != "" {
			key, labels, err := input.NewKey(pl.Key)
			if err != nil {
				return nil, fmt.Errorf("limit %s: %w", pl.Name, err)
			}
			l.Key, l.Labels = key, labels
		}
		out = append(out, l)
	}
	return out, nil
}

// planOf describes the run opts makes, with its resolved workers and rate.
func planOf(opts *ExecOptions, run *report.Run, workers int, limit rate.Limit) (*runPlan, error) {
	p := &runPlan{Input: inputName(opts.File), Format: opts.Format, Template: opts.TemplateArgs, Null: opts.Null, Workers: workers,
		Burst: opts.Burst, Settings: opts.Settings, Grace: opts.Grace, Output: opts.Output, KeepOrder: opts.KeepOrder, Halt: opts.Halt,
		Quiet: opts.Quiet, StartedAt: run.StartedAt, Hostname: run.Hostname, Containment: run.Containment, Command: run.Command,
		Sources: opts.Sources, Link: opts.Link, TimeoutPercent: opts.TimeoutPercent, TagInput: opts.TagInput, TagString: opts.TagStringText,
		Limits: planLimits(opts.Limits), BackoffCode: opts.BackoffCode}
	if limit != rate.Inf {
		r := float64(limit)
		p.Rate = &r
	}
	fromFiles := slices.ContainsFunc(opts.Sources, func(s input.SourceSpec) bool { return s.Files })
	switch {
	case opts.resume != nil:
		p.Data = opts.resume.plan.Data
	case opts.Sources != nil && !fromFiles: // the sources are the input: kept in Sources
	case opts.File != "" && opts.File != "-" && opts.Sources == nil:
		data, err := os.ReadFile(opts.File)
		if err != nil {
			return nil, fmt.Errorf("%s: keep it for gorun attach: %w", opts.File, err)
		}
		p.Data = data
	}
	return p, nil
}

// resumeState is a run that gorun attach replays, and takes over when its submitter
// is gone.
type resumeState struct {
	entry    cluster.RunEntry
	conn     *cluster.Conn
	plan     *runPlan
	history  *cluster.History
	results  map[int]journal.Record // the finished tasks, by index
	takeOver bool                   // false: the run is over; replay it only
}

// recorded returns the result of r's task as the run recorded it, with r's key (the
// journal key of this process's --journal), or r itself.
func (s *resumeState) recorded(r jobs.Result) (jobs.Result, bool) {
	rec, ok := s.results[r.Index]
	if !ok {
		return r, false
	}
	key := r.Key
	r = rec.Result
	if key != "" {
		r.Key = key
	} else {
		r.Key = rec.Key
	}
	return r, true
}

// AttachOptions is everything `gorun attach` needs.
type AttachOptions struct {
	ExecOptions // the run's, from its plan; Report, Journal and Metrics from attach's flags
	Run         string
	Control     ControlOptions
}

// NewCmdAttach returns `gorun attach`. runF, when not nil, receives the options
// instead of running them (for tests).
func NewCmdAttach(ios *iostreams.IOStreams, hurry <-chan struct{}, runF func(*AttachOptions) error) *cobra.Command {
	opts := &AttachOptions{ExecOptions: ExecOptions{IO: ios, Pipeline: pipeline.Run, Hurry: hurry, StartGuard: startGuard}}
	opts.Control = *newControlOptions(ios)
	var reportFormat string
	cmd := &cobra.Command{
		Use:   "attach RUN --broker URL [--report FILE] [--journal FILE] [--metrics FILE]",
		Short: "Collect a run on a broker: replay what finished, take over what did not",
		Long: `Collect a run whose submitter is gone or detached (exec --detach), as its submitter
would have: print the outputs of its tasks and its summary, write --report, --journal
and --metrics, and exit with the code the submitter would have (see gorun exec).

While the run's submitter is alive (its record's heartbeat keeps coming), attach
waits for the run to end. Once the run is over, attach replays it from the broker.
When the submitter has gone silent (killed, its machine lost) and the run is still
running, attach takes it over: it becomes the run's submitter, replays the tasks that
finished and runs the rest (the attempts that were running when the submitter went
are run again), with the run's own settings. Only one attach wins a run; a submitter
that comes back after a takeover stops, cancelled.

A run can be attached only if its input was a file: standard input is not kept.`,
		Example: `  gorun exec tasks.yaml --broker nats://10.0.0.5:4222 --detach     # prints the run id
  gorun attach 3f9c2a71d0e84b15 --broker nats://10.0.0.5:4222 --report report.json`,
		Args: oneRun,
	}
	flags := newControlFlags(cmd)
	cmd.Flags().StringVar(&opts.Report, "report", "", "also write a report: .json, .xml (JUnit) or .md by extension")
	cmd.Flags().StringVar(&reportFormat, "report-format", "", "format of --report: json, junit, markdown or text (default: by extension)")
	cmd.Flags().StringVar(&opts.Journal, "journal", "", "append each task's result to this file (JSON Lines)")
	cmd.Flags().StringVar(&opts.Metrics, "metrics", "", "write Prometheus metrics here (for node_exporter's textfile collector)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := flags.resolve(cmd, &opts.Control); err != nil {
			return err
		}
		opts.Run, opts.Broker, opts.Conn = args[0], opts.Control.Broker, opts.Control.Conn
		if opts.Report != "" {
			opts.ReportFmt = report.FormatOf(opts.Report)
			if rf := strings.TrimSpace(reportFormat); rf != "" {
				f, err := report.ParseFormat(rf)
				if err != nil {
					return usagef(cmd.CommandPath(), "--report-format: %v", err)
				}
				opts.ReportFmt = f
			}
			if opts.ReportFmt == "" {
				return usagef(cmd.CommandPath(), "--report %s: name a .json, .xml or .md file, or give --report-format", opts.Report)
			}
		}
		if runF != nil {
			return runF(opts)
		}
		return runAttach(cmd.Context(), opts)
	}
	return cmd
}

// takeOverAfter is how long attach waits without a change to a running run's record
// before it takes the submitter for gone: three heartbeats and some.
func takeOverAfter(r *cluster.RunEntry) time.Duration {
	every := 2 * time.Second
	if r.OrphanAfter > 0 {
		every = min(every, r.OrphanAfter/4)
	}
	return 3*every + time.Second
}

// exitCodeError is an exit code to exit with, and what to say, if anything.
type exitCodeError struct {
	code int
	msg  string
}

func (e *exitCodeError) Error() string { return e.msg }

func runAttach(ctx context.Context, opts *AttachOptions) error {
	co, err := opts.Conn.options(opts.IO.ErrOut)
	if err != nil {
		return err
	}
	conn, err := cluster.Dial(ctx, opts.Broker, co)
	if err != nil {
		return err
	}
	defer conn.Close()
	entry, err := awaitRun(ctx, conn, opts.Run, func(r *cluster.RunEntry) {
		fmt.Fprintf(opts.IO.ErrOut, "gorun: run %s is running, its submitter %s pid %d: waiting for it (or its silence)\n", r.ID, r.Host, r.PID)
	})
	if err != nil {
		return err
	}
	h, err := conn.ReadHistory(ctx, entry.ID)
	if err != nil {
		return err
	}
	var plan runPlan
	if len(h.Plan) == 0 {
		return fmt.Errorf("run %s: no plan on the broker: its submitter is older than gorun attach", entry.ID)
	}
	if err := json.Unmarshal(h.Plan, &plan); err != nil {
		return fmt.Errorf("run %s: bad plan on the broker: %w", entry.ID, err)
	}
	if plan.Data == nil && (plan.Sources == nil || slices.ContainsFunc(plan.Sources, func(s input.SourceSpec) bool { return s.Files })) {
		return fmt.Errorf("run %s read its tasks from standard input or from files of ::::, which the broker does not keep: it cannot be attached", entry.ID)
	}
	rs := &resumeState{entry: entry, conn: conn, plan: &plan, history: h, results: map[int]journal.Record{}, takeOver: entry.State == cluster.StateRunning}
	for _, line := range h.Results {
		var rec journal.Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return fmt.Errorf("run %s: bad result on the broker: %w", entry.ID, err)
		}
		rs.results[rec.Index] = rec
	}
	o := &opts.ExecOptions
	o.resume = rs
	o.File, o.Format, o.Null, o.Burst, o.Settings, o.Grace = plan.Input, plan.Format, plan.Null, plan.Burst, plan.Settings, plan.Grace
	o.Output, o.KeepOrder, o.Halt, o.Quiet, o.Progress = plan.Output, plan.KeepOrder, plan.Halt, plan.Quiet, "never"
	o.Workers, o.AckWait = &plan.Workers, entry.Lease
	limit := rate.Inf
	if plan.Rate != nil {
		limit = rate.Limit(*plan.Rate)
	}
	o.Rate = &limit
	o.Sources, o.Link, o.TimeoutPercent, o.BackoffCode = plan.Sources, plan.Link, plan.TimeoutPercent, plan.BackoffCode
	if o.Output == pipeline.Tag {
		o.TagInput = plan.TagInput
		if plan.TagString != "" {
			o.TagString, o.TagStringText = input.NewTagString(plan.TagString), plan.TagString
		}
	}
	if o.Limits, err = plan.limits(); err != nil {
		return fmt.Errorf("run %s: bad plan: %w", entry.ID, err)
	}
	if plan.Template != nil {
		shell := jobs.DefaultShell
		if s := plan.Settings.Shell; s != nil && *s != jobs.ShellAlways {
			shell = *s
		}
		if o.Template, err = input.NewTemplate(plan.Template, shell); err != nil {
			return fmt.Errorf("run %s: bad template in its plan: %w", entry.ID, err)
		}
	}
	err = runExec(ctx, o)
	if rs.takeOver {
		return err
	}
	switch { // a replay ends as the run did
	case entry.State == cluster.StateCancelled:
		return &exitCodeError{code: exitCancelled, msg: fmt.Sprintf("run %s was cancelled: %s", entry.ID, entry.Reason)}
	case entry.ExitCode != nil:
		return &exitCodeError{code: *entry.ExitCode}
	}
	return err
}

// awaitRun returns run's record once attach is to collect it: ended, or running with
// its submitter silent for takeOverAfter. While the submitter's heartbeats come, it
// waits; waiting is called once, when it starts to.
func awaitRun(ctx context.Context, conn *cluster.Conn, run string, waiting func(*cluster.RunEntry)) (cluster.RunEntry, error) {
	var (
		rev  uint64
		seen time.Time
	)
	for {
		r, err := conn.GetRun(ctx, run)
		if err != nil {
			return r, err
		}
		if r.State != cluster.StateRunning {
			return r, nil
		}
		switch {
		case rev == 0:
			rev, seen = r.Revision, time.Now()
		case r.Revision != rev:
			if waiting != nil {
				waiting(&r)
				waiting = nil
			}
			rev, seen = r.Revision, time.Now()
		case time.Since(seen) > takeOverAfter(&r):
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, context.Cause(ctx)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// detachReadyVar names, in a detached submitter's environment, the descriptor on
// which it writes its run's id once the run started.
const detachReadyVar = "GORUN_DETACH_READY"

// detachedChild reports whether this process is the detached submitter of an exec
// --detach, and returns the descriptor it reports its start on.
func detachedChild() (*os.File, bool) {
	if os.Getenv(detachReadyVar) != "3" {
		return nil, false
	}
	return readyFile(), true
}

// readyFile is the detached submitter's descriptor 3, as one *os.File for the life of
// the process: a second *os.File of it, left to the garbage collector, would close
// the descriptor when collected, and the parent would never hear that the run started.
var readyFile = sync.OnceValue(func() *os.File { return os.NewFile(3, "ready") })

// runDetached starts this very command again as a detached submitter (its own
// session; no standard input), waits for its run to start, prints the run's id on
// stdout and returns. A submitter that fails before its run starts has its
// standard error and exit code passed on.
func runDetached(opts *ExecOptions) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	defer readyR.Close()
	logR, logW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return fmt.Errorf("detach: %w", err)
	}
	defer logR.Close()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), detachReadyVar+"=3")
	cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = logW, logW, []*os.File{readyW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	readyW.Close()
	logW.Close()
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	var log bytes.Buffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(&log, logR)
	}()
	line, _ := bufio.NewReader(readyR).ReadString('\n')
	if id := strings.TrimSpace(line); id != "" {
		_ = cmd.Process.Release()
		fmt.Fprintln(opts.IO.Out, id)
		return nil
	}
	werr := cmd.Wait()
	<-copied
	_, _ = opts.IO.ErrOut.Write(log.Bytes())
	var exit *exec.ExitError
	if errors.As(werr, &exit) {
		return &exitCodeError{code: exit.ExitCode()}
	}
	if werr != nil {
		return fmt.Errorf("detach: %w", werr)
	}
	return &exitCodeError{code: exitFailed, msg: "detach: the submitter ended before its run started"}
}

// detachStarted is what a detached submitter does once its run started: its
// standard output and error go to /dev/null (its parent is about to exit), and it
// tells its parent the run's id.
func detachStarted(ready *os.File, run string) {
	if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		_ = unix.Dup2(int(null.Fd()), 1)
		_ = unix.Dup2(int(null.Fd()), 2)
		null.Close()
	}
	fmt.Fprintln(ready, run)
	ready.Close()
}

// checkDetach checks that exec --detach goes with what it needs: a broker to run on
// and an input file (standard input is not kept for gorun attach).
func checkDetach(path string, opts *ExecOptions) error {
	switch {
	case !opts.Detach:
		return nil
	case opts.Broker == "":
		return usagef(path, "--detach needs a --broker: a local run ends with its submitter")
	case slices.ContainsFunc(opts.Sources, func(s input.SourceSpec) bool { return s.Files }):
		return usagef(path, "--detach takes ::: values, not files of ::::, which are not kept for gorun attach")
	case opts.Sources == nil && (opts.File == "" || opts.File == "-"):
		return usagef(path, "--detach needs an input FILE: standard input is not kept for gorun attach")
	case opts.DryRun:
		return usagef(path, "--detach and --dry-run do not go together")
	}
	return nil
}

// doneAttempts are the attempts of the run that gorun attach takes over that are
// recorded already; nil for a new run.
func doneAttempts(opts *ExecOptions) map[cluster.AttemptKey]cluster.AttemptRecord {
	if opts.resume == nil {
		return nil
	}
	return opts.resume.history.Attempts
}

// recordPlan records the run's plan in its history; a detached submitter then tells
// its parent that the run started.
func recordPlan(ctx context.Context, log *cluster.RunLog, opts *ExecOptions, run *report.Run, workers int, limit rate.Limit) error {
	plan, err := planOf(opts, run, workers, limit)
	if err != nil {
		return err
	}
	data, err := json.Marshal(plan)
	if err != nil {
		return err
	}
	if err := log.PutPlan(ctx, data); err != nil {
		return err
	}
	if ready, child := detachedChild(); child && opts.Detach {
		detachStarted(ready, run.ID)
	}
	return nil
}

// recordResult records a finished task in the run's history, as its journal line.
func recordResult(log *cluster.RunLog, runID string, r *jobs.Result) {
	line, err := json.Marshal(journal.Record{Type: "result", RunID: runID, Key: r.Key, Result: *r})
	if err != nil {
		return
	}
	_ = log.PutResult(line) // not recorded: an attach runs the task again
}

// openRecorded opens the input of a run that gorun attach collects, as its plan
// keeps it.
func openRecorded(opts *ExecOptions, p *runPlan) (src jobs.Source, workers int, limit rate.Limit, limits []jobs.Limit, err error) {
	switch {
	case opts.Sources != nil: // ::: values: the plan holds them all
		ps, err := input.NewProductSource(opts.Sources, opts.Link, io.NopCloser(bytes.NewReader(nil)), input.LineOptions{Settings: opts.Settings, Null: opts.Null, Template: opts.Template})
		if err != nil {
			return nil, 0, 0, nil, err
		}
		src = ps
	case p.Format == "yaml" || p.Format == "json":
		f, err := input.Parse(p.Input, p.Data)
		if err != nil {
			return nil, 0, 0, nil, err
		}
		limits = f.Limits
		if f.Needs != nil {
			src = input.NewGraphSource(f.Tasks(opts.Settings), f.Needs)
		} else {
			src = input.NewSliceSource(f.Tasks(opts.Settings))
		}
	case p.Format == "jsonl":
		tasks, err := input.ReadJSONL(p.Input, io.NopCloser(bytes.NewReader(p.Data)), opts.Settings)
		if err != nil {
			return nil, 0, 0, nil, err
		}
		src = input.NewSliceSource(tasks)
	default:
		src = input.NewLineSource(p.Input, io.NopCloser(bytes.NewReader(p.Data)), input.LineOptions{Settings: opts.Settings, Null: opts.Null, Template: opts.Template})
	}
	return src, deref(opts.Workers, 0), deref(opts.Rate, rate.Inf), append(limits, opts.Limits...), nil
}
