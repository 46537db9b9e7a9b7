package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/gorun/gorun/internal/iostreams"
)

func newCmdVersion(ios *iostreams.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print gorun's version",
		Long:  "Print gorun's module version, the VCS revision it was built from, and the Go version.",
		Example: `  # in a bug report
  gorun version`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintln(ios.Out, versionString())
			return err
		},
	}
}

// versionString reads the module version and VCS revision from the build info.
func versionString() string {
	version, revision, dirty := "(devel)", "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	s := "gorun " + version
	if revision != "" {
		s += " " + revision[:min(12, len(revision))]
		if dirty {
			s += "-dirty"
		}
	}
	return s + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef(cmd.CommandPath(), "%s takes no arguments, got %q", cmd.CommandPath(), args[0])
	}
	return nil
}
