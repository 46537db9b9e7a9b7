package jobs

import (
	"context"
	"errors"
	"syscall"
	"time"
)

// Attempt is how one process run of a task ended.
type Attempt struct {
	Start     time.Time
	Duration  time.Duration // until the main process exited
	ExitCode  int           // -1 when the process did not exit by itself
	Signal    syscall.Signal
	Err       error // it could not start; or Wait failed
	Stopped   bool  // gorun signalled it because ctx ended
	Leftovers int   // processes of the task still alive when its main process exited; all were stopped
	// TimedOut: the runner itself stopped the attempt because the task's timeout
	// passed (a runner that applies timeouts itself, from the moment an attempt really
	// starts; see pipeline.Options.RunnerTimesOut).
	TimedOut bool
	// Executions counts the times the attempt ran: 0 or 1 for a local run; a remote
	// attempt that a worker's crash or lost lease handed to another worker ran more
	// than once. The scheduler counts every execution in the task's attempts.
	Executions int
	// Duplicates counts executions of the task, up to this attempt, whose end did not
	// count because another execution superseded them (remote runs only).
	Duplicates int
	// Worker and Host name where the attempt ran: the gorun worker (remote runs
	// only) and its machine's host name; Host is the local one for a local run.
	Worker, Host string
	// HeldFor is what its worker held it back for, delivered, before it started
	// ("worker resources cpu"; remote runs only): the time is part of the wait from the
	// slot to the start.
	HeldFor string
}

// StatusOf decides how an attempt ended. ctx is the attempt's context: when gorun
// stopped the process because ctx ended, its cause tells a timeout from a cancellation,
// whatever the process's exit status; otherwise the exit status decides.
func StatusOf(ctx context.Context, a Attempt) Status {
	switch {
	case a.Stopped && (a.TimedOut || errors.Is(context.Cause(ctx), ErrTimeout)):
		return TimedOut
	case a.Stopped:
		return Cancelled
	case a.Err == nil && a.ExitCode == 0:
		return Succeeded
	}
	return Failed
}
