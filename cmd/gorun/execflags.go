package main

import (
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/gorun/gorun/internal/cluster"
	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/pipeline"
	"github.com/gorun/gorun/internal/process"
	"github.com/gorun/gorun/internal/report"
)

// The flags of exec, in groups. Each group adds its flags, bound to its fields, and
// resolves them into ExecOptions once the command line, the environment and the
// config file have set them (see applyEnvAndConfig): a flag is named once, where it
// is added, and a value that does not fit is an error naming its source.

// TaskFlags shape each task; exec and validate share them.
type TaskFlags struct {
	Timeout    timeoutValue
	Retries    int
	RetryDelay time.Duration
	RetryOn    string
	Format     string
	Shell      string
}

func (g *TaskFlags) addFlags(f *pflag.FlagSet) {
	f.VarP(&g.Timeout, "timeout", "t", "per-task timeout: seconds (30), a duration (500ms, 5m), or a percentage of the median duration of the tasks finished so far (200%); 0: none")
	f.IntVar(&g.Retries, "retries", 0, "retries after a failure or timeout")
	f.DurationVar(&g.RetryDelay, "retry-delay", time.Second, "first backoff between retries; doubles each attempt, with jitter, up to 1m")
	f.StringVar(&g.RetryOn, "retry-on", "", "retry only failures in this list: exit codes, timeout, signal (75,timeout); default: any failure")
	f.StringVar(&g.Format, "format", "auto", "input format: auto, yaml, json, jsonl or lines")
	f.StringVar(&g.Shell, "shell", jobs.DefaultShell, "the shell for command lines a task file does not give one for; always: "+jobs.DefaultShell+", even for a simple command that gorun would start directly")
}

func (g *TaskFlags) resolve(f *pflag.FlagSet, s *sources, o *ExecOptions) (err error) {
	if f.Changed("timeout") {
		fixed := g.Timeout.t.Fixed // 0 with a percentage: no fixed timeout, over the file's defaults
		o.Settings.Timeout, o.TimeoutPercent = &fixed, g.Timeout.t.Percent
	}
	if f.Changed("retries") {
		if g.Retries < 0 {
			return s.errorf("retries", "must be at least 0, got %d", g.Retries)
		}
		o.Settings.Retries = &g.Retries
	}
	if o.Settings.RetryDelay, err = durationIfSet(f, s, "retry-delay", g.RetryDelay); err != nil {
		return err
	}
	if f.Changed("retry-on") {
		c := &jobs.RetryClass{}
		for item := range strings.SplitSeq(g.RetryOn, ",") {
			if err := c.Add(item); err != nil {
				return s.errorf("retry-on", "%v", err)
			}
		}
		o.Settings.RetryOn = c
	}
	if f.Changed("shell") {
		if strings.TrimSpace(g.Shell) == "" {
			return s.errorf("shell", "empty shell")
		}
		o.Settings.Shell = &g.Shell
	}
	switch o.Format = strings.TrimSpace(g.Format); o.Format {
	case "auto":
		o.Format = detectFormat(o.File)
	case "yaml", "json", "jsonl", "lines":
	default:
		return s.errorf("format", "invalid format %q: want auto, yaml, json, jsonl or lines", o.Format)
	}
	return nil
}

// RunFlags say how many tasks start, how fast, where, and how they are stopped.
type RunFlags struct {
	Workers     workersValue
	Rate        string
	Burst       int
	Grace       time.Duration
	Containment string
	Null        bool
	Link        bool
	Halt        string
	FailFast    bool
	Lock        string
	DryRun      bool
	Broker      string
	AckWait     time.Duration
	OrphanAfter time.Duration
	Retain      time.Duration
	LimitBy     string
	LimitRate   string
	LimitConc   int
	BackoffCode int
	Load        float64
	MemFree     string
}

