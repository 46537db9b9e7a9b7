package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/gorun/gorun/internal/iostreams"
)

// NewCmdRoot returns the gorun command with its subcommands. hurry is closed at a
// second interrupt: running tasks are then killed at once.
func NewCmdRoot(ios *iostreams.IOStreams, hurry <-chan struct{}) *cobra.Command {
	root := &cobra.Command{
		Use:   "gorun",
		Short: "Run batches of tasks in parallel, reliably",
		Long: `gorun runs batches of tasks in parallel: from a task file or standard input, through a
rate-limited pool of workers with per-task timeouts, to a summary of successes and
failures. It stops cleanly on Ctrl-C, and no task process outlives it.`,
		Example: `  # the demo: successes, a failure, a timeout, the rate limit at work
  gorun exec testdata/demo.yaml

  # a pipeline stage, like xargs -P, but safe with any file name
  find . -name '*.log' -print0 | gorun exec -0 -j 4 -- gzip -9

  # a rate-limited API batch: 5 at a time, 10 calls a second, a report for later
  gorun exec -j 5 -r 10/s -t 30s --report calls.json -- 'curl -fsS "https://api.example.com/items/{}"' < ids.txt

  # check a task file in CI before it runs at night
  gorun validate nightly.yaml`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{cmd: c.CommandPath(), err: err}
	})
	root.PersistentFlags().String("config", "", "config file (default $GORUN_CONFIG, else $XDG_CONFIG_HOME/gorun/config.yaml)")
	root.PersistentFlags().String("cpuprofile", "", "write a CPU profile of gorun itself to this file (for pprof)")
	_ = root.PersistentFlags().MarkHidden("cpuprofile")
	var stopProfile func()
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		file, _ := cmd.Flags().GetString("cpuprofile")
		if file == "" {
			return nil
		}
		f, err := os.Create(file)
		if err != nil {
			return usagef(cmd.CommandPath(), "cpuprofile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("cpuprofile: %w", err)
		}
		stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
		return nil
	}
	root.PersistentPostRun = func(cmd *cobra.Command, args []string) {
		if stopProfile != nil { // a command without RunE, such as completion
			stopProfile()
			stopProfile = nil
		}
	}
	root.AddCommand(NewCmdExec(ios, hurry, nil), NewCmdValidate(ios, nil), NewCmdReport(ios, nil), newCmdVersion(ios), NewCmdWorker(ios, hurry, nil), NewCmdBroker(ios, nil),
		NewCmdRuns(ios, nil), NewCmdStatus(ios, nil), NewCmdCancel(ios, nil), NewCmdAttach(ios, hurry, nil), newCmdMan(root))
	stopAfterRun(root, func() {
		if stopProfile != nil {
			stopProfile()
			stopProfile = nil
		}
	})
	return root
}

// stopAfterRun makes every command under root call stop when its run returns,
// whatever it returns. (PersistentPostRun runs only after a run without error, and a
// CPU profile must be complete for the runs that fail too.)
func stopAfterRun(root *cobra.Command, stop func()) {
	for _, c := range root.Commands() {
		stopAfterRun(c, stop)
		if run := c.RunE; run != nil {
			c.RunE = func(cmd *cobra.Command, args []string) error {
				defer stop()
				return run(cmd, args)
			}
		}
	}
}
