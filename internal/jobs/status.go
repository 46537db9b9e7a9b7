package jobs

import (
	"context"
	"errors"
)

// StatusOf decides how an attempt ended. ctx is the attempt's context: when gorun
// stopped the process because ctx ended, its cause tells a timeout from a cancellation,
// whatever the process's exit status; otherwise the exit status decides.
func StatusOf(ctx context.Context, a Attempt) Status {
	switch {
	case a.Stopped && errors.Is(context.Cause(ctx), ErrTimeout):
		return TimedOut
	case a.Stopped:
		return Cancelled
	case a.Err == nil && a.ExitCode == 0:
		return Succeeded
	}
	return Failed
}
