package main

import (
	"github.com/spf13/cobra"

	"github.com/gorun/gorun/internal/pipeline"
	"github.com/gorun/gorun/internal/process"
	"github.com/gorun/gorun/internal/report"
)

// flagValues lists the values shell completion offers for each flag that takes one of
// a few: the values its own parser accepts, so that completion offers no value a run
// would refuse.
func flagValues() map[string][]string {
	accepted := func(parse func(string) error, candidates ...string) []string {
		var ok []string
		for _, c := range candidates {
			if parse(c) == nil {
				ok = append(ok, c)
			}
		}
		return ok
	}
	reportFormats := accepted(func(s string) error { _, err := report.ParseFormat(s); return err },
		"text", "json", "junit", "markdown", "html")
	return map[string][]string{
		"output": accepted(func(s string) error { _, err := pipeline.ParseOutput(s); return err },
			"grouped", "line", "tag", "jsonl", "none"),
		"halt": accepted(func(s string) error { _, err := pipeline.ParseHalt(s); return err },
			"never", "soon,fail=1", "now,fail=1", "soon,fail=10%", "now,success=1", "soon,success=1"),
		"containment": accepted(func(s string) error { _, err := process.ParseContainment(s); return err },
			"auto", "subreaper", "process-group"),
		"report-format": reportFormats,
		"progress":      {"auto", "always", "never"},
		"log-format":    {"text", "json"},
		"format":        {"auto", "yaml", "json", "jsonl", "lines"},
	}
}

// completeFlagValues registers the completion of every flag of cmd that flagValues
// knows, with values (for `gorun report --format`, the report formats).
func completeFlagValues(cmd *cobra.Command, values map[string][]string) {
	for name, vals := range values {
		if cmd.Flags().Lookup(name) == nil {
			continue
		}
		_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(vals, cobra.ShellCompDirectiveNoFileComp))
	}
}