func (g *RunFlags) addFlags(f *pflag.FlagSet) {
	f.VarP(&g.Workers, "workers", "j", "tasks running at once: N, or relative to the CPUs: +N, -N, N% (default: number of CPUs)")
	f.StringVarP(&g.Rate, "rate", "r", "", "task starts per unit: 2/s, 100/m, 0.5/s, 10 (per second); 0 or inf: unlimited (default unlimited)")
	f.IntVar(&g.Burst, "burst", 1, "starts allowed at once before the rate applies")
	f.DurationVar(&g.Grace, "grace", 5*time.Second, "after SIGTERM, wait this long, then SIGKILL what is left of the task")
	f.StringVar(&g.Containment, "containment", "auto", "how a task's processes are held together: auto (cgroup where possible), subreaper or process-group")
	f.BoolVarP(&g.Null, "null", "0", false, "input items end with NUL, not newline (for find -print0)")
	f.BoolVar(&g.Link, "link", false, "take the values of the input sources (:::, ::::) together, first with first, not in every combination")
	f.StringVar(&g.Halt, "halt", "never", "stop early: never, soon or now[,fail=N|fail=P%|success=N|success=P%]")
	f.BoolVar(&g.FailFast, "fail-fast", false, "stop starting tasks at the first failure (--halt soon,fail=1)")
	f.StringVar(&g.Lock, "lock", "", "refuse to start (exit 75) while another run holds this lock file")
	f.BoolVar(&g.DryRun, "dry-run", false, "print the command of each task, one per line, quoted for sh (--dry-run | sh runs them), and run nothing")
	f.StringVar(&g.Broker, "broker", "", "run the tasks on the workers of this NATS JetStream broker (nats://HOST:4222; a cluster: its URLs, comma-separated)")
	f.StringVar(&g.LimitBy, "limit-by", "", "a pool per value of this key, for every task: {}, {//} (the item's directory), {id}, a label's {NAME}... (with --limit-rate, --limit-concurrency)")
	f.StringVar(&g.LimitRate, "limit-rate", "", "with --limit-by: task starts per unit in each key's pool (2/s)")
	f.IntVar(&g.LimitConc, "limit-concurrency", 0, "with --limit-by: tasks of each key's pool running at once")
	f.Float64Var(&g.Load, "load", 0, "start nothing while this machine's load is above N (PSI cpu some avg10 in percent where the kernel has it, else the 1-minute load average); 0: no bound")
	f.StringVar(&g.MemFree, "memfree", "", "start nothing while this machine's available memory is below SIZE (512MiB, 4GiB); below half, stop the youngest task and queue it again")
	f.IntVar(&g.BackoffCode, "backoff-code", 75, "a task exiting with this code is queued again and halves the run's concurrency and rate, which recover as tasks succeed; 0: off")
	f.DurationVar(&g.AckWait, "ack-wait", cluster.DefaultLease, "with --broker: the run's lease: how long a worker may go without renewing it before the attempt is delivered again")
	f.DurationVar(&g.OrphanAfter, "orphan-after", cluster.DefaultOrphanAfter, "with --broker: cancel the run once this submitter has been silent this long (killed, cut off); 0: never")
	f.DurationVar(&g.Retain, "retain", cluster.MaxRetain, "with --broker: keep the run's record on the broker this long after it ends, for gorun runs and status (at most 168h)")
}

