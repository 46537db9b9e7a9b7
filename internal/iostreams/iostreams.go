// Package iostreams holds the standard streams a command uses, with terminal detection
// that tests can override.
package iostreams

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/term"
)

// IOStreams are a command's standard input, output and error.
type IOStreams struct {
	In     io.ReadCloser
	Out    io.Writer
	ErrOut io.Writer

	inTTY, outTTY, errTTY bool
	noColor               bool
	restore               func()
}

// System returns the process's own streams. When standard input is a pipe or FIFO, it
// is switched to non-blocking mode so that closing it ends a pending read (gorun stops
// reading its input on interrupt without waiting for the producer); Restore undoes that.
func System() *IOStreams {
	s := &IOStreams{
		In: os.Stdin, Out: stdout{os.Stdout}, ErrOut: os.Stderr,
		inTTY:   term.IsTerminal(int(os.Stdin.Fd())),
		outTTY:  term.IsTerminal(int(os.Stdout.Fd())),
		errTTY:  term.IsTerminal(int(os.Stderr.Fd())),
		noColor: os.Getenv("NO_COLOR") != "",
		restore: func() {},
	}
	if st, err := os.Stdin.Stat(); err == nil && st.Mode()&os.ModeNamedPipe != 0 {
		if syscall.SetNonblock(0, true) == nil {
			s.In = os.NewFile(0, "/dev/stdin") // pollable: Close ends a blocked Read
			s.restore = func() { _ = syscall.SetNonblock(0, false) }
		}
	}
	return s
}

// ErrOutClosed is the error of a write to standard output once its reader has gone
// (EPIPE: `gorun validate f.yaml | head -1`). Only writes to Out return it, so a
// broken pipe elsewhere (a connection a server closed) is never taken for it.
var ErrOutClosed = errors.New("standard output closed (broken pipe)")

// stdout is the process's standard output; a write to it that meets EPIPE returns
// ErrOutClosed, wrapping the write's error.
type stdout struct{ f *os.File }

func (s stdout) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	if err != nil && errors.Is(err, syscall.EPIPE) {
		err = fmt.Errorf("%w: %w", ErrOutClosed, err)
	}
	return n, err
}

// Restore puts standard input back in blocking mode, for whoever reads it next.
func (s *IOStreams) Restore() {
	if s.restore != nil {
		s.restore()
	}
}

// Test returns streams backed by buffers, none of them a terminal.
func Test() (s *IOStreams, in, out, errOut *bytes.Buffer) {
	in, out, errOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IOStreams{In: io.NopCloser(in), Out: out, ErrOut: errOut}, in, out, errOut
}

// IsStdinTTY reports whether standard input is a terminal.
func (s *IOStreams) IsStdinTTY() bool { return s.inTTY }

// IsStdoutTTY reports whether standard output is a terminal.
func (s *IOStreams) IsStdoutTTY() bool { return s.outTTY }

// IsStderrTTY reports whether standard error is a terminal.
func (s *IOStreams) IsStderrTTY() bool { return s.errTTY }

// ColorEnabled reports whether standard error may be coloured: a terminal, and no
// NO_COLOR in the environment (https://no-color.org).
func (s *IOStreams) ColorEnabled() bool { return s.errTTY && !s.noColor }

// SetStdinTTY overrides terminal detection of standard input, for tests.
func (s *IOStreams) SetStdinTTY(v bool) { s.inTTY = v }

// SetStderrTTY overrides terminal detection of standard error, for tests.
func (s *IOStreams) SetStderrTTY(v bool) { s.errTTY = v }
