package jobs

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// ErrTimeout is the cause of a task context that ran past the task's timeout.
var ErrTimeout = errors.New("task timed out")

// InputError is a problem in a task file or an input stream, found before anything ran.
// Its message is one line: `FILE:LINE:COL: KEY: MESSAGE`, with the parts that are known.
type InputError struct {
	File string // "-" or "stdin" for standard input
	Line int    // 1-based; 0 when unknown
	Col  int    // 1-based; 0 when unknown
	Key  string // the offending key, e.g. "timeout" or "tasks[2].run"; may be empty
	Msg  string
}

func (e *InputError) Error() string {
	s := e.File
	if e.Line > 0 {
		s += fmt.Sprintf(":%d", e.Line)
		if e.Col > 0 {
			s += fmt.Sprintf(":%d", e.Col)
		}
	}
	s += ": "
	if e.Key != "" {
		s += e.Key + ": "
	}
	return oneLine(s + e.Msg)
}

// oneLine escapes control characters (a key or a quoted value from the file may hold a
// newline), so an error stays one line in a log or a terminal.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
