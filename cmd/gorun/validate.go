package main

import (
	"github.com/spf13/cobra"

	"github.com/gorun/gorun/internal/iostreams"
)

func newCmdValidate(ios *iostreams.IOStreams) *cobra.Command {
	opts := &ExecOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a task file and print what would run, running nothing",
		Long: `Check a task file as exec would, and print its tasks with every setting resolved:
id, timeout, retries, working directory and command. Nothing runs. A problem is one
line naming the file, line, column and key, and exit code 2.`,
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
			opts.File = args[0]
			if err := opts.fill(cmd, nil); err != nil {
				return err
			}
			src, _, _, err := openInput(opts)
			if err != nil {
				return err
			}
			defer src.Close()
			return listTasks(ios.Out, src)
		},
	}
	addTaskFlags(cmd)
	return cmd
}
