package input

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/gorun/gorun/internal/jobs"
)

// SliceSource yields tasks that are all known up front, such as a task file's.
type SliceSource struct {
	tasks []jobs.Task
	next  int
	needs [][]int // nil: no task needs another
}

// NewGraphSource returns a Source over tasks whose needs (by position) must be
// honoured: the runner schedules it with Graph, not in input order.
func NewGraphSource(tasks []jobs.Task, needs [][]int) *SliceSource {
	return &SliceSource{tasks: tasks, needs: needs}
}

// Tasks returns the tasks, in input order, and their needs (nil: none), by position.
func (s *SliceSource) Tasks() ([]jobs.Task, [][]int) { return s.tasks, s.needs }

// NewSliceSource returns a Source over tasks.
func NewSliceSource(tasks []jobs.Task) *SliceSource { return &SliceSource{tasks: tasks} }

// Next implements Source.
func (s *SliceSource) Next() (jobs.Task, error) {
	if s.next >= len(s.tasks) {
		return jobs.Task{}, io.EOF
	}
	s.next++
	return s.tasks[s.next-1], nil
}

// Len returns the number of tasks.
func (s *SliceSource) Len() int { return len(s.tasks) }

// Close implements Source; the remaining tasks are still yielded, to be skipped.
func (s *SliceSource) Close() error { return nil }

// MaxLineBytes bounds one input line (or NUL-separated item); a longer one is an input
// error naming its line, never a silent truncation.
const MaxLineBytes = 64 << 20

// LineOptions say how a LineSource reads its stream and makes tasks of it.
type LineOptions struct {
	Settings jobs.Settings // per-task settings for every task
	Null     bool          // items end with NUL instead of newline, and keep any newline
	Template *Template     // when set, each item is an argument of the template, not a command
}

// LineSource reads one item per line (or NUL-terminated item) from a stream, as it
// arrives: the first task is yielded before the stream ends, and memory holds one item
// at a time. An item is a shell command, or the argument of a template. Empty items
// and blank command lines are skipped; a line's "\r\n" ending counts as its end, and a
// UTF-8 byte-order mark at the start of the stream is dropped.
type LineSource struct {
	lineReader
	opts  LineOptions
	index int // tasks yielded so far
}

// NewLineSource reads items from r, naming it name in errors ("stdin"). Closing the
// source closes r.
func NewLineSource(name string, r io.ReadCloser, opts LineOptions) *LineSource {
	delim := byte('\n')
	if opts.Null {
		delim = 0
	}
	return &LineSource{lineReader: newLineReader(name, r, delim), opts: opts}
}

// lineReader reads a stream one line (or NUL-terminated item) at a time.
type lineReader struct {
	name   string
	r      io.Closer
	br     *bufio.Reader
	delim  byte
	line   int // lines read so far
	closed atomic.Bool
}

func newLineReader(name string, r io.ReadCloser, delim byte) lineReader {
	return lineReader{name: name, r: r, br: bufio.NewReaderSize(r, 64<<10), delim: delim}
}

// Next implements Source.
func (l *LineSource) Next() (jobs.Task, error) {
	for {
		line, err := l.readLine()
		if err != nil {
			return jobs.Task{}, err
		}
		if len(line) == 0 || (l.opts.Template == nil && len(bytes.TrimSpace(line)) == 0) {
			continue // a blank command line; a template's item may be blanks, and is kept
		}
		l.index++
		sp := jobs.Spec{Run: string(line)}
		if l.opts.Template != nil {
			sp = jobs.Spec{Run: "-"}
		}
		t := jobs.Resolve(l.index, &sp, l.opts.Settings, &jobs.Defaults{})
		t.Line = l.line
		if l.opts.Template != nil {
			t.Run, t.Template, t.Item = "", l.opts.Template, string(line)
			checkValues(&t, l.opts.Template, jobs.InputError{File: l.name, Line: l.line})
		}
		return t, nil
	}
}

// readLine returns the next line without its end (\n or \r\n). A last line without a
// newline is a line. The slice is valid until the next call.
func (l *lineReader) readLine() ([]byte, error) {
	var long []byte
	for {
		chunk, err := l.br.ReadSlice(l.delim)
		if err == bufio.ErrBufferFull {
			if len(long)+len(chunk) > MaxLineBytes {
				return nil, &jobs.InputError{File: l.name, Line: l.line + 1, Col: 1, Msg: fmt.Sprintf("line longer than %d MiB", MaxLineBytes>>20)}
			}
			long = append(long, chunk...)
			continue
		}
		if long != nil {
			chunk = append(long, chunk...)
		}
		if err != nil && (len(chunk) == 0 || err != io.EOF) {
			if l.closed.Load() || err == io.EOF {
				return nil, io.EOF
			}
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the name is said once, here
			}
			return nil, fmt.Errorf("read %s: %w", l.name, err)
		}
		l.line++
		if l.line == 1 {
			chunk = trimBOM(chunk)
		}
		if l.delim == 0 {
			if n := len(chunk); n > 0 && chunk[n-1] == 0 {
				chunk = chunk[:n-1]
			}
			return chunk, nil
		}
		return trimEOL(chunk), nil
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// Close implements Source: it closes the stream, which ends a pending read.
func (l *lineReader) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	err := l.r.Close()
	if errors.Is(err, io.ErrClosedPipe) {
		return nil
	}
	return err
}

// checkValues marks a template task invalid when its values cannot run in tmpl (see
// Template.Check), with where it came from (at) and the task's id in the message.
func checkValues(t *jobs.Task, tmpl *Template, at jobs.InputError) {
	if err := tmpl.Check(t.TemplateValues(), t.Index); err != nil {
		at.Msg = t.ID + ": " + err.Error()
		t.Invalid = &at
	}
}