func (g *RunFlags) resolve(f *pflag.FlagSet, s *sources, o *ExecOptions) (err error) {
	if f.Changed("workers") {
		o.Workers = &g.Workers.n
	}
	if f.Changed("rate") {
		r, err := input.ParseRate(g.Rate)
		if err != nil {
			return s.errorf("rate", "%v", err)
		}
		o.Rate = &r
	}
	if o.Burst = g.Burst; g.Burst < 1 {
		return s.errorf("burst", "must be at least 1, got %d", g.Burst)
	}
	if o.Grace = g.Grace; g.Grace < 0 {
		return s.errorf("grace", "invalid duration %q: must not be negative", g.Grace)
	}
	if o.Containment, err = process.ParseContainment(strings.TrimSpace(g.Containment)); err != nil {
		return s.errorf("containment", "%v", err)
	}
	if o.Halt, err = pipeline.ParseHalt(strings.TrimSpace(g.Halt)); err != nil {
		return s.errorf("halt", "%v", err)
	}
	if g.FailFast {
		if f.Changed("halt") {
			return usagef(s.cmd, "--fail-fast is --halt soon,fail=1: give one or the other")
		}
		o.Halt = pipeline.Halt{When: "soon", Count: 1}
	}
	o.Null, o.Link, o.Lock, o.DryRun, o.Broker = g.Null, g.Link, strings.TrimSpace(g.Lock), g.DryRun, strings.TrimSpace(g.Broker)
	if o.AckWait = g.AckWait; g.AckWait < cluster.MinLease {
		return s.errorf("ack-wait", "must be at least %v", cluster.MinLease)
	}
	if o.OrphanAfter = g.OrphanAfter; g.OrphanAfter != 0 && g.OrphanAfter < cluster.MinOrphanAfter {
		return s.errorf("orphan-after", "must be 0 (never) or at least %v, got %v", cluster.MinOrphanAfter, g.OrphanAfter)
	}
	if o.Retain = g.Retain; g.Retain < time.Second || g.Retain > cluster.MaxRetain {
		return s.errorf("retain", "must be from 1s to %v (the broker keeps a run's record 7 days at most), got %v", cluster.MaxRetain, g.Retain)
	}
	if o.BackoffCode = g.BackoffCode; g.BackoffCode < 0 || g.BackoffCode > 255 {
		return s.errorf("backoff-code", "want an exit code from 1 to 255, or 0 for none, got %d", g.BackoffCode)
	}
	if o.MaxLoad = g.Load; g.Load < 0 {
		return s.errorf("load", "must not be negative, got %g", g.Load)
	}
	if f.Changed("memfree") {
		if o.MinFree, err = input.ParseSize(g.MemFree); err != nil {
			return s.errorf("memfree", "%v", err)
		}
	}
	if o.Broker != "" && (o.MaxLoad > 0 || o.MinFree > 0) {
		return usagef(s.cmd, "--load and --memfree watch this machine: with --broker the tasks run on the workers'")
	}
	if err := g.resolveLimit(f, s, o); err != nil {
		return err
	}
	if o.Broker != "" && f.Changed("containment") {
		return usagef(s.cmd, "--containment cannot be set with --broker: each worker holds its tasks as its own containment allows")
	}
	return nil
}

// resolveLimit makes the pool family of --limit-by, --limit-rate and
// --limit-concurrency.
func (g *RunFlags) resolveLimit(f *pflag.FlagSet, s *sources, o *ExecOptions) error {
	by := strings.TrimSpace(g.LimitBy)
	if by == "" {
		if f.Changed("limit-rate") || f.Changed("limit-concurrency") {
			return usagef(s.cmd, "--limit-rate and --limit-concurrency set the pools of --limit-by: give it too")
		}
		return nil
	}
	l := jobs.Limit{Name: "--limit-by", KeySource: by, Burst: 1, Every: true}
	var err error
	if l.Key, l.Labels, err = input.NewKey(by); err != nil {
		return s.errorf("limit-by", "%v", err)
	}
	o.Settings.Labels = l.Labels // every task must give them
	if f.Changed("limit-rate") {
		if l.Rate, err = input.ParseRate(g.LimitRate); err != nil {
			return s.errorf("limit-rate", "%v", err)
		}
	}
	if f.Changed("limit-concurrency") {
		if g.LimitConc < 1 {
			return s.errorf("limit-concurrency", "must be at least 1, got %d", g.LimitConc)
		}
		l.Concurrency = g.LimitConc
	}
	if !l.Rated() && l.Concurrency == 0 {
		return usagef(s.cmd, "--limit-by needs --limit-rate, --limit-concurrency or both")
	}
	o.Limits = append(o.Limits, l)
	return nil
}

// OutputFlags say what the terminal shows.
type OutputFlags struct {
	Output    string
	KeepOrder bool
	Quiet     bool
	Progress  string
	Verbose   bool
	LogFormat string
	Tag       bool
	TagString string
}

func (g *OutputFlags) addFlags(f *pflag.FlagSet) {
	f.StringVarP(&g.Output, "output", "o", string(pipeline.Grouped), "task output: grouped, line, tag, jsonl or none")
	f.BoolVarP(&g.KeepOrder, "keep-order", "k", false, "print outputs and results in input order")
	f.BoolVarP(&g.Quiet, "quiet", "q", false, "print nothing if every task succeeds; else the summary with failed tasks' output")
	f.StringVar(&g.Progress, "progress", "auto", "progress bar on stderr: auto (when stderr is a terminal), always or never")
	f.BoolVarP(&g.Verbose, "verbose", "v", false, "log each run and task event on stderr")
	f.StringVar(&g.LogFormat, "log-format", "text", "format of -v logs: text or json")
	f.BoolVar(&g.Tag, "tag", false, "prefix each output line with the task's input and a tab, as GNU parallel's --tag (-o tag)")
	f.StringVar(&g.TagString, "tagstring", "", "prefix each output line with this text and a tab; {} {.} {/} {//} {/.} {#} {%} are replaced (-o tag)")
}

