package main

import (
	"errors"
	"fmt"

	"github.com/gorun/gorun/internal/iostreams"
)

// usageError is a mistake in how gorun was called: flags, arguments or configuration.
// main prints it with a pointer to the command's help, and exits 2.
type usageError struct {
	cmd string // the command path whose help to point at, e.g. "gorun exec"
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, err: fmt.Errorf(format, args...)}
}

// errTasksFailed means that at least one task failed or timed out; the summary has
// said which, so main prints nothing more and exits 1.
var errTasksFailed = errors.New("some tasks did not succeed")

// errBrokenPipe means that gorun's standard output was closed by its reader; the run
// was stopped, and gorun exits 141, as a program killed by SIGPIPE does.
var errBrokenPipe = iostreams.ErrOutClosed

// lockHeldError means that another run holds the --lock file: gorun exits 75
// (EX_TEMPFAIL) without touching anything.
type lockHeldError struct{ err error }

func (e *lockHeldError) Error() string { return e.err.Error() }
func (e *lockHeldError) Unwrap() error { return e.err }

// cancelledError is the cause of a run on a broker that was cancelled from elsewhere:
// by gorun cancel, or by a worker because its submitter had been silent too long.
// gorun exits 3.
type cancelledError struct{ run, reason string }

func (e *cancelledError) Error() string {
	if e.reason == "" {
		return "run " + e.run + " cancelled"
	}
	return "run " + e.run + " cancelled: " + e.reason
}
