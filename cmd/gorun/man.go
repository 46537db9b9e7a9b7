package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newCmdMan returns `gorun man DIR`, which writes a man page for each command (what
// `make docs` runs), each headed by its own name: GORUN-EXEC(1) for gorun-exec.1.
func newCmdMan(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "man DIR",
		Short: "Write man pages for every command into DIR",
		Example: `  # read them without installing them
  gorun man /tmp/gorun-man && man -l /tmp/gorun-man/gorun-exec.1`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef(cmd.CommandPath(), "man takes one directory")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			root.DisableAutoGenTag = true
			// No title: each page gets its command's path as its title.
			header := &doc.GenManHeader{Section: "1", Source: "gorun", Manual: "gorun manual"}
			if err := doc.GenManTree(root, header, args[0]); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			return nil
		},
	}
}
