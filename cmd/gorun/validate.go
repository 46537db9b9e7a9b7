package main

import (
	"github.com/spf13/cobra"

	"github.com/gorun/gorun/internal/iostreams"
	"github.com/gorun/gorun/internal/jobs"
)

// ValidateOptions is everything `gorun validate` needs: the streams, then the task
// file and the settings a run would give its tasks.
type ValidateOptions struct {
	IO *iostreams.IOStreams

	File     string
	Format   string        // yaml, json, jsonl or lines
	Settings jobs.Settings // per-task settings given outside the task file
	// CPUs, Memory and GPUs are the capacity given (--cpus, --memory, --gpus; nil:
	// this machine's); Labels, when not nil, the labels a run would have (--label):
	// without them, on: is not checked (a run with --broker has its workers' labels).
	CPUs   *int64
	Memory *uint64
	GPUs   []string
	Labels map[string]string
}

// NewCmdValidate returns `gorun validate`. runF, when not nil, receives the options
// instead of running them (for tests).
func NewCmdValidate(ios *iostreams.IOStreams, runF func(*ValidateOptions) error) *cobra.Command {
	flags := newExecFlags()
	cmd := &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a task file and print what would run, running nothing",
		Long: `Check a task file as exec would, and print its tasks with every setting resolved:
id, timeout, retries, working directory and command. Nothing runs. A problem is one
line naming the file, line, column and key, and exit code 2.

A task that asks for more resources than a run would have (--cpus, --memory, --gpus,
else this machine's) is such a problem; so is one whose on: requires a label that
--label does not give, when --label is given (without it, on: is left to the
workers of a run with --broker).`,
		Example: `  # in CI, before the nightly job changes
  gorun validate nightly.yaml

  # with the settings a run would get
  GORUN_TIMEOUT=5m gorun validate nightly.yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef(cmd.CommandPath(), "validate takes one task file")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			// Settled as exec settles them, so that what validate accepts, exec runs.
			exec := &ExecOptions{IO: ios, File: args[0]}
			if err := flags.resolve(cmd, exec, nil); err != nil {
				return err
			}
			opts := &ValidateOptions{IO: ios, File: exec.File, Format: exec.Format, Settings: exec.Settings,
				CPUs: exec.CPUs, Memory: exec.Memory, GPUs: exec.GPUs, Labels: exec.Labels}
			if runF != nil {
				return runF(opts)
			}
			return runValidate(opts)
		},
	}
	cmd.Flags().AddFlagSet(flags.task)
	completeFlagValues(cmd, flagValues())
	return cmd
}

// runValidate prints the tasks of the file as a run would get them.
func runValidate(opts *ValidateOptions) error {
	defer leanGC()() // listing a large file holds it whole too
	exec := &ExecOptions{IO: opts.IO, File: opts.File, Format: opts.Format, Settings: opts.Settings,
		CPUs: opts.CPUs, Memory: opts.Memory, GPUs: opts.GPUs, Labels: opts.Labels, wholeFile: true}
	src, _, _, limits, err := openInput(exec)
	if err != nil {
		return err
	}
	defer src.Close()
	if exec.fit.asks() {
		c := exec.localCapacity()
		if err := exec.fit.check(&c, opts.Labels != nil); err != nil {
			return err
		}
	}
	return listTasks(opts.IO.Out, src, limits)
}