func (g *OutputFlags) resolve(s *sources, o *ExecOptions) (err error) {
	if o.Output, err = pipeline.ParseOutput(strings.TrimSpace(g.Output)); err != nil {
		return s.errorf("output", "%v", err)
	}
	o.KeepOrder, o.Quiet, o.Verbose = g.KeepOrder, g.Quiet, g.Verbose
	if g.Tag || g.TagString != "" {
		if g.Tag && g.TagString != "" {
			return usagef(s.cmd, "--tag tags with the input, --tagstring with a text of yours: give one or the other")
		}
		if _, set := s.from["output"]; set && o.Output != pipeline.Tag && o.Output != pipeline.Line {
			return usagef(s.cmd, "--tag and --tagstring tag output lines: they go with -o tag, not -o %s", o.Output)
		}
		o.Output, o.TagInput = pipeline.Tag, g.Tag
		if g.TagString != "" {
			o.TagString, o.TagStringText = input.NewTagString(g.TagString), g.TagString
		}
	}
	if o.Quiet {
		o.Output = pipeline.None // chronic's way: output only when something failed, in the summary
	}
	switch o.Progress = strings.TrimSpace(g.Progress); o.Progress {
	case "auto", "always", "never":
	default:
		return s.errorf("progress", "invalid value %q: want auto, always or never", o.Progress)
	}
	switch o.LogFormat = strings.TrimSpace(g.LogFormat); o.LogFormat {
	case "text", "json":
	default:
		return s.errorf("log-format", "invalid value %q: want text or json", o.LogFormat)
	}
	return nil
}

// RecordFlags say what the run leaves behind: a journal, a report, metrics.
type RecordFlags struct {
	Journal      string
	Resume       bool
	Report       string
	ReportFormat string
	Metrics      string
	Trace        string
}

func (g *RecordFlags) addFlags(f *pflag.FlagSet) {
	f.StringVar(&g.Journal, "journal", "", "append each task's result to this file (JSON Lines)")
	f.BoolVar(&g.Resume, "resume", false, "skip tasks that already succeeded in the --journal")
	f.StringVar(&g.Report, "report", "", "also write a report: .json, .xml (JUnit), .md or .html by extension")
	f.StringVar(&g.ReportFormat, "report-format", "", "format of --report: json, junit, markdown, html or text (default: by extension)")
	f.StringVar(&g.Metrics, "metrics", "", "write Prometheus metrics here (for node_exporter's textfile collector)")
	f.StringVar(&g.Trace, "trace", "", "write the run's timeline here as a Chrome trace (JSON), for Perfetto or chrome://tracing")
}

func (g *RecordFlags) resolve(s *sources, o *ExecOptions) (err error) {
	o.Journal, o.Resume, o.Report, o.Metrics = strings.TrimSpace(g.Journal), g.Resume, strings.TrimSpace(g.Report), strings.TrimSpace(g.Metrics)
	o.Trace = strings.TrimSpace(g.Trace)
	if o.Resume && o.Journal == "" {
		return usagef(s.cmd, "--resume needs a --journal to resume from")
	}
	if o.Report == "" {
		return nil
	}
	o.ReportFmt = report.FormatOf(o.Report)
	if rf := strings.TrimSpace(g.ReportFormat); rf != "" {
		if o.ReportFmt, err = report.ParseFormat(rf); err != nil {
			return s.errorf("report-format", "%v", err)
		}
	}
	if o.ReportFmt == "" {
		return usagef(s.cmd, "--report %s: cannot tell the format from the extension; name it with --report-format", o.Report)
	}
	return nil
}

// durationIfSet returns d when flag name was set, else nil; a negative d is an error.
func durationIfSet(f *pflag.FlagSet, s *sources, name string, d time.Duration) (*time.Duration, error) {
	if !f.Changed(name) {
		return nil, nil
	}
	if d < 0 {
		return nil, s.errorf(name, "invalid duration %q: must not be negative", d)
	}
	return &d, nil
}
