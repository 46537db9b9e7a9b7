package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/gorun/gorun/internal/iostreams"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/journal"
	"github.com/gorun/gorun/internal/report"
)

func newCmdReport(ios *iostreams.IOStreams) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "report JOURNAL",
		Short: "Render a report from a journal",
		Long: `Render the report of a journal written by exec --journal: the last result of each task,
across every run in the journal (a batch and its resumed runs), as text, JSON, JUnit
XML or Markdown, on stdout.`,
		Example: `  # a JUnit file for the CI server, after the fact
  gorun report nightly.journal --format junit > results.xml

  # a step summary in GitHub Actions
  gorun report run.journal --format markdown >> "$GITHUB_STEP_SUMMARY"`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef(cmd.CommandPath(), "report takes one journal file")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := report.ParseFormat(format)
			if err != nil {
				return usagef(cmd.CommandPath(), "--format: %v", err)
			}
			results, err := journal.Latest(args[0])
			if err != nil {
				return &jobs.InputError{File: args[0], Msg: err.Error()}
			}
			sum := report.Summarize(results)
			run := report.Run{}
			var end time.Time
			for _, r := range results {
				if r.StartedAt.IsZero() {
					continue
				}
				if run.StartedAt.IsZero() || r.StartedAt.Before(run.StartedAt) {
					run.StartedAt = r.StartedAt
				}
				if e := r.StartedAt.Add(time.Duration(r.Duration)); e.After(end) {
					end = e
				}
			}
			if !run.StartedAt.IsZero() {
				sum.Wall = end.Sub(run.StartedAt)
			}
			return report.Write(ios.Out, f, run, sum, report.SliceResults(results))
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "text, json, junit or markdown")
	return cmd
}
