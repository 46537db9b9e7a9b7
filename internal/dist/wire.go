package dist

import (
	"time"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
)

// OutputCap bounds the output of one task that travels back in its result; the
// result's tails and byte counts stay exact.
const OutputCap = 256 << 10

// taskMsg is a task on the wire: everything a worker needs to run it, resolved.
type taskMsg struct {
	Run        string        `json:"run"`
	Index      int           `json:"index"`
	ID         string        `json:"id"`
	Command    string        `json:"command"`
	Args       []string      `json:"args"`
	Dir        string        `json:"dir,omitempty"`
	Env        []string      `json:"env,omitempty"`
	Timeout    time.Duration `json:"timeout,omitempty"`
	Retries    int           `json:"retries,omitempty"`
	RetryDelay time.Duration `json:"retry_delay,omitempty"`
}

func toMsg(run string, t *jobs.Task) taskMsg {
	return taskMsg{Run: run, Index: t.Index, ID: t.ID, Command: t.Command(), Args: t.Args(0), Dir: t.Dir, Env: t.Env,
		Timeout: t.Timeout, Retries: t.Retries, RetryDelay: t.RetryDelay}
}

// task rebuilds the task a worker runs: its argv as given, and GORUN_RUN_ID the
// submitter's run.
func (m *taskMsg) task() jobs.Task {
	env := append(m.Env[:len(m.Env):len(m.Env)], process.RunIDVar+"="+m.Run)
	return jobs.Task{Index: m.Index, ID: m.ID, Argv: m.Args, Dir: m.Dir, Env: env,
		Timeout: m.Timeout, Retries: m.Retries, RetryDelay: m.RetryDelay}
}

// resultMsg is a finished task on the wire.
type resultMsg struct {
	jobs.Result
	Worker string `json:"worker"`
	Stdout string `json:"stdout,omitempty"` // up to OutputCap
	Stderr string `json:"stderr,omitempty"`
}
