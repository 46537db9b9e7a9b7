// Command gorun runs batches of tasks in parallel: from a task file or standard input,
// through a rate-limited pool of workers, to a summary of successes and failures.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/gorun/gorun/internal/iostreams"
	"github.com/gorun/gorun/internal/jobs"
	"github.com/gorun/gorun/internal/proc"
	"github.com/gorun/gorun/internal/process"
)

func main() {
	os.Exit(run())
}

// run sets up signals, runs the root command and maps its error to an exit code.
func run() int {
	if code, isGuard := guardMain(os.Args, os.Stdin); isGuard {
		return code
	}
	closeInheritedOnExec()
	ios := iostreams.System()
	defer ios.Restore()
	ctx, hurry, stop := notifySignals(context.Background())
	defer stop()

	root := NewCmdRoot(ios, hurry)
	root.SetArgs(os.Args[1:])
	err := root.ExecuteContext(ctx)
	return exitCode(ios, err)
}

// Exit codes, as DESIGN.md lists them.
const (
	exitOK        = 0
	exitFailed    = 1 // a task failed or timed out; or gorun itself failed
	exitUsage     = 2 // bad flags, config or input: nothing ran
	exitCancelled = 3 // a run on a broker cancelled from elsewhere (gorun cancel, an orphan)
	exitLockHeld  = 75
	exitSIGPIPE   = 128 + int(syscall.SIGPIPE)
)

// exitCode prints err once, if it needs printing, and returns the exit code it means.
func exitCode(ios *iostreams.IOStreams, err error) int {
	code, say := exitCodeOf(err), err != nil
	var (
		usage     *usageError
		interrupt *interruptedError
		coded     *exitCodeError
	)
	switch {
	case errors.As(err, &coded) && coded.msg == "":
		say = false
	case errors.As(err, &interrupt), errors.Is(err, errTasksFailed), errors.Is(err, errBrokenPipe):
		say = false // the summary said it
	case errors.As(err, &usage):
		fmt.Fprintf(ios.ErrOut, "gorun: %v\n", err)
		if usage.cmd != "" {
			fmt.Fprintf(ios.ErrOut, "Run '%s --help' for usage.\n", usage.cmd)
		}
		say = false
	}
	if say {
		fmt.Fprintf(ios.ErrOut, "gorun: %v\n", err)
	}
	return code
}

// exitCodeOf is the exit code that err means.
func exitCodeOf(err error) int {
	var (
		usage     *usageError
		input     *jobs.InputError
		interrupt *interruptedError
		held      *lockHeldError
		cancelled *cancelledError
		coded     *exitCodeError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &coded):
		return coded.code
	case errors.As(err, &interrupt):
		return 128 + int(interrupt.sig)
	case errors.As(err, &cancelled):
		return exitCancelled
	case errors.Is(err, errTasksFailed):
		return exitFailed
	case errors.Is(err, errBrokenPipe):
		// Any command whose reader went away (validate | head -1): quietly, as a
		// program killed by SIGPIPE.
		return exitSIGPIPE
	case errors.As(err, &held):
		return exitLockHeld
	case errors.As(err, &usage), errors.As(err, &input):
		return exitUsage
	}
	return exitFailed
}

// interruptedError is the cause of the run context once a signal arrived.
type interruptedError struct{ sig syscall.Signal }

func (e *interruptedError) Error() string { return "interrupted by " + process.SignalName(e.sig) }

// notifySignals returns a context that ends, with an *interruptedError cause, at the
// first SIGINT, SIGTERM or SIGHUP (the terminal closed), and a channel closed at the
// second: then running tasks are killed at once. After that, signals get their default action again. stop releases
// the signal handling and waits for its goroutine.
func notifySignals(parent context.Context) (ctx context.Context, hurry <-chan struct{}, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	// With SIGPIPE handled, a write to a closed stdout returns EPIPE instead of killing
	// gorun, so it can stop its tasks and say so. A handler, unlike SIG_IGN, is not
	// inherited by the tasks.
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	hurryCh := make(chan struct{})
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		count := 0
		for {
			select {
			case sig := <-ch:
				count++
				if count == 1 {
					cancel(&interruptedError{sig: sig.(syscall.Signal)})
					continue
				}
				close(hurryCh)
				signal.Stop(ch)
				return
			case <-done:
				return
			}
		}
	}()
	return ctx, hurryCh, func() {
		signal.Stop(ch)
		signal.Stop(pipe)
		close(done)
		<-finished
		cancel(nil)
	}
}

// closeInheritedOnExec marks every descriptor gorun inherited beyond 0, 1 and 2
// close-on-exec, so that tasks see only their standard streams: a descriptor leaked by
// whatever started gorun (a lock, a socket) must not be held by tasks after gorun is
// gone. The descriptors gorun opens itself are close-on-exec already.
func closeInheritedOnExec() {
	for _, fd := range proc.FDs() { // none where there is no /proc: not Linux
		if fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}
