package main

import (
	"context"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/time/rate"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/iostreams"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/pipeline"
	"github.com/gorun/gorun/internal/process"
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
	StartGuard func(runID, cgroupDir string) (*process.Guard, error) // nil: no guard
	Hurry      <-chan struct{}                                       // closed at a second interrupt

	File         string             // task file; "" or "-": standard input
	Format       string             // yaml, json, jsonl or lines (auto is resolved by fill)
	Template     *input.Template    // the command template after --, or nil
	TemplateArgs []string           // its words, as given
	Sources      []input.SourceSpec // input sources after the template (::: a b, :::: file); nil: FILE or stdin
	Link         bool               // --link: every input source linked to the others
	Null         bool               // input items end with NUL
	Workers      *int               // nil: the task file's, else the number of CPUs
	Rate         *rate.Limit        // nil: the task file's, else unlimited
	Burst        int                // starts allowed at once
	Limits       []jobs.Limit       // pools on the command line (--limit-by)
	// BackoffCode: the exit code that backs the run off; 0: none.
	BackoffCode int
	MaxLoad     float64 // start nothing while the load is above; 0: no bound
	MinFree     uint64  // start nothing while less memory is available (bytes); 0: no bound
	// CPUs, Memory and GPUs are the run's capacity as given (--cpus, --memory,
	// --gpus); nil: the machine's, or with Broker the live workers'. Labels are this
	// machine's (--label), for tasks whose on: requires some.
	CPUs     *int64
	Memory   *uint64
	GPUs     []string
	Labels   map[string]string
	Settings jobs.Settings // per-task settings given outside the task file
	// TimeoutPercent > 0: a task without a timeout of its own times out after this
	// percentage of the median duration of the tasks finished when it starts.
	TimeoutPercent float64
	Grace          time.Duration
	Containment    process.Containment // the strongest containment to try
	Output         pipeline.Output
	KeepOrder      bool
	TagInput       bool             // --tag: output lines are tagged with the task's input
	TagString      *input.TagString // --tagstring: output lines are tagged with this
	TagStringText  string           // the --tagstring as given
	Halt           pipeline.Halt
	Journal        string        // append results here
	Resume         bool          // skip tasks that succeeded in the journal
	Lock           string        // refuse to run while another run holds this lock
	Report         string        // write a report here
	ReportFmt      report.Format // its format
	Metrics        string        // write Prometheus metrics here
	Trace          string        // write the run's timeline here, in the Chrome trace event format
	Quiet          bool
	DryRun         bool
	Broker         string        // run on the workers of this NATS broker
	AckWait        time.Duration // the broker's redelivery timeout
	OrphanAfter    time.Duration // with Broker: cancel the run once its submitter is silent this long; 0: never
	Retain         time.Duration // with Broker: keep the run's record this long after its end
	Conn           ConnFlags     // how to reach the broker: token, TLS, patience
	Detach         bool          // with Broker: start the run, print its id and exit; gorun attach collects it
	Progress       string        // auto, always or never
	Verbose        bool
	LogFormat      string // text or json

	resume *resumeState // gorun attach: the run to replay and take over
	fit    *fitCheck    // set by openInput for a task file: refuses a task that could never start
	// wholeFile reads a task file whole, and checks it, even one that could run as it
	// is read (input.JSONStream): gorun validate.
	wholeFile bool
}

const execExample = `  # run a task file, 5 at a time, at most 2 starts a second
  gorun exec tasks.yaml --workers 5 --rate 2/s

  # one shell command per line from a pipe; each gets 30 seconds
  generate-commands | gorun exec -j 8 --timeout 30s

  # every combination of two input sources, as GNU parallel
  gorun exec -- convert {1} -resize {2} {1.}-{2}.jpg ::: *.png ::: 50% 25%

  # xargs style: each file name becomes an argument (no shell involved)
  find . -name '*.png' -print0 | gorun exec -0 -j 8 -- convert {} {.}.jpg

  # one result object per task, for jq
  cat urls.txt | gorun exec -o jsonl --rate 5/s -- 'curl -fsS "{}" | wc -c' | jq .status

  # from cron: every setting can come from the environment or the config file
  GORUN_WORKERS=4 gorun exec /etc/nightly/tasks.yaml`

