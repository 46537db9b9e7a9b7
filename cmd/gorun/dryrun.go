package main

import (
	"bufio"
	"errors"
	"io"
	"strings"

	"github.com/gorun/gorun/internal/input"
	"github.com/gorun/gorun/internal/jobs"
)

// printCommands writes, for --dry-run, the command of each task src yields, one per
// line, as a POSIX shell reads it back: `gorun exec --dry-run … | sh` runs what the run
// would run, task after task. Every word is quoted as it must be (a value with a
// newline keeps it, inside its quotes: the only way a command spans lines); a task's
// dir and env come first, in a subshell; each line ends with a comment that names the
// task (its id, and its input: see jobs.Label). Tasks with needs come in an order that
// respects them. An invalid task (a bad line of a stream) is an error: nothing runs.
func printCommands(w io.Writer, src jobs.Source) error {
	bw := bufio.NewWriter(w)
	if ss, ok := src.(*input.SliceSource); ok {
		if tasks, needs := ss.Tasks(); needs != nil {
			order, _ := jobs.Order(tasks, needs)
			for _, i := range order {
				bw.WriteString(shellCommand(&tasks[i]))
			}
			return bw.Flush()
		}
	}
	for {
		t, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if t.Invalid != nil {
			return t.Invalid
		}
		if _, err := bw.WriteString(shellCommand(&t)); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// shellCommand returns the line of --dry-run for t, newline included.
func shellCommand(t *jobs.Task) string {
	var b strings.Builder
	cmd := jobs.JoinArgv(t.Args(1)) // {%}: the first slot
	var env []string
	for _, kv := range t.Env {
		env = append(env, jobs.QuoteWord(kv))
	}
	if len(env) > 0 {
		cmd = "env " + strings.Join(env, " ") + " " + cmd
	}
	if t.Dir != "" {
		cmd = "(cd " + jobs.QuoteWord(t.Dir) + " && exec " + cmd + ")"
	}
	b.WriteString(cmd)
	b.WriteString("  # ")
	b.WriteString(jobs.Label(t.ID, t.Input()))
	b.WriteByte('\n')
	return b.String()
}
