package cluster

import (
	"fmt"
	"time"

	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/process"
)

// An attempt travels so:
//
//   - the Executor subscribes once per run to gorun.att.<run>.> and registers each
//     attempt (subject: gorun.att.<run>.<index>.<attempt>) before it publishes its
//     attemptMsg to the work queue (gorun.task.<run>); a message for an attempt no
//     longer registered is answered as for one that is over (a start is refused);
//   - a worker that takes it asks <subject>.start (startMsg, with the worker's stop
//     subject) and runs it only if the reply (startReply) says so, with the execution
//     number the reply gives;
//   - while it runs, each output stream goes to <subject>.out or <subject>.err as
//     requests of at most one chunk, the next sent only once the last was answered;
//   - once its process is over and all its output answered, the worker asks
//     <subject>.end (endMsg, with the delivery's ack subject) until it is answered.
//     The Executor records the end, then acknowledges the delivery with the end's
//     reply subject as the ack's: the broker's answer to the ack is the end's answer,
//     and the worker sends no ack of its own. The slot is free by then: when it
//     serves this run only, the end carries its next pull (endMsg.Next) and the ack
//     is the broker's ack-and-next (+NXT), answered with the slot's next attempt or
//     the pull's expiry on the end's reply subject, the slot's inbox; otherwise the
//     slot's pull goes out with the end. The end of a lost lease carries no ack
//     subject, is answered by the Executor and leaves the message to be delivered
//     again;
//   - the Executor publishes <subject> on the stop subject of every worker that started
//     an execution of the attempt (gorun.stop.<worker>, one subscription per worker;
//     <subject>.stop for a worker that named none) when the attempt's context ends,
//     again every stopResend, until the end arrives.
const (
	hdrExec = "Gorun-Exec" // the execution a chunk belongs to
	hdrSeq  = "Gorun-Seq"  // a chunk's 0-based number within its stream
)

// Chunk sizes: a chunk is at most maxChunk and leaves chunkHeadroom of the server's
// payload limit for headers.
const (
	maxChunk      = 128 << 10
	chunkHeadroom = 1 << 10
)

func attemptSubject(run string, index, attempt int) string {
	return fmt.Sprintf("gorun.att.%s.%d.%d", run, index, attempt)
}

// stopSubject is where a worker listens for the stops of its executions; id is unique
// per worker process.
func stopSubject(id string) string { return "gorun.stop." + id }

// attemptsOf is the subject of every message about the attempts of run.
func attemptsOf(run string) string { return "gorun.att." + run + ".>" }

// attemptMsg is one attempt of a task on the wire: everything a worker needs to run
// it, resolved by the submitter.
type attemptMsg struct {
	Run     string   `json:"run"`
	Index   int      `json:"index"`
	ID      string   `json:"id"`
	Attempt int      `json:"attempt"` // the number of its first execution
	Args    []string `json:"args"`
	// Line is the task's command line when its worker may start it as a local run
	// does: without a shell when it is a simple command whose program the worker
	// finds in its PATH, else through the default shell (process.Runner decides, on
	// the worker). Empty for an argv, a template, another shell, or a task that asks
	// for the shell always: the worker then runs Args. Args is sent either way, for
	// workers that do not read Line.
	Line    string        `json:"line,omitempty"`
	Dir     string        `json:"dir,omitempty"`
	Env     []string      `json:"env,omitempty"`
	EnvFrom []jobs.EnvRef `json:"env_from,omitempty"` // names only: the worker reads the values
	Grace   time.Duration `json:"grace"`
	Subject string        `json:"subject"`
	// Resources are what the task asks for: its worker starts it only when they fit
	// in what its running attempts leave of its capacity (see fitGate).
	Resources jobs.Resources `json:"resources,omitzero"`
}

func toMsg(run string, t *jobs.Task, slot, attempt int, grace time.Duration) attemptMsg {
	m := attemptMsg{Run: run, Index: t.Index, ID: t.ID, Attempt: attempt, Args: t.Args(slot), Dir: t.Dir, Env: t.Env, EnvFrom: t.EnvFrom,
		Grace: grace, Subject: attemptSubject(run, t.Index, attempt), Resources: t.Resources}
	if t.Template == nil && t.Argv == nil && !t.ShellAlways && t.Shell == jobs.DefaultShell {
		m.Line = t.Run
	}
	return m
}

// task rebuilds the task a worker runs: its command line for the default shell (which
// the worker's runner may start without a shell, as a local run would), else its argv
// as resolved by the submitter; and GORUN_RUN_ID the submitter's run.
func (m *attemptMsg) task() jobs.Task {
	env := append(m.Env[:len(m.Env):len(m.Env)], process.RunIDVar+"="+m.Run)
	t := jobs.Task{Index: m.Index, ID: m.ID, Argv: m.Args, Dir: m.Dir, Env: env, EnvFrom: m.EnvFrom, Grace: m.Grace}
	if m.Line != "" {
		t.Argv, t.Run, t.Shell = nil, m.Line, jobs.DefaultShell
	}
	return t
}

// startMsg asks whether an execution may start.
type startMsg struct {
	Exec      string `json:"exec"` // unique per execution
	Worker    string `json:"worker"`
	Delivered int    `json:"delivered"`      // the broker's delivery count
	Stop      string `json:"stop,omitempty"` // where the worker listens for stops: gorun.stop.<worker>
}

// startReply answers a startMsg.
type startReply struct {
	Run     bool `json:"run"`     // false: the attempt is over or stopped; drop it
	Attempt int  `json:"attempt"` // the execution's number: GORUN_ATTEMPT
	// Busy: another execution of the attempt still runs and renews its lease (the
	// broker delivered it again after a restart, say). Do not start; hand the
	// attempt back for later, when that execution will have ended or died.
	Busy bool `json:"busy,omitempty"`
	// Wait, with Busy: how long until the other execution, if it went silent, is
	// surely over.
	Wait time.Duration `json:"wait,omitempty"`
}

// endMsg is how an execution ended.
type endMsg struct {
	Exec      string        `json:"exec"`
	Worker    string        `json:"worker"`
	Host      string        `json:"host,omitempty"` // the worker's host name
	Start     time.Time     `json:"start"`
	Duration  time.Duration `json:"duration"`
	ExitCode  int           `json:"exit_code"`
	Signal    int           `json:"signal,omitempty"`
	Err       string        `json:"error,omitempty"`
	Stopped   bool          `json:"stopped,omitempty"`
	Leftovers int           `json:"leftovers,omitempty"`
	// Held: what the worker held the execution back for before it started ("worker
	// resources cpu"): what it asks for was not free on the worker (see fitGate).
	Held string `json:"held,omitempty"`
	// LeaseLost: the execution was stopped and does not count, and the broker
	// delivers the attempt again: its worker could not renew its lease, or was
	// draining and handed the attempt back.
	LeaseLost bool `json:"lease_lost,omitempty"`
	// Ack: the ack subject of the delivery that ran (never with LeaseLost): the
	// submitter acknowledges the delivery once it has recorded the end.
	Ack string `json:"ack,omitempty"`
	// Next, with Ack: the worker's slot is free and serves this run only. The ack is
	// then the broker's ack-and-next: it also pulls one attempt for the slot, answered
	// within Next on the end's reply subject (the slot's inbox).
	Next time.Duration `json:"next,omitempty"`
}