// NewCmdExec returns `gorun exec`. runF, when not nil, receives the options instead of
// running them (for tests).
func NewCmdExec(ios *iostreams.IOStreams, hurry <-chan struct{}, runF func(*ExecOptions) error) *cobra.Command {
	opts := &ExecOptions{IO: ios, Pipeline: pipeline.Run, Hurry: hurry, StartGuard: startGuard}
	flags := newExecFlags()
	cmd := &cobra.Command{
		Use:   "exec [FILE | -] [flags] [-- TEMPLATE...]",
		Short: "Run the tasks of a task file or of standard input",
		Long: `Run tasks in parallel and print a summary of how each ended.

FILE is a task file (.yaml, .yml or .json; see the README for its schema), a JSON
Lines file of task objects (.jsonl), or a file of shell commands, one per line. A task
file is checked whole before anything runs. With - or no FILE, gorun reads one shell
command per line from standard input, and starts the first before the input ends;
with --format jsonl, one task object per line, a bad line ending "invalid" while the
others run. A command line that is a simple command (words and quotes, no $, pattern,
redirection, pipe, list or builtin) starts without a shell, with exactly the argv
/bin/sh would have built; --shell always hands every line to /bin/sh.

After --, a command TEMPLATE turns each input line into an argument instead, as xargs
and GNU parallel do: {} is the line, {.} without its extension, {/} its basename, {//}
its dirname, {/.} the basename without extension, {#} the task's number, {%} the worker
slot; with none of them, the line is appended as the last argument. Several words run
directly, without a shell; one word is a shell command line. Either way an input line
is only ever an argument: it can never become shell code, whatever it holds.

As in GNU parallel, input sources may follow the template instead of stdin:
::: VALUES, :::: FILES (their lines; - is stdin), :::+ and ::::+ (linked to the source
before). Several sources run every combination; --link takes them together. {1}, {2}
... are each source's value, with the modifiers of {}: {1.} {2/} {1//} {2/.}.

Every flag can also be set as an environment variable GORUN_<FLAG> (GORUN_RETRY_DELAY
for --retry-delay) or as a key of the config file. A flag beats the environment, the
environment beats the config file, and all three beat the task file's defaults; a
task's own setting beats them all.

Exit codes: 0 all tasks succeeded, 1 a task failed, timed out or was invalid, 2 bad
usage or input (nothing ran), 3 cancelled with gorun cancel (or as an orphan: --broker),
130 interrupted by SIGINT, 143 by SIGTERM, 129 by SIGHUP.`,
		Example: execExample,
		Args: func(cmd *cobra.Command, args []string) error {
			files, template := splitArgs(cmd, args)
			if template != nil && len(template) == 0 {
				return usagef(cmd.CommandPath(), "empty command template after --")
			}
			if len(files) > 1 {
				return usagef(cmd.CommandPath(), "exec takes one input FILE, got %d: %q (a command template goes after --)", len(files), files)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			files, template := splitArgs(cmd, args)
			if len(files) == 1 {
				opts.File = files[0]
			}
			if err := flags.resolve(cmd, opts, template); err != nil {
				return err
			}
			if err := checkDetach(cmd.CommandPath(), opts); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			if _, child := detachedChild(); opts.Detach && !child {
				return runDetached(opts)
			}
			return runExec(cmd.Context(), opts)
		},
	}
	flags.add(cmd)
	completeFlagValues(cmd, flagValues())
	cmd.Flags().BoolVar(&opts.Detach, "detach", false, "with --broker: start the run in the background, print its id on stdout and exit 0; gorun attach collects it")
	return cmd
}

// splitArgs splits exec's arguments into the input FILE (at most one) and the command
// template with its input sources: what follows --, or, as GNU parallel takes it, all
// of them when they hold an input source (gorun exec echo {} ::: a b). template is
// nil without either, and empty after a -- with nothing after it.
func splitArgs(cmd *cobra.Command, args []string) (files, template []string) {
	if dash := cmd.ArgsLenAtDash(); dash >= 0 {
		return args[:dash], append([]string{}, args[dash:]...)
	}
	for _, a := range args {
		if a == ":::" || a == "::::" {
			return nil, args
		}
	}
	return args, nil
}

// detectFormat guesses the input format from the file's extension: stdin is lines.
func detectFormat(file string) string {
	switch {
	case file == "" || file == "-":
		return "lines"
	case input.IsJSONLFile(file):
		return "jsonl"
	case input.IsTaskFile(file):
		return "yaml"
	}
	return "lines"
}

// execFlags are exec's flags, in their groups, on a flag set of their own, so that
// validate can resolve the same settings and the config file's keys can be checked.
type execFlags struct {
	set    *pflag.FlagSet
	task   *pflag.FlagSet // the task flags alone, which validate has too
	Task   TaskFlags
	Res    ResourceFlags
	Run    RunFlags
	Output OutputFlags
	Record RecordFlags
	Conn   ConnFlags
}

func newExecFlags() *execFlags {
	e := &execFlags{set: pflag.NewFlagSet("exec", pflag.ContinueOnError), task: pflag.NewFlagSet("task", pflag.ContinueOnError)}
	e.Task.addFlags(e.task)
	e.Res.addFlags(e.task) // validate checks the tasks against the capacity too
	e.set.AddFlagSet(e.task)
	e.Run.addFlags(e.set)
	e.Output.addFlags(e.set)
	e.Record.addFlags(e.set)
	e.Conn.addFlags(e.set)
	return e
}

// add gives cmd every flag of e.
func (e *execFlags) add(cmd *cobra.Command) { cmd.Flags().AddFlagSet(e.set) }

// resolve applies the environment and the config file onto the flags the command
// line left unset, fills o from them and checks that they go together.
func (e *execFlags) resolve(cmd *cobra.Command, o *ExecOptions, template []string) error {
	path := cmd.CommandPath()
	configFile, _ := cmd.Flags().GetString("config")
	s, err := applyEnvAndConfig(path, configFile, e.set)
	if err != nil {
		return err
	}
	if err := e.Run.resolve(e.set, s, o); err != nil {
		return err
	}
	if err := e.Task.resolve(e.set, s, o); err != nil {
		return err
	}
	if err := e.Res.resolve(e.set, s, o); err != nil {
		return err
	}
	if err := e.Output.resolve(s, o); err != nil {
		return err
	}
	if err := e.Record.resolve(s, o); err != nil {
		return err
	}
	if err := e.Conn.check(); err != nil {
		return usagef(path, "%v", err)
	}
	o.Conn = e.Conn
	if template != nil {
		if o.Format != "lines" {
			return usagef(path, "a command template takes lines of input, not a %s task file", o.Format)
		}
		o.TemplateArgs = template
		if template, o.Sources, err = input.SplitSources(template); err != nil {
			return usagef(path, "%v", err)
		}
		if o.Sources != nil && o.File != "" {
			return usagef(path, "input sources (::: or ::::) replace the input FILE %s: give one or the other", o.File)
		}
		if len(template) > 0 { // none, with sources: their values are command lines
			shell := jobs.DefaultShell
			if o.Settings.Shell != nil && *o.Settings.Shell != jobs.ShellAlways {
				shell = *o.Settings.Shell
			}
			if o.Template, err = input.NewTemplate(template, shell); err != nil {
				return usagef(path, "%v", err)
			}
			if n, have := o.Template.MaxSource(), max(len(o.Sources), 1); n > have {
				return usagef(path, "the template names input source %d, and there are only %d", n, have)
			}
		}
	}
	if o.Null && o.Format != "lines" {
		return usagef(path, "--null reads NUL-separated items, not a %s task file", o.Format)
	}
	if err := record.CheckDistinct(o.File, record.Path{Flag: "--journal", Name: o.Journal},
		record.Path{Flag: "--report", Name: o.Report}, record.Path{Flag: "--metrics", Name: o.Metrics},
		record.Path{Flag: "--trace", Name: o.Trace}); err != nil {
		return usagef(path, "%v", err)
	}
	if (o.File == "" || o.File == "-") && o.Sources == nil && o.IO.IsStdinTTY() {
		return usagef(path, "no task file given and standard input is a terminal: name a FILE, or pipe commands in")
	}
	return nil
}
