package main

import (
	"cmp"
	"errors"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/gorun/gorun/internal/iostreams"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/journal"
	"github.com/gorun/gorun/internal/report"
)

// ReportOptions is everything `gorun report` needs: the streams, then the journal and
// the format of the report.
type ReportOptions struct {
	IO *iostreams.IOStreams

	Journal string
	Format  report.Format
}

// NewCmdReport returns `gorun report`. runF, when not nil, receives the options
// instead of running them (for tests).
func NewCmdReport(ios *iostreams.IOStreams, runF func(*ReportOptions) error) *cobra.Command {
	opts := &ReportOptions{IO: ios}
	var format string
	cmd := &cobra.Command{
		Use:   "report JOURNAL",
		Short: "Render a report from a journal",
		Long: `Render the report of a journal written by exec --journal: the last result of each task,
across every run in the journal (a batch and its resumed runs), as text, JSON, JUnit
XML, Markdown or a self-contained HTML page with the run's timeline, on stdout.`,
		Example: `  # a JUnit file for the CI server, after the fact
  gorun report nightly.journal --format junit > results.xml

  # a step summary in GitHub Actions
  gorun report run.journal --format markdown >> "$GITHUB_STEP_SUMMARY"

  # a page to open in a browser: timeline, durations, every task
  gorun report nightly.journal --format html > nightly.html`,
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
			opts.Journal, opts.Format = args[0], f
			if runF != nil {
				return runF(opts)
			}
			return runReport(opts)
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "text, json, junit, markdown or html")
	completeFlagValues(cmd, map[string][]string{"format": flagValues()["report-format"]})
	return cmd
}

// runReport renders the report of the journal as the run rendered its own: the last
// result of each task in input order, skipped tasks included, the span of every run in
// it, and the id and host of the last run. A journal that is missing or cannot be read
// is an input error: there is nothing to report.
func runReport(opts *ReportOptions) error {
	if _, err := os.Stat(opts.Journal); err != nil {
		return &jobs.InputError{File: opts.Journal, Msg: errors.Unwrap(err).Error()}
	}
	results, runs, err := journal.LatestRuns(opts.Journal)
	if err != nil {
		return &jobs.InputError{File: opts.Journal, Msg: err.Error()}
	}
	if len(runs) == 0 {
		return &jobs.InputError{File: opts.Journal, Msg: "not a gorun journal: no run in it"}
	}
	// Input order: by each task's index in its last run (the same index across the
	// resumed runs of one input), ties in the order the tasks first appear.
	slices.SortStableFunc(results, func(a, b jobs.Result) int { return cmp.Compare(a.Index, b.Index) })
	sum := report.Summarize(results)
	last := runs[len(runs)-1]
	run := report.Run{ID: last.RunID, Hostname: last.Hostname, StartedAt: runs[0].StartedAt, Journal: opts.Journal}
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
	if !run.StartedAt.IsZero() && end.After(run.StartedAt) {
		sum.Wall = end.Sub(run.StartedAt)
	}
	return report.Write(opts.IO.Out, opts.Format, run, sum, report.SliceResults(results))
}
