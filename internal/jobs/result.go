package jobs

import (
	"strconv"
	"time"
)

// Status is how a task ended. Every task ends in exactly one.
type Status string

// The statuses, in the order reports list them.
const (
	Succeeded Status = "succeeded" // exited 0
	Failed    Status = "failed"    // exited non-zero, was killed by a signal, or could not start
	TimedOut  Status = "timed_out" // ran past its timeout and was stopped
	Cancelled Status = "cancelled" // running when the run was interrupted or halted
	Skipped   Status = "skipped"   // never started
	Invalid   Status = "invalid"   // never started: its input (a line of a JSON Lines stream, a value a template cannot take) was bad
)

// Statuses lists every status in report order.
var Statuses = []Status{Succeeded, Failed, TimedOut, Cancelled, Skipped, Invalid}

// OK reports whether s counts as success for the run's exit code: failed, timed-out
// and invalid tasks do not. Cancelled and skipped tasks are neither: the run's
// interruption decides the exit code then.
func (s Status) OK() bool { return s != Failed && s != TimedOut && s != Invalid }

// Result is how one task ended. Its JSON field names are part of gorun's interface.
type Result struct {
	ID      string `json:"id"`
	Index   int    `json:"index"`
	Key     string `json:"-"` // the task's identity in a journal
	Command string `json:"command"`
	// Input is what the input gave for a task it did not name (Task.Input): the item
	// of a template, a command line of a stream.
	Input    string `json:"input,omitempty"`
	Status   Status `json:"status"`
	ExitCode *int   `json:"exit_code"`        // nil: the process did not exit by itself
	Signal   string `json:"signal,omitempty"` // the signal that ended the process, e.g. "SIGKILL"
	Attempts int    `json:"attempts"`
	// RetryLog records, for a task that may be retried (retries above 0), each failed
	// attempt: whether it was retried, and why.
	RetryLog []RetryNote `json:"retry_log,omitempty"`
	// Duplicates counts executions whose end did not count: a remote attempt that ran
	// again elsewhere after its worker lost its lease, and then ended late.
	Duplicates int `json:"duplicates,omitempty"`
	Slot       int `json:"slot,omitempty"` // the worker slot that ran the last attempt
	// Wait is how long the task was ready to start but did not, over all its
	// attempts (retry delays not counted), and WaitedFor what held it back:
	// "workers", "rate", "limit NAME", "back-off", "load", "memfree", "resources
	// cpu"; and "worker resources cpu" when its remote worker held the last attempt
	// until what it asks for was free there (that time is in Waited, not Wait).
	Wait        Seconds   `json:"wait_s,omitempty"`
	WaitedFor   []string  `json:"waited_for,omitempty"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	Duration    Seconds   `json:"duration_s"`
	StdoutTail  string    `json:"stdout_tail"`
	StdoutBytes int64     `json:"stdout_bytes"`
	StderrTail  string    `json:"stderr_tail"`
	StderrBytes int64     `json:"stderr_bytes"`
	Error       string    `json:"error,omitempty"` // why it could not start, was skipped, or was invalid
	// Leftovers counts the processes of the last attempt still alive when its main
	// process exited; gorun stopped them all.
	Leftovers int `json:"leftover_processes,omitempty"`
	// Worker and Host name where the last attempt ran: the gorun worker (runs on a
	// broker only) and the host name of its machine.
	Worker string `json:"worker,omitempty"`
	Host   string `json:"host,omitempty"`
	// Waited is how long the last attempt waited, once a slot had taken it, before it
	// started: for the start-rate limit, or in the broker's queue for a worker.
	Waited Seconds `json:"waited_s,omitempty"`
	// Needs are the ids of the tasks this one needed (a task file's needs).
	Needs []string `json:"needs,omitempty"`
	// Earlier lists the attempts before the last one, first first: those that failed
	// or timed out and were retried. The last attempt is the result itself.
	Earlier []Try `json:"earlier_attempts,omitempty"`
}

// Label returns how a person reads which task this is: see Label.
func (r *Result) Label() string { return Label(r.ID, r.Input) }

// Try is how one earlier attempt of a task ended: where and when it ran, and how it
// ended. Its JSON field names mean what they mean in a Result.
type Try struct {
	Status    Status    `json:"status"`
	ExitCode  *int      `json:"exit_code"`
	Signal    string    `json:"signal,omitempty"`
	Slot      int       `json:"slot,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	Duration  Seconds   `json:"duration_s"`
	Waited    Seconds   `json:"waited_s,omitempty"`
	Worker    string    `json:"worker,omitempty"`
	Host      string    `json:"host,omitempty"`
	// StderrLast is the last line of the attempt's standard error, at most
	// MaxTryLine bytes, or why it could not start.
	StderrLast string `json:"stderr_last,omitempty"`
}

// MaxTryLine bounds Try.StderrLast.
const MaxTryLine = 240

// Seconds is a duration that JSON writes as a number of seconds.
type Seconds time.Duration

// MarshalJSON writes s as a number of seconds.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, time.Duration(s).Seconds(), 'f', -1, 64), nil
}

// UnmarshalJSON reads seconds.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return err
	}
	*s = Seconds(f * float64(time.Second))
	return nil
}

// InvalidResult is the result of a task whose input was bad (t.Invalid): it never
// started, and its error says what was wrong and where.
func InvalidResult(t *Task) Result {
	return Result{ID: t.ID, Index: t.Index, Command: t.Command(), Status: Invalid, Error: t.Invalid.Error()}
}

// SkippedResult is the result of a task that never started.
func SkippedResult(t *Task, reason string) Result {
	return Result{ID: t.ID, Index: t.Index, Key: t.Key, Command: t.Command(), Input: t.Input(), Status: Skipped, Error: reason, Needs: t.Needs}
}
