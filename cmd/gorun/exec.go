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

	File         string          // task file; "" or "-": standard input
	Format       string          // yaml, json, jsonl or lines (auto is resolved by fill)
	Template     *input.Template // the command template after --, or nil
	TemplateArgs []string        // its words, as given
	Null         bool            // input items end with NUL
	Workers      *int            // nil: the task file's, else the number of CPUs
	Rate         *rate.Limit     // nil: the task file's, else unlimited
	Burst        int             // starts allowed at once
	Settings     jobs.Settings   // per-task settings given outside the task file
	Grace        time.Duration
	Containment  process.Containment // the strongest containment to try
	Output       pipeline.Output
	KeepOrder    bool
	Halt         pipeline.Halt
	Journal      string        // append results here
	Resume       bool          // skip tasks that succeeded in the journal
	Lock         string        // refuse to run while another run holds this lock
	Report       string        // write a report here
	ReportFmt    report.Format // its format
	Metrics      string        // write Prometheus metrics here
	Quiet        bool
	DryRun       bool
	Broker       string        // run on the workers of this NATS broker
	AckWait      time.Duration // the broker's redelivery timeout
	OrphanAfter  time.Duration // with Broker: cancel the run once its submitter is silent this long; 0: never
	Retain       time.Duration // with Broker: keep the run's record this long after its end
	Conn         ConnFlags     // how to reach the broker: token, TLS, patience
	Detach       bool          // with Broker: start the run, print its id and exit; gorun attach collects it
	Progress     string        // auto, always or never
	Verbose      bool
	LogFormat    string // text or json

	resume *resumeState // gorun attach: the run to replay and take over
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
usage or input (nothing ran), 3 cancelled with gorun cancel (or as an orphan: --broker),
130 interrupted by SIGINT, 143 by SIGTERM, 129 by SIGHUP.`,
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
	cmd.Flags().BoolVar(&opts.Detach, "detach", false, "with --broker: start the run in the background, print its id on stdout and exit 0; gorun attach collects it")
	return cmd
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
	Run    RunFlags
	Output OutputFlags
	Record RecordFlags
	Conn   ConnFlags
}

func newExecFlags() *execFlags {
	e := &execFlags{set: pflag.NewFlagSet("exec", pflag.ContinueOnError), task: pflag.NewFlagSet("task", pflag.ContinueOnError)}
	e.Task.addFlags(e.task)
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
		if o.Template, err = input.NewTemplate(template, jobs.DefaultShell); err != nil {
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
